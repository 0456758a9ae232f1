"""The project's own environment.yml, locked against the rig's channel of real packages mirrored as conda-forge."""

from __future__ import annotations

import json
import urllib.request
from collections.abc import Callable

import pytest

from tests.lock_fixtures import CliResult, Hub
from tests.rig.channel_fixtures import RigChannel
from tooling.lockfile import read_lock

Cli = Callable[..., CliResult]


@pytest.mark.rig
def test_project_environment_locks_against_the_rig_channel(
    make_hub: Callable[..., Hub], cli: Cli, rig_channel: RigChannel
) -> None:
    hub = make_hub(mirror=rig_channel.url)  # a tmp copy: locks of the rig's packages are never committed

    result = cli(hub, "lock")

    assert result.code == 0, result.err
    records = {}
    for subdir in ("linux-64", "noarch"):
        with urllib.request.urlopen(f"{rig_channel.url}/{subdir}/repodata.json", timeout=30) as response:
            repodata = json.load(response)
        for section in ("packages", "packages.conda"):
            records.update(repodata.get(section, {}))
    lock = read_lock(hub.lock)
    names = {p.name for p in lock.package}
    assert {"python", "jupyterhub-singleuser", "jupyterlab", "numpy", "pandas"} <= names
    for package in lock.package:
        assert package.url.startswith("https://conda.anaconda.org/conda-forge/"), package.url
        assert package.hash.md5 == records[package.url.rsplit("/", 1)[1]]["md5"]
    assert rig_channel.url not in hub.lock.read_text()
    assert cli(hub, "lock", "--check").code == 0
