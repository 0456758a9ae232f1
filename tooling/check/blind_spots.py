"""What the chart's schema cannot see: KubeSpawner options, volume fields, memory and cpu quantities.

The chart passes `singleuser.profileList`, `hub.config` and the extra volumes
to KubeSpawner untyped, so a typo there (`mem_limt`, `readonly`) reaches the
hub and is ignored or breaks spawns. Option names and volume fields come from
the installed KubeSpawner and Kubernetes models; quantities are parsed with
the very traits KubeSpawner declares (jupyterhub's ByteSpecification for
memory, traitlets' Float for cpu).
"""

from __future__ import annotations

import difflib
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from jupyterhub.traitlets import ByteSpecification
from traitlets import Float, TraitError

from tooling.check.findings import Finding, failure
from tooling.check.kubespawner_names import SpawnerNames
from tooling.check.values_files import KeyPath, MergedValues, dotted

_MEMORY = ByteSpecification()
_CPU = Float(allow_none=True)


def memory_bytes(value: Any) -> int | None:
    """Bytes, as KubeSpawner reads mem_limit/mem_guarantee ('8G' is 8 GiB); None when unset."""
    if value is None:
        return None
    try:
        result: int = _MEMORY.validate(None, value)
    except (TypeError, ValueError) as exc:
        raise TraitError(f"{value!r} is not a memory size") from exc
    return result


def cpu_cores(value: Any) -> float | None:
    """Cores, as KubeSpawner reads cpu_limit/cpu_guarantee (a number, never '500m'); None when unset."""
    result: float | None = _CPU.validate(None, value)
    return result


def suggestion(name: str, known: Any) -> str:
    close = difflib.get_close_matches(name, list(known), n=1, cutoff=0.6)
    return f"; did you mean '{close[0]}'?" if close else ""


@dataclass(frozen=True)
class Resources:
    """cpu and memory of one kind of user server, with where each was set."""

    label: str
    cpu_limit: float | None
    cpu_guarantee: float | None
    mem_limit: int | None
    mem_guarantee: int | None
    where: dict[str, KeyPath]


def spawner_option_places(values: MergedValues) -> Iterator[KeyPath]:
    """Every map of KubeSpawner options in the values: hub.config, profiles, profile choices, group overrides."""
    if isinstance(values.get(("hub", "config", "KubeSpawner")), dict):
        yield ("hub", "config", "KubeSpawner")
    for index, profile in enumerate(values.get(("singleuser", "profileList")) or []):
        if not isinstance(profile, dict):
            continue
        if isinstance(profile.get("kubespawner_override"), dict):
            yield ("singleuser", "profileList", index, "kubespawner_override")
        options = profile.get("profile_options")
        for option, spec in (options or {}).items() if isinstance(options, dict) else ():
            for choice, body in ((spec or {}).get("choices") or {}).items():
                if isinstance(body, dict) and isinstance(body.get("kubespawner_override"), dict):
                    yield (
                        "singleuser",
                        "profileList",
                        index,
                        "profile_options",
                        option,
                        "choices",
                        choice,
                        "kubespawner_override",
                    )
    overrides = values.get(("hub", "config", "KubeSpawner", "group_overrides"))
    for key, override in overrides.items() if isinstance(overrides, dict) else ():
        if isinstance(override, dict) and isinstance(override.get("spawner_override"), dict):
            yield ("hub", "config", "KubeSpawner", "group_overrides", key, "spawner_override")


def check_spawner_options(values: MergedValues, names: SpawnerNames) -> list[Finding]:
    findings: list[Finding] = []
    for place in spawner_option_places(values):
        for option, value in values.get(place).items():
            path = (*place, option)
            kind = names.traits.get(option)
            if kind is None:
                findings.append(
                    failure(
                        "kubespawner-option",
                        values.origin(path),
                        f"{dotted(path)}: KubeSpawner {names.kubespawner_version} has no option "
                        f"'{option}'{suggestion(option, names.traits)}",
                        "use an option name from KubeSpawner's documentation; an unknown one is ignored at spawn",
                    )
                )
            elif kind == "ByteSpecification":
                findings += _quantity(
                    values, path, value, memory_bytes, "a size such as 8G (K, M, G, T: powers of 1024)"
                )
            elif option.startswith("cpu_") and kind == "Float":
                findings += _quantity(values, path, value, cpu_cores, "a number of cores such as 1.75")
            elif option in ("volumes", "volume_mounts"):
                model = "V1Volume" if option == "volumes" else "V1VolumeMount"
                findings += check_volume_list(values, path, value, model, names)
    return findings


def _quantity(values: MergedValues, path: KeyPath, value: Any, parse: Any, wanted: str) -> list[Finding]:
    if value is None:
        return []
    try:
        parse(value)
    except TraitError:
        return [
            failure(
                "quantity",
                values.origin(path),
                f"{dotted(path)}: {value!r} is not {wanted}, as KubeSpawner reads it",
                f"{path[-1]}: write {wanted.rsplit(' such as ', maxsplit=1)[-1].split(' ', maxsplit=1)[0]}",
            )
        ]
    return []


CHART_QUANTITIES: tuple[tuple[KeyPath, Any, str], ...] = (
    (("singleuser", "memory", "limit"), memory_bytes, "a size such as 8G (K, M, G, T: powers of 1024)"),
    (("singleuser", "memory", "guarantee"), memory_bytes, "a size such as 7G (K, M, G, T: powers of 1024)"),
    (("singleuser", "cpu", "limit"), cpu_cores, "a number of cores such as 4"),
    (("singleuser", "cpu", "guarantee"), cpu_cores, "a number of cores such as 1.75"),
)

CHART_VOLUMES: tuple[tuple[KeyPath, str], ...] = (
    (("singleuser", "storage", "extraVolumes"), "V1Volume"),
    (("singleuser", "storage", "extraVolumeMounts"), "V1VolumeMount"),
    (("hub", "extraVolumes"), "V1Volume"),
    (("hub", "extraVolumeMounts"), "V1VolumeMount"),
)


def check_chart_blind_spots(values: MergedValues, names: SpawnerNames) -> list[Finding]:
    findings: list[Finding] = []
    for path, parse, wanted in CHART_QUANTITIES:
        findings += _quantity(values, path, values.get(path), parse, wanted)
    for path, model in CHART_VOLUMES:
        findings += check_volume_list(values, path, values.get(path), model, names)
    return findings


def check_volume_list(
    values: MergedValues, path: KeyPath, items: Any, model: str, names: SpawnerNames
) -> list[Finding]:
    """A list of volumes (or mounts), or a map of them as the chart and KubeSpawner also accept."""
    if isinstance(items, dict):
        entries: list[tuple[str | int, Any]] = list(items.items())
    elif isinstance(items, list):
        entries = list(enumerate(items))
    else:
        return []
    findings: list[Finding] = []
    for key, item in entries:
        findings += check_object(values, (*path, key), item, model, names)
    return findings


def check_object(values: MergedValues, path: KeyPath, item: Any, model: str, names: SpawnerNames) -> list[Finding]:
    """Unknown fields and non-boolean flags of one Kubernetes object, recursively."""
    if not isinstance(item, dict):
        return []
    fields = names.fields(model)
    findings: list[Finding] = []
    for key, value in item.items():
        field_path = (*path, key)
        field = fields.get(key)
        if field is None:
            findings.append(
                failure(
                    "volume-field",
                    values.origin(field_path),
                    f"{dotted(field_path)}: Kubernetes' {model[2:]} has no field '{key}'"
                    + suggestion(key, {field.json_name for field in fields.values()}),
                    "use the field names of the Kubernetes API (camelCase); an unknown one is dropped",
                )
            )
        elif field.kind == "bool" and not isinstance(value, bool):
            findings.append(
                failure(
                    "volume-field",
                    values.origin(field_path),
                    f"{dotted(field_path)}: {value!r} is not true or false",
                    f"{field.json_name}: true",
                )
            )
        elif field.kind in names.models:
            findings += check_object(values, field_path, value, field.kind, names)
        elif field.kind.startswith("list[") and field.kind[5:-1] in names.models and isinstance(value, list):
            for index, element in enumerate(value):
                findings += check_object(values, (*field_path, index), element, field.kind[5:-1], names)
    return findings


def resources_of(values: MergedValues) -> list[Resources]:
    """The default server's cpu and memory, and each profile's (its overrides over the defaults)."""
    base: dict[str, KeyPath] = {
        "cpu_limit": ("singleuser", "cpu", "limit"),
        "cpu_guarantee": ("singleuser", "cpu", "guarantee"),
        "mem_limit": ("singleuser", "memory", "limit"),
        "mem_guarantee": ("singleuser", "memory", "guarantee"),
    }
    found = [_resources(values, "default (singleuser)", base)]
    for index, profile in enumerate(values.get(("singleuser", "profileList")) or []):
        if not isinstance(profile, dict):
            continue
        override = profile.get("kubespawner_override") or {}
        where = dict(base)
        for option in base:
            if isinstance(override, dict) and option in override:
                where[option] = ("singleuser", "profileList", index, "kubespawner_override", option)
        name = profile.get("display_name") or profile.get("slug") or f"profile {index}"
        found.append(_resources(values, f"profile '{name}'", where))
    return found


def _resources(values: MergedValues, label: str, where: dict[str, KeyPath]) -> Resources:
    def parsed(option: str, parse: Any) -> Any:
        try:
            return parse(values.get(where[option]))
        except TraitError:
            return None  # reported as a quantity finding

    return Resources(
        label,
        parsed("cpu_limit", cpu_cores),
        parsed("cpu_guarantee", cpu_cores),
        parsed("mem_limit", memory_bytes),
        parsed("mem_guarantee", memory_bytes),
        where,
    )
