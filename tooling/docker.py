"""The docker command line: the one place the toolkit talks to the Docker engine.

Every call goes through `tooling.proc`, so its command line is logged and a
failure carries docker's own last lines of output. The engine is the one
DOCKER_HOST names (docker's own rule); the CLI is `[docker] cli` in hub.toml
or HUBSHIP_DOCKER. Secrets reach docker only on stdin (`login`), and a login
can be kept out of the user's own ~/.docker by giving a `config_dir`.

Builds always use BuildKit (the build stage's Dockerfile needs `RUN --mount`
and `COPY --chmod`): `docker buildx build` when the CLI has the buildx
plugin, else the CLI's built-in BuildKit (`DOCKER_BUILDKIT=1 docker build`),
which Docker CLIs before 23.0 have, Debian's and Ubuntu's docker.io among
them. A newer CLI without buildx has neither, and `builder()` says so.
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from tooling.errors import CommandFailed, ProgramNotFound, ToolingError
from tooling.proc import Completed, run, stream

START_ENGINE_HINT = (
    "Start a Docker engine (`sudo systemctl start docker`, or open Docker Desktop) or point DOCKER_HOST "
    "at a running one, then check that `docker version` shows a Server section."
)
# Seconds an engine may take to answer `docker version`; a healthy one answers at once.
ENGINE_ANSWER_TIMEOUT = 30.0
# The first Docker CLI whose `docker build` needs the buildx plugin for BuildKit.
BUILDX_ONLY_SINCE = 23

Builder = Literal["buildx", "built-in BuildKit"]


@dataclass(frozen=True)
class LocalImage:
    """An image in the local engine: its id, the registry digests it is known under, and what it holds."""

    image_id: str
    repo_digests: tuple[str, ...]
    size: int = 0  # bytes, all layers uncompressed
    layers: tuple[str, ...] = ()  # the diff ids of its layers, base first
    labels: Mapping[str, str] = field(default_factory=dict)
    env: Mapping[str, str] = field(default_factory=dict)  # the image's ENV
    user: str = ""  # the image's USER ('' means root)


@dataclass(frozen=True)
class HistoryEntry:
    """One step of an image's history (`docker history`): the instruction, and the layer it made (0 for none)."""

    created_by: str
    size: int


@dataclass(frozen=True)
class BuildOptions:
    """One `docker build` with BuildKit: context folder, tag, and what BuildKit passes to the Dockerfile."""

    context: Path
    tag: str
    build_args: Mapping[str, str] = field(default_factory=dict)
    secrets: Mapping[str, Path] = field(default_factory=dict)  # id -> file; never in a layer or the cache key
    platform: str | None = None
    network: str = "host"

    def arguments(self) -> list[str]:
        args = ["--progress", "plain", "--network", self.network, "--tag", self.tag]
        if self.platform:
            args += ["--platform", self.platform]
        for name, value in self.build_args.items():
            args += ["--build-arg", f"{name}={value}"]
        for secret, path in self.secrets.items():
            args += ["--secret", f"id={secret},src={path}"]
        return [*args, str(self.context)]


@dataclass(frozen=True)
class Mount:
    """A host folder or file bind-mounted into a container (read-only unless said otherwise)."""

    source: Path
    target: str
    read_only: bool = True

    def argument(self) -> str:
        return f"type=bind,source={self.source},target={self.target}" + (",readonly" if self.read_only else "")


@dataclass(frozen=True)
class ContainerSpec:
    """One container of an image: never pulled, on no network unless `network` says `host`.

    `env` goes on docker's command line (it shows in the logged command);
    `secret_env` passes only the names there, the values travel in docker's
    own environment (`--env NAME`), so a token never reaches an argv or a log.
    """

    image: str
    command: tuple[str, ...] = ()
    name: str = ""
    network: Literal["none", "host"] = "none"
    entrypoint: str | None = None  # None: the image's own ENTRYPOINT
    env: Mapping[str, str] = field(default_factory=dict)
    secret_env: Mapping[str, str] = field(default_factory=dict)
    mounts: tuple[Mount, ...] = ()
    labels: Mapping[str, str] = field(default_factory=dict)

    def arguments(self) -> list[str]:
        args = ["--pull", "never", "--network", self.network]
        if self.name:
            args += ["--name", self.name]
        for key, value in sorted(self.labels.items()):
            args += ["--label", f"{key}={value}"]
        for key, value in sorted(self.env.items()):
            args += ["--env", f"{key}={value}"]
        for key in sorted(self.secret_env):
            args += ["--env", key]
        for mount in self.mounts:
            args += ["--mount", mount.argument()]
        if self.entrypoint is not None:
            args += ["--entrypoint", self.entrypoint]
        return [*args, self.image, *self.command]


@dataclass(frozen=True)
class ContainerState:
    """What `docker inspect` says of a container's process."""

    status: str  # created, running, exited, dead, ...
    running: bool
    exit_code: int


def _environment_of(entries: Sequence[str]) -> dict[str, str]:
    """`NAME=VALUE` lines (an image's or a container's Env) as a mapping."""
    pairs = (entry.partition("=") for entry in entries)
    return {name: value for name, _, value in pairs}


def choose_builder(buildx_works: bool, client_version: str) -> Builder | None:
    """buildx when it works; else built-in BuildKit if the CLI predates 23.0; else None."""
    if buildx_works:
        return "buildx"
    major = re.match(r"(\d+)\.", client_version)
    if major is not None and int(major.group(1)) < BUILDX_ONLY_SINCE:
        return "built-in BuildKit"
    return None


@dataclass(frozen=True)
class Docker:
    """The docker CLI, talking to the engine DOCKER_HOST names, optionally with its own login state."""

    program: str
    config_dir: Path | None = None

    def with_config_dir(self, config_dir: Path) -> Docker:
        """The same CLI, reading and writing login state in `config_dir` instead of the user's ~/.docker."""
        return dataclasses.replace(self, config_dir=config_dir)

    @property
    def engine(self) -> str:
        """Where the engine is, for messages."""
        return os.environ.get("DOCKER_HOST") or "docker's default socket (DOCKER_HOST is not set)"

    def run(
        self,
        *args: str,
        stdin_text: str | None = None,
        timeout: float | None = None,
        check: bool = True,
        extra_env: Mapping[str, str] | None = None,
    ) -> Completed:
        """`docker ARGS...`; secrets go through `stdin_text` or `extra_env`, never `args`."""
        return run(
            [self.program, *args],
            env={**self._environment(), **(extra_env or {})},
            stdin_text=stdin_text,
            timeout=timeout,
            check=check,
            hint=f"Docker engine: {self.engine}.",
        )

    def stream(
        self, *args: str, on_line: Callable[[str], None], extra_env: Mapping[str, str] | None = None
    ) -> list[str]:
        """`docker ARGS...` for a long step, handing each output line to `on_line`."""
        return stream(
            [self.program, *args],
            env={**self._environment(), **(extra_env or {})},
            on_line=on_line,
            hint=f"Docker engine: {self.engine}.",
        )

    def _environment(self) -> dict[str, str]:
        return {"DOCKER_CONFIG": str(self.config_dir)} if self.config_dir is not None else {}

    def require_engine(self) -> str:
        """The engine's version, or one `ToolingError` saying how to start an engine."""
        try:
            completed = self.run("version", "--format", "{{.Server.Version}}", timeout=ENGINE_ANSWER_TIMEOUT)
        except CommandFailed as exc:
            raise ToolingError(
                f"No Docker engine answers at {self.engine} (`{self.program} version` said: {exc.last_line}).\n"
                f"{START_ENGINE_HINT}"
            ) from None
        except ProgramNotFound:
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
        data: dict[str, Any] = json.loads(completed.stdout)
        return LocalImage(
            image_id=data["Id"],
            repo_digests=tuple(data.get("RepoDigests") or ()),
            size=int(data.get("Size") or 0),
            layers=tuple((data.get("RootFS") or {}).get("Layers") or ()),
            labels=dict((data.get("Config") or {}).get("Labels") or {}),
            env=_environment_of((data.get("Config") or {}).get("Env") or ()),
            user=str((data.get("Config") or {}).get("User") or ""),
        )

    def history(self, reference: str) -> tuple[HistoryEntry, ...]:
        """The image's steps, newest first, as `docker history` lists them."""
        completed = self.run("history", "--no-trunc", "--human=false", "--format", "{{json .}}", reference)
        entries = (json.loads(line) for line in completed.stdout.splitlines() if line.strip())
        return tuple(HistoryEntry(str(entry.get("CreatedBy", "")), int(entry.get("Size") or 0)) for entry in entries)

    def pull(self, reference: str, on_line: Callable[[str], None]) -> list[str]:
        return self.stream("pull", reference, on_line=on_line)

    def builder(self) -> Builder:
        """How this CLI builds with BuildKit; one `ToolingError` saying what to install when it cannot."""
        try:
            self.run("buildx", "version", timeout=ENGINE_ANSWER_TIMEOUT)
            buildx_works = True
        except CommandFailed:
            buildx_works = False
        client = self.run("version", "--format", "{{.Client.Version}}", timeout=ENGINE_ANSWER_TIMEOUT).stdout.strip()
        chosen = choose_builder(buildx_works, client)
        if chosen is None:
            raise ToolingError(
                f"The docker CLI `{self.program}` (version {client}) has no buildx plugin, and CLIs since "
                f"{BUILDX_ONLY_SINCE}.0 build with BuildKit only through it. Install the buildx plugin "
                "(docker-buildx-plugin, or Docker Desktop), or point [docker] cli in hub.toml (or HUBSHIP_DOCKER) "
                "at a CLI with built-in BuildKit, such as Debian's or Ubuntu's docker.io (/usr/bin/docker)."
            )
        return chosen

    def build(self, options: BuildOptions, builder: Builder, on_line: Callable[[str], None]) -> list[str]:
        """Build with BuildKit, the image loaded into the local engine; each output line goes to `on_line`."""
        if builder == "buildx":
            return self.stream("buildx", "build", "--load", *options.arguments(), on_line=on_line)
        return self.stream("build", *options.arguments(), on_line=on_line, extra_env={"DOCKER_BUILDKIT": "1"})

    def tag(self, source: str, target: str) -> None:
        self.run("tag", source, target)

    def push(self, reference: str, on_line: Callable[[str], None]) -> list[str]:
        """`docker push REFERENCE`; the engine itself retries each layer upload on transient errors."""
        return self.stream("push", reference, on_line=on_line)

    def login(self, registry: str, username: str, password: str) -> None:
        """`docker login` with the password on stdin, into this CLI's login state."""
        self.run("login", "--username", username, "--password-stdin", registry, stdin_text=password)

    # --- containers ------------------------------------------------------------------------------

    def run_container(self, spec: ContainerSpec, *, stdin_text: str | None = None, timeout: float) -> Completed:
        """`docker run --rm` of `spec` to its end; its exit code is returned, not raised.

        After `timeout` seconds the docker CLI is stopped and `CommandTimedOut` raised;
        the container may still run then: remove it by name.
        """
        interactive = ["--interactive"] if stdin_text is not None else []
        return self.run(
            "run",
            "--rm",
            *interactive,
            *spec.arguments(),
            stdin_text=stdin_text,
            timeout=timeout,
            check=False,
            extra_env=spec.secret_env,
        )

    def start_container(self, spec: ContainerSpec) -> str:
        """`docker run --detach` of `spec`; the container id. It stays after it exits (for its logs): remove it."""
        completed = self.run(
            "run", "--detach", *spec.arguments(), timeout=ENGINE_ANSWER_TIMEOUT, extra_env=spec.secret_env
        )
        return completed.stdout.strip()

    def create_container(self, spec: ContainerSpec) -> str:
        """`docker create` of `spec` (nothing runs in it); the container id. Remove it when done."""
        completed = self.run("create", *spec.arguments(), timeout=ENGINE_ANSWER_TIMEOUT, extra_env=spec.secret_env)
        return completed.stdout.strip()

    def copy_from_container(self, container: str, path: str, destination: Path) -> None:
        """`docker cp CONTAINER:PATH DESTINATION`: a file or folder of the container's file system."""
        self.run("cp", f"{container}:{path}", str(destination), timeout=ENGINE_ANSWER_TIMEOUT)

    def container_state(self, container: str) -> ContainerState | None:
        """The container's process state, or None when there is no such container (any more)."""
        completed = self.run(
            "container", "inspect", "--format", "{{json .State}}", container, timeout=ENGINE_ANSWER_TIMEOUT, check=False
        )
        if completed.returncode != 0:
            return None
        state: dict[str, Any] = json.loads(completed.stdout)
        return ContainerState(
            status=str(state.get("Status") or ""),
            running=bool(state.get("Running")),
            exit_code=int(state.get("ExitCode") or 0),
        )

    def container_log(self, container: str, lines: int) -> list[str]:
        """The last `lines` lines the container wrote (stdout, then stderr), or [] when it is gone."""
        completed = self.run("logs", "--tail", str(lines), container, timeout=ENGINE_ANSWER_TIMEOUT, check=False)
        if completed.returncode != 0:
            return []
        return (completed.stderr + completed.stdout).splitlines()[-lines:]

    def containers_labelled(self, *labels: str) -> list[str]:
        """Ids of every container, running or not, that carries all of `labels` (each KEY=VALUE)."""
        filters = [argument for label in labels for argument in ("--filter", f"label={label}")]
        completed = self.run("ps", "--all", "--quiet", *filters, timeout=ENGINE_ANSWER_TIMEOUT)
        return completed.stdout.split()

    def remove_containers(self, *containers: str) -> None:
        """Stop and remove these containers (and their anonymous volumes); ones already gone are fine."""
        if containers:
            self.run("rm", "--force", "--volumes", *containers, timeout=ENGINE_ANSWER_TIMEOUT, check=False)
