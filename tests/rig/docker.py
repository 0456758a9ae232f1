"""The rig's access to a Docker engine: which CLI, which engine, and one clear failure without one.

Design decisions:

- The engine is whichever one DOCKER_HOST names; the rig never guesses a
  socket. `tests/rig/start-dockerd.sh` starts a private engine (no bridge, no
  iptables) and exports DOCKER_HOST and HUBSHIP_DOCKER; so does `.ci/run`.
- The CLI is HUBSHIP_DOCKER (default `docker`). Debian's 20.10 CLI builds with
  BuildKit when DOCKER_BUILDKIT=1 without the buildx plugin, which a newer
  client-only CLI earlier on PATH lacks; that is why the variable exists.
  DOCKER_BUILDKIT=1 is set on every call so builds always use BuildKit.
- Every call goes through `tooling.proc.run`: the command line is logged and a
  failure carries docker's own last lines of output.
- A `DockerCli` is a value: `with_config_dir` gives one whose login state
  (DOCKER_CONFIG) lives in a directory of the caller's choosing, so a test's
  `docker login` never touches the user's own credentials.
- No engine is an expected failure (`ToolingError`) whose message says how to
  start one. The pytest fixture turns it into a test failure, never a skip:
  a suite that silently skipped its Docker tests would prove nothing.
"""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass
from pathlib import Path

from tooling.errors import CommandFailed, ToolingError
from tooling.proc import Completed, run

START_ENGINE_HINT = (
    "Start one and point DOCKER_HOST at it: `source tests/rig/start-dockerd.sh` (as root) "
    "in the shell that runs the tests, or run everything with `bash .ci/run`."
)

# Seconds an engine may take to answer `docker version`; a healthy one answers at once.
ENGINE_ANSWER_TIMEOUT = 30.0


@dataclass(frozen=True)
class DockerCli:
    """A docker command line bound to one engine (and optionally one login state)."""

    program: str
    docker_host: str | None
    config_dir: Path | None = None

    @classmethod
    def from_environment(cls) -> DockerCli:
        """The CLI that HUBSHIP_DOCKER names (default `docker`), talking to the engine DOCKER_HOST names."""
        return cls(
            program=os.environ.get("HUBSHIP_DOCKER") or "docker",
            docker_host=os.environ.get("DOCKER_HOST") or None,
        )

    def with_config_dir(self, config_dir: Path) -> DockerCli:
        """The same CLI, keeping `docker login` state in `config_dir` instead of ~/.docker."""
        return dataclasses.replace(self, config_dir=config_dir)

    @property
    def engine(self) -> str:
        """Where the engine is, for messages."""
        return self.docker_host or "the CLI's default socket (DOCKER_HOST is not set)"

    def environment(self) -> dict[str, str]:
        env = {"DOCKER_BUILDKIT": "1"}
        if self.docker_host is not None:
            env["DOCKER_HOST"] = self.docker_host
        if self.config_dir is not None:
            env["DOCKER_CONFIG"] = str(self.config_dir)
        return env

    def run(
        self,
        *args: str,
        stdin_text: str | None = None,
        timeout: float | None = None,
        check: bool = True,
    ) -> Completed:
        """Run `docker ARGS...`; secrets go through `stdin_text`, never `args`."""
        return run(
            [self.program, *args],
            env=self.environment(),
            stdin_text=stdin_text,
            timeout=timeout,
            check=check,
            hint=f"Docker engine: {self.engine}.",
        )

    def image_exists(self, reference: str) -> bool:
        return self.run("image", "inspect", "--format", "{{.Id}}", reference, check=False).returncode == 0

    def image_id(self, reference: str) -> str:
        return self.run("image", "inspect", "--format", "{{.Id}}", reference).stdout.strip()


def require_docker_engine(docker: DockerCli) -> str:
    """The engine's version; a `ToolingError` saying how to start an engine when none answers."""
    try:
        completed = docker.run("version", "--format", "{{.Server.Version}}", timeout=ENGINE_ANSWER_TIMEOUT)
    except CommandFailed as exc:
        last_line = exc.output_tail[-1].strip() if exc.output_tail else f"exit code {exc.returncode}"
        raise ToolingError(
            f"No Docker engine answers at {docker.engine} (asked with `{docker.program} version`: {last_line}).\n"
            f"{START_ENGINE_HINT}"
        ) from exc
    except ToolingError as exc:
        raise ToolingError(
            f"The Docker CLI `{docker.program}` (from HUBSHIP_DOCKER, default `docker`) was not found.\n"
            f"{START_ENGINE_HINT}"
        ) from exc
    return completed.stdout.strip()
