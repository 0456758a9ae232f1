"""A pytest plugin: every `docker`-marked test runs against the rig's engine, or fails saying why.

Fixtures such as `docker_cli` fail without an engine, but a docker test that
asks for none of them would run against whatever engine the default socket
has, or fail obscurely. This hook checks before each such test that
DOCKER_HOST is set (the rig never guesses a socket) and that the engine
answers; otherwise the test FAILS with how to start the rig's engine. Never a skip.
"""

from __future__ import annotations

import functools
import os

import pytest

from tests.rig.docker import RIG_ENGINE_HINT, require_rig_engine, rig_docker
from tooling.errors import ToolingError


@functools.cache
def _engine_problem(docker_host: str) -> str:
    """Why the engine at `docker_host` cannot serve the tests; empty when it answers (asked once per address)."""
    try:
        require_rig_engine(rig_docker())
    except ToolingError as exc:
        return exc.message
    return ""


def pytest_runtest_setup(item: pytest.Item) -> None:
    if item.get_closest_marker("docker") is None:
        return
    docker_host = os.environ.get("DOCKER_HOST", "")
    if not docker_host:
        pytest.fail(f"{item.nodeid} needs the rig's Docker engine, and DOCKER_HOST is not set. {RIG_ENGINE_HINT}")
    problem = _engine_problem(docker_host)
    if problem:
        pytest.fail(f"{item.nodeid} needs the rig's Docker engine at {docker_host}: {problem}")
