"""The smoke test's logic on small and real inputs, without Docker: import names, the lock comparison,
which JupyterHub the image must suit, the spawner's environment, the reports, and the hub check's
first step against an address where nothing listens, and its watch on real hubs whose server never starts
or ends once ready."""

from __future__ import annotations

import shutil
import time
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from types import SimpleNamespace

import pytest
import tomlkit
from jupyterhub.objects import Hub, Server
from jupyterhub.spawner import Spawner

from tests.lock_fixtures import PROJECT
from tooling.checkresult import CheckFailed, CheckResult, Outcome, run_check
from tooling.cli.smoke_cmd import junit_xml, markdown, summary_table
from tooling.config import load_config
from tooling.docker import ContainerSpec, Mount
from tooling.errors import ConfigError, ToolingError
from tooling.hubcheck import check_hub_spawn
from tooling.lockfile import split_package_file_name
from tooling.proc import free_port
from tooling.smoke import SmokeResult, required_hub
from tooling.smoke import hub as local_hubs
from tooling.smoke.checks import (
    ImageEnvironment,
    InstalledPackage,
    SpecNames,
    check_environment,
    check_size,
    import_plan,
    lock_differences,
    locked_packages,
    spawner_environment,
    spec_names,
    top_level_modules,
)

LOCK = PROJECT / "environments" / "conda-lock.yml"
EXPLICIT = PROJECT / "environments" / "conda-linux-64.lock"


# --- import names --------------------------------------------------------------------------------


def test_import_names_are_the_top_level_modules_a_package_owns() -> None:
    pytest_files = [
        "_pytest/__init__.py",
        "_pytest/python.py",
        "py.py",
        "pytest/__init__.py",
        "pytest/__main__.py",
        "pytest-9.2.0.dist-info/RECORD",
        "__pycache__/py.cpython-311.pyc",
    ]
    numpy_files = ["numpy/__init__.py", "numpy/_core/_multiarray_umath.cpython-311-x86_64-linux-gnu.so"]
    numpy_files += ["numpy.libs/libopenblas64_p-r0.so", "numpy-2.4.6.dist-info/METADATA"]
    matplotlib_files = ["matplotlib/__init__.py", "mpl_toolkits/axes_grid1/__init__.py", "pylab.py"]
    matplotlib_files += ["matplotlib-3.11.2-py3.11-nspkg.pth", "matplotlib/mpl-data/matplotlibrc"]

    assert top_level_modules(pytest_files) == ["py", "pytest"]  # _pytest is private: pytest is public
    assert top_level_modules(numpy_files) == ["numpy"]
    assert top_level_modules(matplotlib_files) == ["matplotlib", "mpl_toolkits", "pylab"]
    assert top_level_modules(["six.py", "six-1.17.0.dist-info/RECORD"]) == ["six"]
    # Only private modules: they are what the package gives, so they are imported.
    private_only = ["_argon2_cffi_bindings/__init__.py", "_cffi_backend.cpython-311-x86_64-linux-gnu.so"]
    assert top_level_modules(private_only) == ["_argon2_cffi_bindings", "_cffi_backend"]
    # Data without Python files, and metapackages, give nothing.
    assert top_level_modules(["share-data/README.txt", "notebook_data/logo.png"]) == []
    assert top_level_modules([]) == []


def installed(name: str, version: str, build: str, md5: str, *files: str) -> InstalledPackage:
    return InstalledPackage(name, version, build, md5, files)


def test_the_import_plan_follows_environment_yml_and_hub_toml() -> None:
    environment = ImageEnvironment(
        prefix="/srv/conda/envs/notebook",
        conda={
            "python": installed("python", "3.11.2", "0", "a"),
            "numpy": installed("numpy", "2.4.6", "py311_0", "b", "numpy/__init__.py"),
            "jupyterhub-singleuser": installed("jupyterhub-singleuser", "5.4.6", "meta_0", "c"),
            "pyyaml": installed("pyyaml", "6.0.4", "py311_0", "d", "yaml/__init__.py", "_yaml/__init__.py"),
        },
        pip={"requests-cache": installed("requests-cache", "1.2.0", "", "", "requests_cache/__init__.py")},
    )
    names = SpecNames(("python", "numpy", "jupyterhub-singleuser", "pyyaml", "h5py"), ("requests-cache",))

    plan = import_plan(names, environment, extra=["certifi"], skip=["yaml"])

    assert plan.modules == ("numpy", "requests_cache", "certifi")
    assert plan.owners["numpy"] == "numpy"
    assert plan.owners["certifi"] == "hub.toml extra_imports"
    assert plan.without_modules == ("python", "jupyterhub-singleuser")
    assert plan.not_installed == ("h5py",)


def test_the_names_of_environment_yml_are_read_from_its_specs(tmp_path: Path) -> None:
    assert spec_names(PROJECT / "environments" / "environment.yml") == SpecNames(
        (
            "python",
            "jupyterhub-singleuser",
            "jupyterlab",
            "ipykernel",
            "nbgitpuller",
            "numpy",
            "pandas",
            "xarray",
            "h5py",
            "matplotlib-base",
            "pytest",
            "pip",
        )
    )
    spec = tmp_path / "environment.yml"
    spec.write_text(
        "dependencies:\n  - conda-forge::NumPy >=1.26\n  - xarray[version='>=2024']\n"
        "  - pip:\n    - Requests_Cache==1.2.0\n    - tool @ https://example.org/tool-1.0-py3-none-any.whl#sha256=00\n",
        encoding="utf-8",
    )
    assert spec_names(spec) == SpecNames(("numpy", "xarray"), ("requests-cache", "tool"))
    spec.write_text("dependencies: [numpy\n", encoding="utf-8")
    with pytest.raises(ToolingError, match=r"environment\.yml:2:1: not valid YAML"):
        spec_names(spec)


# --- the environment against the lock -------------------------------------------------------------


def test_the_lock_is_read_for_linux_64_with_the_explicit_locks_names_builds_and_md5s() -> None:
    conda, pip = locked_packages(LOCK, "linux-64")

    explicit = [line for line in EXPLICIT.read_text().splitlines() if line.startswith("https://")]
    assert len(conda) == len(explicit)
    assert pip == {}
    for line in explicit:
        url, md5 = line.split("#")
        name, version, build = split_package_file_name(url.rsplit("/", 1)[1])
        assert (conda[name].version, conda[name].build, conda[name].md5) == (version, build, md5)


def test_every_difference_from_the_lock_is_listed() -> None:
    locked, _ = locked_packages(LOCK, "linux-64")
    image = {name: installed(name, p.version, p.build, p.md5) for name, p in locked.items()}
    assert lock_differences(image, locked) == []

    numpy, pandas = locked["numpy"], locked["pandas"]
    del image["tzdata"]
    image["numpy"] = installed("numpy", "1.0.0", numpy.build, numpy.md5)
    image["pandas"] = installed("pandas", pandas.version, pandas.build, "0" * 32)
    image["requests-oauthlib"] = installed("requests-oauthlib", "2.0.0", "pyhd8ed1ab_1", "e" * 32)

    differences = lock_differences(image, locked)

    assert differences == [
        f"numpy: the image has 1.0.0 {numpy.build}, the lock {numpy.version} {numpy.build}",
        f"pandas {pandas.version} {pandas.build}: md5 {'0' * 32} in the image, {pandas.md5} in the lock",
        "not in the lock: requests-oauthlib 2.0.0 pyhd8ed1ab_1",
        f"missing from the image: tzdata {locked['tzdata'].version} {locked['tzdata'].build}",
    ]
    with pytest.raises(CheckFailed) as failed:
        check_environment(ImageEnvironment("/srv/conda/envs/notebook", image), locked, "environments/conda-lock.yml")
    assert failed.value.reason == (
        "4 differences between /srv/conda/envs/notebook/conda-meta and environments/conda-lock.yml "
        "(1 missing, 1 not in the lock, 2 different)"
    )
    assert list(failed.value.details) == differences


# --- which JupyterHub -----------------------------------------------------------------------------


def hub_with(tmp_path: Path, charts: dict[str, str], jupyterhub_version: str = "") -> Path:
    for part in ("environments", "image", "deploy"):
        shutil.copytree(PROJECT / part, tmp_path / part)
    document = tomlkit.parse((PROJECT / "hub.toml").read_text(encoding="utf-8"))
    for name, version in charts.items():
        document["deploy"][name]["chart_version"] = version
    document["smoke"]["jupyterhub_version"] = jupyterhub_version
    (tmp_path / "hub.toml").write_text(tomlkit.dumps(document), encoding="utf-8")
    return tmp_path / "hub.toml"


@pytest.mark.parametrize(
    ("charts", "major", "source"),
    [
        ({"staging": "4.3.3", "prod": "4.3.3"}, 5, "chart 4.3.3 in [deploy.prod] and [deploy.staging]"),
        ({"staging": "4.3.3", "prod": "4.2.0"}, 5, "chart 4.2.0 in [deploy.prod]; chart 4.3.3 in [deploy.staging]"),
        ({"staging": "3.3.8", "prod": "3.3.8"}, 4, "chart 3.3.8 in [deploy.prod] and [deploy.staging]"),
        ({"staging": "2.0.0", "prod": "2.0.0"}, 3, "chart 2.0.0 in [deploy.prod] and [deploy.staging]"),
        ({"staging": "v1.2.0", "prod": "1.1.3"}, 1, "chart 1.1.3 in [deploy.prod]; chart v1.2.0 in [deploy.staging]"),
    ],
)
def test_the_hub_version_comes_from_the_deployed_chart(
    tmp_path: Path, charts: dict[str, str], major: int, source: str
) -> None:
    requirement = required_hub(load_config(hub_with(tmp_path, charts)))
    assert (requirement.major, requirement.source) == (major, source)


def test_hub_toml_can_name_the_hub_version(tmp_path: Path) -> None:
    requirement = required_hub(load_config(hub_with(tmp_path, {"staging": "9.0.0"}, jupyterhub_version="4.1.6")))
    assert (requirement.major, requirement.source) == (4, '[smoke] jupyterhub_version = "4.1.6"')


def test_an_unknown_chart_asks_for_the_hub_version(tmp_path: Path) -> None:
    config = load_config(hub_with(tmp_path, {"staging": "0.9.0-beta.3.n030.h796379e"}))
    with pytest.raises(ConfigError) as error:
        required_hub(config)
    assert "[deploy.staging] chart_version '0.9.0-beta.3.n030.h796379e'" in error.value.message
    assert "Set [smoke] jupyterhub_version" in error.value.message


def test_deploy_targets_on_different_hub_majors_ask_which_one(tmp_path: Path) -> None:
    config = load_config(hub_with(tmp_path, {"staging": "4.3.3", "prod": "3.3.8"}))
    with pytest.raises(ConfigError, match="run different JupyterHub major versions"):
        required_hub(config)


# --- the spawner's environment --------------------------------------------------------------------


def test_the_server_gets_the_environment_jupyterhubs_own_spawner_sets() -> None:
    hub = Hub(ip="127.0.0.1", port=8081, base_url="/hub/")
    user = SimpleNamespace(name="alice", escaped_name="alice", url="/user/alice/")
    spawner = Spawner(user=user, hub=hub, api_token="t0ken", oauth_client_id="jupyterhub-user-alice")
    spawner.ip, spawner.port = "127.0.0.1", 9999
    spawner._server = Server(ip="127.0.0.1", port=9999, base_url="/user/alice/")
    theirs = {key: value for key, value in spawner.get_env().items() if key.startswith("JUPYTERHUB_")}

    ours = spawner_environment("alice", 9999, hub.api_url, "registry.example.org/hub/image:img-1")

    assert ours == {
        **{key: value for key, value in theirs.items() if key != "JUPYTERHUB_API_TOKEN"},
        "JUPYTER_IMAGE": "registry.example.org/hub/image:img-1",
        "JUPYTER_IMAGE_SPEC": "registry.example.org/hub/image:img-1",
    }


def test_a_containers_secrets_never_reach_dockers_command_line() -> None:
    spec = ContainerSpec(
        image="sha256:abc",
        command=("jupyterhub-singleuser",),
        name="hubship-smoke-1-server",
        network="host",
        env={"JUPYTERHUB_USER": "alice"},
        secret_env={"JUPYTERHUB_API_TOKEN": "s3cret-token"},
        mounts=(Mount(Path("/srv/notebook.ipynb"), "/hubship/notebooks/notebook.ipynb"),),
        labels={"hubship.smoke.run": "1"},
    )

    arguments = spec.arguments()

    assert "s3cret-token" not in " ".join(arguments)
    assert arguments[:4] == ["--pull", "never", "--network", "host"]
    assert arguments[arguments.index("JUPYTERHUB_API_TOKEN") - 1] == "--env"
    assert "type=bind,source=/srv/notebook.ipynb,target=/hubship/notebooks/notebook.ipynb,readonly" in arguments
    assert arguments[-2:] == ["sha256:abc", "jupyterhub-singleuser"]


# --- results and reports --------------------------------------------------------------------------


def test_a_check_ends_in_a_result_whatever_way_it_ends() -> None:
    def fails() -> Outcome:
        raise CheckFailed("the image runs as root", ["USER root"])

    def errors() -> Outcome:
        raise ToolingError("docker could not start the container.\nIts last lines: no space left")

    passed = run_check("user", lambda: Outcome("runs as uid 1000"))
    failed = run_check("user", fails)
    errored = run_check("imports", errors)

    assert (passed.passed, passed.reason) == (True, "runs as uid 1000")
    assert (failed.passed, failed.reason, failed.details) == (False, "the image runs as root", ("USER root",))
    assert (errored.passed, errored.reason) == (False, "docker could not start the container.")
    assert errored.details == ("Its last lines: no space left",)


def test_the_size_check_compares_with_the_budget() -> None:
    image = SimpleNamespace(size=4_500_000_000)
    assert check_size(image, 6_000_000_000).reason == "4.50 GB, within the 6.00 GB budget (75%)"  # type: ignore[arg-type]
    with pytest.raises(CheckFailed, match=r"4.50 GB, over the 4.00 GB budget \(\[smoke\] size_budget\) by 0.50 GB"):
        check_size(image, 4_000_000_000)  # type: ignore[arg-type]


def a_result(tmp_path: Path) -> SmokeResult:
    return SmokeResult(
        reference="ghcr.io/example-hub/user-image:img-0123456789ab",
        image_id="sha256:" + "ab" * 32,
        checks=(
            CheckResult("user", True, "runs as uid 1000 (jovyan), not root; sudo is not installed", 0.4),
            CheckResult(
                "environment",
                False,
                "1 differences between /srv/conda/envs/notebook/conda-meta and environments/conda-lock.yml | x",
                0.8,
                ("missing from the image: six 1.17.0 py_0",),
            ),
        ),
        report=tmp_path / "smoke-test.md",
        junit=tmp_path / "smoke-test.xml",
        seconds=12.5,
    )


def test_the_junit_report_has_a_testcase_per_check_and_the_failures_details(tmp_path: Path) -> None:
    root = ET.fromstring(junit_xml(a_result(tmp_path)))

    suite = root.find("testsuite")
    assert suite is not None
    assert (suite.get("tests"), suite.get("failures"), suite.get("time")) == ("2", "1", "12.500")
    cases = suite.findall("testcase")
    assert [case.get("name") for case in cases] == ["user", "environment"]
    assert cases[0].find("failure") is None
    failure = cases[1].find("failure")
    assert failure is not None
    assert failure.get("message", "").startswith("1 differences between")
    assert "missing from the image: six 1.17.0 py_0" in (failure.text or "")


def test_the_markdown_report_has_a_line_per_check_and_the_failures_details(tmp_path: Path) -> None:
    text = markdown(a_result(tmp_path))

    assert "## Smoke test: `ghcr.io/example-hub/user-image:img-0123456789ab` FAILED (1 of 2 checks)" in text
    assert "| user | pass | 0.4 | runs as uid 1000 (jovyan), not root; sudo is not installed |" in text
    assert "| environment | **FAIL** | 0.8 | 1 differences between" in text
    assert "conda-lock.yml \\| x |" in text  # a | in a reason does not break the table
    assert "missing from the image: six 1.17.0 py_0" in text
    assert "python -m tooling test" in text


def test_the_printed_table_has_one_short_line_per_check(tmp_path: Path) -> None:
    lines = summary_table(a_result(tmp_path).checks, width=80).splitlines()
    assert lines[0].startswith("PASS  user           0.4 s  runs as uid 1000")
    assert lines[1].startswith("FAIL  environment    0.8 s  1 differences")
    assert all(len(line) <= 80 for line in lines)


# --- the hub check, where no hub answers -----------------------------------------------------------


def test_the_hub_check_says_which_request_got_no_answer_and_never_shows_the_token() -> None:
    token = "hubship-test-token-0123456789"
    hub_url = f"http://127.0.0.1:{free_port()}/"

    result = check_hub_spawn(hub_url, token)

    assert not result.passed
    assert result.reason.startswith("GET /hub/api/ got no answer:")
    assert token not in result.reason + "\n".join(result.details)


# --- the hub check and its watch, on real hubs whose server never starts or ends once ready ------

RIG = Path(__file__).resolve().parent / "rig"
CONTAINER_EXITED = "the server's container exited (exit code 241)"


@contextmanager
def rig_hub_with(config: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[local_hubs.LocalHub]:
    """The smoke test's local hub on loopback, with `config` (a rig file) loaded over the product's own."""
    monkeypatch.setenv("HUBSHIP_RIG_PRODUCT_CONFIG", str(local_hubs.config_file()))
    monkeypatch.setattr(local_hubs, "config_file", lambda: config)
    settings = local_hubs.LocalHubSettings(image="never-run", timeout=2, container_name="never-{username}")
    with local_hubs.local_hub(settings) as hub:
        yield hub


@pytest.fixture
def hanging_hub(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[local_hubs.LocalHub, Path]]:
    """A real JupyterHub on loopback that gives up on every spawn after 2 s; the file its spawner's stop writes."""
    stopped = tmp_path / "stopped"
    monkeypatch.setenv("HUBSHIP_RIG_STOPPED_FILE", str(stopped))
    with rig_hub_with(RIG / "hanging_spawner_hub_config.py", monkeypatch) as hub:
        yield hub, stopped


def test_a_server_the_hub_gave_up_on_fails_with_the_hubs_reason_though_the_watch_saw_it_end(
    hanging_hub: tuple[local_hubs.LocalHub, Path],
) -> None:
    hub, stopped = hanging_hub

    def watch_that_looks_after_the_hub_gave_up() -> str:
        # The race: the check saw the spawn pending, then the hub gave up and stopped the server
        # before the watch looked at it.
        deadline = time.monotonic() + 30
        while not stopped.exists() and time.monotonic() < deadline:
            time.sleep(0.1)
        return CONTAINER_EXITED

    result = check_hub_spawn(hub.url, hub.token, watch=watch_that_looks_after_the_hub_gave_up)

    assert stopped.exists()
    assert not result.passed
    assert result.reason.startswith("the hub could not spawn the server: Spawn failed: "), result.reason


def test_a_server_that_ends_while_the_hub_still_waits_fails_with_the_watchs_reason(
    hanging_hub: tuple[local_hubs.LocalHub, Path],
) -> None:
    hub, _ = hanging_hub

    result = check_hub_spawn(hub.url, hub.token, watch=lambda: CONTAINER_EXITED)

    assert not result.passed
    assert result.reason == f"{CONTAINER_EXITED} while the hub waited for it"


def test_a_server_that_ends_once_ready_fails_with_the_watchs_reason_before_the_hubs_answer(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    ended = tmp_path / "ended"
    monkeypatch.setenv("HUBSHIP_RIG_ENDED_FILE", str(ended))

    def watch() -> str:
        return f"the server ended (exit code {ended.read_text()})" if ended.exists() else ""

    with rig_hub_with(RIG / "crashing_server_hub_config.py", monkeypatch) as hub:
        result = check_hub_spawn(hub.url, hub.token, watch=watch)

    assert not result.passed
    # The hub found the server ready; the first request through the proxy ended it.
    assert any(step.endswith("server ready at /user/hubship-smoke/") for step in result.details), result.details
    assert result.reason.startswith(
        "the server ended (exit code 3) once the hub had found it ready (GET /user/hubship-smoke/api/status "
    ), result.reason
