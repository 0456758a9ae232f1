"""Reading lock files and telling what changed between two of them.

`read_lock` reads conda-lock.yml (v1 or v2) into conda-lock's own models, and
also explicit `@EXPLICIT` files (conda-<platform>.lock). `diff_locks` compares
two locks package by package and, where the locks (and the top-level specs,
when known) tell it, says why a package changed: which package now needs
another version, which constraint went away, which spec changed.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any, Literal
from urllib.parse import urlsplit

import pydantic
from conda_lock.lockfile.v1.models import Lockfile as LockfileV1
from conda_lock.lockfile.v2prelim.models import HashModel, LockedDependency, Lockfile, LockMeta, lockfile_v1_to_v2
from packaging.specifiers import InvalidSpecifier, SpecifierSet
from packaging.version import InvalidVersion
from packaging.version import Version as PipVersion
from rattler import Version as CondaVersion
from rattler import VersionSpec
from rattler.exceptions import InvalidVersionError, InvalidVersionSpecError

from tooling.errors import ToolingError
from tooling.yamlfiles import load_yaml, read_text

ChangeKind = Literal["added", "removed", "upgraded", "downgraded", "rebuilt"]
KIND_ORDER: tuple[ChangeKind, ...] = ("upgraded", "downgraded", "added", "removed", "rebuilt")

# Lock metadata keys the lock stage adds (conda-lock's `custom_metadata`).
SPECS_KEY = "hubship-specs"
SPEC_SEPARATOR = "; "

# Reasons name at most this many packages; the rest are counted.
MAX_NAMED = 3
# Markdown tables longer than this fold into a <details> block.
MARKDOWN_FOLD_ROWS = 30


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
    return any(line.strip() == "@EXPLICIT" for line in text.splitlines())


def _conda_lock_model(path: Path, text: str) -> Lockfile:
    # conda-lock's own reader uses PyYAML's pure-Python loader, four times slower
    # than the C loader load_yaml uses on a large lock; the models and their validation are conda-lock's.
    try:
        data = load_yaml(text, path)
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
    url, _, md5 = line.partition("#")
    name, version, build = split_package_file_name(PurePosixPath(urlsplit(url).path).name)
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
    file_name = PurePosixPath(urlsplit(url).path).name
    parts = file_name.split("-")
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
    if package.build:
        return str(package.build)
    if package.manager != "conda":
        return ""
    return split_package_file_name(PurePosixPath(urlsplit(package.url).path).name)[2]


# --- specs recorded in a lock ------------------------------------------------


def encode_specs(specs: Mapping[tuple[str, str], str]) -> str:
    """Top-level specs as one metadata string: 'conda:numpy >=1.26; pip:requests'."""
    return SPEC_SEPARATOR.join(f"{manager}:{name} {spec}".rstrip() for (manager, name), spec in sorted(specs.items()))


def decode_specs(lock: Lockfile) -> dict[tuple[str, str], str]:
    custom = lock.metadata.custom_metadata or {}
    text = custom.get(SPECS_KEY, "")
    specs: dict[tuple[str, str], str] = {}
    for item in filter(None, text.split(SPEC_SEPARATOR)):
        manager, _, rest = item.partition(":")
        name, _, spec = rest.partition(" ")
        specs[(manager, name)] = spec
    return specs


# --- comparing two locks ------------------------------------------------------


@dataclass(frozen=True)
class PackageChange:
    platform: str
    manager: str
    name: str
    kind: ChangeKind
    old: str
    new: str
    top_level: bool
    reason: str

    @property
    def label(self) -> str:
        return _label(self.manager, self.name)


@dataclass(frozen=True)
class PlatformSummary:
    platform: str
    old_count: int | None  # None: the old lock had no solution for this platform
    new_count: int | None
    spec_changed: bool = True  # the content hashes differ: spec, channels or virtual packages changed

    @property
    def compared(self) -> bool:
        return self.old_count is not None and self.new_count is not None


@dataclass(frozen=True)
class ReportRow:
    """One change, shown once for all the platforms it happened on."""

    change: PackageChange
    platforms: tuple[str, ...]


@dataclass(frozen=True)
class LockReport:
    """What changed between two locks, per platform, with reasons where they can be told."""

    old_label: str
    new_label: str
    platforms: tuple[PlatformSummary, ...]
    changes: tuple[PackageChange, ...]
    resolved_specs: tuple[tuple[str, str, str], ...] = field(default=())  # (label, spec, version) for a first lock

    def counts(self, platform: str) -> dict[ChangeKind, int]:
        counts: dict[ChangeKind, int] = dict.fromkeys(KIND_ORDER, 0)
        for change in self.changes:
            if change.platform == platform:
                counts[change.kind] += 1
        return counts

    @property
    def first_lock(self) -> bool:
        return all(summary.old_count is None for summary in self.platforms)

    def summary_lines(self) -> list[str]:
        lines = []
        for summary in self.platforms:
            if summary.new_count is None:
                lines.append(f"{summary.platform}: not in the new lock (was {summary.old_count} packages)")
            elif summary.old_count is None:
                lines.append(f"{summary.platform}: {summary.new_count} packages (no previous lock for it)")
            else:
                counts = ", ".join(f"{n} {kind}" for kind, n in self.counts(summary.platform).items() if n)
                spec = "spec changed" if summary.spec_changed else "same spec"
                lines.append(
                    f"{summary.platform}: {summary.new_count} packages (was {summary.old_count}), {spec}: "
                    f"{counts or 'no changes'}"
                )
        return lines

    def rows(self) -> list[ReportRow]:
        """Changes merged across platforms where the same package changed the same way."""
        merged: dict[tuple[str, str, str, str, str], list[PackageChange]] = {}
        for change in self.changes:
            merged.setdefault((change.manager, change.name, change.kind, change.old, change.new), []).append(change)
        rows = [ReportRow(found[0], tuple(c.platform for c in found)) for found in merged.values()]
        rows.sort(key=lambda r: (not r.change.top_level, KIND_ORDER.index(r.change.kind), r.change.name))
        return rows

    def _platform_cell(self, row: ReportRow) -> str:
        compared = [s.platform for s in self.platforms if s.compared]
        return "all" if list(row.platforms) == compared else ", ".join(row.platforms)

    @property
    def _several_platforms(self) -> bool:
        return sum(1 for s in self.platforms if s.compared) > 1

    def table(self) -> str:
        """The changes as a plain-text table for a terminal."""
        if not self.changes:
            return "\n".join(self.summary_lines())
        header = ["change", "package", "old", "new"] + (["platforms"] if self._several_platforms else []) + ["why"]
        rows = [header]
        for row in self.rows():
            c = row.change
            cells = [c.kind, c.label + (" *" if c.top_level else ""), c.old, c.new]
            cells += [self._platform_cell(row)] if self._several_platforms else []
            rows.append([*cells, c.reason])
        widths = [max(len(r[i]) for r in rows) for i in range(len(header) - 1)]
        body = ["  ".join([*(cell.ljust(w) for cell, w in zip(r, widths, strict=False)), r[-1]]).rstrip() for r in rows]
        footer = ["* top-level spec"] if any(c.top_level for c in self.changes) else []
        return "\n".join([*self.summary_lines(), "", *body, *footer])

    def markdown(self, title: str) -> str:
        if self.first_lock:
            compared = f"New lock `{self.new_label}`"
        elif self.old_label == self.new_label:
            compared = f"Changes to `{self.new_label}`"
        else:
            compared = f"`{self.old_label}` → `{self.new_label}`"
        lines = [f"### {title}", "", compared, ""]
        lines += [f"- {line}" for line in self.summary_lines()]
        if self.first_lock and self.resolved_specs:
            lines += ["", "| Top-level spec | Resolved to |", "|---|---|"]
            lines += [f"| `{f'{label} {spec}'.rstrip()}` | {version} |" for label, spec, version in self.resolved_specs]
        if self.changes and not self.first_lock:
            lines += ["", *self._markdown_table()]
        return "\n".join(lines) + "\n"

    def _markdown_table(self) -> list[str]:
        several = self._several_platforms
        header = "| Change | Package | Old | New |" + (" Platforms |" if several else "") + " Why |"
        table = [header, "|---" * header.count(" |") + "|"]
        for row in self.rows():
            c = row.change
            name = f"**{c.label}**" if c.top_level else c.label
            platforms = f" {self._platform_cell(row)} |" if several else ""
            table.append(f"| {c.kind} | {name} | {c.old} | {c.new} |{platforms} {_escape_cell(c.reason)} |")
        if len(table) - 2 <= MARKDOWN_FOLD_ROWS:
            return table
        return [f"<details><summary>{len(table) - 2} changed packages</summary>", "", *table, "", "</details>"]


def _escape_cell(text: str) -> str:
    return text.replace("|", "\\|")


PackageKey = tuple[str, str]  # (manager, name)


def diff_locks(
    old: Lockfile | None,
    new: Lockfile,
    *,
    old_label: str,
    new_label: str,
    specs: Mapping[PackageKey, str] | None = None,
    updated: Iterable[str] = (),
) -> LockReport:
    """Compare two locks. `specs` are NEW's top-level specs ((manager, name) -> version spec), if known."""
    new_specs = dict(specs) if specs is not None else decode_specs(new)
    old_specs = decode_specs(old) if old is not None else {}
    platforms = _platforms(old, new)
    changes: list[PackageChange] = []
    summaries = []
    for platform in platforms:
        old_packages = _by_key(old, platform) if old is not None and platform in old.metadata.platforms else None
        new_packages = _by_key(new, platform) if platform in new.metadata.platforms else None
        spec_changed = old is None or old.metadata.content_hash.get(platform) != new.metadata.content_hash.get(platform)
        summaries.append(
            PlatformSummary(
                platform,
                len(old_packages) if old_packages is not None else None,
                len(new_packages) if new_packages is not None else None,
                spec_changed,
            )
        )
        if old_packages is None or new_packages is None:
            continue
        context = _Context(old_packages, new_packages, old_specs, new_specs, frozenset(updated), spec_changed)
        changes += [
            change
            for key in sorted(old_packages.keys() | new_packages.keys())
            if (change := context.change(platform, key))
        ]
    changes.sort(key=lambda c: (c.platform, not c.top_level, KIND_ORDER.index(c.kind), c.manager, c.name))
    resolved = _resolved_specs(new, platforms, new_specs) if old is None else ()
    return LockReport(old_label, new_label, tuple(summaries), tuple(changes), resolved)


def _platforms(old: Lockfile | None, new: Lockfile) -> list[str]:
    names = list(new.metadata.platforms)
    if old is not None:
        names += [p for p in old.metadata.platforms if p not in names]
    return names


def _by_key(lock: Lockfile, platform: str) -> dict[PackageKey, LockedDependency]:
    return {(p.manager, p.name): p for p in lock.package if p.platform == platform and not p.name.startswith("__")}


def _resolved_specs(
    new: Lockfile, platforms: Sequence[str], specs: Mapping[PackageKey, str]
) -> tuple[tuple[str, str, str], ...]:
    if not platforms:
        return ()
    packages = _by_key(new, platforms[0])
    rows = []
    for (manager, name), spec in sorted(specs.items()):
        package = packages.get((manager, name))
        rows.append((_label(manager, name), spec, package.version if package is not None else "not in the lock"))
    return tuple(rows)


@dataclass(frozen=True)
class _Context:
    old: Mapping[PackageKey, LockedDependency]
    new: Mapping[PackageKey, LockedDependency]
    old_specs: Mapping[PackageKey, str]
    new_specs: Mapping[PackageKey, str]
    updated: frozenset[str]
    spec_changed: bool

    def change(self, platform: str, key: PackageKey) -> PackageChange | None:
        before, after = self.old.get(key), self.new.get(key)
        kind = _kind(before, after)
        if kind is None:
            return None
        manager, name = key
        return PackageChange(
            platform=platform,
            manager=manager,
            name=name,
            kind=kind,
            old=_describe(before, kind),
            new=_describe(after, kind),
            top_level=key in self.new_specs or key in self.old_specs,
            reason=self.reason(key, kind, before, after),
        )

    def reason(
        self, key: PackageKey, kind: ChangeKind, before: LockedDependency | None, after: LockedDependency | None
    ) -> str:
        if kind == "added":
            assert after is not None
            return self._why_added(key)
        if kind == "removed":
            return self._why_removed(key)
        assert before is not None and after is not None
        if kind == "rebuilt":
            return f"new build {package_build(after)} of the same version".strip()
        return self._why_version_changed(key, before, after)

    def _why_added(self, key: PackageKey) -> str:
        if key in self.new_specs:
            return f"new top-level spec `{_spec_text(key, self.new_specs[key])}`"
        return _named("needed by", _dependents(self.new, key))

    def _why_removed(self, key: PackageKey) -> str:
        if key in self.old_specs and key not in self.new_specs:
            return "no longer a top-level spec"
        return "nothing in the new lock depends on it"

    def _why_version_changed(self, key: PackageKey, before: LockedDependency, after: LockedDependency) -> str:
        manager, name = key
        reasons = []
        if name in self.updated:
            reasons.append("--update asked for it")
        old_spec, new_spec = self.old_specs.get(key), self.new_specs.get(key)
        if old_spec is not None and new_spec is not None and old_spec != new_spec:
            reasons.append(f"spec changed: `{_spec_text(key, old_spec)}` → `{_spec_text(key, new_spec)}`")
        elif new_spec is not None and not _satisfies(manager, before.version, new_spec):
            reasons.append(f"spec `{_spec_text(key, new_spec)}` excludes {before.version}")
        now_needs = [
            f"{p.name} {p.version} needs `{name} {spec}`"
            for p, spec in _constraints_on(self.new, key)
            if not _satisfies(manager, before.version, spec)
        ]
        held_back = [
            f"{p.name} {p.version} (`{name} {spec}`)"
            for p, spec in _constraints_on(self.old, key)
            if not _satisfies(manager, after.version, spec)
        ]
        own_conflicts = [
            f"{name} {before.version} needs `{dependency} {spec}`, the new lock has {now.version}"
            for dependency, spec in before.dependencies.items()
            if (now := self.new.get((manager, dependency))) is not None and not _satisfies(manager, now.version, spec)
        ]
        reasons.append(_named("", now_needs))
        reasons.append(_named("no longer held back by", held_back))
        reasons.append(_named("", own_conflicts))
        told = "; ".join(reason for reason in reasons if reason)
        if not told and not self.spec_changed and after.version != before.version:
            # Same spec, channels and virtual packages, nothing pins it: only the channel's contents changed.
            return "the channel changed (same spec)"
        return told


def _kind(before: LockedDependency | None, after: LockedDependency | None) -> ChangeKind | None:
    if before is None:
        return "added" if after is not None else None
    if after is None:
        return "removed"
    if before.url == after.url and _same_hashes(before.hash, after.hash):
        return None
    order = _compare_versions(before.manager, before.version, after.version)
    if order < 0:
        return "upgraded"
    if order > 0:
        return "downgraded"
    return "rebuilt"


def _same_hashes(a: HashModel, b: HashModel) -> bool:
    """Equal where both record a digest (an explicit lock records only md5)."""
    pairs = [(a.md5, b.md5), (a.sha256, b.sha256)]
    compared = [(x, y) for x, y in pairs if x and y]
    return bool(compared) and all(x == y for x, y in compared)


def _compare_versions(manager: str, old: str, new: str) -> int:
    try:
        if manager == "pip":
            a, b = PipVersion(old), PipVersion(new)
            return (a > b) - (a < b)
        x, y = CondaVersion(old), CondaVersion(new)
        return (x > y) - (x < y)
    except (InvalidVersion, InvalidVersionError):
        # Not a version either ecosystem can order: say it changed, without a direction.
        return 0 if old == new else -1


def _describe(package: LockedDependency | None, kind: ChangeKind) -> str:
    if package is None:
        return ""
    if kind == "rebuilt":
        return f"{package.version} {package_build(package)}".strip()
    return str(package.version)


def _label(manager: str, name: str) -> str:
    """A package's name as the report shows it: pip packages marked, conda ones bare."""
    return f"{name} (pip)" if manager == "pip" else name


def _spec_text(key: PackageKey, spec: str) -> str:
    return f"{key[1]} {spec}".rstrip()


def _dependents(packages: Mapping[PackageKey, LockedDependency], key: PackageKey) -> list[str]:
    return sorted(f"{p.name} {p.version}" for p, _ in _constraints_on(packages, key))


def _constraints_on(
    packages: Mapping[PackageKey, LockedDependency], key: PackageKey
) -> list[tuple[LockedDependency, str]]:
    manager, name = key
    found = []
    for package in packages.values():
        # A pip package may depend on a conda package by its PyPI name; only compare like with like.
        if package.manager != manager:
            continue
        spec = package.dependencies.get(name)
        if spec is not None:
            found.append((package, spec))
    return sorted(found, key=lambda item: item[0].name)


def _satisfies(manager: str, version: str, spec: str) -> bool:
    """Whether VERSION meets SPEC; an unreadable spec counts as met (no reason rather than a wrong one)."""
    if spec in ("", "*"):
        return True
    try:
        if manager == "pip":
            return PipVersion(version) in SpecifierSet(spec)
        return bool(VersionSpec(spec).matches(CondaVersion(version)))
    except (InvalidSpecifier, InvalidVersion, InvalidVersionError, InvalidVersionSpecError):
        return True


def _named(prefix: str, items: Sequence[str]) -> str:
    if not items:
        return ""
    shown = ", ".join(items[:MAX_NAMED])
    more = f" and {len(items) - MAX_NAMED} more" if len(items) > MAX_NAMED else ""
    return f"{prefix} {shown}{more}".strip()
