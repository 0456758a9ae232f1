"""A real JupyterHub for the load tests: DockerSpawner and configurable-http-proxy on 127.0.0.1.

`serve_loadtest_hub(image, ...)` starts the proxy and the hub (with
tests/rig/loadtest_jupyterhub_config.py) as programs of their own, yields
once the hub answers through the proxy, and stops both by their PIDs.
Every user's server runs in a container named `hubship-lt-USER` labelled
`hubship.loadtest=1`, on the host's network, at a port of its own.
Options make the hub throttle (`concurrent_spawn_limit`, with a short
Retry-After range so tests stay quick) or give up on servers sooner.
"""

from __future__ import annotations

import json
import secrets
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path

import requests

from tooling.errors import ToolingError
from tooling.log import register_secret
from tooling.proc import Server, free_ports, start
from tooling.smoke.hub import ProxyPorts, require_proxy, start_proxy

CONFIG = Path(__file__).with_name("loadtest_jupyterhub_config.py")
CONTAINER_LABEL = "hubship.loadtest=1"
START_TIMEOUT = 60.0


@dataclass(frozen=True)
class LoadtestHub:
    url: str  # the public URL, through the proxy
    token: str  # the loadtest service's API token
    hub: Server
    proxy: Server

    def users(self) -> list[str]:
        """The names of the hub's users, from its API."""
        answer = requests.get(f"{self.url}hub/api/users", headers={"Authorization": f"token {self.token}"}, timeout=10)
        answer.raise_for_status()
        return [str(user["name"]) for user in answer.json()]

    def log(self) -> str:
        return self.hub.log_path.read_text(errors="replace")


@contextmanager
def serve_loadtest_hub(
    image: str, *, concurrent_spawn_limit: int = 0, retry_range: tuple[int, int] = (2, 4), timeout: int = 60
) -> Iterator[LoadtestHub]:
    proxy_program = require_proxy()
    public_port, proxy_api_port, hub_port = free_ports(3)
    token, proxy_token = secrets.token_hex(32), secrets.token_hex(32)
    register_secret(token)
    register_secret(proxy_token)
    with tempfile.TemporaryDirectory(prefix="hubship-lt-hub-") as scratch:
        work = Path(scratch)
        url = f"http://127.0.0.1:{public_port}/"
        proxy = start_proxy(proxy_program, ProxyPorts(public_port, proxy_api_port, hub_port), proxy_token, work)
        settings = {
            "public_url": url,
            "hub_port": hub_port,
            "proxy_api_url": f"http://127.0.0.1:{proxy_api_port}",
            "db_url": f"sqlite:///{work / 'jupyterhub.sqlite'}",
            "cookie_secret_file": str(work / "jupyterhub_cookie_secret"),
            "timeout": timeout,
            "image": image,
            "concurrent_spawn_limit": concurrent_spawn_limit,
            "retry_range": list(retry_range),
        }
        try:
            hub = start(
                [sys.executable, "-m", "jupyterhub", "--config", str(CONFIG)],
                log_path=work / "hub.log",
                cwd=work,
                env={
                    "HUBSHIP_LT_HUB_SETTINGS": json.dumps(settings),
                    "HUBSHIP_LT_HUB_TOKEN": token,
                    "CONFIGPROXY_AUTH_TOKEN": proxy_token,
                },
            )
        except BaseException:
            proxy.stop()
            raise
        running = LoadtestHub(url, token, hub, proxy)
        try:
            _wait_until_answering(running)
            yield running
        finally:
            hub.stop(timeout=30)
            proxy.stop()


def _wait_until_answering(hub: LoadtestHub) -> None:
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        if not hub.hub.running() or not hub.proxy.running():
            tail = "\n".join(hub.hub.log_tail()[-15:] + hub.proxy.log_tail()[-5:])
            raise ToolingError(f"the load tests' hub exited while starting:\n{tail}")
        with suppress(requests.RequestException):
            if requests.get(f"{hub.url}hub/api/", timeout=2).status_code == 200:
                return
        time.sleep(0.2)
    raise ToolingError(f"the load tests' hub did not answer within {START_TIMEOUT:.0f} s")
