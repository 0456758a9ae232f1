"""The load test against the rig's real JupyterHub: DockerSpawner, configurable-http-proxy, the project's image.

Every run is the real command (`python -m tooling loadtest staging`, in
this process or, for signals, as a subprocess) against a hub started by
tests/rig/loadtest_hub.py on 127.0.0.1, with the image the build stage
built. Faults come from the real hub: a notebook cell that raises, a hub
whose concurrent_spawn_limit throttles spawns (429 with Retry-After), an
image whose server exits. After every run no test user is left in the
hub's API and no container of the run in the engine.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import tomlkit

from tests.rig.docker import build_with_buildkit
from tests.rig.hub_fixtures import HubCopies, RigHub
from tests.rig.loadtest_hub import CONTAINER_LABEL, LoadtestHub, serve_loadtest_hub
from tooling.build import BuildResult
from tooling.cli import main
from tooling.docker import Docker
from tooling.loadtest.results import schema_path

pytestmark = [pytest.mark.docker, pytest.mark.rig]

TOKEN_ENV = "HUBSHIP_LT_TEST_TOKEN"
TUTORIAL = "image/notebooks/intro.ipynb"
TUTORIAL_CELLS = 3
# Seconds a subprocess run may take to come to the point a test waits for, and to end after a signal.
SUBPROCESS_WAIT = 180.0


@dataclass(frozen=True)
class Run:
    exit_code: int
    out: str
    results: dict[str, Any]
    folder: Path

    def report(self, suffix: str) -> Path:
        return self.folder / f"{self.results['run']['id']}{suffix}"


def _use_hub(copy: RigHub, hub: LoadtestHub, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Point the copy's staging environment at `hub`, with the token in TOKEN_ENV; the hub.toml path."""
    document = tomlkit.parse(copy.config.read_text(encoding="utf-8"))
    staging = document["deploy"]["staging"]
    staging["hub_url"] = hub.url
    staging["api_token_env"] = TOKEN_ENV
    copy.config.write_text(tomlkit.dumps(document), encoding="utf-8")
    monkeypatch.setenv(TOKEN_ENV, hub.token)
    return copy.config


def run_loadtest(config: Path, capsys: pytest.CaptureFixture[str], *args: str) -> Run:
    exit_code = main(["--config", str(config), "loadtest", "staging", *args])
    out = capsys.readouterr().out
    folder = config.parent / ".hubship" / "reports"
    (results_file,) = folder.glob("hubship-lt-*[0-9a-f].json")
    return Run(exit_code, out, json.loads(results_file.read_text(encoding="utf-8")), folder)


def run_containers(docker: Docker, run: str) -> list[str]:
    return docker.run("ps", "--all", "--quiet", "--filter", f"name={run}").stdout.split()


def assert_nothing_left(hub: LoadtestHub, docker: Docker, run: str) -> None:
    assert [user for user in hub.users() if user.startswith(run)] == []
    assert run_containers(docker, run) == []


def validate(results: dict[str, Any]) -> None:
    schema = json.loads(schema_path().read_text(encoding="utf-8"))
    jsonschema.Draft202012Validator(schema, format_checker=jsonschema.FormatChecker()).validate(results)


@dataclass(frozen=True)
class Harness:
    """What every test here uses: copies of the rig's hub, the engine, the environment, the captured output."""

    copies: HubCopies
    docker: Docker
    monkeypatch: pytest.MonkeyPatch
    capsys: pytest.CaptureFixture[str]

    def config(self, hub: LoadtestHub, copy: RigHub | None = None) -> Path:
        return _use_hub(copy or self.copies(), hub, self.monkeypatch)

    def run(self, config: Path, *args: str) -> Run:
        return run_loadtest(config, self.capsys, *args)

    def nothing_left(self, hub: LoadtestHub, run: str) -> None:
        assert_nothing_left(hub, self.docker, run)


@pytest.fixture
def harness(
    copy_rig_hub: HubCopies, docker_cli: Docker, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> Harness:
    return Harness(copy_rig_hub, docker_cli, monkeypatch, capsys)


@pytest.fixture(scope="module")
def loadtest_hub(rig_built_image: BuildResult) -> Iterator[LoadtestHub]:
    with serve_loadtest_hub(rig_built_image.reference) as hub:
        yield hub


@pytest.fixture(autouse=True)
def no_loadtest_container_left(docker_cli: Docker) -> Iterator[None]:
    yield
    assert docker_cli.run("ps", "--all", "--quiet", "--filter", f"label={CONTAINER_LABEL}").stdout.split() == []


# --- the tutorial at N = 1, 4, 8 -------------------------------------------------------------------


def test_one_user_runs_the_tutorial_and_every_report_is_written(harness: Harness, loadtest_hub: LoadtestHub) -> None:
    config = harness.config(loadtest_hub)

    run = harness.run(config, "--users", "1")

    assert run.exit_code == 0, run.out
    results = run.results
    validate(results)
    (user,) = results["users"]
    assert user["group"] == "load" and user["failures"] == []
    assert [cell["status"] for cell in user["cells"]] == ["ok"] * TUTORIAL_CELLS
    assert [event["progress"] for event in user["progress"]][-1] == 100
    assert user["moments"]["ready"] < user["moments"]["first_execution"] < user["moments"]["deleted"]
    assert results["measures"]["time_to_ready"]["n"] == 1
    assert results["run"]["baseline"] is False  # one user is its own baseline
    assert "result: PASSED" in run.out and f"cell {TUTORIAL}#3" in run.out
    assert run.report(".png").read_bytes().startswith(b"\x89PNG\r\n\x1a\n")
    assert run.report("-cells.csv").read_text().count(f"{TUTORIAL},") == TUTORIAL_CELLS
    assert "## Load test" in run.report(".md").read_text()
    state = json.loads((config.parent / ".hubship" / "loadtest" / f"{results['run']['id']}.json").read_text())
    assert state["status"] == "clean"
    assert loadtest_hub.token not in run.out + run.report(".json").read_text() + json.dumps(state)
    harness.nothing_left(loadtest_hub, results["run"]["id"])


@pytest.mark.parametrize(
    ("users", "arrival"),
    [(4, ["--arrival", "poisson", "--rate", "2", "--seed", "3"]), (8, ["--arrival", "burst"])],
    ids=["4-poisson", "8-burst"],
)
def test_many_users_run_the_tutorial_at_once_after_a_one_user_baseline(
    users: int, arrival: list[str], harness: Harness, loadtest_hub: LoadtestHub
) -> None:
    config = harness.config(loadtest_hub)
    # Every user reads the same file of the image at once: the shared-data probe.
    shared = "/srv/conda/envs/notebook/bin/python"

    run = harness.run(config, "--users", str(users), *arrival, "--read-file", shared)

    assert run.exit_code == 0, run.out
    results = run.results
    validate(results)
    groups = [user["group"] for user in results["users"]]
    assert groups == ["baseline"] + ["load"] * users
    assert results["measures"]["time_to_ready"]["n"] == users
    assert results["measures"]["time_to_first_execution"]["n"] == users
    assert results["failures"] == {}
    assert all(cell["slowdown"] is not None and cell["slowdown"] > 0 for cell in results["cells"])
    assert len(results["cells"]) == TUTORIAL_CELLS
    reads = [user["read"] for user in results["users"]]
    assert all(read is not None and read["bytes"] > 0 for read in reads)
    assert len({read["bytes"] for read in reads}) == 1  # the same file for everyone
    assert results["measures"]["read_mb_per_s"]["n"] == users
    intended = [user["intended"] for user in results["users"] if user["group"] == "load"]
    assert intended == sorted(intended)
    assert "slowdown of cell" in run.out
    harness.nothing_left(loadtest_hub, results["run"]["id"])


# --- faults the real hub produces ------------------------------------------------------------------


def _notebook(*cells: str) -> str:
    code: list[dict[str, Any]] = [
        {"cell_type": "code", "metadata": {}, "outputs": [], "execution_count": None, "source": [c]} for c in cells
    ]
    return json.dumps({"cells": code, "metadata": {}, "nbformat": 4, "nbformat_minor": 5})


FAULTY_NOTEBOOKS = {
    "raises.ipynb": _notebook("x = 6 * 7", "x / 0", "print(x)"),
    "dies.ipynb": _notebook("import os", "os._exit(1)", "print('never')"),
    "hangs.ipynb": _notebook("import time", "time.sleep(120)", "print('never')"),
}


def test_cell_errors_dead_kernels_and_hung_cells_are_classified_and_the_rest_goes_on(
    harness: Harness, loadtest_hub: LoadtestHub
) -> None:
    copy = harness.copies()
    for name, text in FAULTY_NOTEBOOKS.items():
        (copy.root / "image" / "notebooks" / name).write_text(text, encoding="utf-8")
    document = tomlkit.parse(copy.config.read_text(encoding="utf-8"))
    document["smoke"]["notebooks"] = [f"image/notebooks/{name}" for name in FAULTY_NOTEBOOKS] + [TUTORIAL]
    document["loadtest"]["cell_timeout"] = 15
    copy.config.write_text(tomlkit.dumps(document), encoding="utf-8")
    config = harness.config(loadtest_hub, copy)

    run = harness.run(config, "--users", "2", "--no-baseline")

    assert run.exit_code == 1  # the failure rate (2 of 2) is above the limit (0)
    results = run.results
    validate(results)
    assert results["failures"] == {"cell_error": 2, "kernel_died": 2, "cell_timeout": 2}
    for user in results["users"]:
        cells = [
            (cell["notebook"].removeprefix("image/notebooks/"), cell["status"], cell["ename"]) for cell in user["cells"]
        ]
        assert cells == [
            ("raises.ipynb", "ok", ""),
            ("raises.ipynb", "error", "ZeroDivisionError"),
            ("raises.ipynb", "ok", ""),  # a cell after an error still runs, as a person would run it
            ("dies.ipynb", "ok", ""),
            ("dies.ipynb", "died", ""),  # the notebook ends with its kernel
            ("hangs.ipynb", "ok", ""),
            ("hangs.ipynb", "timeout", ""),  # interrupted; the notebook ends
            *[("intro.ipynb", "ok", "")] * TUTORIAL_CELLS,  # the next notebook runs in a new kernel
        ]
        assert [(failure["kind"], failure["cell"]) for failure in user["failures"]] == [
            ("cell_error", "image/notebooks/raises.ipynb#2"),
            ("kernel_died", "image/notebooks/dies.ipynb#2"),
            ("cell_timeout", "image/notebooks/hangs.ipynb#2"),
        ]
        assert user["failures"][0]["message"] == "ZeroDivisionError: division by zero"
    assert "cell_error: ZeroDivisionError: division by zero" in run.out
    assert "limit failure rate <= 0: 1.00 FAIL" in run.out and "result: FAILED" in run.out
    harness.nothing_left(loadtest_hub, results["run"]["id"])


def test_a_hub_that_throttles_spawns_is_retried_after_its_retry_after(
    harness: Harness, rig_built_image: BuildResult
) -> None:
    with serve_loadtest_hub(rig_built_image.reference, concurrent_spawn_limit=2, retry_range=(2, 4)) as hub:
        config = harness.config(hub)

        run = harness.run(config, "--users", "4", "--no-baseline")

        assert run.exit_code == 0, run.out
        results = run.results
        validate(results)
        throttles = [throttle for user in results["users"] for throttle in user["throttles"]]
        assert results["throttled"] == len(throttles) >= 2  # a burst of 4 against a limit of 2
        for throttle in throttles:
            assert 2 <= throttle["retry_after"] <= 4
            assert throttle["waited"] >= throttle["retry_after"]
            assert throttle["message"].startswith("Too many users trying to log in right now")
        assert results["measures"]["throttled_wait"]["n"] >= 2
        assert results["measures"]["time_to_ready"]["n"] == 4 and results["failures"] == {}
        assert f"429 answers: {len(throttles)}, each waited out as its Retry-After asked" in run.out
        assert "pending spawns, throttling" in hub.log()
        harness.nothing_left(hub, results["run"]["id"])


def test_a_server_that_exits_is_a_failed_spawn_with_the_hubs_message(
    harness: Harness, rig_built_image: BuildResult, tmp_path: Path
) -> None:
    docker_cli = harness.docker
    context = tmp_path / "exits"
    context.mkdir()
    base = f"hubship-lt-test/base:{tmp_path.name}".lower()
    image = f"hubship-lt-test/exits:{tmp_path.name}".lower()
    docker_cli.run("tag", rig_built_image.image_id, base)
    (context / "Dockerfile").write_text(f"FROM {base}\nRUN rm ${{NB_PYTHON_PREFIX}}/bin/jupyterhub-singleuser\n")
    try:
        build_with_buildkit(docker_cli, "--network", "none", "--tag", image, str(context))
        with serve_loadtest_hub(image, timeout=15) as hub:
            config = harness.config(hub)

            run = harness.run(config, "--users", "2", "--no-baseline")

            assert run.exit_code == 1
            results = run.results
            validate(results)
            assert results["failures"] == {"spawn_failed": 2}
            for user in results["users"]:
                (failure,) = user["failures"]
                assert failure["message"].startswith("Spawn failed:"), failure
                assert "ready" not in user["moments"] and user["cells"] == []
            assert results["measures"]["time_to_ready"] == {
                "n": 0,
                "failed": 2,
                "p50": None,
                "p90": None,
                "p95": None,
                "max": None,
            }
            assert "spawn_failed: Spawn failed:" in run.out
            harness.nothing_left(hub, results["run"]["id"])
    finally:
        docker_cli.run("rmi", "--force", image, base, check=False)


# --- interruptions ---------------------------------------------------------------------------------


def _start_subprocess(config: Path, token: str, *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "tooling", "--config", str(config), "loadtest", "staging", *args],
        env={**os.environ, TOKEN_ENV: token},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def _wait_for_running_servers(config: Path, docker: Docker, process: subprocess.Popen[str], count: int) -> str:
    """The run's id, once `count` of its containers run; fails when the run ended first or took too long."""
    runs = config.parent / ".hubship" / "loadtest"
    deadline = time.monotonic() + SUBPROCESS_WAIT
    while time.monotonic() < deadline:
        assert process.poll() is None, process.communicate()[0]
        recorded = sorted(runs.glob("*.json")) if runs.is_dir() else []
        if recorded:
            run = recorded[0].stem
            if len(run_containers(docker, run)) >= count:
                return run
        time.sleep(0.5)
    process.kill()
    pytest.fail(f"the run did not start {count} servers within {SUBPROCESS_WAIT:.0f} s: {process.communicate()[0]}")


@pytest.mark.parametrize("number", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_a_signal_in_the_middle_of_a_run_still_removes_every_user_and_container(
    number: signal.Signals,
    copy_rig_hub: HubCopies,
    loadtest_hub: LoadtestHub,
    docker_cli: Docker,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    config = _use_hub(copy_rig_hub(), loadtest_hub, monkeypatch)
    process = _start_subprocess(config, loadtest_hub.token, "--users", "4", "--no-baseline")
    run = _wait_for_running_servers(config, docker_cli, process, 2)

    process.send_signal(number)
    out, _ = process.communicate(timeout=SUBPROCESS_WAIT)

    assert process.returncode == 130, out
    assert "interrupted: stopping the journeys" in out and "result: INTERRUPTED" in out
    assert_nothing_left(loadtest_hub, docker_cli, run)
    state = json.loads((config.parent / ".hubship" / "loadtest" / f"{run}.json").read_text())
    assert state["status"] == "clean"
    results = json.loads((config.parent / ".hubship" / "reports" / f"{run}.json").read_text())
    validate(results)
    assert results["interrupted"] is True and results["passed"] is False
    assert results["failures"].get("interrupted", 0) >= 1


def test_a_killed_run_is_cleaned_up_by_cleanup_run(
    copy_rig_hub: HubCopies,
    loadtest_hub: LoadtestHub,
    docker_cli: Docker,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    config = _use_hub(copy_rig_hub(), loadtest_hub, monkeypatch)
    process = _start_subprocess(config, loadtest_hub.token, "--users", "3", "--no-baseline")
    run = _wait_for_running_servers(config, docker_cli, process, 2)

    process.kill()  # no handler runs: the users and their servers stay
    process.communicate(timeout=SUBPROCESS_WAIT)
    assert [user for user in loadtest_hub.users() if user.startswith(run)] != []

    assert main(["--config", str(config), "loadtest", "--cleanup", run]) == 0
    out = capsys.readouterr().out
    assert f"run {run}: " in out and ", 0 left." in out
    assert_nothing_left(loadtest_hub, docker_cli, run)
    state = json.loads((config.parent / ".hubship" / "loadtest" / f"{run}.json").read_text())
    assert state["status"] == "clean"
    # Again: nothing to do, still fine.
    assert main(["--config", str(config), "loadtest", "--cleanup", run]) == 0
    assert f"run {run}: 0 users removed, 0 left." in capsys.readouterr().out
