"""The throwaway build environment: the lock's own python, installed on the host for the container's paths.

1. `bootstrap_key` names it by its packages' hashes, the py-rattler version
   and `BUILDPACK_VERSION`.
2. `ensure_bootstrap` installs the lock's `python` record and its
   dependencies with py-rattler (through the mirrors), adds py-rattler's
   linux-64 wheel, and keeps the result under $XDG_CACHE_HOME/hubship.

The build bind-mounts it into the install step only; see docs/design.md#toolingbuildpack.
"""

from __future__ import annotations

import asyncio
import errno
import hashlib
import importlib.metadata
import shutil
import sys
import tempfile
import zipfile
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path, PurePosixPath
from urllib.parse import urlsplit

import rattler
from rattler.exceptions import InstallerError

from tooling.buildpack import BOOTSTRAP_MOUNT, BUILDPACK_VERSION

# The in-image installer's client, so the build environment reads a mirror the way the image build does.
from tooling.buildpack.files.install_lock import mirror_client
from tooling.buildpack.plan import RATTLER_DISTRIBUTION, CondaPackage, InstallPlan
from tooling.errors import ToolingError
from tooling.images import IMAGE_PLATFORM
from tooling.log import step
from tooling.proc import run

# The manylinux tag of py-rattler's linux-64 wheels.
RATTLER_WHEEL_PLATFORM = "manylinux2014_x86_64"
NO_SPACE = "no space left on device"


def bootstrap_key(plan: InstallPlan) -> str:
    """Names the build environment: its packages' hashes, the py-rattler version and the buildpack version."""
    parts = [f"{p.url}#{p.sha256}" for p in plan.bootstrap_packages()]
    parts += [f"py-rattler=={importlib.metadata.version(RATTLER_DISTRIBUTION)}", f"buildpack {BUILDPACK_VERSION}"]
    return hashlib.sha256("\n".join(parts).encode()).hexdigest()


def ensure_bootstrap(plan: InstallPlan, mirrors: Mapping[str, str], cache_dir: Path) -> Path:
    """The build environment for the plan's python (env/ and site/), made once and kept in `cache_dir`.

    `mirrors` are `channels.mirror_prefixes`: canonical channel URL prefix -> mirror URL.
    """
    folder = cache_dir / "bootstrap" / bootstrap_key(plan)[:16]
    if folder.is_dir():
        return folder
    folder.parent.mkdir(parents=True, exist_ok=True)
    rattler_version = importlib.metadata.version(RATTLER_DISTRIBUTION)
    title = f"prepare the build environment (python {plan.python.version}, py-rattler {rattler_version})"
    with step(title), _no_space_explained(cache_dir):
        scratch = Path(tempfile.mkdtemp(prefix=f".{folder.name}.", dir=folder.parent))
        try:
            _install_bootstrap_python(plan, mirrors, scratch / "env")
            wheel = _rattler_wheel(cache_dir / "wheels", plan.python_minor, rattler_version)
            with zipfile.ZipFile(wheel) as archive:
                archive.extractall(scratch / "site")
            scratch.chmod(0o755)
            _move_into_place(scratch, folder)
        finally:
            shutil.rmtree(scratch, ignore_errors=True)
    return folder


def _move_into_place(scratch: Path, folder: Path) -> None:
    try:
        scratch.rename(folder)
    except OSError:
        if not folder.is_dir():  # another build made the same folder at the same time: use theirs
            raise


def _install_bootstrap_python(plan: InstallPlan, mirrors: Mapping[str, str], prefix: Path) -> None:
    records = [_record(package) for package in plan.bootstrap_packages()]
    client = mirror_client({canonical: [mirror] for canonical, mirror in mirrors.items()})
    with tempfile.TemporaryDirectory(prefix="hubship-bootstrap-packages-") as package_cache:
        try:
            asyncio.run(
                rattler.install(
                    records,
                    target_prefix=prefix,
                    cache_dir=Path(package_cache),
                    platform=rattler.Subdir(IMAGE_PLATFORM),
                    alternative_target_prefix=f"{BOOTSTRAP_MOUNT}/env",
                    client=client,
                    show_progress=False,
                )
            )
        except InstallerError as exc:
            failed = f"Installing python {plan.python.version} for the build environment failed: {exc}"
            raise ToolingError(failed) from None
    # Not needed to run python; leaving them out keeps the folder the same however often it is made.
    shutil.rmtree(prefix / "conda-meta")
    for cache in sorted(prefix.rglob("__pycache__"), reverse=True):
        shutil.rmtree(cache)


def _record(package: CondaPackage) -> rattler.RepoDataRecord:
    subdir = PurePosixPath(urlsplit(package.url).path).parent.name
    record = rattler.PackageRecord(
        name=package.name,
        version=package.version,
        build=rattler.BuildString(package.build),
        build_number=0,
        subdir=subdir,
        depends=list(package.depends),
        md5=bytes.fromhex(package.md5),
        sha256=bytes.fromhex(package.sha256),
    )
    return rattler.RepoDataRecord(record, package.file_name, package.url, package.url.rsplit("/", 2)[0] + "/")


def _rattler_wheel(wheels: Path, python_minor: str, version: str) -> Path:
    """py-rattler's linux-64 wheel of the toolkit's version, downloaded once with pip."""
    pattern = f"py_rattler-{version}-*.whl"
    found = sorted(wheels.glob(pattern))
    if found:
        return found[0]
    wheels.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=".download-", dir=wheels) as scratch:
        run(
            [
                sys.executable,
                "-m",
                "pip",
                "download",
                "--no-deps",
                "--only-binary=:all:",
                "--platform",
                RATTLER_WHEEL_PLATFORM,
                "--abi",
                "abi3",
                "--implementation",
                "cp",
                "--python-version",
                python_minor,
                "--dest",
                scratch,
                f"{RATTLER_DISTRIBUTION}=={version}",
            ],
            hint=f"The build environment needs py-rattler {version}'s linux-64 wheel from your package index; "
            "check that pip can reach it (pip's own configuration, e.g. PIP_INDEX_URL, applies).",
        )
        downloaded = sorted(Path(scratch).glob(pattern))
        if not downloaded:
            raise ToolingError(f"pip downloaded no {pattern} for python {python_minor} on {RATTLER_WHEEL_PLATFORM}.")
        target = wheels / downloaded[0].name
        downloaded[0].replace(target)
    return target


@contextmanager
def _no_space_explained(folder: Path) -> Iterator[None]:
    """Turns 'no space left on device' while filling `folder` into one message that says what to do."""
    try:
        yield
    except Exception as exc:
        if not (isinstance(exc, OSError) and exc.errno == errno.ENOSPC) and NO_SPACE not in str(exc).lower():
            raise
        raise ToolingError(
            f"No space left on device in {folder} while preparing the build environment (about 150 MB). Free "
            "space there, or point XDG_CACHE_HOME at a disk with room, then rerun `python -m tooling build`."
        ) from None
