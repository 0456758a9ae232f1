"""The rig's Docker engine: which CLI and engine the tests use, and one clear failure without one.

Docker itself is run through the toolkit's own wrapper, `tooling.docker.Docker`;
this module holds only what is particular to the rig.

Design decisions:

- The engine is whichever one DOCKER_HOST names; the rig never guesses a
  socket. `tests/rig/start-dockerd.sh` starts a private engine (no bridge, no
  iptables) and exports DOCKER_HOST and HUBSHIP_DOCKER; so does `.ci/run`.
- The CLI is HUBSHIP_DOCKER (default `docker`). Debian's 20.10 CLI builds with
  BuildKit when DOCKER_BUILDKIT=1 without the buildx plugin, which a newer
  client-only CLI earlier on PATH lacks; that is why the variable exists.
  The tests' own `docker build`s ask for BuildKit the same way the build
  stage does with that CLI.
- No engine is an expected failure (`ToolingError`) whose message says how to
  start the rig's engine. The pytest fixture turns it into a test failure,
  never a skip: a suite that silently skipped its Docker tests would prove nothing.
"""

from __future__ import annotations

import os

from tooling.docker import START_ENGINE_HINT, Docker
from tooling.errors import ToolingError
from tooling.proc import Completed

RIG_ENGINE_HINT = (
    "Start one and point DOCKER_HOST at it: `source tests/rig/start-dockerd.sh` (as root) "
    "in the shell that runs the tests, or run everything with `bash .ci/run`."
)


def rig_docker() -> Docker:
    """The CLI that HUBSHIP_DOCKER names (default `docker`), talking to the engine DOCKER_HOST names."""
    return Docker(os.environ.get("HUBSHIP_DOCKER") or "docker")


def require_rig_engine(docker: Docker) -> str:
    """The engine's version; a `ToolingError` saying how to start the rig's engine when none answers."""
    try:
        return docker.require_engine()
    except ToolingError as exc:
        # The toolkit's advice is for a hub admin's machine; the tests need the rig's own engine.
        what_failed = exc.message.removesuffix(START_ENGINE_HINT).rstrip()
        raise ToolingError(f"{what_failed}\n{RIG_ENGINE_HINT}") from None


def build_with_buildkit(docker: Docker, *args: str) -> Completed:
    """`docker build ARGS...` with the CLI's built-in BuildKit, as the build stage builds without buildx."""
    return docker.run("build", *args, extra_env={"DOCKER_BUILDKIT": "1"})


def local_image_id(docker: Docker, reference: str) -> str:
    """The id of the local image `reference` names; the engine must have it."""
    image = docker.inspect_image(reference)
    if image is None:
        raise ToolingError(f"The Docker engine at {docker.engine} has no image {reference}.")
    return image.image_id
