"""The install plan: what the image's environment is, read from the two lock files and checked against each other.

1. `read_install_plan` reads the explicit lock (its packages, in its order)
   and conda-lock.yml (which adds each package's sha256 and dependencies).
2. The two must agree package by package, each package must have both hashes,
   and the lock must hold a python the installer's py-rattler runs on.
3. `InstallPlan.to_json` is the installer's input inside the build.
4. `remembered_plan` and `remember_plan` keep the plan of a lock that passed
   the lock check, under the cache, named by a digest of everything the
   check and the plan read: a build whose inputs did not change needs
   neither again, nor conda-lock, whose import alone costs such a build
   more than all the rest of it.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from packaging.specifiers import SpecifierSet
from packaging.version import Version

from tooling.errors import ToolingError
from tooling.files import keep_in_cache
from tooling.images import IMAGE_PLATFORM
from tooling.lockfile import RELOCK, LockFileError, file_name, read_lock, split_package_file_name
from tooling.lockrequest import LockRequest
from tooling.log import logger

if TYPE_CHECKING:
    from conda_lock.lockfile.v2prelim.models import LockedDependency, Lockfile

RATTLER_DISTRIBUTION = "py-rattler"
CHECKED_PLANS_FOLDER = "checked-install-plans"
# Besides the files, what decides the check's verdict and the plan: the toolkit's own code and these.
CHECK_DISTRIBUTIONS = ("conda-lock", "pydantic", "PyYAML", RATTLER_DISTRIBUTION)
TOOLKIT = Path(__file__).resolve().parents[1]


@dataclass(frozen=True)
class CondaPackage:
    url: str
    md5: str
    sha256: str
    name: str
    version: str
    build: str
    depends: tuple[str, ...]

    @property
    def file_name(self) -> str:
        return file_name(self.url)


@dataclass(frozen=True)
class PipPackage:
    name: str
    url: str
    sha256: str


@dataclass(frozen=True)
class InstallPlan:
    """What the image's environment is: the explicit lock's packages in its order, each with both hashes."""

    explicit_file: Path
    packages: tuple[CondaPackage, ...]
    pip: tuple[PipPackage, ...]

    @property
    def python(self) -> CondaPackage:
        return next(package for package in self.packages if package.name == "python")

    @property
    def python_minor(self) -> str:
        """X.Y of the locked python."""
        return ".".join(self.python.version.split(".")[:2])

    def bootstrap_packages(self) -> tuple[CondaPackage, ...]:
        """The locked python and every package it depends on, directly or not."""
        by_name = {package.name: package for package in self.packages}
        wanted, pending = {"python"}, ["python"]
        while pending:
            for depend in by_name[pending.pop()].depends:
                name = depend.split()[0]
                if name in by_name and name not in wanted:
                    wanted.add(name)
                    pending.append(name)
        return tuple(package for package in self.packages if package.name in wanted)

    def to_json(self) -> str:
        """What the image installs, as deterministic JSON: its sha256 is one of the image tag's inputs."""
        data = {
            "packages": [{"url": p.url, "md5": p.md5, "sha256": p.sha256} for p in self.packages],
            "pip": [{"name": p.name, "url": p.url, "sha256": p.sha256} for p in self.pip],
        }
        return json.dumps(data, indent=1, sort_keys=True) + "\n"

    def to_cache_json(self) -> str:
        """The whole plan as JSON, as `from_cache_json` reads it back."""
        return json.dumps(asdict(self), default=str)

    @classmethod
    def from_cache_json(cls, text: str) -> InstallPlan:
        data = json.loads(text)
        return cls(
            explicit_file=Path(data["explicit_file"]),
            packages=tuple(CondaPackage(**{**p, "depends": tuple(p["depends"])}) for p in data["packages"]),
            pip=tuple(PipPackage(**p) for p in data["pip"]),
        )


def read_install_plan(explicit_file: Path, lock_file: Path, *, lock: Lockfile | None = None) -> InstallPlan:
    """The explicit lock, checked entry by entry against conda-lock.yml, which adds sha256 and dependencies.

    `lock` is conda-lock.yml as the caller already read it (the lock check does), so it is not read again.
    """
    explicit = _read(explicit_file)
    if explicit.metadata.platforms != [IMAGE_PLATFORM]:
        raise ToolingError(f"{explicit_file}: a lock for {explicit.metadata.platforms}, not {IMAGE_PLATFORM}; {RELOCK}")
    full = {
        package.url: package
        for package in (lock if lock is not None else _read(lock_file)).package
        if package.platform == IMAGE_PLATFORM and package.manager == "conda"
    }
    conda_packages = tuple(
        _conda_package(entry, full.get(entry.url), explicit_file, lock_file)
        for entry in explicit.package
        if entry.manager == "conda"
    )
    extra = sorted(set(full) - {package.url for package in conda_packages})
    if extra:
        raise ToolingError(
            f"{lock_file} lists {len(extra)} package(s) that {explicit_file} lacks, e.g. {extra[0]}: "
            f"the two lock files disagree; {RELOCK}"
        )
    pip = tuple(_pip_package(entry, explicit_file) for entry in explicit.package if entry.manager == "pip")
    plan = InstallPlan(explicit_file, conda_packages, pip)
    _require_python(plan)
    return plan


def _read(path: Path) -> Lockfile:
    try:
        return read_lock(path)
    except LockFileError as exc:
        raise ToolingError(f"{exc.message} The build installs the lock files the lock stage writes; {RELOCK}") from None


def _conda_package(
    entry: LockedDependency, full: LockedDependency | None, explicit_file: Path, lock_file: Path
) -> CondaPackage:
    name, version, build = split_package_file_name(file_name(entry.url))
    if full is None:
        raise ToolingError(f"{explicit_file}: {entry.url} is not in {lock_file}: the two lock files disagree; {RELOCK}")
    if full.hash.md5 != entry.hash.md5:
        raise ToolingError(
            f"{explicit_file}: the md5 of {name} ({entry.hash.md5}) is not the one in {lock_file} "
            f"({full.hash.md5}): the two lock files disagree; {RELOCK}"
        )
    if not full.hash.sha256:
        raise ToolingError(
            f"{lock_file}: {name} has no sha256; the build checks both hashes of every package; {RELOCK}"
        )
    depends = tuple(f"{dep} {spec}".strip() for dep, spec in sorted(full.dependencies.items()))
    return CondaPackage(entry.url, str(entry.hash.md5), full.hash.sha256, name, version, build, depends)


def _pip_package(entry: LockedDependency, explicit_file: Path) -> PipPackage:
    if not entry.hash.sha256:
        raise ToolingError(
            f"{explicit_file}: the pip line of {entry.name} has no #sha256=; pip installs only with hashes; {RELOCK}"
        )
    return PipPackage(entry.name, entry.url, entry.hash.sha256)


def _require_python(plan: InstallPlan) -> None:
    if not any(package.name == "python" for package in plan.packages):
        raise ToolingError(
            f"{plan.explicit_file}: the lock has no python. The installer runs on the lock's own python, and a hub "
            "image needs one for jupyterhub-singleuser: add python to environment.yml and relock."
        )
    needed = SpecifierSet(importlib.metadata.metadata(RATTLER_DISTRIBUTION)["Requires-Python"] or "")
    if Version(plan.python.version) not in needed:
        raise ToolingError(
            f"{plan.explicit_file}: the locked python is {plan.python.version}; the installer's py-rattler needs "
            f"python {needed}. Lock a newer python (environment.yml), then build."
        )
    if plan.pip and not any(package.name == "pip" for package in plan.packages):
        raise ToolingError(
            f"{plan.explicit_file}: the lock has `# pip` lines but no conda `pip` package to install them with: "
            "add pip to environment.yml and relock."
        )


# --- plans of locks that passed the check ---------------------------------------------------


def remembered_plan(cache_dir: Path, request: LockRequest) -> InstallPlan | None:
    """The plan kept when the lock passed the check with exactly these inputs; None when there is none."""
    path = _plan_memo(cache_dir, request)
    try:
        plan = InstallPlan.from_cache_json(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None
    except (OSError, ValueError, KeyError, TypeError) as exc:  # damaged: check the lock again
        logger.debug("ignoring %s: %s", path, exc)
        return None
    logger.debug("the lock passed the check with these inputs before (%s)", path)
    return plan


def remember_plan(cache_dir: Path, request: LockRequest, plan: InstallPlan) -> None:
    """Keep the plan of a lock that passed the check, for builds with the same inputs."""
    keep_in_cache(_plan_memo(cache_dir, request), plan.to_cache_json())


def _plan_memo(cache_dir: Path, request: LockRequest) -> Path:
    digest = hashlib.sha256(repr(request).encode())
    for name in CHECK_DISTRIBUTIONS:
        digest.update(f"\n{name} {importlib.metadata.version(name)}".encode())
    for source in sorted(TOOLKIT.rglob("*.py")):
        digest.update(f"\n{source.relative_to(TOOLKIT)}\n".encode() + source.read_bytes())
    for path in request.checked_files():
        digest.update(f"\n{path}\n".encode() + (path.read_bytes() if path.is_file() else b"(missing)"))
    return cache_dir / CHECKED_PLANS_FOLDER / digest.hexdigest()
