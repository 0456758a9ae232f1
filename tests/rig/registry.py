"""A real container registry for the rig: Debian's docker-registry on 127.0.0.1.

Design decisions:

- The real server (distribution 2.8, `docker-registry serve CONFIG`), not a
  fake: pushes, pulls by digest, `/v2/_catalog`, `/v2/NAME/tags/list` and the
  `Docker-Content-Digest` header are the registry's own behaviour.
- It listens on 127.0.0.1 on a free port picked at start. dockerd treats
  127.0.0.0/8 as an insecure registry by default, so plain http works
  without any daemon configuration.
- Config, storage, htpasswd file and log live in one working directory;
  the config is written as JSON, which is YAML.
- Auth is optional: htpasswd with a bcrypt hash (the only kind the registry
  accepts) of a random password. The password is registered as a secret, so
  the toolkit's log never shows it, and reaches docker only through stdin
  (`docker login --password-stdin`).
- The server outlives a single call: it is started with `tooling.proc.start`
  (its command line logged like every other program's, its output in the
  working directory's log) and stopped by its own PID. Waiting for `/v2/` to
  answer is bounded in time and notices an early exit.
"""

from __future__ import annotations

import base64
import json
import secrets
import shutil
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from email.message import Message
from pathlib import Path

import bcrypt

from tooling.errors import ToolingError
from tooling.files import write_atomic
from tooling.log import register_secret, step
from tooling.proc import Server, free_port, start

REGISTRY_PROGRAM = "docker-registry"
USERNAME = "hubship-rig"
# Seconds the registry may take to answer /v2/ after it starts (it takes well under one).
START_TIMEOUT = 20.0
# Seconds it may take to exit after SIGTERM before it is killed.
STOP_TIMEOUT = 10.0
# Seconds any single HTTP request to it may take.
REQUEST_TIMEOUT = 10.0

# Answers without following a proxy: the registry is on loopback.
_opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))


@dataclass(frozen=True)
class RegistryCredentials:
    username: str
    password: str = field(repr=False)


@dataclass(frozen=True)
class RegistryResponse:
    status: int
    headers: Message
    body: bytes

    def json(self) -> object:
        return json.loads(self.body)


@dataclass(frozen=True)
class RunningRegistry:
    """A registry serving on `address` (127.0.0.1:PORT) until its context ends."""

    address: str
    pid: int
    storage: Path
    credentials: RegistryCredentials | None

    @property
    def auth(self) -> bool:
        return self.credentials is not None

    @property
    def url(self) -> str:
        return f"http://{self.address}"

    def request(
        self, path: str, *, method: str = "GET", accept: Sequence[str] = (), authenticate: bool = True
    ) -> RegistryResponse:
        """An HTTP request to the registry API (`path` starts with /v2/); error statuses are returned, not raised."""
        request = urllib.request.Request(self.url + path, method=method)
        if accept:
            request.add_header("Accept", ", ".join(accept))
        if authenticate and self.credentials is not None:
            token = f"{self.credentials.username}:{self.credentials.password}".encode()
            request.add_header("Authorization", "Basic " + base64.b64encode(token).decode())
        try:
            with _opener.open(request, timeout=REQUEST_TIMEOUT) as response:
                return RegistryResponse(response.status, response.headers, response.read())
        except urllib.error.HTTPError as error:
            return RegistryResponse(error.code, error.headers, error.read())


@contextmanager
def serve_registry(*, auth: bool = False, workdir: Path | None = None) -> Iterator[RunningRegistry]:
    """Run docker-registry on a free 127.0.0.1 port for the `with` block; stop it by PID at the end.

    Without `workdir`, a temporary directory holds its storage and is deleted
    afterwards; a given `workdir` is left for the caller to inspect.
    """
    owns_workdir = workdir is None
    directory = Path(tempfile.mkdtemp(prefix="hubship-registry-")) if workdir is None else workdir
    try:
        credentials = _new_credentials() if auth else None
        address = f"127.0.0.1:{free_port()}"
        config = _write_config(directory, address, credentials)
        server = start(
            [REGISTRY_PROGRAM, "serve", str(config)],
            log_path=directory / "registry.log",
            hint="Install it: `apt-get install -y docker-registry` (`bash .ci/run` does).",
        )
        try:
            running = RunningRegistry(address, server.pid, directory / "storage", credentials)
            with step(f"registry: start on {address}{' with htpasswd auth' if auth else ''}"):
                _wait_until_answering(running, server)
            yield running
        finally:
            server.stop(STOP_TIMEOUT)
    finally:
        if owns_workdir:
            shutil.rmtree(directory)


def _new_credentials() -> RegistryCredentials:
    password = secrets.token_urlsafe(24)
    register_secret(password)
    return RegistryCredentials(USERNAME, password)


def _write_config(directory: Path, address: str, credentials: RegistryCredentials | None) -> Path:
    config: dict[str, object] = {
        "version": "0.1",
        "log": {"level": "info", "accesslog": {"disabled": True}},
        "storage": {
            "filesystem": {"rootdirectory": str(directory / "storage")},
            "delete": {"enabled": True},
        },
        "http": {"addr": address, "secret": secrets.token_hex(16)},
    }
    if credentials is not None:
        htpasswd = directory / "htpasswd"
        hashed = bcrypt.hashpw(credentials.password.encode(), bcrypt.gensalt()).decode()
        write_atomic(htpasswd, f"{credentials.username}:{hashed}\n")
        config["auth"] = {"htpasswd": {"realm": "hubship-rig", "path": str(htpasswd)}}
    path = directory / "config.yml"
    write_atomic(path, json.dumps(config, indent=2) + "\n")
    return path


def _wait_until_answering(registry: RunningRegistry, server: Server) -> None:
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        if not server.running():
            raise ToolingError(
                f"docker-registry exited with code {server.process.returncode} right after starting on "
                f"{registry.address}. Its log ({server.log_path}) ends with:\n{_indented_log_tail(server)}"
            )
        try:
            registry.request("/v2/", authenticate=False)
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            time.sleep(0.05)
            continue
        return
    raise ToolingError(
        f"docker-registry (pid {server.pid}) did not answer {registry.url}/v2/ within {START_TIMEOUT:.0f} s. "
        f"Its log ({server.log_path}) ends with:\n{_indented_log_tail(server)}"
    )


def _indented_log_tail(server: Server) -> str:
    return "\n".join(f"    {line}" for line in server.log_tail())
