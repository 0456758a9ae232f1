"""The rig's conda channel: converter rules on small inputs, then the real channel solved, installed and run."""

from __future__ import annotations

import asyncio
import json
import os
import secrets
import shutil
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import rattler
from packaging.requirements import Requirement
from packaging.specifiers import SpecifierSet
from packaging.tags import Tag
from packaging.utils import canonicalize_name
from rattler import Channel, Gateway, RepoDataRecord

from tests.rig.channel import build_once, ensure_channel
from tests.rig.channel_fixtures import RigChannel
from tests.rig.channel_server import serve_channel
from tests.rig.conda_env import environment_specs, install_in_child, solve, virtual_packages
from tests.rig.conda_names import CondaForgeNames
from tests.rig.conda_packages import conda_dependencies, plan_conversion
from tests.rig.python_package import debian_python_version
from tests.rig.wheels import (
    WheelInfo,
    conda_version_spec,
    extra_requirements,
    glibc_floor,
    manylinux_platform_tags,
    marker_environment,
    requirement_applies,
)
from tooling.errors import ToolingError
from tooling.proc import Server, free_port, run, start

PROJECT_ROOT = Path(__file__).resolve().parents[1]
ENVIRONMENT_YML = PROJECT_ROOT / "environments" / "environment.yml"
TARGET = marker_environment("3.11.2")


@pytest.fixture(scope="module")
def names() -> CondaForgeNames:
    return CondaForgeNames.from_snapshot()


# --- conda-forge names -------------------------------------------------------


@pytest.mark.parametrize(
    ("pypi_name", "conda_name"),
    [
        ("jupyter-server", "jupyter_server"),  # conda-forge keeps the underscore
        ("Jupyter_Core", "jupyter_core"),
        ("tzdata", "python-tzdata"),  # conda-forge's `tzdata` is the IANA database
        ("typing-extensions", "typing_extensions"),  # not the `typing-extensions` alias
        ("prompt_toolkit", "prompt-toolkit"),  # the name more records depend on
        ("matplotlib", "matplotlib-base"),
        ("jupyterhub", "jupyterhub-base"),
        ("nbconvert", "nbconvert-core"),
        ("numpy", "numpy"),
        ("Some.New_Project", "some-new-project"),  # unknown to conda-forge: the normalised PyPI name
    ],
)
def test_pypi_projects_get_conda_forge_names(names: CondaForgeNames, pypi_name: str, conda_name: str) -> None:
    assert names.for_project(pypi_name) == conda_name


def test_extras_become_conda_forge_metapackages(names: CondaForgeNames) -> None:
    assert names.for_extra("jsonschema", "format_nongpl") == "jsonschema-with-format-nongpl"
    assert names.for_extra("Bleach", "css") == "bleach-with-css"
    with pytest.raises(ToolingError, match=r"requests\[socks\].*EXTRA_PACKAGES"):
        names.for_extra("requests", "socks")


# --- markers, extras and version specs ---------------------------------------


@pytest.mark.parametrize(
    ("requirement", "installed"),
    [
        ("ptyprocess; os_name != 'nt'", True),
        ("pexpect>4.3; sys_platform != 'win32' and sys_platform != 'emscripten'", True),
        ("typing_extensions>=4.6; python_version < '3.12'", True),
        ("tomli>=1.2.2; python_version < '3.11'", False),
        ("pywinpty>=2.0.3; os_name == 'nt'", False),
        ("appnope; sys_platform == 'darwin'", False),
        ("greenlet>=1; platform_machine == 'x86_64' or platform_machine == 'aarch64'", True),
        ("pytest; extra == 'test'", False),
        ("traitlets>=5", True),
    ],
)
def test_markers_are_evaluated_for_linux_x86_64_cpython_311(requirement: str, installed: bool) -> None:
    assert requirement_applies(Requirement(requirement), TARGET) is installed


def test_an_extra_adds_only_its_own_requirements() -> None:
    requires = [
        Requirement("attrs>=22.2.0"),
        Requirement("fqdn; extra == 'format-nongpl'"),
        Requirement("webcolors>=24.6.0; extra == 'format_nongpl'"),
        Requirement("rfc3987; extra == 'format'"),
        Requirement("uri-template; extra == 'format-nongpl' and os_name == 'nt'"),
    ]
    added = extra_requirements(requires, "format-nongpl", TARGET)
    assert [str(requirement.name) for requirement in added] == ["fqdn", "webcolors"]


@pytest.mark.parametrize(
    ("pep440", "conda"),
    [
        ("", ""),
        (">=2.0,<3", "<3,>=2.0"),
        ("~=1.2.3", ">=1.2.3,1.2.*"),
        ("==1.4.*", "1.4.*"),
        ("!=5.0.0", "!=5.0.0"),
        ("===2.1", "==2.1"),
    ],
)
def test_pep440_specifiers_become_conda_specs_rattler_reads_the_same(pep440: str, conda: str) -> None:
    assert conda_version_spec(SpecifierSet(pep440)) == conda


# --- manylinux tags ----------------------------------------------------------


def test_glibc_floor_is_the_oldest_manylinux_tag() -> None:
    numpy_tags = {Tag("cp311", "cp311", "manylinux_2_27_x86_64"), Tag("cp311", "cp311", "manylinux_2_28_x86_64")}
    legacy_tags = {Tag("cp311", "cp311", "manylinux2014_x86_64"), Tag("cp311", "cp311", "manylinux_2_17_x86_64")}
    assert glibc_floor(numpy_tags) == (2, 27)
    assert glibc_floor(legacy_tags) == (2, 17)
    assert glibc_floor({Tag("cp311", "abi3", "manylinux1_x86_64")}) == (2, 5)
    assert glibc_floor({Tag("py3", "none", "any")}) is None


def test_pip_is_asked_for_every_manylinux_tag_up_to_the_locks_glibc() -> None:
    tags = manylinux_platform_tags()
    assert tags[0] == "manylinux_2_28_x86_64"
    assert "manylinux_2_5_x86_64" in tags
    assert {"manylinux2014_x86_64", "manylinux2010_x86_64", "manylinux1_x86_64"} <= set(tags)
    assert not any(tag.startswith(("manylinux_2_29", "manylinux_2_3")) for tag in tags)


# --- dependencies of converted wheels ----------------------------------------


def _wheel(
    tags: set[Tag],
    requires: list[str],
    requires_python: str = "",
    scripts: tuple[tuple[str, str], ...] = (),
    data_folders: frozenset[str] = frozenset(),
) -> WheelInfo:
    return WheelInfo(
        path=Path("example-1.0.whl"),
        name=canonicalize_name("example"),
        version="1.0",
        tags=frozenset(tags),
        requires_python=SpecifierSet(requires_python),
        requires=tuple(Requirement(line) for line in requires),
        scripts=scripts,
        data_folders=data_folders,
    )


BINARY = {Tag("cp311", "cp311", "manylinux2014_x86_64"), Tag("cp311", "cp311", "manylinux_2_17_x86_64")}
PURE = {Tag("py3", "none", "any")}


def test_binary_wheel_depends_on_abi_glibc_and_its_markers(names: CondaForgeNames) -> None:
    wheel = _wheel(
        BINARY,
        ["jupyter-core>=5", "jsonschema[format-nongpl]>=4.18", "pywin32; sys_platform == 'win32'"],
    )
    assert conda_dependencies(wheel, names, TARGET) == (
        "jupyter_core >=5",
        "jsonschema-with-format-nongpl >=4.18",
        "python >=3.11,<3.12.0a0",
        "python_abi 3.11.* *_cp311",
        "__glibc >=2.17",
    )


def test_abi3_wheel_needs_no_python_abi(names: CondaForgeNames) -> None:
    wheel = _wheel({Tag("cp39", "abi3", "manylinux_2_28_x86_64")}, [], requires_python=">=3.9")
    assert conda_dependencies(wheel, names, TARGET) == ("python >=3.9", "__glibc >=2.28")


def test_pure_wheel_keeps_marked_requirements(names: CondaForgeNames) -> None:
    wheel = _wheel(
        PURE,
        ["ptyprocess; os_name != 'nt'", "tzdata; sys_platform == 'win32'"],
        requires_python=">=3.8",
    )
    assert conda_dependencies(wheel, names, TARGET) == ("ptyprocess", "python >=3.8")


def test_only_binary_wheels_get_console_scripts_written(names: CondaForgeNames) -> None:
    scripts = (("f2py", "numpy.f2py.f2py2e:main"),)
    assert plan_conversion(_wheel(BINARY, [], scripts=scripts), names, TARGET).scripts == scripts
    # whl2conda lists a pure (or abi3) wheel's scripts as entry points in link.json; the installer writes them.
    assert plan_conversion(_wheel(PURE, [], scripts=scripts), names, TARGET).scripts == ()


def test_a_wheel_with_files_whl2conda_would_drop_is_refused(names: CondaForgeNames) -> None:
    wheel = _wheel(BINARY, [], data_folders=frozenset({"data", "purelib"}))
    with pytest.raises(ToolingError, match=r"example-1\.0\.whl installs files from \.data/purelib/"):
        plan_conversion(wheel, names, TARGET)


# --- the build: once, atomic, locked -----------------------------------------


def test_an_interrupted_build_leaves_no_channel_behind(tmp_path: Path) -> None:
    destination = tmp_path / "channel-abc"

    def interrupted(scratch: Path) -> None:
        (scratch / "conda-forge" / "noarch").mkdir(parents=True)
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        build_once(destination, interrupted)
    assert not destination.exists()
    assert [path.name for path in tmp_path.iterdir()] == [".channel-abc.lock"]

    killed = tmp_path / ".channel-abc.k1ll3d.partial"  # what a build ended by SIGKILL leaves
    (killed / "conda-forge").mkdir(parents=True)

    def complete(scratch: Path) -> None:
        (scratch / "repodata.json").write_text("{}")

    assert build_once(destination, complete) == destination
    assert (destination / "repodata.json").read_text() == "{}"
    assert not killed.exists()


def test_concurrent_builders_build_once_and_see_the_same_channel(tmp_path: Path) -> None:
    destination = tmp_path / "channel-abc"
    builds: list[Path] = []
    results: list[Path] = []

    def slow_build(scratch: Path) -> None:
        builds.append(scratch)
        time.sleep(0.5)
        (scratch / "done").write_text("yes")

    def caller() -> None:
        results.append(build_once(destination, slow_build, timeout=30))

    threads = [threading.Thread(target=caller) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert len(builds) == 1
    assert results == [destination] * 3
    assert (destination / "done").read_text() == "yes"


def test_a_build_stuck_elsewhere_fails_with_the_lock_file_named(tmp_path: Path) -> None:
    destination = tmp_path / "channel-abc"
    started = threading.Event()
    release = threading.Event()

    def stuck(scratch: Path) -> None:
        started.set()
        release.wait(timeout=30)

    holder = threading.Thread(target=build_once, args=(destination, stuck))
    holder.start()
    try:
        assert started.wait(timeout=10)
        with pytest.raises(ToolingError, match=r"\.channel-abc\.lock"):
            build_once(destination, stuck, timeout=0.2)
    finally:
        release.set()
        holder.join(timeout=30)


# --- the server --------------------------------------------------------------


def test_server_serves_the_folder_on_loopback_and_stops(tmp_path: Path) -> None:
    (tmp_path / "conda-forge" / "noarch").mkdir(parents=True)
    (tmp_path / "conda-forge" / "noarch" / "repodata.json").write_text('{"packages": {}}')
    with serve_channel(tmp_path) as served:
        assert served.root_url.startswith("http://127.0.0.1:")
        url = f"{served.channel_url('conda-forge')}/noarch/repodata.json"
        with urllib.request.urlopen(url, timeout=10) as response:
            assert json.load(response) == {"packages": {}}
        with pytest.raises(urllib.error.HTTPError) as missing:
            urllib.request.urlopen(f"{served.root_url}/conda-forge/linux-64/repodata.json", timeout=10)
        assert missing.value.code == 404
    with pytest.raises(urllib.error.URLError):
        urllib.request.urlopen(url, timeout=5)


@pytest.mark.rig
def test_a_second_solve_revalidates_the_channel_and_succeeds(rig_channel: RigChannel, tmp_path: Path) -> None:
    """py-rattler revalidates cached repodata; a 304 without Last-Modified fails the solve (rattler#2719)."""
    # The channel's index, freshly written: a cache entry for it is stale at once, so the second
    # solve asks "modified since?" and gets a 304.
    fresh = tmp_path / "channel"
    shutil.copytree(
        rig_channel.path, fresh / "conda-forge", ignore=shutil.ignore_patterns("*.conda"), copy_function=shutil.copy
    )
    with serve_channel(fresh) as served:
        for _ in range(2):
            records = asyncio.run(
                rattler.solve(
                    sources=[Channel(served.channel_url("conda-forge"))],
                    specs=["python 3.11.*", "numpy"],
                    platforms=["linux-64", "noarch"],
                    virtual_packages=virtual_packages(),
                    gateway=Gateway(cache_dir=tmp_path / "cache"),
                )
            )
            assert {"python", "numpy"} <= {record.name.normalized for record in records}


# --- the real channel --------------------------------------------------------


def _records(rig_channel: RigChannel, subdir: str) -> list[dict[str, Any]]:
    with urllib.request.urlopen(f"{rig_channel.url}/{subdir}/repodata.json", timeout=30) as response:
        return list(json.load(response)["packages.conda"].values())


@pytest.mark.rig
def test_channel_records_carry_hashes_glibc_floors_and_the_python_abi(rig_channel: RigChannel) -> None:
    linux, noarch = _records(rig_channel, "linux-64"), _records(rig_channel, "noarch")
    for record in linux + noarch:
        assert len(record["md5"]) == 32
        assert len(record["sha256"]) == 64
    by_name = {record["name"]: record for record in linux}
    numpy_depends = by_name["numpy"]["depends"]
    assert "python_abi 3.11.* *_cp311" in numpy_depends
    [glibc] = [spec.removeprefix("__glibc >=") for spec in numpy_depends if spec.startswith("__glibc")]
    assert tuple(int(part) for part in glibc.split(".")) <= (2, 28)
    assert not any(spec.startswith("python_abi") for spec in by_name["tornado"]["depends"])  # abi3
    assert by_name["python"]["version"] == debian_python_version()
    assert {"jupyterhub-base", "jupyterhub-singleuser", "nbconvert-core", "jsonschema-with-format-nongpl"} <= {
        record["name"] for record in noarch
    }


@pytest.mark.rig
def test_a_second_ensure_reuses_the_built_channel(rig_channel: RigChannel) -> None:
    repodata = rig_channel.path / "noarch" / "repodata.json"
    before = repodata.stat().st_mtime_ns
    assert ensure_channel() == rig_channel.path.parent
    assert repodata.stat().st_mtime_ns == before


@pytest.fixture(scope="module")
def solved(rig_channel: RigChannel, tmp_path_factory: pytest.TempPathFactory) -> list[RepoDataRecord]:
    return solve(environment_specs(ENVIRONMENT_YML), rig_channel.url, tmp_path_factory.mktemp("rattler-cache"))


@pytest.mark.rig
def test_environment_yml_solves_unchanged_against_the_channel(
    rig_channel: RigChannel, solved: list[RepoDataRecord]
) -> None:
    versions = {record.name.normalized: str(record.version) for record in solved}
    assert versions["python"].startswith("3.11.")
    assert versions["jupyterhub-singleuser"].startswith("5.4.")
    assert versions["jupyterlab"].startswith("4.")
    assert {"ipykernel", "nbgitpuller", "numpy", "pandas", "xarray", "h5py", "matplotlib-base", "pip"} <= set(versions)
    assert all(record.url.startswith(f"{rig_channel.url}/") for record in solved)


@pytest.fixture(scope="module")
def prefix(rig_channel: RigChannel, tmp_path_factory: pytest.TempPathFactory) -> Path:
    target = tmp_path_factory.mktemp("env") / "hub-image"
    install_in_child(
        environment_specs(ENVIRONMENT_YML), rig_channel.url, target, tmp_path_factory.mktemp("rattler-cache")
    )
    return target


@pytest.fixture
def user_env(tmp_path: Path, prefix: Path) -> dict[str, str]:
    """A user's environment for programs of the prefix: its bin first, a home of its own, no user site."""
    home = tmp_path / "home"
    home.mkdir()
    return {
        "PATH": f"{prefix}/bin:/usr/bin:/bin",
        "HOME": str(home),
        "PYTHONNOUSERSITE": "1",
        "JUPYTER_CONFIG_DIR": str(home / ".jupyter"),
        "JUPYTER_DATA_DIR": str(home / ".local/share/jupyter"),
        "JUPYTER_RUNTIME_DIR": str(home / ".local/share/jupyter/runtime"),
        "MPLCONFIGDIR": str(home / ".config/matplotlib"),
    }


@pytest.mark.rig
def test_install_records_every_solved_package_in_conda_meta(prefix: Path, solved: list[RepoDataRecord]) -> None:
    installed = {json.loads(path.read_text())["name"] for path in (prefix / "conda-meta").glob("*.json")}
    assert installed == {record.name.normalized for record in solved}


@pytest.mark.rig
def test_jupyterlab_4_runs(prefix: Path, user_env: dict[str, str]) -> None:
    version = run([f"{prefix}/bin/jupyter", "lab", "--version"], env=user_env, timeout=120).stdout.strip()
    assert version.startswith("4.")


@pytest.mark.rig
def test_jupyterhub_singleuser_is_jupyterhub_5(prefix: Path, user_env: dict[str, str]) -> None:
    version = run([f"{prefix}/bin/jupyterhub-singleuser", "--version"], env=user_env, timeout=120).stdout
    assert version.strip().split(".")[0] == "5"


@pytest.mark.rig
def test_scientific_stack_imports_from_the_prefix(prefix: Path, user_env: dict[str, str]) -> None:
    script = "import numpy, pandas, xarray, h5py, matplotlib; print(numpy.__file__, matplotlib.__file__)"
    files = run([f"{prefix}/bin/python", "-c", script], env=user_env, timeout=120).stdout.split()
    assert all(path.startswith(f"{prefix}/lib/python3.11/site-packages/") for path in files)


@pytest.mark.rig
def test_pip_belongs_to_and_installs_into_the_environment(prefix: Path, user_env: dict[str, str]) -> None:
    site_packages = f"{prefix}/lib/python3.11/site-packages"
    assert f" from {site_packages}/pip " in run([f"{prefix}/bin/pip", "--version"], env=user_env).stdout
    purelib = run(
        [f"{prefix}/bin/python", "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"], env=user_env
    ).stdout.strip()
    assert purelib == site_packages


@pytest.mark.rig
def test_a_kernel_executes_a_notebook(prefix: Path, user_env: dict[str, str], tmp_path: Path) -> None:
    notebook = tmp_path / "check.ipynb"
    cell: dict[str, object] = {
        "cell_type": "code",
        "execution_count": None,
        "id": "check",
        "metadata": {},
        "outputs": [],
        "source": "import sys, numpy\nprint(sys.prefix, int(numpy.arange(4).sum()))",
    }
    kernelspec = {"name": "python3", "display_name": "Python 3", "language": "python"}
    notebook.write_text(
        json.dumps({"cells": [cell], "metadata": {"kernelspec": kernelspec}, "nbformat": 4, "nbformat_minor": 5})
    )
    run([f"{prefix}/bin/jupyter", "execute", "--inplace", str(notebook)], env=user_env, timeout=180)
    outputs = json.loads(notebook.read_text())["cells"][0]["outputs"]
    # nbformat stores a stream's text as one string or as a list of lines.
    assert ["".join(output.get("text", "")) for output in outputs] == [f"{prefix} 6\n"]


@dataclass(frozen=True)
class JupyterServer:
    url: str
    token: str
    server: Server


@pytest.fixture
def jupyter_server(prefix: Path, user_env: dict[str, str], tmp_path: Path) -> Iterator[JupyterServer]:
    """A Jupyter server of the prefix on a free 127.0.0.1 port, stopped by its PID afterwards."""
    port, token = free_port(), secrets.token_hex(16)
    argv = [f"{prefix}/bin/jupyter", "server", "--no-browser", "--ip=127.0.0.1", f"--port={port}"]
    argv += ["--port-retries=0", f"--ServerApp.root_dir={tmp_path}"]
    if os.geteuid() == 0:
        argv.append("--allow-root")
    server = start(argv, log_path=tmp_path / "server.log", env={**user_env, "JUPYTER_TOKEN": token})
    try:
        yield JupyterServer(f"http://127.0.0.1:{port}", token, server)
    finally:
        server.stop(timeout=20)


@pytest.mark.rig
def test_jupyter_server_answers_api_status(jupyter_server: JupyterServer) -> None:
    request = urllib.request.Request(
        f"{jupyter_server.url}/api/status", headers={"Authorization": f"token {jupyter_server.token}"}
    )
    deadline = time.monotonic() + 90
    status: dict[str, object] = {}
    while not status and time.monotonic() < deadline and jupyter_server.server.running():
        try:
            with urllib.request.urlopen(request, timeout=5) as response:
                status = json.load(response)
        except (urllib.error.URLError, ConnectionError):
            time.sleep(0.5)
    log_tail = "\n".join(jupyter_server.server.log_tail())
    assert status, f"no answer from {jupyter_server.url}/api/status; the server's log ends with:\n{log_tail}"
    assert "started" in status
