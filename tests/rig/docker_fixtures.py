"""pytest fixtures for the Docker side of the rig (loaded as a plugin by tests/conftest.py).

- `docker_cli` (session): the toolkit's `Docker` for the CLI and engine that
  HUBSHIP_DOCKER and DOCKER_HOST name; the test FAILS, with how to start the
  rig's engine, when none answers.
- `rig_base_image` (session): the reference of the Debian bookworm base image,
  made once and cached (see tests/rig/baseimage.py).
- `registry`, `registry_with_auth` (per test): a real docker-registry on a free
  127.0.0.1 port, empty at the start of each test; the second requires the
  username and password it exposes.

Every expected failure (`ToolingError`) becomes `pytest.fail` with its message:
these fixtures never skip.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import TypeVar

import pytest

from tests.rig.baseimage import ensure_base_image
from tests.rig.docker import require_rig_engine, rig_docker
from tests.rig.registry import RunningRegistry, serve_registry
from tooling.docker import Docker
from tooling.errors import ToolingError

T = TypeVar("T")


@pytest.fixture(scope="session")
def docker_cli() -> Docker:
    docker = rig_docker()
    _or_fail(lambda: require_rig_engine(docker))
    return docker


@pytest.fixture(scope="session")
def rig_base_image(docker_cli: Docker) -> str:
    return _or_fail(lambda: ensure_base_image(docker_cli))


@pytest.fixture
def registry() -> Iterator[RunningRegistry]:
    yield from _serve(auth=False)


@pytest.fixture
def registry_with_auth() -> Iterator[RunningRegistry]:
    yield from _serve(auth=True)


def _or_fail(action: Callable[[], T]) -> T:
    """`action()`, or a test failure showing only the error's message."""
    try:
        return action()
    except ToolingError as exc:
        failure = exc.message
    # Outside the except block, so pytest shows the message without the exception chain.
    pytest.fail(failure, pytrace=False)


def _serve(*, auth: bool) -> Iterator[RunningRegistry]:
    # Its own temporary directory, deleted at the end: pushed layers are large,
    # and pytest keeps its tmp_path directories of the last runs.
    try:
        with serve_registry(auth=auth) as running:
            yield running
            return
    except ToolingError as exc:
        failure = exc.message
    pytest.fail(failure, pytrace=False)
