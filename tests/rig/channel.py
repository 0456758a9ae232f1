"""The rig's conda channel: real packages, built here, laid out and named as conda-forge.

There is no conda-forge on this machine, yet the hub image's
`environments/environment.yml` names conda-forge packages, and every stage
after the lock installs real files. So the rig builds a channel of real
software, once, and serves it on 127.0.0.1 (channel_server.py), where a
solver or installer uses it in place of conda-forge (by URL, or as a mirror
of https://conda.anaconda.org/conda-forge).

What is in it:
- `python` 3.11 made from Debian's interpreter, and `python_abi 3.11 *_cp311`
  (python_package.py);
- the Jupyter and scientific stack, converted from the PyPI wheels pinned in
  channel-requirements.txt (wheels.py, conda_packages.py), under conda-forge's
  names (conda_names.py): pure wheels as `noarch: python`, binary wheels as
  linux-64 packages with a `__glibc` floor from their manylinux tag;
- the metapackages conda-forge cuts from PyPI projects:
  `jupyterhub-singleuser` (beside `jupyterhub-base`), and one per extra a
  requirement asks for (`jsonschema-with-format-nongpl`, `bleach-with-css`).

Layout: ROOT/conda-forge/{linux-64,noarch}/, indexed by rattler (repodata
with md5 and sha256 of every file). ROOT is
`${HUBSHIP_RIG_CACHE:-$XDG_CACHE_HOME/hubship-rig}/channel-<hash>`, where the
hash covers the recipe: the pinned requirements, the builder's source, the
conda-forge snapshot the names come from and the versions of the tools that
write the packages. A later run with the same recipe reuses ROOT at once; a
changed recipe builds a new one. Downloaded wheels are kept in `wheels/`
beside it, for the next recipe.

A cold build (half a minute on 2 cores, plus the download) runs under a
file lock, so concurrent test processes build once, into a temporary folder
renamed into place when complete: an interrupted build never leaves a
channel that looks done. Conversion and packing run in one worker process
per core, with their temporary files in memory (/dev/shm) when there is
room, and pack at zstd level 3. Each phase (download, plan, convert and
pack, index) is logged with its duration.
"""

from __future__ import annotations

import asyncio
import hashlib
import importlib.metadata
import multiprocessing
import os
import shutil
import tempfile
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from concurrent.futures import Future, ProcessPoolExecutor, as_completed
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import filelock
from packaging.utils import canonicalize_name
from rattler.index import index_fs

from tests.rig.baseimage import rig_cache_dir
from tests.rig.conda_names import SNAPSHOT_DIR, SNAPSHOT_SUBDIRS, SPLIT_METAPACKAGES, CondaForgeNames
from tests.rig.conda_packages import build_metapackage, convert_wheel, plan_conversion, requirement_depends
from tests.rig.python_package import build_python_abi_package, build_python_package, debian_python_version
from tests.rig.wheels import (
    REQUIREMENTS_FILE,
    WheelInfo,
    download_wheels,
    extra_requirements,
    marker_environment,
    requirement_applies,
)
from tooling.errors import ToolingError
from tooling.log import logger, step

CHANNEL_NAME = "conda-forge"
SUBDIRS = ("linux-64", "noarch")
RIG_DIR = Path(__file__).resolve().parent
# The builder's source: a change to any of these files changes the channel's hash.
BUILDER_SOURCES = ("channel.py", "conda_names.py", "conda_packages.py", "python_package.py", "wheels.py")
# Tools whose output ends up in the packages and the index.
PACKAGING_TOOLS = ("whl2conda", "conda-package-handling", "py-rattler-build", "py-rattler", "packaging")
# A tmpfs for the conversion's temporary files, used when it has this much room.
MEMORY_SCRATCH = Path("/dev/shm")
MEMORY_SCRATCH_MIN_FREE = 2 << 30
# Seconds to wait for another process building the same channel.
LOCK_TIMEOUT = 30 * 60.0


def recipe_digest() -> str:
    """sha256 over everything that decides the channel's contents."""
    digest = hashlib.sha256()
    inputs = [REQUIREMENTS_FILE, *(RIG_DIR / name for name in BUILDER_SOURCES)]
    inputs += [SNAPSHOT_DIR / subdir / "repodata.json.gz" for subdir in SNAPSHOT_SUBDIRS]
    for path in inputs:
        digest.update(f"{path.name}\0".encode())
        digest.update(path.read_bytes())
    for tool in PACKAGING_TOOLS:
        digest.update(f"{tool}=={importlib.metadata.version(tool)}\0".encode())
    return digest.hexdigest()


def ensure_channel(cache_dir: Path | None = None) -> Path:
    """The channel root (holding conda-forge/), built on first use and reused while the recipe is unchanged."""
    cache = cache_dir or rig_cache_dir()
    root = cache / f"channel-{recipe_digest()[:16]}"
    if root.is_dir():
        logger.info("rig channel: reusing %s", root)
        return root
    return build_once(root, lambda scratch: build_channel(scratch, wheel_dir=cache / "wheels"))


def build_once(destination: Path, build: Callable[[Path], None], *, timeout: float = LOCK_TIMEOUT) -> Path:
    """`destination`, made by `build` in a temporary folder beside it and renamed into place when complete.

    A file lock makes concurrent callers wait for one build; what an
    interrupted build left behind is removed before the next starts.
    """
    destination.parent.mkdir(parents=True, exist_ok=True)
    lock = filelock.FileLock(destination.with_name(f".{destination.name}.lock"))
    try:
        with lock.acquire(timeout=timeout):
            if destination.is_dir():
                return destination
            for leftover in destination.parent.glob(f".{destination.name}.*.partial"):
                logger.info("removing %s, left by an interrupted build", leftover)
                shutil.rmtree(leftover)
            scratch = Path(tempfile.mkdtemp(prefix=f".{destination.name}.", suffix=".partial", dir=destination.parent))
            try:
                build(scratch)
                scratch.chmod(0o755)  # mkdtemp made it private; what is built here is for every user to read
                scratch.rename(destination)
            except BaseException:
                shutil.rmtree(scratch, ignore_errors=True)
                raise
    except filelock.Timeout as exc:
        raise ToolingError(
            f"Waited {timeout:.0f} s for {lock.lock_file}, held by another process that is building {destination}. "
            "Let it finish (or end it) and retry."
        ) from exc
    return destination


@dataclass(frozen=True)
class Metapackage:
    """A conda-forge package without files that stands for a PyPI project with an extra, or a split output."""

    name: str
    version: str
    depends: tuple[str, ...]


def plan_metapackages(
    wheels: Iterable[WheelInfo], names: CondaForgeNames, environment: Mapping[str, str]
) -> list[Metapackage]:
    """The metapackages the converted wheels depend on or conda-forge's split projects need."""
    by_project = {wheel.name: wheel for wheel in wheels}
    requested_extras = sorted(
        {
            (canonicalize_name(requirement.name), canonicalize_name(extra))
            for wheel in by_project.values()
            for requirement in wheel.requires
            if requirement_applies(requirement, environment)
            for extra in requirement.extras
        }
    )
    metapackages: list[Metapackage] = []
    for project, extra in requested_extras:
        if project not in by_project:
            raise ToolingError(
                f"A wheel requires {project}[{extra}] but {project} is not in {REQUIREMENTS_FILE}. "
                "Regenerate it with `python -m tests.rig.wheels`."
            )
        base = by_project[project]
        depends = [f"{names.for_project(project)} =={base.version}"]
        for requirement in extra_requirements(base.requires, extra, environment):
            depends += requirement_depends(requirement, names)
        metapackages.append(Metapackage(names.for_extra(project, extra), base.version, tuple(depends)))
    for wheel in by_project.values():
        base_pin = f"{names.for_project(wheel.name)} =={wheel.version}"
        metapackages += [
            Metapackage(split.name, wheel.version, (base_pin, *split.depends))
            for split in SPLIT_METAPACKAGES.get(wheel.name, ())
        ]
    return metapackages


def build_channel(root: Path, *, wheel_dir: Path) -> None:
    """Download, convert, pack and index the whole channel into root/conda-forge/."""
    started = time.monotonic()
    channel_dir = root / CHANNEL_NAME
    for subdir in SUBDIRS:
        (channel_dir / subdir).mkdir(parents=True)
    wheel_files = download_wheels(REQUIREMENTS_FILE, wheel_dir)
    with step("plan the channel: conda-forge names, dependencies, metapackages"):
        names = CondaForgeNames.from_snapshot()
        python_version = debian_python_version()
        environment = marker_environment(python_version)
        wheels = [WheelInfo.read(path) for path in wheel_files]
        plans = [plan_conversion(wheel, names, environment) for wheel in wheels]
        metapackages = plan_metapackages(wheels, names, environment)
    workers = os.cpu_count() or 1
    total = len(plans) + len(metapackages) + 2
    with (
        step(f"convert and pack {total} packages ({workers} processes)") as progress,
        _scratch_space() as scratch,
        ProcessPoolExecutor(
            max_workers=workers,
            mp_context=multiprocessing.get_context("forkserver"),
            initializer=_use_temporary_folder,
            initargs=(str(scratch),),
        ) as pool,
    ):
        futures: list[Future[Path]] = [
            pool.submit(build_python_package, channel_dir, python_version),
            pool.submit(build_python_abi_package, channel_dir),
        ]
        # Biggest wheels first, so that no big one is left to a single worker at the end.
        by_size = sorted(plans, key=lambda plan: plan.wheel.stat().st_size, reverse=True)
        futures += [pool.submit(convert_wheel, plan, channel_dir) for plan in by_size]
        futures += [
            pool.submit(build_metapackage, meta.name, meta.version, meta.depends, channel_dir) for meta in metapackages
        ]
        for done, future in enumerate(as_completed(futures), start=1):
            progress.update(f"{done}/{total} {future.result().name}")
    with step(f"index the channel ({total} packages)"):
        asyncio.run(index_fs(channel_dir))
    stats = ChannelStats.of(root)
    logger.info(
        "rig channel: %d packages, %.0f MB, built in %.0f s",
        stats.packages,
        stats.size_bytes / 1e6,
        time.monotonic() - started,
    )


@contextmanager
def _scratch_space() -> Iterator[Path]:
    """A temporary folder for unpacked wheels and package trees, in memory when the machine has room there.

    whl2conda writes every file of a wheel twice before it is packed; on a
    tmpfs the conversion runs about four times faster than on disk.
    """
    in_memory = MEMORY_SCRATCH.is_dir() and shutil.disk_usage(MEMORY_SCRATCH).free >= MEMORY_SCRATCH_MIN_FREE
    scratch = Path(tempfile.mkdtemp(prefix="hubship-channel-", dir=MEMORY_SCRATCH if in_memory else None))
    try:
        yield scratch
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def _use_temporary_folder(folder: str) -> None:
    """Worker process initializer: every temporary file of the worker goes into `folder`."""
    tempfile.tempdir = folder


@dataclass(frozen=True)
class ChannelStats:
    """How many package files a channel root holds, and their total size."""

    packages: int
    size_bytes: int

    @classmethod
    def of(cls, root: Path) -> ChannelStats:
        files = [path for subdir in SUBDIRS for path in (root / CHANNEL_NAME / subdir).glob("*.conda")]
        return cls(len(files), sum(path.stat().st_size for path in files))


if __name__ == "__main__":
    from tooling import log

    log.configure()
    print(ensure_channel())
