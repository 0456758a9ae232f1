"""JupyterHub configuration of the load tests' hub (tests/rig/loadtest_hub.py starts it with this file).

Like the smoke test's hub (DockerSpawner, configurable-http-proxy started
beside it, everything on 127.0.0.1, containers on the host's network, never
pulled, removed when their server stops), but for many users at once: each
server gets a free port of its own, and the hub's spawn limits come from
the settings, so a test can make the hub throttle. The API token is the
`loadtest` service's, with the role the README documents.
"""

import json
import os

from dockerspawner import DockerSpawner
from jupyterhub.utils import random_port

c = get_config()  # type: ignore[name-defined]  # noqa: F821  (JupyterHub's config loader provides it)
settings = json.loads(os.environ["HUBSHIP_LT_HUB_SETTINGS"])


class PerUserPortDockerSpawner(DockerSpawner):  # type: ignore[misc]  # dockerspawner is untyped
    """Each user's server on the host's network at a port of its own; the server is where the spawner says."""

    async def start(self):  # type: ignore[no-untyped-def]
        self.port = random_port()
        return await super().start()

    async def get_ip_and_port(self) -> tuple[str, int]:
        return str(self.ip), int(self.port)


c.JupyterHub.bind_url = settings["public_url"]
c.JupyterHub.hub_ip = "127.0.0.1"
c.JupyterHub.hub_port = settings["hub_port"]
c.JupyterHub.db_url = settings["db_url"]
c.JupyterHub.cookie_secret_file = settings["cookie_secret_file"]
c.JupyterHub.authenticator_class = "null"
c.JupyterHub.spawner_class = PerUserPortDockerSpawner
c.JupyterHub.services = [{"name": "loadtest", "api_token": os.environ["HUBSHIP_LT_HUB_TOKEN"]}]
c.JupyterHub.load_roles = [
    {
        "name": "loadtest",
        "scopes": ["admin:users", "admin:servers", "access:servers"],
        "services": ["loadtest"],
    }
]
c.JupyterHub.concurrent_spawn_limit = settings["concurrent_spawn_limit"]
# The Retry-After range of a throttled spawn is not a configurable trait in JupyterHub 5: it is one
# of the hub's tornado settings, which these override. The spawn request returns at once (202).
c.JupyterHub.tornado_settings = {"slow_spawn_timeout": 0, "spawn_throttle_retry_range": tuple(settings["retry_range"])}

c.ConfigurableHTTPProxy.should_start = False
c.ConfigurableHTTPProxy.api_url = settings["proxy_api_url"]

c.Spawner.cmd = ["jupyterhub-singleuser"]
c.Spawner.start_timeout = settings["timeout"]
c.Spawner.http_timeout = settings["timeout"]
c.Spawner.ip = "127.0.0.1"

c.DockerSpawner.image = settings["image"]
c.DockerSpawner.network_name = "host"
c.DockerSpawner.use_internal_ip = True
c.DockerSpawner.pull_policy = "never"
c.DockerSpawner.remove = True
# The user's name as it is (run ids contain "-", which {username} would escape), so a run's containers
# are found by its id.
c.DockerSpawner.name_template = "hubship-lt-{raw_username}"
c.DockerSpawner.extra_create_kwargs = {"labels": {"hubship.loadtest": "1"}}
