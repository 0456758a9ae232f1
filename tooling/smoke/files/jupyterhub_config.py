"""JupyterHub configuration of the smoke test's local hub (`tooling/smoke/hub.py` starts it with this file).

Everything comes from the environment the harness sets: HUBSHIP_HUB_SETTINGS
(JSON, nothing secret) and HUBSHIP_HUB_TOKEN (the API token of the smoke
test's service; it is never written to a file). The proxy is started by the
harness, not by the hub, so both are stopped by their own PIDs; the proxy's
token reaches the hub as CONFIGPROXY_AUTH_TOKEN. Everything listens on
127.0.0.1; the user's container runs on the host's network, never pulled,
and is removed when its server stops.
"""

import json
import os

c = get_config()  # type: ignore[name-defined]  # noqa: F821  (JupyterHub's config loader provides it)
settings = json.loads(os.environ["HUBSHIP_HUB_SETTINGS"])

c.JupyterHub.bind_url = settings["public_url"]
c.JupyterHub.hub_ip = "127.0.0.1"
c.JupyterHub.hub_port = settings["hub_port"]
c.JupyterHub.db_url = settings["db_url"]
c.JupyterHub.cookie_secret_file = settings["cookie_secret_file"]
c.JupyterHub.authenticator_class = "null"
c.JupyterHub.spawner_class = "tooling.smoke.spawner.LoopbackDockerSpawner"
c.JupyterHub.services = [{"name": settings["service"], "api_token": os.environ["HUBSHIP_HUB_TOKEN"]}]
c.JupyterHub.load_roles = [
    {
        "name": settings["service"],
        "scopes": ["admin:users", "admin:servers", "access:servers"],
        "services": [settings["service"]],
    }
]

# The spawn request returns at once (202), so the check watches the server's container from the
# start; a failed spawn's reason is then the spawner's own, not a 500 saying "timeout".
c.JupyterHub.tornado_settings = {"slow_spawn_timeout": 0}

c.ConfigurableHTTPProxy.should_start = False
c.ConfigurableHTTPProxy.api_url = settings["proxy_api_url"]

# What z2jh's chart sets for a user server: the command, and the hub's patience.
c.Spawner.cmd = ["jupyterhub-singleuser"]
c.Spawner.start_timeout = settings["timeout"]
c.Spawner.http_timeout = settings["timeout"]
c.Spawner.ip = "127.0.0.1"
c.Spawner.port = settings["server_port"]

c.DockerSpawner.image = settings["image"]
c.DockerSpawner.network_name = "host"
# No port to publish on the host's network: the server is where the spawner says (tooling.smoke.spawner).
c.DockerSpawner.use_internal_ip = True
c.DockerSpawner.pull_policy = "never"
c.DockerSpawner.remove = True
# Removed when its server stops, but not by docker the moment it exits: its log tells why.
c.DockerSpawner.extra_host_config = {"auto_remove": False}
c.DockerSpawner.name_template = settings["container_name"]
c.DockerSpawner.extra_create_kwargs = {"labels": settings["labels"]}
