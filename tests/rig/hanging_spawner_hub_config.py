"""JupyterHub configuration of a local hub whose spawner never starts a server, for the hub check's races.

The product's configuration (HUBSHIP_RIG_PRODUCT_CONFIG) is loaded first;
then the spawner is replaced by one whose `start` waits until the hub stops
it, as a server that never answers does, and whose `stop` writes the file
HUBSHIP_RIG_STOPPED_FILE, so a test knows the moment the hub gave up, and
then takes STOP_SECONDS, as stopping a container does.
No container is involved: the hub, its proxy and its REST API are real.
"""

import asyncio
import os
from pathlib import Path

from jupyterhub.spawner import Spawner

c = get_config()  # type: ignore[name-defined]  # noqa: F821  (JupyterHub's config loader provides it)
product = Path(os.environ["HUBSHIP_RIG_PRODUCT_CONFIG"])
exec(compile(product.read_text(encoding="utf-8"), str(product), "exec"), globals())
stopped_file = Path(os.environ["HUBSHIP_RIG_STOPPED_FILE"])
STOP_SECONDS = 2


class NeverStartingSpawner(Spawner):  # type: ignore[misc]  # JupyterHub is untyped
    """Starts nothing and waits to be stopped; its stop leaves a mark a test can see."""

    def __init__(self, *args: object, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)
        self.stopped = asyncio.Event()

    async def start(self) -> tuple[str, int]:
        await self.stopped.wait()
        raise RuntimeError("stopped before it started")

    async def poll(self) -> int | None:
        return 0 if self.stopped.is_set() else None

    async def stop(self, now: bool = False) -> None:
        self.stopped.set()
        stopped_file.write_text("stopped by the hub\n", encoding="utf-8")
        await asyncio.sleep(STOP_SECONDS)


c.JupyterHub.spawner_class = NeverStartingSpawner
