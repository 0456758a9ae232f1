"""Our repo2docker BuildPack: the image's conda environment is exactly the explicit lock, installed with py-rattler.

repo2docker's conda buildpack re-solves environment.yml at every build, and
brings micromamba and a frozen base environment from anaconda.org. This
buildpack replaces only that part. Everything else is repo2docker's own
(`BaseImage`): the jovyan user, REPO_DIR, apt.txt, postBuild, start, the
entrypoint, and the environment variables hub images are expected to set
(NB_PYTHON_PREFIX=/srv/conda/envs/notebook, CONDA_DIR, KERNEL_PYTHON_PREFIX,
PATH with ${NB_PYTHON_PREFIX}/bin ahead of the system's).

How the environment gets into the image (decisions, and why):

- The install runs inside the build, as the notebook user, into a prefix that
  user owns (a root step creates the empty folders with that owner first), so
  the files are written once with the right owner: no `chown -R` layer that
  would double the environment's size.
- It runs on a throwaway build environment: the lock's own `python` record and
  its dependencies (as conda-lock.yml lists them), installed on the host with
  py-rattler for the container's paths, plus the linux-64 py-rattler wheel of
  the version this toolkit uses. The build bind-mounts it into the install
  step only (BuildKit `RUN --mount=type=bind`), so it is in no layer. It is
  cached under $XDG_CACHE_HOME/hubship/bootstrap, keyed by those packages'
  hashes and the py-rattler version; py-rattler needs Python >= 3.10, so a
  lock with an older python is refused.
- Packages are downloaded inside the install step, not on the host: a
  rebuild whose environment layer is cached downloads nothing, and a changed
  lock downloads only the packages the BuildKit cache mount lacks. The mirrors
  (hub.toml [mirrors] / --mirror) reach the step as a BuildKit secret: they
  are in no layer, may carry credentials, and do not change the step's cache
  key (packages are checked by hash, so where they came from does not change
  the result). The container reaches them over the host's network (the build
  runs with `--network host`). A file:// mirror cannot be read from inside the
  build and is refused.
- Every package's md5 (the explicit lock's) and sha256 (conda-lock.yml's) are
  checked before anything is linked; see buildpack_files/install_lock.py. The
  two lock files must agree package by package, or the build is refused.
- The build's mounts all live under /opt/hubship, so the only trace they leave
  in the image is that folder's empty mount points.
- The install step does not depend on image/: the lock, the installer and the
  build environment are bind mounts from a `hubship/` folder the engine adds
  to the build context, ahead of repo2docker's `COPY src/`. A change to a
  notebook, apt.txt or postBuild therefore reuses the environment layer, and
  its cache key stays the same for the same lock: the plan is deterministic
  JSON, the installer is this package's file, and BuildKit hashes the mounted
  files' contents, not their modification times.
- conda-meta records the lock's canonical URLs, names, versions, builds, md5
  and sha256; the explicit lock's `# pip` lines are installed by the
  environment's own pip with --no-deps --require-hashes.
- A login-shell script (/etc/profile.d/hubship-env.sh) runs the environment's
  etc/conda/activate.d scripts, which `conda activate` would have run.
"""

from __future__ import annotations

import asyncio
import errno
import hashlib
import importlib.metadata
import json
import os
import shutil
import sys
import tempfile
import zipfile
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from importlib.resources import files
from pathlib import Path, PurePosixPath
from urllib.parse import urlsplit

import rattler
from conda_lock.lockfile.v2prelim.models import LockedDependency, Lockfile
from packaging.specifiers import SpecifierSet
from packaging.version import Version
from rattler.exceptions import InstallerError
from repo2docker.buildpacks.base import BaseImage

# The in-image installer's client, so the build environment reads a mirror the way the image build does.
from tooling.buildpack_files.install_lock import mirror_client
from tooling.errors import ToolingError
from tooling.files import write_atomic
from tooling.lockdiff import LockFileError, read_lock, split_package_file_name
from tooling.log import step
from tooling.proc import run
from tooling.solve import CANONICAL_CHANNEL_HOST

# Bump when the Dockerfile this buildpack renders, or what the installer does, changes:
# it is one of the image tag's inputs.
BUILDPACK_VERSION = "1"

NB_USER = "jovyan"
NB_UID = 1000
PLATFORM = "linux-64"
DOCKER_PLATFORM = "linux/amd64"
RATTLER_DISTRIBUTION = "py-rattler"
# The manylinux tag of py-rattler's linux-64 wheels.
RATTLER_WHEEL_PLATFORM = "manylinux2014_x86_64"

# The folder the engine adds to the build context, and where the install step mounts its parts.
CONTEXT_FOLDER = "hubship"
BOOTSTRAP_MOUNT = "/opt/hubship/bootstrap"
INSTALL_MOUNT = "/opt/hubship/install"
IMAGE_FILES_MOUNT = "/opt/hubship/image-files"
PACKAGE_CACHE_MOUNT = "/opt/hubship/packages"
MIRRORS_MOUNT = "/opt/hubship/mirrors.json"
PACKAGE_CACHE_ID = "hubship-conda-packages"
MIRRORS_SECRET = "hubship-mirrors"  # noqa: S105 (the id of a BuildKit secret, not a password)
INSTALLER = "install_lock.py"
PLAN = "plan.json"
ACTIVATE_SCRIPT = "activate-env.sh"
PROFILE_SCRIPT = "/etc/profile.d/hubship-env.sh"

RELOCK = "run `python -m tooling lock`"
NO_SPACE = "no space left on device"


# --- the install plan: the explicit lock, with conda-lock.yml's sha256 ----------------


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
        return PurePosixPath(urlsplit(self.url).path).name


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
        """The installer's input; deterministic, so the install step's cache key is too."""
        data = {
            "packages": [{"url": p.url, "md5": p.md5, "sha256": p.sha256} for p in self.packages],
            "pip": [{"name": p.name, "url": p.url, "sha256": p.sha256} for p in self.pip],
        }
        return json.dumps(data, indent=1, sort_keys=True) + "\n"


def read_install_plan(explicit_file: Path, lock_file: Path) -> InstallPlan:
    """The explicit lock, checked entry by entry against conda-lock.yml, which adds sha256 and dependencies."""
    explicit = _read(explicit_file)
    if explicit.metadata.platforms != [PLATFORM]:
        raise ToolingError(f"{explicit_file}: a lock for {explicit.metadata.platforms}, not {PLATFORM}; {RELOCK}.")
    full = {
        package.url: package
        for package in _read(lock_file).package
        if package.platform == PLATFORM and package.manager == "conda"
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
            f"the two lock files disagree; {RELOCK}."
        )
    pip = tuple(_pip_package(entry, explicit_file) for entry in explicit.package if entry.manager == "pip")
    plan = InstallPlan(explicit_file, conda_packages, pip)
    _require_python(plan)
    return plan


def _read(path: Path) -> Lockfile:
    try:
        return read_lock(path)
    except LockFileError as exc:
        raise ToolingError(
            f"{exc.message} The build installs the lock files the lock stage writes; {RELOCK}."
        ) from None


def _conda_package(
    entry: LockedDependency, full: LockedDependency | None, explicit_file: Path, lock_file: Path
) -> CondaPackage:
    name, version, build = split_package_file_name(PurePosixPath(urlsplit(entry.url).path).name)
    if full is None:
        raise ToolingError(
            f"{explicit_file}: {entry.url} is not in {lock_file}: the two lock files disagree; {RELOCK}."
        )
    if full.hash.md5 != entry.hash.md5:
        raise ToolingError(
            f"{explicit_file}: the md5 of {name} ({entry.hash.md5}) is not the one in {lock_file} "
            f"({full.hash.md5}): the two lock files disagree; {RELOCK}."
        )
    if not full.hash.sha256:
        raise ToolingError(
            f"{lock_file}: {name} has no sha256; the build checks both hashes of every package; {RELOCK}."
        )
    depends = tuple(f"{dep} {spec}".strip() for dep, spec in sorted(full.dependencies.items()))
    return CondaPackage(entry.url, str(entry.hash.md5), full.hash.sha256, name, version, build, depends)


def _pip_package(entry: LockedDependency, explicit_file: Path) -> PipPackage:
    if not entry.hash.sha256:
        raise ToolingError(
            f"{explicit_file}: the pip line of {entry.name} has no #sha256=; pip installs only with hashes; {RELOCK}."
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


# --- mirrors -------------------------------------------------------------------------------


def mirror_prefixes(mirrors: Mapping[str, str]) -> dict[str, str]:
    """Channel name (or URL) -> mirror, as canonical URL prefix -> mirror URL; only http(s) mirrors."""
    prefixes = {}
    for name, url in sorted(mirrors.items()):
        if not url.startswith(("http://", "https://")):
            raise ToolingError(
                f"Mirror {name} = {url}: the build reads packages from inside the build container, which cannot "
                "see the host's files. Serve that folder over http (e.g. `python -m http.server --bind "
                "127.0.0.1`) and give its URL as the mirror."
            )
        canonical = name if "://" in name else f"{CANONICAL_CHANNEL_HOST}/{name}"
        prefixes[canonical.rstrip("/")] = url.rstrip("/")
    return prefixes


# --- the buildpack ---------------------------------------------------------------------------


class HubshipBuildPack(BaseImage):  # type: ignore[misc]  # repo2docker is untyped
    """repo2docker's BaseImage plus the locked environment in ${NB_PYTHON_PREFIX}."""

    def detect(self) -> bool:
        return True

    def get_build_env(self) -> list[tuple[str, str]]:
        return [
            *super().get_build_env(),
            ("CONDA_DIR", "${APP_BASE}/conda"),
            ("NB_PYTHON_PREFIX", "${CONDA_DIR}/envs/notebook"),
            ("KERNEL_PYTHON_PREFIX", "${NB_PYTHON_PREFIX}"),
        ]

    def get_env(self) -> list[tuple[str, str]]:
        # What `conda activate` sets for the environment; the image has no conda to run it.
        activated = [("CONDA_PREFIX", "${NB_PYTHON_PREFIX}"), ("CONDA_DEFAULT_ENV", "${NB_PYTHON_PREFIX}")]
        return [*super().get_env(), *activated]

    def get_path(self) -> list[str]:
        return ["${NB_PYTHON_PREFIX}/bin", *super().get_path()]

    def get_build_scripts(self) -> list[tuple[str, str]]:
        return [*super().get_build_scripts(), ("root", _prepare_prefix_script()), ("${NB_USER}", _install_script())]


def _bind(folder: str, target: str) -> str:
    return f"--mount=type=bind,source={CONTEXT_FOLDER}/{folder},target={target}"


def _prepare_prefix_script() -> str:
    return (
        f"{_bind('image-files', IMAGE_FILES_MOUNT)} \\\n"
        '    install -d -o "${NB_USER}" -g "${NB_USER}" \\\n'
        '        "${CONDA_DIR}" "${CONDA_DIR}/envs" "${NB_PYTHON_PREFIX}" && \\\n'
        f"    install -m 0644 {IMAGE_FILES_MOUNT}/{ACTIVATE_SCRIPT} {PROFILE_SCRIPT}"
    )


def _install_script() -> str:
    return (
        f"{_bind('bootstrap', BOOTSTRAP_MOUNT)} \\\n"
        f"    {_bind('install', INSTALL_MOUNT)} \\\n"
        f"    --mount=type=cache,id={PACKAGE_CACHE_ID},target={PACKAGE_CACHE_MOUNT},uid={NB_UID},gid={NB_UID} \\\n"
        f"    --mount=type=secret,id={MIRRORS_SECRET},target={MIRRORS_MOUNT},uid={NB_UID} \\\n"
        f"    PYTHONPATH={BOOTSTRAP_MOUNT}/site PYTHONNOUSERSITE=1 \\\n"
        f"    {BOOTSTRAP_MOUNT}/env/bin/python -B {INSTALL_MOUNT}/{INSTALLER} \\\n"
        f'        --plan {INSTALL_MOUNT}/{PLAN} --prefix "${{NB_PYTHON_PREFIX}}" \\\n'
        f"        --cache {PACKAGE_CACHE_MOUNT} --mirrors {MIRRORS_MOUNT}"
    )


# --- the throwaway build environment -----------------------------------------------------------


def bootstrap_key(plan: InstallPlan) -> str:
    """Names the build environment: its packages' hashes, the py-rattler version and the buildpack version."""
    parts = [f"{p.url}#{p.sha256}" for p in plan.bootstrap_packages()]
    parts += [f"py-rattler=={importlib.metadata.version(RATTLER_DISTRIBUTION)}", f"buildpack {BUILDPACK_VERSION}"]
    return hashlib.sha256("\n".join(parts).encode()).hexdigest()


def ensure_bootstrap(plan: InstallPlan, mirrors: Mapping[str, str], cache_dir: Path) -> Path:
    """The build environment for the plan's python (env/ and site/), made once and kept in `cache_dir`.

    `mirrors` are `mirror_prefixes`: canonical channel URL prefix -> mirror URL.
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
                    platform=rattler.Subdir(PLATFORM),
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


# --- the build context's hubship/ folder -------------------------------------------------------


def write_build_files(plan: InstallPlan, bootstrap: Path, destination: Path) -> None:
    """The `hubship/` folder of the build context: build environment, installer and plan, login-shell script."""
    shutil.copytree(bootstrap, destination / "bootstrap", symlinks=True, copy_function=_link_or_copy)
    install = destination / "install"
    install.mkdir()
    shutil.copyfile(_packaged(INSTALLER), install / INSTALLER)
    write_atomic(install / PLAN, plan.to_json())
    image_files = destination / "image-files"
    image_files.mkdir()
    shutil.copyfile(_packaged(ACTIVATE_SCRIPT), image_files / ACTIVATE_SCRIPT)


def _packaged(name: str) -> Path:
    return Path(str(files("tooling") / "buildpack_files" / name))


def _link_or_copy(source: str, target: str) -> None:
    """A hard link (the build environment is large and never changed), or a copy across file systems."""
    try:
        Path(target).hardlink_to(source)
    except OSError:
        shutil.copy2(source, target)


def installer_files_digest() -> str:
    """sha256 of the files this buildpack ships into the build: they decide what the image holds."""
    digest = hashlib.sha256()
    for name in (INSTALLER, ACTIVATE_SCRIPT):
        digest.update(_packaged(name).read_bytes())
    return digest.hexdigest()


def default_cache_dir() -> Path:
    """Where the toolkit keeps what outlives a build: $XDG_CACHE_HOME/hubship (default ~/.cache/hubship)."""
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "hubship"
