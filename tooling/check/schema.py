"""The merged values against the chart's values.schema.json, one finding per problem, with file and line.

Helm runs the same validation on template, install and upgrade, but stops at
a list of JSON pointers; here every problem names the values file and line
that set the key, what the schema wants, and for an unknown key the nearest
known one.
"""

from __future__ import annotations

import re
import sys
from collections.abc import Iterator, Mapping
from typing import Any

from tooling.check.blind_spots import suggestion
from tooling.check.findings import Finding, failure
from tooling.check.values_files import KeyPath, MergedValues, dotted


def _import_jsonschema() -> Any:
    """jsonschema, without the optional IRI grammar that takes about a second to build on every import.

    jupyter-events (a JupyterHub dependency) installs rfc3987-syntax, which
    jsonschema imports if present to check the `iri` format; the chart's
    schema uses no formats and format checking is off here, so it is hidden
    for this one import and left importable for everyone else.
    """
    hidden = "rfc3987_syntax" not in sys.modules
    if hidden:
        sys.modules["rfc3987_syntax"] = None  # type: ignore[assignment]
    try:
        import jsonschema  # noqa: PLC0415

        return jsonschema
    finally:
        if hidden:
            del sys.modules["rfc3987_syntax"]


def schema_findings(schema: Mapping[str, Any], values: MergedValues) -> list[Finding]:
    jsonschema = _import_jsonschema()
    validator_class = jsonschema.validators.validator_for(schema, default=jsonschema.Draft7Validator)
    validator = validator_class(schema)
    findings: list[Finding] = []
    for error in sorted(validator.iter_errors(values.data), key=lambda error: list(map(str, error.absolute_path))):
        findings.extend(_describe(error, values))
    return findings


def _describe(error: Any, values: MergedValues) -> Iterator[Finding]:
    path: KeyPath = tuple(error.absolute_path)
    if error.validator == "additionalProperties":
        known = dict(error.schema.get("properties", {}))
        for key in _extra_keys(error):
            key_path = (*path, key)
            allowed = ", ".join(sorted(known)) or "none"
            yield failure(
                "schema",
                values.origin(key_path),
                f"{dotted(key_path)}: unknown key{suggestion(key, known)} (the chart allows under "
                f"{dotted(path)}: {allowed})",
                "remove or rename it; see the chart's values.yaml and changelog for where it moved",
            )
        return
    if error.validator == "required":
        yield failure("schema", values.origin(path), f"{dotted(path)}: {error.message}", "add the missing key")
        return
    wanted = (
        f"{error.validator} {error.validator_value!r}"
        if error.validator != "type"
        else (f"type {error.validator_value}")
    )
    yield failure(
        "schema",
        values.origin(path),
        f"{dotted(path)}: the schema wants {wanted}; got {_shown(path, error.instance)}",
        f"set {dotted(path)} to a value of {wanted}",
    )


_SECRET_WORDS = re.compile(r"secret|token|password|key|cookie|crypt", re.IGNORECASE)


def _shown(path: KeyPath, value: Any) -> str:
    """The value for the report, unless its key may hold a secret (then only its type)."""
    if any(isinstance(step, str) and _SECRET_WORDS.search(step) for step in path):
        return f"{type(value).__name__} (not shown: the key may hold a secret)"
    return repr(value)


def _extra_keys(error: Any) -> list[str]:
    properties = error.schema.get("properties", {})
    patterns = list(error.schema.get("patternProperties", {}))
    return sorted(
        key for key in error.instance if key not in properties and not any(re.search(p, key) for p in patterns)
    )
