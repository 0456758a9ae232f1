"""The checks of the smoke test that look at the image itself, each a small function.

Every check returns an `Outcome` or raises `CheckFailed` (see
`tooling.checkresult`); `tooling.smoke` runs them concurrently. The
containers they start are named `hubship-smoke-RUN-CHECK`, labelled
`hubship.smoke.run=RUN`, run the image by its id, are never pulled, and
use no network, except the server check, which uses the host's network on
a free 127.0.0.1 port. A container that outlives its time is removed by
name at once; the stage removes every container with its label at the end.

Check 6, the hub spawn, is `tooling.hubcheck`. Why the checks enter
the image the way they do, and how import names are found:
docs/design.md#toolingsmokecheckspy.
"""

from __future__ import annotations

import json
import re
import secrets
import tempfile
import time
import xml.etree.ElementTree as ET
from collections.abc import Iterable, Mapping, Sequence
from contextlib import suppress
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path, PurePosixPath
from typing import Any, Literal

import requests
from packaging.requirements import InvalidRequirement, Requirement
from packaging.utils import canonicalize_name
from rattler import MatchSpec
from rattler.exceptions import InvalidMatchSpecError

from tooling.checkresult import CheckFailed, Outcome
from tooling.docker import ContainerSpec, Docker, LocalImage, Mount
from tooling.errors import CommandFailed, CommandTimedOut, ToolingError
from tooling.images import NB_UID
from tooling.lockfile import package_build, read_lock
from tooling.log import register_secret
from tooling.proc import Completed, free_port
from tooling.yamlfiles import read_environment_dependencies

RUN_LABEL = "hubship.smoke.run"
LOG_LINES = 25
# Bounds of the checks hub.toml has no setting for (seconds).
QUICK_TIMEOUT = 60.0  # id, sudo, --version, docker cp
IMPORT_TIMEOUT = 300.0
NOTEBOOK_START_TIMEOUT = 120.0  # on top of the cells' own time: the container and the kernel starting
USER_TESTS_TIMEOUT = 900.0
POLL_INTERVAL = 0.25
STATE_INTERVAL = 1.0
SERVER_USER = "hubship-server"
IN_IMAGE = "/hubship"
_SITE_PACKAGES = re.compile(r"^lib/python\d+\.\d+/site-packages/(.+)$")
_MODULE_FILE = re.compile(r"^([^./]+)(?:\.[^/]*)?\.(?:py|so|pyd)$")


def _script(name: str) -> str:
    return (resources.files("tooling.smoke") / "files" / name).read_text(encoding="utf-8")


# --- the image under test --------------------------------------------------------------------


@dataclass(frozen=True)
class ImageUnderTest:
    """The image, the docker CLI, and this run's id, which names and labels every container."""

    docker: Docker
    reference: str  # as the person named it (NAME:TAG)
    image: LocalImage
    run_id: str

    @property
    def label(self) -> str:
        return f"{RUN_LABEL}={self.run_id}"

    def container_name(self, check: str) -> str:
        return f"hubship-smoke-{self.run_id}-{re.sub(r'[^a-zA-Z0-9_.-]+', '-', check)}"

    def spec(
        self,
        check: str,
        command: Sequence[str],
        *,
        network: Literal["none", "host"] = "none",
        login_shell: bool = False,
        entrypoint: str | None = None,
        env: Mapping[str, str] | None = None,
        secret_env: Mapping[str, str] | None = None,
        mounts: Sequence[Mount] = (),
    ) -> ContainerSpec:
        """A container of the image for `check`: through its ENTRYPOINT, or a login shell that skips `start`."""
        if login_shell:
            entrypoint, command = "/bin/bash", ["-l", "-c", 'exec "$@"', "hubship", *command]
        return ContainerSpec(
            image=self.image.image_id,
            command=tuple(command),
            name=self.container_name(check),
            network=network,
            entrypoint=entrypoint,
            env=dict(env or {}),
            secret_env=dict(secret_env or {}),
            mounts=tuple(mounts),
            labels={RUN_LABEL: self.run_id},
        )

    def run(self, spec: ContainerSpec, *, timeout: float, stdin_text: str | None = None) -> Completed:
        """Run the container to its end; one that outlives `timeout` is removed and fails the check."""
        try:
            return self.docker.run_container(spec, stdin_text=stdin_text, timeout=timeout)
        except CommandTimedOut as exc:
            self.docker.remove_containers(spec.name)
            raise CheckFailed(f"the container did not finish within {timeout:.0f} s", exc.output_tail) from None

    @property
    def prefix(self) -> str:
        """The environment's folder (repo2docker's NB_PYTHON_PREFIX)."""
        prefix = self.image.env.get("NB_PYTHON_PREFIX", "")
        if not prefix:
            raise CheckFailed(
                "the image sets no NB_PYTHON_PREFIX: it is not a repo2docker image with a conda environment"
            )
        return prefix


def output_tail(completed: Completed, lines: int = LOG_LINES) -> list[str]:
    return (completed.stdout + completed.stderr).splitlines()[-lines:]


# --- 1. no root --------------------------------------------------------------------------------

_USER_PROBE = (
    "id -u; "
    "if ! command -v sudo >/dev/null 2>&1; then echo sudo-missing; "
    "elif sudo -n true >/dev/null 2>&1; then echo sudo-allowed; "
    "else echo sudo-refused; fi"
)


def check_user(target: ImageUnderTest) -> Outcome:
    """The image runs as uid 1000 (the chart's singleuser.uid), not root, and has no passwordless sudo."""
    spec = target.spec("user", ["-c", _USER_PROBE], entrypoint="/bin/sh")
    completed = target.run(spec, timeout=QUICK_TIMEOUT)
    said = completed.stdout.split()
    if completed.returncode != 0 or len(said) != 2:
        raise CheckFailed(
            f"`id -u` did not run in the image (exit code {completed.returncode})", output_tail(completed)
        )
    uid, sudo = said
    user = target.image.user or "root"
    if uid == "0":
        raise CheckFailed(
            f"the image runs as root (USER {user}, uid 0); a hub runs user servers as uid {NB_UID}: "
            "end the image as the notebook user (repo2docker does; a postBuild or Dockerfile must not switch back)"
        )
    if uid != str(NB_UID):
        raise CheckFailed(
            f"the image runs as uid {uid} (USER {user}); the chart runs user servers as uid {NB_UID}, "
            "so the home folder and the environment would not belong to the user"
        )
    if sudo == "sudo-allowed":
        raise CheckFailed(f"uid {uid} can run `sudo` without a password: any user could become root")
    sudo_note = "sudo is not installed" if sudo == "sudo-missing" else "sudo asks for a password"
    return Outcome(f"runs as uid {uid} ({user}), not root; {sudo_note}")


# --- what the image holds: conda-meta and pip's RECORD files -----------------------------------


@dataclass(frozen=True)
class InstalledPackage:
    name: str
    version: str
    build: str
    md5: str
    site_files: tuple[str, ...] = ()  # the files it owns under site-packages, relative to it


@dataclass(frozen=True)
class ImageEnvironment:
    """The conda packages of the image's environment (from conda-meta), and the pip packages asked about."""

    prefix: str
    conda: Mapping[str, InstalledPackage]
    pip: Mapping[str, InstalledPackage] = field(default_factory=dict)  # canonical name -> package
    site_packages: str = ""  # e.g. lib/python3.11/site-packages (relative to the prefix)


@dataclass(frozen=True)
class LockedPackage:
    name: str
    version: str
    build: str
    md5: str

    def describe(self) -> str:
        return f"{self.name} {self.version} {self.build}".rstrip()


def locked_packages(lock_file: Path, platform: str) -> tuple[dict[str, LockedPackage], dict[str, LockedPackage]]:
    """The lock's conda and pip packages for `platform`, by name (pip names canonical)."""
    lock = read_lock(lock_file)
    conda: dict[str, LockedPackage] = {}
    pip: dict[str, LockedPackage] = {}
    for package in lock.package:
        if package.platform != platform:
            continue
        if package.manager == "conda":
            md5 = str(package.hash.md5 or "")
            conda[package.name] = LockedPackage(package.name, package.version, package_build(package), md5)
        else:
            name = canonicalize_name(package.name)
            pip[name] = LockedPackage(name, package.version, "", "")
    if not conda:
        raise ToolingError(f"{lock_file}: no conda packages for {platform}; run `python -m tooling lock`.")
    return conda, pip


def read_environment(target: ImageUnderTest, pip: Mapping[str, LockedPackage]) -> ImageEnvironment:
    """conda-meta, and the RECORD of each locked pip package, copied out of a container that never starts."""
    prefix = target.prefix
    with tempfile.TemporaryDirectory(prefix="hubship-smoke-meta-") as scratch:
        folder = Path(scratch)
        container = target.docker.create_container(target.spec("environment", ["true"]))
        try:
            target.docker.copy_from_container(container, f"{prefix}/conda-meta", folder)
            conda = _conda_records(folder / "conda-meta")
            site_packages = _site_packages(conda)
            pip_installed = {
                name: package
                for name, locked in pip.items()
                if (package := _pip_record(target.docker, container, f"{prefix}/{site_packages}", locked, folder))
            }
        except CommandFailed as exc:
            raise CheckFailed(f"could not read {prefix}/conda-meta from the image", exc.output_tail) from None
        finally:
            target.docker.remove_containers(container)
    return ImageEnvironment(prefix, conda, pip_installed, site_packages)


def _conda_records(folder: Path) -> dict[str, InstalledPackage]:
    records: dict[str, InstalledPackage] = {}
    for path in sorted(folder.glob("*.json")):
        data: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
        name = str(data.get("name", ""))
        site_files = tuple(match.group(1) for entry in data.get("files", ()) if (match := _SITE_PACKAGES.match(entry)))
        records[name] = InstalledPackage(
            name, str(data.get("version", "")), str(data.get("build", "")), str(data.get("md5", "")), site_files
        )
    return records


def _site_packages(conda: Mapping[str, InstalledPackage]) -> str:
    python = conda.get("python")
    if python is None:
        return ""
    major_minor = ".".join(python.version.split(".")[:2])
    return f"lib/python{major_minor}/site-packages"


def _pip_record(
    docker: Docker, container: str, site_packages: str, locked: LockedPackage, scratch: Path
) -> InstalledPackage | None:
    """The pip package's files, from its dist-info RECORD (wheel names use `_` for `-`), or None when absent."""
    for spelling in dict.fromkeys((locked.name.replace("-", "_"), locked.name)):
        record = f"{site_packages}/{spelling}-{locked.version}.dist-info/RECORD"
        target = scratch / f"{spelling}.RECORD"
        with suppress(CommandFailed):
            docker.copy_from_container(container, record, target)
            site_files = tuple(line.split(",", 1)[0] for line in target.read_text(encoding="utf-8").splitlines())
            return InstalledPackage(locked.name, locked.version, "", "", site_files)
    return None


# --- 2. the environment is the lock ------------------------------------------------------------


def lock_differences(installed: Mapping[str, InstalledPackage], locked: Mapping[str, LockedPackage]) -> list[str]:
    """Every difference between conda-meta and the lock: missing, extra, and different packages."""
    differences = []
    for name in sorted(set(locked) | set(installed)):
        want, have = locked.get(name), installed.get(name)
        if have is None and want is not None:
            differences.append(f"missing from the image: {want.describe()}")
        elif want is None and have is not None:
            differences.append(f"not in the lock: {have.name} {have.version} {have.build}")
        elif want is not None and have is not None:
            differences += _field_differences(want, have)
    return differences


def _field_differences(want: LockedPackage, have: InstalledPackage) -> list[str]:
    if (want.version, want.build) != (have.version, have.build):
        return [f"{want.name}: the image has {have.version} {have.build}, the lock {want.version} {want.build}"]
    if want.md5 != have.md5:
        return [
            f"{want.name} {want.version} {want.build}: md5 {have.md5 or '(none)'} in the image, {want.md5} in the lock"
        ]
    return []


def check_environment(environment: ImageEnvironment, locked: Mapping[str, LockedPackage], lock_name: str) -> Outcome:
    differences = lock_differences(environment.conda, locked)
    if differences:
        counts = {
            "missing": sum(line.startswith("missing") for line in differences),
            "not in the lock": sum(line.startswith("not in the lock") for line in differences),
        }
        changed = len(differences) - sum(counts.values())
        summary = ", ".join(f"{count} {kind}" for kind, count in (*counts.items(), ("different", changed)) if count)
        raise CheckFailed(
            f"{len(differences)} differences between {environment.prefix}/conda-meta and {lock_name} ({summary})",
            differences,
        )
    return Outcome(f"{len(locked)} conda packages, each with the lock's name, version, build and md5")


# --- 3. the packages named in environment.yml import -------------------------------------------


@dataclass(frozen=True)
class SpecNames:
    """The packages environment.yml names: conda names, and pip names (canonical)."""

    conda: tuple[str, ...]
    pip: tuple[str, ...] = ()


def spec_names(spec_file: Path) -> SpecNames:
    """The package names of environment.yml's dependencies (conda specs and the `pip:` list)."""
    conda: list[str] = []
    pip: list[str] = []
    for entry in read_environment_dependencies(spec_file):
        if isinstance(entry, str):
            conda.append(_conda_name(spec_file, entry))
        else:
            pip += [_pip_name(spec_file, requirement) for requirement in entry["pip"]]
    return SpecNames(tuple(dict.fromkeys(conda)), tuple(dict.fromkeys(pip)))


def _conda_name(spec_file: Path, text: str) -> str:
    try:
        return str(MatchSpec(text).name.normalized)
    except InvalidMatchSpecError as exc:
        raise ToolingError(f"{spec_file}: '{text}' is not a conda spec ({exc}).") from None


def _pip_name(spec_file: Path, text: str) -> str:
    try:
        return canonicalize_name(Requirement(text).name)
    except InvalidRequirement as exc:
        raise ToolingError(f"{spec_file}: pip requirement '{text}' cannot be read ({exc}).") from None


def top_level_modules(site_files: Iterable[str]) -> list[str]:
    """The importable names a package's files make under site-packages (see the module docstring)."""
    names: set[str] = set()
    for path in site_files:
        first, separator, rest = path.partition("/")
        if separator:
            if first.isidentifier() and first != "__pycache__" and _MODULE_FILE.match(PurePosixPath(rest).name):
                names.add(first)
        elif (match := _MODULE_FILE.match(first)) and match.group(1).isidentifier():
            names.add(match.group(1))
    public = {name for name in names if not name.startswith("_")}
    return sorted(public or names)


@dataclass(frozen=True)
class ImportPlan:
    modules: tuple[str, ...]  # to import, in order
    owners: Mapping[str, str]  # module -> the package it comes from (or "hub.toml extra_imports")
    without_modules: tuple[str, ...]  # named packages that own no modules (metapackages, python)
    not_installed: tuple[str, ...]  # named packages the image does not have


def import_plan(
    names: SpecNames, environment: ImageEnvironment, extra: Sequence[str], skip: Sequence[str]
) -> ImportPlan:
    owners: dict[str, str] = {}
    without: list[str] = []
    missing: list[str] = []
    packages = [(name, environment.conda.get(name)) for name in names.conda]
    packages += [(name, environment.pip.get(name)) for name in names.pip]
    for name, package in packages:
        if package is None:
            missing.append(name)
            continue
        owned = top_level_modules(package.site_files)
        if not owned:
            without.append(name)
        for module in owned:
            owners.setdefault(module, name)
    for module in extra:
        owners.setdefault(module, "hub.toml extra_imports")
    modules = tuple(module for module in owners if module not in set(skip))
    return ImportPlan(modules, owners, tuple(without), tuple(missing))


def check_imports(target: ImageUnderTest, plan: ImportPlan) -> Outcome:
    """Import every module of the plan in one python of the image (login shell, no `start`)."""
    if plan.not_installed:
        raise CheckFailed(
            f"named in environment.yml but not installed: {', '.join(plan.not_installed)}",
            [
                f"{name}: no conda-meta record (conda) or dist-info RECORD (pip) in the image"
                for name in plan.not_installed
            ],
        )
    spec = target.spec("imports", ["python", "-", *plan.modules], login_shell=True)
    completed = target.run(spec, timeout=IMPORT_TIMEOUT, stdin_text=_script("import_modules.py"))
    reported = _import_results(completed.stdout)
    failures = [
        f"{module} (from {plan.owners[module]}): {reported[module]}"
        for module in plan.modules
        if reported.get(module) is not None
    ]
    unreported = [module for module in plan.modules if module not in reported]
    if unreported:
        failures.append(f"python stopped (exit code {completed.returncode}) before importing {', '.join(unreported)}")
        failures += output_tail(completed, 10)
    if failures:
        raise CheckFailed(f"{len(failures)} of {len(plan.modules)} imports failed", failures)
    note = f"; own no modules: {', '.join(plan.without_modules)}" if plan.without_modules else ""
    return Outcome(f"{len(plan.modules)} modules import: {', '.join(plan.modules)}{note}")


def _import_results(stdout: str) -> dict[str, str | None]:
    results: dict[str, str | None] = {}
    for line in stdout.splitlines():
        if line.startswith("hubship-import:"):
            entry = json.loads(line[len("hubship-import:") :])
            results[str(entry["module"])] = entry["error"]
    return results


# --- 4. jupyterhub-singleuser, and its version --------------------------------------------------


@dataclass(frozen=True)
class HubRequirement:
    """The JupyterHub major version the deployed hub runs, and where that comes from."""

    major: int
    source: str


_SINGLEUSER_PROBE = "command -v jupyterhub-singleuser || exit 127; jupyterhub-singleuser --version"


def check_singleuser(target: ImageUnderTest, required: HubRequirement) -> Outcome:
    spec = target.spec("singleuser", ["/bin/sh", "-c", _SINGLEUSER_PROBE], login_shell=True)
    completed = target.run(spec, timeout=QUICK_TIMEOUT)
    if completed.returncode == 127:
        raise CheckFailed(
            "jupyterhub-singleuser is not on the image's PATH; the hub starts every server with it: "
            "add jupyterhub-singleuser to environment.yml and relock",
            output_tail(completed, 5),
        )
    lines = completed.stdout.split()
    version = next((word for word in reversed(lines) if re.match(r"^\d+\.\d+", word)), "")
    if completed.returncode != 0 or not version:
        raise CheckFailed(
            f"`jupyterhub-singleuser --version` failed (exit code {completed.returncode})", output_tail(completed)
        )
    path = lines[0]
    major = int(version.split(".")[0])
    if major != required.major:
        raise CheckFailed(
            f"jupyterhub-singleuser {version} ({path}) does not match JupyterHub {required.major}.x, "
            f"which {required.source}: pin jupyterhub-singleuser={required.major} in environment.yml and relock"
        )
    return Outcome(f"jupyterhub-singleuser {version} at {path}, for JupyterHub {required.major}.x ({required.source})")


# --- 5. the server starts the way KubeSpawner starts it ------------------------------------------


def spawner_environment(user: str, port: int, hub_api_url: str, image: str) -> dict[str, str]:
    """The JUPYTERHUB_* variables a spawner sets (JupyterHub 5's Spawner.get_env, KubeSpawner's image), no token."""
    prefix = f"/user/{user}/"
    scopes = json.dumps([f"access:servers!server={user}/", f"access:servers!user={user}"])
    return {
        "JUPYTERHUB_CLIENT_ID": f"jupyterhub-user-{user}",
        "JUPYTERHUB_HOST": "",
        "JUPYTERHUB_OAUTH_CALLBACK_URL": f"{prefix}oauth_callback",
        "JUPYTERHUB_OAUTH_SCOPES": scopes,
        "JUPYTERHUB_OAUTH_ACCESS_SCOPES": scopes,
        "JUPYTERHUB_OAUTH_CLIENT_ALLOWED_SCOPES": "[]",
        "JUPYTERHUB_COOKIE_HOST_PREFIX_ENABLED": "0",
        "JUPYTERHUB_USER": user,
        "JUPYTERHUB_SERVER_NAME": "",
        "JUPYTERHUB_API_URL": hub_api_url,
        "JUPYTERHUB_ACTIVITY_URL": f"{hub_api_url}/users/{user}/activity",
        "JUPYTERHUB_BASE_URL": "/",
        "JUPYTERHUB_SERVICE_PREFIX": prefix,
        "JUPYTERHUB_SERVICE_URL": f"http://127.0.0.1:{port}{prefix}",
        "JUPYTERHUB_PUBLIC_URL": "",
        "JUPYTERHUB_PUBLIC_HUB_URL": "",
        "JUPYTER_IMAGE": image,
        "JUPYTER_IMAGE_SPEC": image,
    }


def check_server_start(target: ImageUnderTest, hub_api_url: str, timeout: float) -> Outcome:
    """`jupyterhub-singleuser` through the ENTRYPOINT with a spawner's environment answers under /user/NAME/."""
    port = free_port()
    token = secrets.token_hex(32)
    register_secret(token)
    spec = target.spec(
        "server",
        ["jupyterhub-singleuser"],
        network="host",
        env=spawner_environment(SERVER_USER, port, hub_api_url, target.reference),
        secret_env={"JUPYTERHUB_API_TOKEN": token},
    )
    url = f"http://127.0.0.1:{port}/user/{SERVER_USER}/api"
    started = time.monotonic()
    target.docker.start_container(spec)
    try:
        answer = _wait_for_server(target, spec.name, url, started, timeout)
        seconds = time.monotonic() - started
    finally:
        target.docker.remove_containers(spec.name)
    return Outcome(
        f"jupyterhub-singleuser answered under /user/{SERVER_USER}/ after {seconds:.1f} s "
        f"(Jupyter Server {answer.get('version', '?')})"
    )


def _wait_for_server(
    target: ImageUnderTest, container: str, url: str, started: float, timeout: float
) -> dict[str, Any]:
    """The server's `/api` answer within `timeout` seconds of `started`.

    CheckFailed with the container's last log lines if it exits or stays silent; the message names
    `timeout` (the setting), not what was left of it once the container had started.
    """
    next_state_check = 0.0
    deadline = started + timeout
    while time.monotonic() < deadline:
        with suppress(requests.RequestException, ValueError):
            response = requests.get(url, timeout=2)
            if response.status_code == 200:
                answer = response.json()
                return answer if isinstance(answer, dict) else {}
        if time.monotonic() >= next_state_check:
            next_state_check = time.monotonic() + STATE_INTERVAL
            state = target.docker.container_state(container)
            if state is None or not state.running:
                code = state.exit_code if state is not None else "unknown"
                raise CheckFailed(
                    f"the server's container exited (exit code {code}) before answering at {url}; "
                    "its last log lines follow",
                    target.docker.container_log(container, LOG_LINES),
                )
        time.sleep(POLL_INTERVAL)
    raise CheckFailed(
        f"the server did not answer at {url} within {timeout:.0f} s ([smoke] timeout); its last log lines follow",
        target.docker.container_log(container, LOG_LINES),
    )


# --- 7. notebooks ------------------------------------------------------------------------------


def check_notebook(target: ImageUnderTest, notebook: Path, shown: str, cell_timeout: int) -> Outcome:
    """Run the notebook top to bottom with nbclient in the image, each cell within `cell_timeout` seconds.

    hub.toml's notebook_timeout is nbclient's per-cell timeout (as its description says); the whole
    notebook is bounded by that per code cell plus the container's and kernel's start. The notebook is
    mounted read-only; the kernel works in a scratch folder, deleted afterwards with what it wrote.
    """
    if not notebook.is_file():
        raise CheckFailed(f"{shown}: no such notebook ([smoke] notebooks lists it)")
    cells = _code_cells(notebook, shown)
    with tempfile.TemporaryDirectory(prefix="hubship-smoke-notebook-") as scratch:
        output = Path(scratch) / "output"
        output.mkdir()
        output.chmod(0o777)  # the image's user (uid 1000) writes here, whoever runs the smoke test
        in_image = f"{IN_IMAGE}/notebooks/{notebook.name}"
        spec = target.spec(
            f"notebook-{shown}",
            ["python", "-", in_image, f"{IN_IMAGE}/output", str(cell_timeout)],
            mounts=(Mount(notebook.resolve(), in_image), Mount(output, f"{IN_IMAGE}/output", read_only=False)),
        )
        limit = NOTEBOOK_START_TIMEOUT + cell_timeout * max(cells, 1)
        completed = target.run(spec, timeout=limit, stdin_text=_script("run_notebook.py"))
        result_file = output / "result.json"
        if not result_file.is_file():
            raise CheckFailed(
                f"{shown} did not run (exit code {completed.returncode}); the container's last lines follow",
                output_tail(completed),
            )
        result: dict[str, Any] = json.loads(result_file.read_text(encoding="utf-8"))
    if not result["passed"]:
        index = int(result["cell"])
        details = [f"cell {index + 1} of {result['cells']}:", *(f"    {line}" for line in result["source"])]
        details += result["traceback"]
        raise CheckFailed(f"{shown}: cell {index + 1} of {result['cells']} failed: {result['error']}", details)
    return Outcome(f"{shown}: all {result['cells']} cells ran ({cells} with code)")


def _code_cells(notebook: Path, shown: str) -> int:
    try:
        data = json.loads(notebook.read_text(encoding="utf-8"))
    except (ValueError, UnicodeDecodeError) as exc:
        raise CheckFailed(f"{shown}: not a notebook (not JSON: {exc})") from None
    return sum(1 for cell in data.get("cells", ()) if cell.get("cell_type") == "code")


# --- 8. the user's own tests -------------------------------------------------------------------


def check_user_tests(target: ImageUnderTest, hub_root: Path, tests: Path) -> Outcome:
    """pytest on the tests folder inside the image, as its user, the hub repository mounted read-only."""
    shown = tests.relative_to(hub_root).as_posix() if tests.is_relative_to(hub_root) else str(tests)
    if not tests.is_dir():
        raise CheckFailed(f"{shown}: no such folder ([smoke] tests names it); add the image's tests there")
    if not tests.is_relative_to(hub_root):
        raise CheckFailed(f"{shown}: [smoke] tests must be a folder inside the hub repository")
    with tempfile.TemporaryDirectory(prefix="hubship-smoke-tests-") as scratch:
        output = Path(scratch) / "output"
        output.mkdir()
        output.chmod(0o777)
        in_image = f"{IN_IMAGE}/repo/{shown}"
        command = [
            "python",
            "-m",
            "pytest",
            "-p",
            "no:cacheprovider",
            "-c",
            "/dev/null",  # the hub repository's own pytest settings are for its toolkit, not for the image
            f"--rootdir={in_image}",
            f"--junitxml={IN_IMAGE}/output/pytest.xml",
            "-q",
            in_image,
        ]
        spec = target.spec(
            "user-tests",
            command,
            env={"PYTHONDONTWRITEBYTECODE": "1", "HUBSHIP_REPO": f"{IN_IMAGE}/repo"},
            mounts=(
                Mount(hub_root.resolve(), f"{IN_IMAGE}/repo"),
                Mount(output, f"{IN_IMAGE}/output", read_only=False),
            ),
        )
        completed = target.run(spec, timeout=USER_TESTS_TIMEOUT)
        report = output / "pytest.xml"
        outcome = _pytest_outcome(report) if report.is_file() else None
    if outcome is None:
        raise CheckFailed(
            f"pytest did not run in the image (exit code {completed.returncode}); its last lines follow",
            output_tail(completed),
        )
    total, failures = outcome
    if completed.returncode == 5 or total == 0:
        raise CheckFailed(f"pytest collected no tests in {shown}")
    if failures or completed.returncode != 0:
        raise CheckFailed(
            f"{len(failures)} of {total} tests in {shown} failed (pytest exit code {completed.returncode})",
            failures or output_tail(completed),
        )
    return Outcome(f"{total} tests in {shown} passed, as uid {NB_UID} with the repository read-only")


def _pytest_outcome(report: Path) -> tuple[int, list[str]]:
    """The number of tests, and one line per failure or error (`test id: message`), from pytest's JUnit XML."""
    root = ET.fromstring(report.read_text(encoding="utf-8"))  # noqa: S314  (written by pytest in our container)
    total = 0
    failures = []
    for case in root.iter("testcase"):
        total += 1
        for problem in (*case.findall("failure"), *case.findall("error")):
            message = (problem.get("message") or problem.tag).splitlines()[0][:200]
            failures.append(f"{case.get('classname')}::{case.get('name')}: {message}")
    return total, failures


# --- 9. size -----------------------------------------------------------------------------------


def gigabytes(size: int) -> str:
    return f"{size / 1e9:.2f} GB"


def check_size(image: LocalImage, budget: int) -> Outcome:
    if image.size > budget:
        raise CheckFailed(
            f"the image is {gigabytes(image.size)}, over the {gigabytes(budget)} budget ([smoke] size_budget) "
            f"by {gigabytes(image.size - budget)}"
        )
    return Outcome(f"{gigabytes(image.size)}, within the {gigabytes(budget)} budget ({image.size / budget:.0%})")
