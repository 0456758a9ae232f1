"""The stand-in cluster's hubs: one real JupyterHub per namespace on 127.0.0.1 (tooling.smoke.hub's local hub).

Each spawns the image the helm stand-in last rendered for its namespace
(`cluster_hub_config.py`); DockerSpawner runs it in the rig's engine.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from tooling.smoke import hub as local_hubs

CONFIG = Path(__file__).resolve().parent / "cluster_hub_config.py"
PRODUCT_CONFIG = local_hubs.config_file()
LABEL = "hubship-deploy-test"
# Seconds the hub gives a server to start: a server that exits at start fails the spawn after this.
SPAWN_TIMEOUT = 20


@contextmanager
def cluster_hub(cluster: Path, namespace: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[local_hubs.LocalHub]:
    """The hub of `namespace` in the stand-in cluster folder `cluster`, until the block ends."""
    monkeypatch.setenv("HUBSHIP_RIG_PRODUCT_CONFIG", str(PRODUCT_CONFIG))
    monkeypatch.setenv("HUBSHIP_RIG_IMAGE_FILE", str(cluster / namespace / "singleuser-image"))
    with monkeypatch.context() as patched:
        patched.setattr(local_hubs, "config_file", lambda: CONFIG)
        settings = local_hubs.LocalHubSettings(
            image="set-by-each-spawn",
            timeout=SPAWN_TIMEOUT,
            container_name=f"hubship-deploy-{namespace}-{{username}}",
            labels={LABEL: namespace},
        )
        with local_hubs.local_hub(settings) as running:
            yield running
