"""The environment's layers: the lock's packages in groups, each copied into the image by its own Dockerfile step.

A change to the lock should make few new layers, so that a push uploads, and
every node of the hub pulls, little. The grouping is a function of the lock
alone (names and dependencies, never sizes or the build's moment), so the same
lock always gives the same groups, and the installer makes each group's
layer byte for byte the same whenever the group's packages are the same.

The groups, in the image's order (most stable first: a changed group makes
Docker copy every later group again, though their layers come out the same;
see docs/design.md#layers):

1. `core`: python and everything it depends on, directly or not: the
   interpreter and the libraries everything links. It changes rarely.
2. `lib-N` and `py-N`: packages that several others depend on (shared
   libraries, then shared Python packages), in buckets by their own name.
3. `dep-N`: packages exactly one other package depends on, in buckets by the
   name of that one: they sit beside the rest of what is there only for it,
   and leave with it.
4. `top-N`: packages nothing depends on (what the spec asked for and nothing
   else needs), in buckets by their own name: upgrading one touches its
   bucket, not its dependencies'.
5. `pip`: the lock's pip packages, when there are any.

So a package's group depends on its own name and on the names of the packages
that depend on it directly, never on the rest of the lock: removing a leaf
changes its `top` bucket and the `dep` bucket of what only it needed; a package
moves only when what depends on it directly changes (the second of two
dependents goes). Empty groups make no layer.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from tooling.buildpack.plan import CondaPackage, InstallPlan, PipPackage

# Bucket counts: more buckets make each a smaller share of the image, and each is one more build step.
LIBRARY_BUCKETS = 4
SHARED_BUCKETS = 12
ONLY_NEEDED_BUCKETS = 12
TOP_BUCKETS = 8
CORE = "core"
PIP = "pip"
PYTHON_NAMES = frozenset({"python", "python_abi"})
GROUP_ORDER = (
    CORE,
    *(f"lib-{n}" for n in range(LIBRARY_BUCKETS)),
    *(f"py-{n}" for n in range(SHARED_BUCKETS)),
    *(f"dep-{n}" for n in range(ONLY_NEEDED_BUCKETS)),
    *(f"top-{n}" for n in range(TOP_BUCKETS)),
)
MAX_GROUPS = len(GROUP_ORDER) + 1


@dataclass(frozen=True)
class LayerGroup:
    """One layer's packages: its name, its conda packages in the lock's order, and pip packages (last group only)."""

    name: str
    packages: tuple[CondaPackage, ...]
    pip: tuple[PipPackage, ...] = ()

    @property
    def count(self) -> int:
        return len(self.packages) + len(self.pip)


def bucket(name: str, buckets: int) -> int:
    """A stable bucket for a name: a hash, so it never depends on other packages or on the order."""
    return int.from_bytes(hashlib.sha256(name.encode()).digest()[:4], "big") % buckets


def needs_python(package: CondaPackage) -> bool:
    """Whether the package's own record depends on python (or its ABI): a Python module or application."""
    return any(depend.split()[0] in PYTHON_NAMES for depend in package.depends)


def direct_dependents(packages: Iterable[CondaPackage]) -> dict[str, frozenset[str]]:
    """Package name -> the names of the lock's packages whose records depend on it."""
    listed = tuple(packages)
    names = {package.name for package in listed}
    dependents: dict[str, set[str]] = {name: set() for name in names}
    for package in listed:
        for depend in package.depends:
            needed = depend.split()[0]
            if needed in names and needed != package.name:
                dependents[needed].add(package.name)
    return {name: frozenset(found) for name, found in dependents.items()}


def group_name(package: CondaPackage, dependents: frozenset[str]) -> str:
    """The group of a package outside the core, from its name and the names of what depends on it directly."""
    if not dependents:
        return f"top-{bucket(package.name, TOP_BUCKETS)}"
    if len(dependents) == 1:
        return f"dep-{bucket(next(iter(dependents)), ONLY_NEEDED_BUCKETS)}"
    if needs_python(package):
        return f"py-{bucket(package.name, SHARED_BUCKETS)}"
    return f"lib-{bucket(package.name, LIBRARY_BUCKETS)}"


def group_names(plan: InstallPlan) -> Mapping[str, str]:
    """Package name -> its group, for every conda package of the lock."""
    core = {package.name for package in plan.bootstrap_packages()}
    dependents = direct_dependents(plan.packages)
    return {
        package.name: CORE if package.name in core else group_name(package, dependents[package.name])
        for package in plan.packages
    }


def layer_groups(plan: InstallPlan) -> tuple[LayerGroup, ...]:
    """The lock's packages as layers, in install order; a pure function of the lock."""
    names = group_names(plan)
    members: dict[str, list[CondaPackage]] = {}
    for package in plan.packages:
        members.setdefault(names[package.name], []).append(package)
    groups = [LayerGroup(name, tuple(members[name])) for name in GROUP_ORDER if name in members]
    if plan.pip:
        groups.append(LayerGroup(PIP, (), plan.pip))
    return tuple(groups)


def install_plan_json(groups: Sequence[LayerGroup]) -> str:
    """The installer's input: every group's packages, in install order; deterministic, as the step's cache key."""
    data = {
        "groups": [
            {
                "name": group.name,
                "packages": [{"url": p.url, "md5": p.md5, "sha256": p.sha256} for p in group.packages],
                "pip": [{"name": p.name, "url": p.url, "sha256": p.sha256} for p in group.pip],
            }
            for group in groups
        ]
    }
    return json.dumps(data, indent=1, sort_keys=True) + "\n"
