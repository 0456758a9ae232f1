"""The YAML files the toolkit reads with PyYAML: lock files and environment specs.

Every way such a file can be unreadable (missing, not UTF-8, a syntax error, a
control character, the wrong shape) becomes one ToolingError naming the file,
and the line and column where there is one. Helm values files are not read
here: values.py reads them with ruamel.yaml, which keeps their bytes.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from tooling.errors import ToolingError


def read_text(path: Path, missing: str = "no such file.") -> str:
    """The UTF-8 text of `path`; `missing` is the message when it does not exist."""
    try:
        return path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ToolingError(f"{path}: {missing}") from None
    except UnicodeDecodeError as exc:
        raise ToolingError(f"{path}: not UTF-8 text ({exc.reason} at byte {exc.start}).") from None


def load_yaml(text: str, path: Path) -> Any:
    """The YAML document in `text`, the contents of `path` (named in errors); PyYAML's safe C loader."""
    try:
        return yaml.load(text, Loader=yaml.CSafeLoader)
    except yaml.YAMLError as exc:
        raise ToolingError(f"{path}{_location(text, exc)}: not valid YAML: {_problem(exc)}") from None


def _location(text: str, exc: yaml.YAMLError) -> str:
    if isinstance(exc, yaml.MarkedYAMLError) and exc.problem_mark is not None:
        return f":{exc.problem_mark.line + 1}:{exc.problem_mark.column + 1}"
    if isinstance(exc, yaml.reader.ReaderError) and isinstance(exc.character, int):
        # The C loader counts bytes, not characters; the first occurrence of the
        # refused character is where the reader stopped.
        index = text.find(chr(exc.character))
        if index >= 0:
            line_start = text.rfind("\n", 0, index) + 1
            return f":{text.count(chr(10), 0, index) + 1}:{index - line_start + 1}"
    return ""


def _problem(exc: yaml.YAMLError) -> str:
    if isinstance(exc, yaml.MarkedYAMLError):
        return "; ".join(part for part in (exc.context, exc.problem) if part)
    if isinstance(exc, yaml.reader.ReaderError) and isinstance(exc.character, int):
        return f"character {exc.character:#06x} is not allowed in YAML"
    return str(exc).strip().splitlines()[0]


def read_environment_dependencies(path: Path) -> list[str | dict[str, list[str]]]:
    """The `dependencies:` of an environment.yml: conda spec strings and `pip:` lists of strings."""
    data = load_yaml(read_text(path, "no such file (hub.toml's environment.spec or --file names it)."), path)
    if not isinstance(data, dict) or not isinstance(data.get("dependencies"), list):
        raise ToolingError(f"{path}: an environment file needs a 'dependencies:' list.")
    if not isinstance(data.get("channels", []), list):
        raise ToolingError(f"{path}: 'channels:' must be a list of channel names or URLs.")
    for entry in data["dependencies"]:
        _check_dependency_entry(path, entry)
    dependencies: list[str | dict[str, list[str]]] = data["dependencies"]
    return dependencies


def _check_dependency_entry(path: Path, entry: Any) -> None:
    if isinstance(entry, str):
        return
    if not isinstance(entry, dict) or set(entry) != {"pip"} or not isinstance(entry["pip"], list):
        raise ToolingError(f"{path}: dependency {entry!r} is neither a conda spec nor a 'pip:' list.")
    for requirement in entry["pip"]:
        if not isinstance(requirement, str):
            raise ToolingError(f"{path}: pip requirement {requirement!r} is not a string.")
