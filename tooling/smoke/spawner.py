"""The spawner of the smoke test's local hub: DockerSpawner with the container on the host's network.

Only the hub process (started by `tooling.smoke.hub`) imports this module.
DockerSpawner asks docker for the port a container publishes; a container
on the host's network publishes none, it listens on the host's own
interfaces, at the address and port the spawner gave it (JUPYTERHUB_SERVICE_URL).
"""

from __future__ import annotations

from dockerspawner import DockerSpawner


class LoopbackDockerSpawner(DockerSpawner):  # type: ignore[misc]  # dockerspawner is untyped
    """DockerSpawner for `network_name = "host"`: the server is at the spawner's own ip and port."""

    async def get_ip_and_port(self) -> tuple[str, int]:
        return str(self.ip), int(self.port)
