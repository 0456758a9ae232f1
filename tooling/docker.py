"""The docker command line: the one place the toolkit talks to the Docker engine.

Every call goes through `tooling.proc`, so its command line is logged and a
failure carries docker's own last lines of output. The engine is the one
DOCKER_HOST names (docker's own rule); the CLI is `[docker] cli` in hub.toml
or HUBSHIP_DOCKER. Secrets reach docker only on stdin (`login`), and a login
can be kept out of the user's own ~/.docker by giving a `config_dir`.
"""

from __future__ import annotations

import dataclasses
import json
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from tooling.config import HubConfig
from tooling.errors import CommandFailed, ToolingError
from tooling.proc import Completed, run, stream

START_ENGINE_HINT = (
    "Start a Docker engine (`sudo systemctl start docker`, or open Docker Desktop) or point DOCKER_HOST "
    "at a running one, then check that `docker version` shows a Server section."
)
# Seconds an engine may take to answer `docker version`; a healthy one answers at once.
ENGINE_ANSWER_TIMEOUT = 30.0


@dataclass(frozen=True)
class LocalImage:
    """An image in the local engine: its id and the registry digests it is known under."""

    image_id: str
    repo_digests: tuple[str, ...]


@dataclass(frozen=True)
class Docker:
    """The docker CLI, talking to the engine DOCKER_HOST names, optionally with its own login state."""

    program: str
    config_dir: Path | None = None

    @classmethod
    def from_config(cls, config: HubConfig) -> Docker:
        return cls(config.docker_cli)

    def with_config_dir(self, config_dir: Path) -> Docker:
        """The same CLI, reading and writing login state in `config_dir` instead of the user's ~/.docker."""
        return dataclasses.replace(self, config_dir=config_dir)

    @property
    def engine(self) -> str:
        """Where the engine is, for messages."""
        return os.environ.get("DOCKER_HOST") or "docker's default socket (DOCKER_HOST is not set)"

    def run(self, *args: str, stdin_text: str | None = None, timeout: float | None = None) -> Completed:
        """`docker ARGS...`; secrets go through `stdin_text`, never `args`."""
        return run(
            [self.program, *args],
            env=self._environment(),
            stdin_text=stdin_text,
            timeout=timeout,
            hint=f"Docker engine: {self.engine}.",
        )

    def stream(self, *args: str, on_line: Callable[[str], None]) -> list[str]:
        """`docker ARGS...` for a long step, handing each output line to `on_line`."""
        return stream(
            [self.program, *args], env=self._environment(), on_line=on_line, hint=f"Docker engine: {self.engine}."
        )

    def _environment(self) -> dict[str, str]:
        return {"DOCKER_CONFIG": str(self.config_dir)} if self.config_dir is not None else {}

    def require_engine(self) -> str:
        """The engine's version, or one `ToolingError` saying how to start an engine."""
        try:
            completed = self.run("version", "--format", "{{.Server.Version}}", timeout=ENGINE_ANSWER_TIMEOUT)
        except CommandFailed as exc:
            said = exc.output_tail[-1].strip() if exc.output_tail else f"exit code {exc.returncode}"
            raise ToolingError(
                f"No Docker engine answers at {self.engine} (`{self.program} version` said: {said}).\n"
                f"{START_ENGINE_HINT}"
            ) from None
        except ToolingError:
            raise ToolingError(
                f"The docker CLI `{self.program}` was not found. Install Docker, or name the CLI in hub.toml "
                f"([docker] cli) or in HUBSHIP_DOCKER."
            ) from None
        return completed.stdout.strip()

    def inspect_image(self, reference: str) -> LocalImage | None:
        """The local image `reference` names, or None when the engine has no such image."""
        try:
            completed = self.run("image", "inspect", "--format", "{{json .}}", reference)
        except CommandFailed as exc:
            if any("No such image" in line for line in exc.output_tail):
                return None
            raise
        data = json.loads(completed.stdout)
        return LocalImage(image_id=data["Id"], repo_digests=tuple(data.get("RepoDigests") or ()))

    def tag(self, source: str, target: str) -> None:
        self.run("tag", source, target)

    def push(self, reference: str, on_line: Callable[[str], None]) -> list[str]:
        """`docker push REFERENCE`; the engine itself retries each layer upload on transient errors."""
        return self.stream("push", reference, on_line=on_line)

    def login(self, registry: str, username: str, password: str) -> None:
        """`docker login` with the password on stdin, into this CLI's login state."""
        self.run("login", "--username", username, "--password-stdin", registry, stdin_text=password)
