"""The environment's layers: the lock's packages in groups, each installed by its own Dockerfile step.

A change to the lock should make few new layers, so that a push uploads, and
every node of the hub pulls, little. The grouping is a function of the lock
alone (names and dependencies, never sizes or the build's moment), so the
same lock always gives the same groups, and the installer makes each group's
layer byte for byte the same whenever the group's packages are the same.

The groups, in install order (most stable first, because a changed group
makes Docker run every later step again, though their layers come out the
same; see docs/design.md#layers):

1. `core`: python and everything it depends on, directly or not. The
   interpreter and the libraries everything links; it changes rarely.
2. `shared-N`: the packages that another package of the lock depends on,
   in SHARED_BUCKETS buckets chosen by a hash of the package's name.
3. `top-N`: the packages nothing depends on: environment.yml's own packages
   (and leaves), in TOP_BUCKETS buckets by the same hash.
4. `pip`: the lock's pip packages, when there are any.

A bucket depends only on the package's name and on whether anything depends
on it, so a package changing version, or appearing or disappearing, touches
its own bucket and no other; empty buckets make no layer.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass

from tooling.buildpack.plan import CondaPackage, InstallPlan, PipPackage

SHARED_BUCKETS = 8
TOP_BUCKETS = 4
CORE = "core"
PIP = "pip"


@dataclass(frozen=True)
class LayerGroup:
    """One layer's packages: its name, its conda packages in the lock's order, and pip packages (last group only)."""

    name: str
    packages: tuple[CondaPackage, ...]
    pip: tuple[PipPackage, ...] = ()

    @property
    def count(self) -> int:
        return len(self.packages) + len(self.pip)

    def to_json(self) -> str:
        """The installer's input for this layer; deterministic, so the step's cache key is too."""
        data = {
            "packages": [{"url": p.url, "md5": p.md5, "sha256": p.sha256} for p in self.packages],
            "pip": [{"name": p.name, "url": p.url, "sha256": p.sha256} for p in self.pip],
        }
        return json.dumps(data, indent=1, sort_keys=True) + "\n"


def bucket(name: str, buckets: int) -> int:
    """A stable bucket for a package name: a hash, so it never depends on other packages or on the order."""
    return int.from_bytes(hashlib.sha256(name.encode()).digest()[:4], "big") % buckets


def depended_on(plan: InstallPlan) -> frozenset[str]:
    """Names of the lock's packages that some other package of the lock depends on."""
    names = {package.name for package in plan.packages}
    return frozenset(
        depend.split()[0]
        for package in plan.packages
        for depend in package.depends
        if depend.split()[0] in names and depend.split()[0] != package.name
    )


def layer_groups(plan: InstallPlan) -> tuple[LayerGroup, ...]:
    """The lock's packages as layers, in install order; a pure function of the lock."""
    core = plan.bootstrap_packages()
    core_names = {package.name for package in core}
    shared = depended_on(plan)
    named: dict[str, list[CondaPackage]] = {}
    for package in plan.packages:
        if package.name in core_names:
            continue
        if package.name in shared:
            key = f"shared-{bucket(package.name, SHARED_BUCKETS)}"
        else:
            key = f"top-{bucket(package.name, TOP_BUCKETS)}"
        named.setdefault(key, []).append(package)
    order = [f"shared-{n}" for n in range(SHARED_BUCKETS)] + [f"top-{n}" for n in range(TOP_BUCKETS)]
    groups = [LayerGroup(CORE, core)]
    groups += [LayerGroup(key, tuple(named[key])) for key in order if key in named]
    if plan.pip:
        groups.append(LayerGroup(PIP, (), plan.pip))
    return tuple(groups)
