"""The environment's layers: the lock's packages in groups, each installed by its own Dockerfile step.

A change to the lock should make few new layers, so that a push uploads, and
every node of the hub pulls, little. The grouping is a function of the lock
alone (names and records, never sizes or the build's moment), so the same
lock always gives the same groups, and the installer makes each group's
layer byte for byte the same whenever the group's packages are the same.

The groups, in install order (most stable first: a changed group makes
Docker run every later step again, though their layers come out the same;
see docs/design.md#layers):

1. `core`: python and everything it depends on, directly or not: the
   interpreter and the libraries everything links. It changes rarely.
2. `lib-N`: packages that do not depend on python (C and C++ libraries,
   compilers' runtimes, data), in LIBRARY_BUCKETS buckets.
3. `py-N`: packages that depend on python (modules, extensions, the
   spec's own applications), in PYTHON_BUCKETS buckets.
4. `pip`: the lock's pip packages, when there are any.

A package's group depends only on its own record (its name, and whether it
depends on python), never on which other packages the lock holds; so a
package that changes, appears or disappears touches its own group and no
other, and empty groups make no layer. (Grouping by depth in the dependency
tree would move a package when the only package depending on it goes.)
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass

from tooling.buildpack.plan import CondaPackage, InstallPlan, PipPackage

LIBRARY_BUCKETS = 4
PYTHON_BUCKETS = 16
CORE = "core"
PIP = "pip"
PYTHON_NAMES = frozenset({"python", "python_abi"})


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


def needs_python(package: CondaPackage) -> bool:
    """Whether the package's own record depends on python (or its ABI): a Python module or application."""
    return any(depend.split()[0] in PYTHON_NAMES for depend in package.depends)


def group_name(package: CondaPackage) -> str:
    """The group of a package outside the core: from its own record only."""
    if needs_python(package):
        return f"py-{bucket(package.name, PYTHON_BUCKETS)}"
    return f"lib-{bucket(package.name, LIBRARY_BUCKETS)}"


def layer_groups(plan: InstallPlan) -> tuple[LayerGroup, ...]:
    """The lock's packages as layers, in install order; a pure function of the lock."""
    core = plan.bootstrap_packages()
    core_names = {package.name for package in core}
    named: dict[str, list[CondaPackage]] = {}
    for package in plan.packages:
        if package.name not in core_names:
            named.setdefault(group_name(package), []).append(package)
    order = [f"lib-{n}" for n in range(LIBRARY_BUCKETS)] + [f"py-{n}" for n in range(PYTHON_BUCKETS)]
    groups = [LayerGroup(CORE, core)]
    groups += [LayerGroup(key, tuple(named[key])) for key in order if key in named]
    if plan.pip:
        groups.append(LayerGroup(PIP, (), plan.pip))
    return tuple(groups)
