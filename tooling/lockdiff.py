"""The lock change report: what changed between two locks, and why.

`diff_locks` compares two locks (as `tooling.lockfile` reads them) package
by package and, where the locks (and the top-level specs, when known) tell
it, says why a package changed: which package now needs another version,
which constraint went away, which spec changed.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Literal

from conda_lock.lockfile.v2prelim.models import HashModel, LockedDependency, Lockfile
from packaging.specifiers import InvalidSpecifier, SpecifierSet
from packaging.version import InvalidVersion
from packaging.version import Version as PipVersion
from rattler import Version as CondaVersion
from rattler import VersionSpec
from rattler.exceptions import InvalidVersionError, InvalidVersionSpecError

from tooling.lockfile import decode_specs, package_build

ChangeKind = Literal["added", "removed", "upgraded", "downgraded", "rebuilt"]
KIND_ORDER: tuple[ChangeKind, ...] = ("upgraded", "downgraded", "added", "removed", "rebuilt")

# Reasons name at most this many packages; the rest are counted.
MAX_NAMED = 3


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

    def rows(self) -> list[ReportRow]:
        """Changes merged across platforms where the same package changed the same way."""
        merged: dict[tuple[str, str, str, str, str], list[PackageChange]] = {}
        for change in self.changes:
            merged.setdefault((change.manager, change.name, change.kind, change.old, change.new), []).append(change)
        rows = [ReportRow(found[0], tuple(c.platform for c in found)) for found in merged.values()]
        rows.sort(key=lambda r: (not r.change.top_level, KIND_ORDER.index(r.change.kind), r.change.name))
        return rows


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
        explainer = _ChangeExplainer(old_packages, new_packages, old_specs, new_specs, frozenset(updated), spec_changed)
        changes += [
            change
            for key in sorted(old_packages.keys() | new_packages.keys())
            if (change := explainer.change(platform, key))
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
class _ChangeExplainer:
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
