"""The lock files' format: the one reader and writer of conda-lock.yml and explicit `conda-<platform>.lock` files.

1. `read_lock` / `parse_lock` read conda-lock.yml (v1 or v2) into conda-lock's
   own v2 models, and explicit `@EXPLICIT` files into the same models.
2. `render_conda_lock_yml` and `render_explicit` write them with conda-lock's
   own writer and explicit renderer; `known_rendering` and
   `remember_rendering` keep which conda-lock.yml texts were found to match
   the writer's rendering, with the data their YAML holds, so the same text
   is neither rendered for a check nor loaded as YAML again.
3. `packages_checksum`, `encode_specs` and `decode_specs` are what the lock
   stage records in conda-lock's `custom_metadata` for the next run.
4. `LOCK_NAME`, `explicit_name` and `file_name` name the files and packages.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import json
import tempfile
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from types import ModuleType, SimpleNamespace
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import pydantic
import yaml

from tooling.errors import ToolingError
from tooling.files import cache_folder, keep_in_cache
from tooling.log import logger
from tooling.yamlfiles import load_yaml, read_text

# conda-lock's models are imported where a lock is read or made: importing any module of conda-lock
# imports its whole command line and solvers first (half a second), which a command that only names
# the lock files (a build whose lock check is remembered) should not pay.
if TYPE_CHECKING:
    from conda_lock.lockfile.v2prelim.models import LockedDependency, Lockfile

LOCK_NAME = "conda-lock.yml"
# What every lock problem tells a person to do.
RELOCK = "run `python -m tooling lock`."

# Lock metadata keys the lock stage adds (conda-lock's `custom_metadata`).
SPECS_KEY = "hubship-specs"
SPEC_SEPARATOR = "; "
CHECKSUM_KEY = "hubship-packages-sha256"


def explicit_name(platform: str) -> str:
    """The file name of a platform's explicit lock: conda-<platform>.lock."""
    return f"conda-{platform}.lock"


def file_name(url: str) -> str:
    """The last path part of a package URL: its file name."""
    return PurePosixPath(urlsplit(url).path).name


class LockFileError(ToolingError):
    """A lock file that cannot be read: missing, truncated, edited into invalid YAML or an invalid model."""


def read_lock(path: Path) -> Lockfile:
    """A conda-lock.yml (v1 or v2) or an explicit lock, as conda-lock's v2 model, toposorted as conda-lock reads it."""
    return parse_lock(read_lock_text(path), path)


def read_lock_text(path: Path) -> str:
    """The text of a lock file; LockFileError when it is missing or not UTF-8."""
    try:
        return read_text(path)
    except ToolingError as exc:
        raise LockFileError(str(exc)) from None


def parse_lock(text: str, path: Path) -> Lockfile:
    """The text of a lock file (read from `path`, named in errors) as conda-lock's v2 model."""
    if is_explicit_lock(text):
        return _explicit_lock_model(path, text)
    lock = _conda_lock_model(path, text)
    lock.toposort_inplace()
    return lock


def is_explicit_lock(text: str) -> bool:
    """Whether the text is an explicit `@EXPLICIT` lock rather than conda-lock.yml."""
    return any(line.strip() == "@EXPLICIT" for line in text.splitlines())


def _conda_lock_model(path: Path, text: str) -> Lockfile:
    from conda_lock.lockfile.v1.models import Lockfile as LockfileV1  # noqa: PLC0415 (see the imports)
    from conda_lock.lockfile.v2prelim.models import Lockfile, lockfile_v1_to_v2  # noqa: PLC0415

    # conda-lock's own reader uses PyYAML's pure-Python loader, four times slower
    # than the C loader load_yaml uses on a large lock; the models and their validation are conda-lock's.
    # A text the writer wrote is not loaded again: its data was kept (see RENDERINGS_FOLDER).
    try:
        data = rendered_data(text) or load_yaml(text, path)
    except ToolingError as exc:
        raise LockFileError(
            f"{exc}; the file is truncated or was edited by hand. Run `python -m tooling lock` to write it again."
        ) from None
    if not isinstance(data, dict) or "package" not in data or "metadata" not in data:
        raise LockFileError(
            f"{path}: not a conda-lock file (no 'metadata' and 'package' sections); "
            "it is truncated or not a lock. Run `python -m tooling lock` to write it again."
        )
    version = data.pop("version", None)
    try:
        if version == 1:
            return lockfile_v1_to_v2(LockfileV1.model_validate(data))
        if version == 2:
            return Lockfile.model_validate(data)
    except pydantic.ValidationError as exc:
        raise LockFileError(f"{path}: not a valid conda-lock file: {_describe_validation(data, exc)}.") from None
    raise LockFileError(f"{path}: unknown conda-lock file version {version!r} (1 or 2 expected).")


def _describe_validation(data: dict[str, Any], exc: pydantic.ValidationError) -> str:
    error = exc.errors()[0]
    loc = list(error["loc"])
    where = ".".join(str(part) for part in loc)
    if len(loc) >= 2 and loc[0] == "package" and isinstance(loc[1], int):
        entry = data["package"][loc[1]]
        name = entry.get("name", "?") if isinstance(entry, dict) else "?"
        where = f"package #{loc[1] + 1} ({name}), field {'.'.join(str(part) for part in loc[2:]) or 'entry'}"
    return f"{where}: {error['msg']}"


def _explicit_lock_model(path: Path, text: str) -> Lockfile:
    from conda_lock.lockfile.v2prelim.models import Lockfile, LockMeta  # noqa: PLC0415 (see the imports)

    platform = ""
    input_hash = ""
    packages: list[LockedDependency] = []
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if line.startswith("# platform:"):
            platform = line.split(":", 1)[1].strip()
        elif line.startswith("# input_hash:"):
            input_hash = line.split(":", 1)[1].strip()
        elif line.startswith("# pip "):
            packages.append(_explicit_pip_entry(path, number, line[len("# pip ") :], platform))
        elif line and not line.startswith(("#", "@")):
            packages.append(_explicit_conda_entry(path, number, line, platform))
    if not platform:
        raise LockFileError(f"{path}: explicit lock without a '# platform:' line.")
    metadata = LockMeta(content_hash={platform: input_hash}, channels=[], platforms=[platform], sources=[path.name])
    return Lockfile(package=packages, metadata=metadata)


def _explicit_conda_entry(path: Path, number: int, line: str, platform: str) -> LockedDependency:
    from conda_lock.lockfile.v2prelim.models import HashModel, LockedDependency  # noqa: PLC0415 (see the imports)

    url, _, md5 = line.partition("#")
    name, version, build = split_package_file_name(file_name(url))
    if not name or not md5:
        raise LockFileError(f"{path}:{number}: expected 'URL#MD5' of a conda package, got {line!r}.")
    return LockedDependency(
        name=name,
        version=version,
        build=build,
        manager="conda",
        platform=platform,
        url=url,
        hash=HashModel(md5=md5),
        categories={"main"},
    )


def _explicit_pip_entry(path: Path, number: int, requirement: str, platform: str) -> LockedDependency:
    from conda_lock.lockfile.v2prelim.models import HashModel, LockedDependency  # noqa: PLC0415 (see the imports)

    name, _, rest = requirement.partition(" @ ")
    url, _, fragment = rest.partition("#sha256=")
    if not name or not url:
        raise LockFileError(f"{path}:{number}: expected '# pip NAME @ URL#sha256=HASH', got {requirement!r}.")
    version = _wheel_version(url)
    return LockedDependency(
        name=name.strip(),
        version=version,
        manager="pip",
        platform=platform,
        url=url,
        hash=HashModel(sha256=fragment or None),
        categories={"main"},
    )


def _wheel_version(url: str) -> str:
    parts = file_name(url).split("-")
    return parts[1] if len(parts) > 2 else ""


def split_package_file_name(file_name: str) -> tuple[str, str, str]:
    """NAME, VERSION, BUILD of a conda package file: names may hold '-', versions and builds may not."""
    stem = file_name
    for suffix in (".conda", ".tar.bz2"):
        if stem.endswith(suffix):
            stem = stem[: -len(suffix)]
            break
    else:
        return "", "", ""
    name, _, rest = stem.rpartition("-")
    name, _, version = name.rpartition("-")
    return name, version, rest


def package_build(package: LockedDependency) -> str:
    """The build string of a locked package; a conda entry without one takes it from its file name."""
    if package.build:
        return str(package.build)
    if package.manager != "conda":
        return ""
    return split_package_file_name(file_name(package.url))[2]


# --- what the lock stage records in conda-lock's custom_metadata ------------------


def encode_specs(specs: Mapping[tuple[str, str], str]) -> str:
    """Top-level specs as one metadata string: 'conda:numpy >=1.26; pip:requests'."""
    return SPEC_SEPARATOR.join(f"{manager}:{name} {spec}".rstrip() for (manager, name), spec in sorted(specs.items()))


def decode_specs(lock: Lockfile) -> dict[tuple[str, str], str]:
    """The top-level specs `encode_specs` recorded in a lock; empty when it recorded none."""
    custom = lock.metadata.custom_metadata or {}
    text = custom.get(SPECS_KEY, "")
    specs: dict[tuple[str, str], str] = {}
    for item in filter(None, text.split(SPEC_SEPARATOR)):
        manager, _, rest = item.partition(":")
        name, _, spec = rest.partition(" ")
        specs[(manager, name)] = spec
    return specs


# --- writing -----------------------------------------------------------------------


def packages_checksum(lock: Lockfile) -> str:
    """sha256 over every package entry, independent of their order: tells a hand edit of versions, URLs or hashes."""
    entries = sorted(
        json.dumps(entry.model_dump(mode="json", exclude_none=True), sort_keys=True)
        for package in lock.package
        if not package.name.startswith("__")
        for entry in package.to_v1()
    )
    return hashlib.sha256("\n".join(entries).encode()).hexdigest()


@dataclass(frozen=True)
class Rendering:
    """conda-lock.yml as conda-lock's writer writes a lock: the text, and the data its YAML holds."""

    text: str
    data: dict[str, Any]


def render_conda_lock_yml(lock: Lockfile) -> Rendering:
    """conda-lock.yml's text and data, from conda-lock's own writer (emitted by PyYAML's C emitter where it can)."""
    # conda-lock's writer writes to a path; render into a scratch file named as the real one
    # (its help header names the file), then hand the text to the caller to write atomically.
    dumped: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="hubship-lock-") as tmp, _conda_lock_writer(dumped) as writer:
        path = Path(tmp) / LOCK_NAME
        writer.write_conda_lock_file(lock.model_copy(deep=True), path, metadata_choices=None)
        return Rendering(path.read_text(encoding="utf-8"), dumped[0])


@contextmanager
def _conda_lock_writer(dumped: list[dict[str, Any]]) -> Iterator[ModuleType]:
    """conda-lock's writer module, whose `yaml.dump` adds the data it writes to `dumped`.

    It emits with PyYAML's C emitter where PyYAML has it: same text in a third of the time
    (docs/design.md, tooling/lockfile.py). The name is the module's, for every thread: nothing renders
    a lock on two threads.
    """
    from conda_lock import lockfile as writer  # noqa: PLC0415 (costly import, only when writing)

    dumper = yaml.CDumper if yaml.__with_libyaml__ else yaml.Dumper

    def dump(data: dict[str, Any], **options: Any) -> Any:
        dumped.append(data)
        return yaml.dump(data, Dumper=dumper, **options)

    original = writer.yaml
    writer.yaml = SimpleNamespace(dump=dump)
    try:
        yield writer
    finally:
        writer.yaml = original


# Rendering a large conda-lock.yml takes a tenth of a second, loading its YAML a fifth (PyYAML builds
# the objects in Python, also with the C loader); the lock check does both, and a relock loads the
# previous lock. What a text holds and whether it matches its rendering depend only on the
# text and the code that renders and reads it, so the answer is kept under the cache: for each text
# that matches, the data its YAML holds as JSON (a thirtieth of the time to load), in a file named by
# the sha256 of the text and of the versions of that code (the toolkit, conda-lock, PyYAML, pydantic).
# Only matches are kept: any other text, a hand edit included, is rendered and compared again, and the
# check says where it differs. The newest KEPT_RENDERINGS are kept: a pangeo-size lock's data is 0.4 MB.
RENDERINGS_FOLDER = "conda-lock-renderings"
KEPT_RENDERINGS = 32


def known_rendering(text: str) -> bool:
    """Whether `text` was found before to match what `render_conda_lock_yml` writes for the lock it holds."""
    return rendered_data(text) is not None


def rendered_data(text: str) -> dict[str, Any] | None:
    """The data the YAML of `text` holds, kept when `text` was found to be the writer's; None when not kept."""
    marker = _rendering_marker(text)
    try:
        data = json.loads(marker.read_text(encoding="utf-8"))
    except (OSError, ValueError):  # not kept, or damaged: the text is read and compared again
        return None
    return data if isinstance(data, dict) else None


def remember_rendering(text: str, data: dict[str, Any]) -> None:
    """Keep that `text` matches what the writer writes for the lock it holds, and `data`, what its YAML holds."""
    marker = _rendering_marker(text)
    if keep_in_cache(marker, json.dumps(data)):
        _forget_old_renderings(marker.parent)


def _forget_old_renderings(folder: Path) -> None:
    try:
        markers = sorted(folder.iterdir(), key=lambda marker: marker.stat().st_mtime, reverse=True)
        for old in markers[KEPT_RENDERINGS:]:
            old.unlink(missing_ok=True)
    except OSError as exc:  # another check pruning at the same time: one of the next ones prunes
        logger.debug("could not prune %s: %s", folder, exc)


def _rendering_marker(text: str) -> Path:
    from tooling import __version__  # noqa: PLC0415 (read from the metadata when asked: see tooling/__init__.py)

    versions = (
        f"hubship {__version__}, conda-lock {importlib.metadata.version('conda-lock')}, PyYAML {yaml.__version__}, "
        f"pydantic {pydantic.VERSION}\n"
    )
    key = hashlib.sha256((versions + text).encode()).hexdigest()
    return cache_folder() / RENDERINGS_FOLDER / key


def render_explicit(lock: Lockfile, platform: str) -> str:
    """A platform's explicit `@EXPLICIT url#md5` lock, from conda-lock's own renderer."""
    from conda_lock.conda_lock import render_lockfile_for_platform  # noqa: PLC0415 (costly import)

    lines = render_lockfile_for_platform(
        lockfile=lock.model_copy(deep=True),
        include_dev_dependencies=True,
        extras=None,
        kind="explicit",
        platform=platform,
        suppress_warning_for_pip_and_explicit=True,
    )
    return "\n".join(lines) + "\n"
