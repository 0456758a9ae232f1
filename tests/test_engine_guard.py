"""The docker marker is enforced: without the rig's engine a docker test fails, loudly, and never skips."""

from __future__ import annotations

import pytest

DOCKER_TEST = """
import pytest

@pytest.mark.docker
def test_needs_docker():
    pass

def test_needs_nothing():
    pass
"""


def run_guarded(pytester: pytest.Pytester) -> pytest.RunResult:
    pytester.makeini("[pytest]\nmarkers =\n    docker: needs the rig's engine\n")
    pytester.makepyfile(DOCKER_TEST)
    return pytester.runpytest("-p", "tests.rig.engine_guard", "-rA")


def test_a_docker_test_without_docker_host_fails_saying_how_to_start_the_engine(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("DOCKER_HOST", raising=False)
    result = run_guarded(pytester)
    result.assert_outcomes(passed=1, errors=1)
    result.stdout.fnmatch_lines(["*needs the rig's Docker engine, and DOCKER_HOST is not set*start-dockerd.sh*"])


def test_a_docker_test_whose_engine_does_not_answer_fails(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch, tmp_path_factory: pytest.TempPathFactory
) -> None:
    dead = tmp_path_factory.mktemp("dead") / "docker.sock"
    monkeypatch.setenv("DOCKER_HOST", f"unix://{dead}")
    result = run_guarded(pytester)
    result.assert_outcomes(passed=1, errors=1)
    result.stdout.fnmatch_lines([f"*needs the rig's Docker engine at unix://{dead}:*"])
