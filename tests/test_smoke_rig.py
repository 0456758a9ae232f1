"""The smoke-test stage on the rig: the project's own image passes every check; broken images fail the right one.

Every run is the real stage (`python -m tooling test` in this process) on
real images in the rig's Docker engine, with a real JupyterHub,
DockerSpawner and configurable-http-proxy on 127.0.0.1. Broken images are
built in seconds FROM the project's image (`docker build --network none`)
and removed at the end; broken hub repositories (a notebook that raises or
hangs, a short server timeout) are copies of the rig's hub.
"""

from __future__ import annotations

import json
import shutil
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.rig.docker import build_with_buildkit, local_image_id
from tests.rig.hub_fixtures import HubCopies, RigHub
from tooling.build import BuildResult
from tooling.cli import main
from tooling.docker import Docker
from tooling.hubcheck import check_hub_spawn
from tooling.smoke import JUNIT_NAME, REPORT_NAME
from tooling.smoke.checks import (
    RUN_LABEL,
    ImageUnderTest,
    LockedPackage,
    locked_packages,
    read_environment,
    top_level_modules,
)
from tooling.smoke.hub import LocalHubSettings, local_hub
from tooling.state import State

pytestmark = [pytest.mark.docker, pytest.mark.rig]

ALL_CHECKS = [
    "user",
    "environment",
    "imports",
    "singleuser",
    "server-start",
    "hub-spawn",
    "notebook image/notebooks/intro.ipynb",
    "user-tests",
    "size",
]
BROKEN_REPOSITORY = "hubship-smoke-test/broken"


@dataclass(frozen=True)
class StageRun:
    """One `python -m tooling test` run: its exit code, what it printed, and the reports it wrote."""

    exit_code: int
    out: str
    err: str
    junit: Path
    state: State

    def cases(self) -> dict[str, ET.Element]:
        root = ET.parse(self.junit).getroot()
        return {str(case.get("name")): case for case in root.iter("testcase")}

    def failed(self) -> dict[str, str]:
        """Failed check -> its failure text (reason and details), from the JUnit report."""
        return {
            name: str(failure.text)
            for name, case in self.cases().items()
            if (failure := case.find("failure")) is not None
        }


def run_stage(config: Path, capsys: pytest.CaptureFixture[str], *args: str) -> StageRun:
    exit_code = main(["--config", str(config), "test", *args])
    captured = capsys.readouterr()
    hub = config.parent
    junit = hub / ".hubship" / "reports" / JUNIT_NAME
    return StageRun(exit_code, captured.out, captured.err, junit, State.load(hub))


def smoke_containers(docker_cli: Docker) -> list[str]:
    return docker_cli.run("ps", "--all", "--quiet", "--filter", f"label={RUN_LABEL}").stdout.split()


@pytest.fixture(autouse=True)
def no_container_left(docker_cli: Docker) -> Iterator[None]:
    """Every container a smoke run starts is gone when it ends, whatever it found."""
    yield
    assert smoke_containers(docker_cli) == []


@pytest.fixture
def broken_images(docker_cli: Docker, rig_built_image: BuildResult, tmp_path: Path) -> Iterator[BrokenImages]:
    # FROM a tag of this test's own, set on the image's id: a name BuildKit finds in the engine.
    base = f"{BROKEN_REPOSITORY}:base-{tmp_path.name}".lower()
    docker_cli.run("tag", rig_built_image.image_id, base)
    images = BrokenImages(docker_cli, base, tmp_path / "broken")
    yield images
    images.remove()


@dataclass
class BrokenImages:
    """Builds images FROM the project's image with a few Dockerfile lines; removes them afterwards."""

    docker: Docker
    base: str
    folder: Path

    def build(self, name: str, dockerfile: str, files: dict[str, str] | None = None) -> str:
        context = self.folder / name
        context.mkdir(parents=True)
        (context / "Dockerfile").write_text(f"FROM {self.base}\n{dockerfile}\n", encoding="utf-8")
        for file_name, text in (files or {}).items():
            (context / file_name).write_text(text, encoding="utf-8")
        reference = f"{BROKEN_REPOSITORY}:{name}"
        build_with_buildkit(self.docker, "--network", "none", "--tag", reference, str(context))
        return reference

    def remove(self) -> None:
        listed = self.docker.run("images", "--format", "{{.Repository}}:{{.Tag}}", BROKEN_REPOSITORY).stdout.split()
        if listed:
            self.docker.run("rmi", "--force", *listed, check=False)


# --- the project's image -------------------------------------------------------------------------


def test_the_projects_image_passes_every_check(
    rig_hub: RigHub,
    rig_built_image: BuildResult,
    docker_cli: Docker,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    junit = tmp_path / "junit" / "smoke.xml"
    exit_code = main(["--config", str(rig_hub.config), "test", "--junit", str(junit)])
    out = capsys.readouterr().out

    assert exit_code == 0, out
    root = ET.parse(junit).getroot()
    cases = {case.get("name"): case for case in root.iter("testcase")}
    assert list(cases) == ALL_CHECKS
    assert all(case.find("failure") is None for case in cases.values()), out
    assert root.get("failures") == "0"
    # The reasons say what was checked, on the real image.
    said = {name: case.findtext("system-out", "") for name, case in cases.items()}
    assert said["user"].startswith("runs as uid 1000 (jovyan), not root")
    assert "conda packages, each with the lock's name, version, build and md5" in said["environment"]
    assert all(module in said["imports"] for module in ("numpy", "xarray", "h5py", "matplotlib", "jupyterlab"))
    assert "jupyterhub-singleuser 5.4.6" in said["singleuser"]
    assert said["server-start"].startswith("jupyterhub-singleuser answered under /user/hubship-server/")
    assert "ran code in a kernel ('hubship-smoke 42 /srv/conda/envs/notebook')" in said["hub-spawn"]
    cells = json.loads((rig_hub.image_dir / "notebooks" / "intro.ipynb").read_text())["cells"]
    assert f"all {len(cells)} cells ran" in said["notebook image/notebooks/intro.ipynb"]
    user_tests = sum(
        line.startswith("def test_") for path in (rig_hub.image_dir / "tests").glob("test_*.py") for line in path.open()
    )
    assert f"{user_tests} tests in image/tests passed" in said["user-tests"]
    assert "PASS  hub-spawn" in out
    # The state records the pass under the image's id (what push checks); the report is where it says.
    state = State.load(rig_hub.root)
    assert state.passed_smoke_test(rig_built_image.image_id)
    report = Path(state.tested[rig_built_image.image_id].report)
    assert report == rig_hub.root / ".hubship" / "reports" / REPORT_NAME
    markdown = report.read_text(encoding="utf-8")
    assert all(f"| {name} | pass |" in markdown for name in ALL_CHECKS)


def test_what_the_image_holds_is_read_without_starting_it(
    rig_hub: RigHub, rig_built_image: BuildResult, docker_cli: Docker
) -> None:
    image = docker_cli.inspect_image(rig_built_image.reference)
    assert image is not None
    target = ImageUnderTest(docker_cli, rig_built_image.reference, image, "reading")
    locked, _ = locked_packages(rig_hub.root / "environments" / "conda-lock.yml", "linux-64")
    # numpy as if the lock had it from pip: its dist-info RECORD is what names its modules then.
    pip = {"numpy": LockedPackage("numpy", "2.4.6", "", ""), "absent": LockedPackage("absent", "1.0", "", "")}

    environment = read_environment(target, pip)

    assert set(environment.conda) == set(locked)
    assert environment.site_packages == "lib/python3.11/site-packages"
    assert top_level_modules(environment.conda["h5py"].site_files) == ["h5py"]
    assert "numpy/__init__.py" in environment.pip["numpy"].site_files
    assert top_level_modules(environment.pip["numpy"].site_files) == ["numpy"]
    assert "absent" not in environment.pip


def test_the_hub_check_on_a_hub_that_refuses_its_token_says_so(rig_built_image: BuildResult) -> None:
    settings = LocalHubSettings(image=rig_built_image.image_id, timeout=30, container_name="hubship-smoke-x-{username}")
    with local_hub(settings) as hub:
        refused = check_hub_spawn(hub.url, "not-the-hubs-token-0123456789")
        accepted_version = refused.details[0] if refused.details else ""
    assert not refused.passed
    assert refused.reason.startswith("GET /hub/api/users/hubship-smoke answered 403")
    assert "JupyterHub 5.4.6 answers at http://127.0.0.1:" in accepted_version
    assert "not-the-hubs-token-0123456789" not in refused.reason + "\n".join(refused.details)
    # The hub and the proxy were stopped by their own PIDs.
    assert not hub.hub.running()
    assert not hub.proxy.running()


# --- broken images fail the right check ----------------------------------------------------------


def test_an_image_running_as_root_fails_the_user_check_and_cannot_be_pushed(
    rig_hub: RigHub,
    broken_images: BrokenImages,
    docker_cli: Docker,
    capsys: pytest.CaptureFixture[str],
) -> None:
    image = broken_images.build("root", "USER root")

    run = run_stage(rig_hub.config, capsys, "--image", image)

    assert run.exit_code == 1
    failed = run.failed()
    assert "the image runs as root (USER root, uid 0)" in failed["user"]
    assert "the server's container exited (exit code 1) while the hub waited for it" in failed["hub-spawn"]
    # Jupyter Server refuses to run as root: the server check shows it in the container's log.
    assert "--allow-root" in failed["server-start"]
    image_id = local_image_id(docker_cli, image)
    assert run.state.tested[image_id].passed is False
    assert main(["--config", str(rig_hub.config), "push", "--image", image]) == 1
    assert "failed its smoke test" in capsys.readouterr().err


def test_an_environment_that_differs_from_the_lock_lists_every_difference(
    rig_hub: RigHub, rig_built_image: BuildResult, broken_images: BrokenImages, capsys: pytest.CaptureFixture[str]
) -> None:
    meta = "${NB_PYTHON_PREFIX}/conda-meta"
    image = broken_images.build(
        "drifted",
        # One record gone, one version changed: what a hand `pip install -U` or a stray install leaves.
        f'RUN rm {meta}/six-*.json && sed -i \'s/"version": "2.4.6"/"version": "2.4.5"/\' {meta}/numpy-2.4.6-*.json',
    )

    run = run_stage(rig_hub.config, capsys, "--image", image)

    assert run.exit_code == 1
    failed = run.failed()
    assert list(failed) == ["environment"]
    assert (
        "2 differences between /srv/conda/envs/notebook/conda-meta and environments/conda-lock.yml"
        in failed["environment"]
    )
    assert "missing from the image: six 1.17.0" in failed["environment"]
    assert "numpy: the image has 2.4.5 py311_0, the lock 2.4.6 py311_0" in failed["environment"]


def test_an_image_without_jupyterhub_singleuser_fails_the_singleuser_check(
    rig_hub: RigHub, broken_images: BrokenImages, capsys: pytest.CaptureFixture[str]
) -> None:
    image = broken_images.build("no-singleuser", "RUN rm ${NB_PYTHON_PREFIX}/bin/jupyterhub-singleuser")

    run = run_stage(rig_hub.config, capsys, "--image", image)

    assert run.exit_code == 1
    failed = run.failed()
    assert "jupyterhub-singleuser is not on the image's PATH" in failed["singleuser"]
    assert "the server's container exited (exit code 127) before answering" in failed["server-start"]
    assert "the server's container exited (exit code 127) while the hub waited for it" in failed["hub-spawn"]
    assert {"user", "environment", "imports", "size"}.isdisjoint(failed)


START_THAT_EXITS = """#!/bin/bash
echo "start: the shared data folder is not mounted, giving up" >&2
exit 3
"""


def test_an_image_whose_start_script_exits_fails_the_server_check_with_its_log(
    rig_hub: RigHub, broken_images: BrokenImages, capsys: pytest.CaptureFixture[str]
) -> None:
    image = broken_images.build(
        "start-exits", "COPY --chmod=0755 start /home/jovyan/start", {"start": START_THAT_EXITS}
    )

    run = run_stage(rig_hub.config, capsys, "--image", image)

    assert run.exit_code == 1
    failed = run.failed()
    assert "the server's container exited (exit code 3) before answering" in failed["server-start"]
    assert "the shared data folder is not mounted" in failed["server-start"]
    # The spawn through the hub fails too, with the spawner's reason; what the image holds does not depend on `start`.
    assert "the server's container exited (exit code 3) while the hub waited for it" in failed["hub-spawn"]
    assert "container: start: the shared data folder is not mounted" in failed["hub-spawn"]
    assert {"user", "environment", "imports", "singleuser", "size"}.isdisjoint(failed)


SINGLEUSER_THAT_HANGS = """#!/bin/sh
case "$*" in *--version*) exec /srv/conda/envs/notebook/bin/jupyterhub-singleuser.real "$@" ;; esac
echo "jupyterhub-singleuser: waiting for a volume that never comes"
exec sleep 600
"""


def test_a_server_that_never_answers_fails_after_the_timeout_with_its_log(
    copy_rig_hub: HubCopies, broken_images: BrokenImages, capsys: pytest.CaptureFixture[str]
) -> None:
    hub = copy_rig_hub("short-timeout")
    hub.set_hub_toml("smoke", "timeout", 5)  # type: ignore[arg-type]  # tomlkit writes the integer as given
    bin_dir = "/srv/conda/envs/notebook/bin"
    image = broken_images.build(
        "never-answers",
        f"RUN mv {bin_dir}/jupyterhub-singleuser {bin_dir}/jupyterhub-singleuser.real\n"
        f"COPY --chmod=0755 jupyterhub-singleuser {bin_dir}/jupyterhub-singleuser",
        {"jupyterhub-singleuser": SINGLEUSER_THAT_HANGS},
    )

    run = run_stage(hub.config, capsys, "--image", image)

    assert run.exit_code == 1
    failed = run.failed()
    assert "did not answer" in failed["server-start"]
    assert "within 5 s ([smoke] timeout)" in failed["server-start"]
    assert "waiting for a volume that never comes" in failed["server-start"]
    # The hub gives up after the same timeout (on a busy machine, possibly while starting the container).
    assert "the hub could not spawn the server: Spawn failed: " in failed["hub-spawn"]
    assert "singleuser" not in failed


# --- broken notebooks ------------------------------------------------------------------------------


def notebook(*cells: str) -> str:
    return json.dumps(
        {
            "cells": [
                {"cell_type": "code", "execution_count": None, "metadata": {}, "outputs": [], "source": source}
                for source in cells
            ],
            "metadata": {"kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"}},
            "nbformat": 4,
            "nbformat_minor": 5,
        }
    )


def test_a_failing_notebook_shows_the_failing_cell_and_its_error(
    copy_rig_hub: HubCopies, rig_built_image: BuildResult, capsys: pytest.CaptureFixture[str]
) -> None:
    hub = copy_rig_hub("failing-notebook")
    (hub.image_dir / "notebooks" / "broken.ipynb").write_text(
        notebook("total = 1 + 1", "ratio = total / 0\nprint(ratio)", "print('never')"), encoding="utf-8"
    )
    hub.set_hub_toml("smoke", "notebooks", ["image/notebooks/broken.ipynb"])  # type: ignore[arg-type]

    run = run_stage(hub.config, capsys, "--image", rig_built_image.reference)

    assert run.exit_code == 1
    failed = run.failed()
    assert list(failed) == ["notebook image/notebooks/broken.ipynb"]
    text = failed["notebook image/notebooks/broken.ipynb"]
    assert "cell 2 of 3 failed: ZeroDivisionError: division by zero" in text
    assert "ratio = total / 0" in text


def test_a_hanging_notebook_fails_after_the_cell_timeout_naming_the_cell(
    copy_rig_hub: HubCopies, rig_built_image: BuildResult, capsys: pytest.CaptureFixture[str]
) -> None:
    hub = copy_rig_hub("hanging-notebook")
    (hub.image_dir / "notebooks" / "hangs.ipynb").write_text(
        notebook("import time", "time.sleep(600)  # waits for a server that is not there"), encoding="utf-8"
    )
    hub.set_hub_toml("smoke", "notebooks", ["image/notebooks/hangs.ipynb"])  # type: ignore[arg-type]
    hub.set_hub_toml("smoke", "notebook_timeout", 3)  # type: ignore[arg-type]

    run = run_stage(hub.config, capsys, "--image", rig_built_image.reference)

    assert run.exit_code == 1
    text = run.failed()["notebook image/notebooks/hangs.ipynb"]
    assert "cell 2 of 2 failed: timed out: the cell was still running after 3 s" in text
    assert "time.sleep(600)" in text


# --- no image, no engine -----------------------------------------------------------------------------


def test_a_missing_image_is_one_clear_error_and_is_not_pulled(
    rig_hub: RigHub, docker_cli: Docker, capsys: pytest.CaptureFixture[str]
) -> None:
    absent = "registry.invalid/nobody/absent:img-000000000000"

    exit_code = main(["--config", str(rig_hub.config), "test", "--image", absent])

    err = capsys.readouterr().err
    assert exit_code == 1
    assert f"has no image {absent}" in err
    assert "never pulls" in err
    assert "Traceback" not in err
    assert docker_cli.inspect_image(absent) is None


def test_a_missing_docker_engine_is_one_clear_error(
    rig_hub: RigHub, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("DOCKER_HOST", f"unix://{tmp_path / 'nobody-serves-this.sock'}")

    exit_code = main(["--config", str(rig_hub.config), "test"])

    err = capsys.readouterr().err
    assert exit_code == 1
    assert "No Docker engine answers at unix://" in err
    assert "Traceback" not in err


def test_without_configurable_http_proxy_the_stage_says_how_to_install_it(
    rig_hub: RigHub,
    rig_built_image: BuildResult,
    docker_cli: Docker,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    docker = shutil.which(docker_cli.program)
    assert docker is not None
    monkeypatch.setenv("HUBSHIP_DOCKER", docker)
    monkeypatch.setenv("PATH", str(rig_hub.root / "no-programs-here"))

    exit_code = main(["--config", str(rig_hub.config), "test"])

    err = capsys.readouterr().err
    assert exit_code == 1
    assert "`configurable-http-proxy` was not found on PATH" in err
    assert "npm install --global configurable-http-proxy@4.6.3" in err
