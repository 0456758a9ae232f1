"""A real JupyterHub on 127.0.0.1 for the smoke test: configurable-http-proxy, JupyterHub, DockerSpawner.

`local_hub` starts, in a temporary folder that is deleted afterwards:

- configurable-http-proxy (npm) on a free loopback port, its REST API on
  another, with a random auth token passed in its environment;
- JupyterHub (PyPI, this interpreter: `python -m jupyterhub`) on a third,
  configured by `files/jupyterhub_config.py` from environment
  variables: a throwaway sqlite database and cookie secret in the folder, no
  login (the null authenticator), and one service whose random token has
  admin rights over users and servers; that token is what the checks use;
- DockerSpawner (`tooling.smoke.spawner`) runs the image on the host's
  network, never pulled, with `jupyterhub-singleuser` as z2jh's chart does;
  the server listens on 127.0.0.1 at a fourth free port; the container is
  named and labelled after the smoke run, and removed when its server stops.

Both programs are `tooling.proc.start` servers, stopped by their own PIDs on
the way out, whatever happened; their logs' last lines explain a hub that
would not start. The four ports are picked together, by binding port 0 on
127.0.0.1 (`tooling.proc.free_ports`), so they are four different ports.
"""

from __future__ import annotations

import json
import secrets
import shutil
import sys
import tempfile
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

import requests

from tooling.errors import ToolingError
from tooling.log import redact, register_secret
from tooling.proc import Server, free_ports, start

PROXY_PROGRAM = "configurable-http-proxy"
PROXY_INSTALL = "npm install --global configurable-http-proxy@4.6.3"
SERVICE_NAME = "hubship-smoke-test"
# Seconds the hub may take to answer its API after it was started.
HUB_START_TIMEOUT = 60.0
POLL_INTERVAL = 0.2
LOG_LINES = 15


@dataclass(frozen=True)
class LocalHubSettings:
    image: str
    timeout: float  # seconds the hub waits for a user's server to start and answer
    container_name: str  # DockerSpawner's name_template, e.g. "hubship-smoke-RUN-{username}"
    labels: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class LocalHub:
    """A running local hub: where it answers, its API token, and its programs."""

    url: str  # the public URL, through the proxy
    api_url: str  # the hub's own API, as a single-user server reaches it
    token: str
    hub: Server
    proxy: Server

    def log_tail(self) -> list[str]:
        """The hub's last log records (the proxy's too, when it has stopped); indented request dumps left out."""
        text = self.hub.log_path.read_text(errors="replace") if self.hub.log_path.exists() else ""
        records = [redact(line) for line in text.splitlines() if line.startswith("[")]
        lines = [f"hub: {line}" for line in records[-LOG_LINES:]]
        if not self.proxy.running():
            lines += [f"proxy: {line}" for line in self.proxy.log_tail()[-LOG_LINES:]]
        return lines


def require_proxy() -> str:
    """The path of configurable-http-proxy, or one `ToolingError` saying how to install it."""
    found = shutil.which(PROXY_PROGRAM)
    if found is None:
        raise ToolingError(
            f"`{PROXY_PROGRAM}` was not found on PATH; the smoke test's hub spawn check routes through it "
            f"as a deployed hub does. Install it with `{PROXY_INSTALL}` (it needs Node.js)."
        )
    return found


def config_file() -> Path:
    return Path(str(resources.files("tooling.smoke") / "files" / "jupyterhub_config.py"))


@dataclass(frozen=True)
class ProxyPorts:
    """Where configurable-http-proxy listens (users, its API) and where it sends what has no route (the hub)."""

    public: int
    api: int
    hub: int


def start_proxy(program: str, ports: ProxyPorts, token: str, work: Path) -> Server:
    """configurable-http-proxy on 127.0.0.1, its API guarded by `token`, logging into `work`/proxy.log."""
    return start(
        [
            program,
            "--ip",
            "127.0.0.1",
            "--port",
            str(ports.public),
            "--api-ip",
            "127.0.0.1",
            "--api-port",
            str(ports.api),
            "--default-target",
            f"http://127.0.0.1:{ports.hub}",
            "--error-target",
            f"http://127.0.0.1:{ports.hub}/hub/error",
        ],
        log_path=work / "proxy.log",
        env={"CONFIGPROXY_AUTH_TOKEN": token},
    )


@contextmanager
def local_hub(settings: LocalHubSettings) -> Iterator[LocalHub]:
    """Start proxy and hub on loopback; yield once the hub's API answers through the proxy; stop both."""
    proxy_program = require_proxy()
    public_port, proxy_api_port, hub_port, server_port = free_ports(4)
    token, proxy_token = secrets.token_hex(32), secrets.token_hex(32)
    register_secret(token)
    register_secret(proxy_token)
    with tempfile.TemporaryDirectory(prefix="hubship-smoke-hub-") as scratch:
        work = Path(scratch)
        public_url = f"http://127.0.0.1:{public_port}/"
        proxy = start_proxy(proxy_program, ProxyPorts(public_port, proxy_api_port, hub_port), proxy_token, work)
        hub_settings = {
            "public_url": public_url,
            "hub_port": hub_port,
            "proxy_api_url": f"http://127.0.0.1:{proxy_api_port}",
            "db_url": f"sqlite:///{work / 'jupyterhub.sqlite'}",
            "cookie_secret_file": str(work / "jupyterhub_cookie_secret"),
            "service": SERVICE_NAME,
            "timeout": int(settings.timeout),
            "server_port": server_port,
            "image": settings.image,
            "container_name": settings.container_name,
            "labels": dict(settings.labels),
        }
        try:
            hub = start(
                [sys.executable, "-m", "jupyterhub", "--config", str(config_file())],
                log_path=work / "hub.log",
                cwd=work,
                env={
                    "HUBSHIP_HUB_SETTINGS": json.dumps(hub_settings),
                    "HUBSHIP_HUB_TOKEN": token,
                    "CONFIGPROXY_AUTH_TOKEN": proxy_token,
                },
            )
        except BaseException:
            proxy.stop()
            raise
        running = LocalHub(
            url=public_url,
            api_url=f"http://127.0.0.1:{hub_port}/hub/api",
            token=token,
            hub=hub,
            proxy=proxy,
        )
        try:
            _wait_until_answering(running)
            yield running
        finally:
            hub.stop()
            proxy.stop()


def _wait_until_answering(hub: LocalHub) -> None:
    """Until the hub's API answers through the proxy; a `ToolingError` with the logs when it does not."""
    deadline = time.monotonic() + HUB_START_TIMEOUT
    while time.monotonic() < deadline:
        if not hub.hub.running() or not hub.proxy.running():
            which = "JupyterHub" if not hub.hub.running() else PROXY_PROGRAM
            raise ToolingError(_start_failure(hub, f"{which} exited while starting"))
        with suppress(requests.RequestException):
            if requests.get(f"{hub.url}hub/api/", timeout=2).status_code == 200:
                return
        time.sleep(POLL_INTERVAL)
    raise ToolingError(_start_failure(hub, f"the local JupyterHub did not answer within {HUB_START_TIMEOUT:.0f} s"))


def _start_failure(hub: LocalHub, what: str) -> str:
    lines = [f"{what}. Its last log lines:"]
    lines += [f"    hub: {line}" for line in hub.hub.log_tail()[-LOG_LINES:]]
    lines += [f"    proxy: {line}" for line in hub.proxy.log_tail()[-LOG_LINES:]]
    return "\n".join(lines)
