"""Helm values files read with the line of every key, and merged the way Helm merges them.

Helm reads values with a YAML 1.1 parser (go-yaml) and keeps the last of two
equal keys without a word; PyYAML reads YAML 1.1 the same way, and its node
tree gives the line of every key, so a finding can name the file and line
that set a value. A duplicate key is reported (both lines), not silently
dropped. Merging follows Helm: the files in order over the chart's defaults,
maps merged deeply, later files win, lists replaced whole, `null` deletes a
default.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping, MutableMapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from tooling.errors import ToolingError

KeyPath = tuple[str | int, ...]


def dotted(path: KeyPath) -> str:
    """`singleuser.profileList[0].kubespawner_override`, the way the chart's docs write paths."""
    text = ""
    for step in path:
        text += f"[{step}]" if isinstance(step, int) else (f".{step}" if text else step)
    return text or "(top level)"


@dataclass(frozen=True)
class Origin:
    """Where a value was set: a values file (as hub.toml names it) and a line, 1-based."""

    file: str
    line: int

    def __str__(self) -> str:
        return f"{self.file}:{self.line}"


@dataclass(frozen=True)
class DuplicateKey:
    path: KeyPath
    first: Origin
    second: Origin


@dataclass(frozen=True)
class ValuesFile:
    label: str
    data: dict[str, Any]
    origins: dict[KeyPath, Origin]
    duplicates: tuple[DuplicateKey, ...]


def read_values_file(path: Path, label: str) -> ValuesFile:
    """Read one values file; a YAML error becomes one line with file:line:column."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ToolingError(f"{label}: no such values file (named in hub.toml).") from None
    except UnicodeDecodeError as exc:
        raise ToolingError(f"{label}: not UTF-8 text ({exc.reason} at byte {exc.start}).") from None
    return parse_values(text, label)


def parse_values(text: str, label: str) -> ValuesFile:
    loader = yaml.CSafeLoader(text)
    try:
        node = loader.get_single_node()
        origins: dict[KeyPath, Origin] = {}
        duplicates: list[DuplicateKey] = []
        if node is not None:
            _walk(node, (), label, origins, duplicates)
        data = loader.construct_document(node) if node is not None else None
    except yaml.MarkedYAMLError as exc:
        raise ToolingError(_yaml_error(label, exc)) from None
    except yaml.YAMLError as exc:
        raise ToolingError(f"{label}: not valid YAML: {exc}.") from None
    finally:
        loader.dispose()
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ToolingError(f"{label}:1:1: Helm values must be a mapping of keys, not {type(data).__name__}.")
    return ValuesFile(label, data, origins, tuple(duplicates))


def _yaml_error(label: str, exc: yaml.MarkedYAMLError) -> str:
    mark = exc.problem_mark or exc.context_mark
    where = f"{label}:{mark.line + 1}:{mark.column + 1}" if mark is not None else label
    if "another document" in str(exc.problem):
        return f"{where}: a second YAML document starts here; Helm reads only the first and ignores the rest."
    return f"{where}: not valid YAML: {exc.problem or exc.context}. Fix the file; Helm would refuse it too."


def _walk(
    node: Node,
    path: KeyPath,
    label: str,
    origins: dict[KeyPath, Origin],
    duplicates: list[DuplicateKey],
    *,
    ancestors: frozenset[int] = frozenset(),
) -> None:
    if id(node) in ancestors:
        return  # an alias to a node that holds it: YAML allows the cycle, the walk stops there
    ancestors |= {id(node)}
    if isinstance(node, MappingNode):
        seen: dict[str, Origin] = {}
        for key_node, value_node in node.value:
            if not isinstance(key_node, ScalarNode) or key_node.tag == "tag:yaml.org,2002:merge":
                continue
            key = str(key_node.value)
            here = Origin(label, key_node.start_mark.line + 1)
            if key in seen:
                duplicates.append(DuplicateKey((*path, key), seen[key], here))
            seen[key] = here
            _forget_below(origins, (*path, key))
            origins[(*path, key)] = here
            _walk(value_node, (*path, key), label, origins, duplicates, ancestors=ancestors)
    elif isinstance(node, SequenceNode):
        for index, item in enumerate(node.value):
            origins[(*path, index)] = Origin(label, item.start_mark.line + 1)
            _walk(item, (*path, index), label, origins, duplicates, ancestors=ancestors)


def _forget_below(origins: MutableMapping[KeyPath, Any], path: KeyPath) -> None:
    """A later value for `path` replaces what an earlier one set below it (a duplicate key, a later file)."""
    size = len(path)
    for stale in [known for known in origins if len(known) > size and known[:size] == path]:
        del origins[stale]


@dataclass(frozen=True)
class Origins:
    """Every line that set one key: one for a value, one per file for a map several files extend."""

    lines: tuple[Origin, ...]

    def __str__(self) -> str:
        return ", ".join(map(str, self.lines))


@dataclass
class MergedValues:
    """The values Helm would hand the chart, and for each key path the files and lines that set it."""

    data: dict[str, Any]
    origins: dict[KeyPath, list[Origin]] = field(default_factory=dict)

    def origin(self, path: KeyPath) -> Origins | None:
        """The lines that set `path`, or the nearest enclosing key the values files set."""
        for size in range(len(path), 0, -1):
            found = self.origins.get(path[:size])
            if found:
                return Origins(tuple(found))
        return None

    def get(self, path: KeyPath) -> Any:
        """The merged value at `path`, or None where there is none."""
        return value_at(self.data, path)


def merge_files(defaults: Mapping[str, Any], files: Sequence[ValuesFile]) -> MergedValues:
    """Helm's merge: user files in order (maps deep, later wins), then over the chart's defaults (null deletes)."""
    user: dict[str, Any] = {}
    origins: dict[KeyPath, list[Origin]] = {}
    for values in files:
        user = _merge_maps(user, values.data)
        for path, origin in values.origins.items():
            if isinstance(_at(values.data, path), dict):
                origins.setdefault(path, []).append(origin)
            else:
                _forget_below(origins, path)
                origins[path] = [origin]
    merged = _coalesce(_without_nulls(copy.deepcopy(dict(defaults))), user, dict(defaults))
    return MergedValues(merged, origins)


def _at(data: Any, path: KeyPath) -> Any:
    for step in path:
        data = data[step]
    return data


def _merge_maps(base: dict[str, Any], override: Mapping[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = _merge_maps(merged[key], value)
        else:
            merged[key] = value
    return merged


def _coalesce(merged: dict[str, Any], user: Mapping[str, Any], chart: Mapping[str, Any]) -> dict[str, Any]:
    """`user` over the chart's defaults (`merged` starts as them, nulls dropped): a user null deletes what the
    chart sets and stays a null where the chart sets nothing, as Helm's coalesce does."""
    for key, value in user.items():
        if value is None and key in chart:
            merged.pop(key, None)
        elif isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = _coalesce(merged[key], value, chart.get(key) or {})
        else:
            merged[key] = value
    return merged


def _without_nulls(value: Any) -> Any:
    """The chart's defaults without their nulls: Helm drops them from the values it hands the templates."""
    if isinstance(value, dict):
        return {key: _without_nulls(item) for key, item in value.items() if item is not None}
    return value


def value_at(data: Any, path: KeyPath) -> Any:
    """The value at `path` in plain YAML data, or None where there is none."""
    for step in path:
        if isinstance(step, int):
            data = data[step] if isinstance(data, list) and step < len(data) else None
        else:
            data = data.get(step) if isinstance(data, dict) else None
    return data
