"""JupyterHub configuration of the stand-in cluster's hub: the smoke test's local hub, spawning what was deployed.

The product's configuration (HUBSHIP_RIG_PRODUCT_CONFIG) is loaded first;
then each spawn reads the image from HUBSHIP_RIG_IMAGE_FILE, the file the
helm stand-in writes from the RENDERED Secret `hub` on every upgrade and
rollback (tests/helm_standin/cluster.py). So the hub runs what the deploy
rendered, not what a test says.
"""

import os
from pathlib import Path

c = get_config()  # type: ignore[name-defined]  # noqa: F821  (JupyterHub's config loader provides it)
product = Path(os.environ["HUBSHIP_RIG_PRODUCT_CONFIG"])
exec(compile(product.read_text(encoding="utf-8"), str(product), "exec"), globals())
deployed = Path(os.environ["HUBSHIP_RIG_IMAGE_FILE"])


def spawn_what_was_deployed(spawner: object) -> None:
    spawner.image = deployed.read_text(encoding="utf-8").strip()  # type: ignore[attr-defined]


c.Spawner.pre_spawn_hook = spawn_what_was_deployed
