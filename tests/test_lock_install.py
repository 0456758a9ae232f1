"""`conda-lock install` takes our lock as its own: the real conda-lock CLI, the test-only micromamba stand-in.

The lock is made of the rig's channel mirrored as conda-forge, so it names
canonical conda-forge URLs; the stand-in fetches them from the rig (see
tests/fake_micromamba/micromamba.py) and checks each file's md5 against the
explicit file conda-lock renders.
"""

from __future__ import annotations

import hashlib
import json
import subprocess
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.lock_fixtures import CliResult, Hub
from tests.rig.channel_fixtures import RigChannel
from tooling.lockfile import read_lock

Cli = Callable[..., CliResult]
Install = Callable[..., subprocess.CompletedProcess[str]]

pytestmark = pytest.mark.rig


def channel_records(channel_url: str) -> dict[str, dict[str, Any]]:
    """The channel's repodata records by file name."""
    records: dict[str, dict[str, Any]] = {}
    for subdir in ("linux-64", "noarch"):
        with urllib.request.urlopen(f"{channel_url}/{subdir}/repodata.json", timeout=30) as response:
            repodata = json.load(response)
        for section in ("packages", "packages.conda"):
            records.update(repodata.get(section, {}))
    return records


def installed(prefix: Path) -> dict[str, dict[str, Any]]:
    """conda-meta's records by package name."""
    found = (json.loads(path.read_text()) for path in (prefix / "conda-meta").glob("*.json"))
    return {record["name"]: record for record in found}


def test_conda_lock_installs_our_lock(
    make_hub: Callable[..., Hub], cli: Cli, rig_channel: RigChannel, conda_lock_install: Install, tmp_path: Path
) -> None:
    hub = make_hub(mirror=rig_channel.url)  # a tmp copy: locks of the rig's packages are never committed
    assert cli(hub, "lock").code == 0
    prefix = tmp_path / "env"

    result = conda_lock_install(hub.lock, prefix, rig_channel.url)

    assert result.returncode == 0, result.stderr
    records = channel_records(rig_channel.url)
    locked = read_lock(hub.lock).package
    expected = {}
    for package in locked:
        record = records[package.url.rsplit("/", 1)[1]]
        expected[package.name] = (record["version"], record["build"], record["md5"], package.url)
    meta = installed(prefix)
    assert {name: (m["version"], m["build"], m["md5"], m["url"]) for name, m in meta.items()} == expected
    imports = "import numpy, pandas; print(numpy.__version__, pandas.__version__)"
    versions = subprocess.run(
        [prefix / "bin" / "python", "-c", imports], capture_output=True, text=True, timeout=120, check=False
    )
    assert versions.returncode == 0, versions.stderr
    assert versions.stdout.split() == [expected["numpy"][0], expected["pandas"][0]]


def test_conda_lock_install_refuses_a_package_whose_md5_differs(
    make_hub: Callable[..., Hub], cli: Cli, rig_channel: RigChannel, conda_lock_install: Install, tmp_path: Path
) -> None:
    hub = make_hub(mirror=rig_channel.url)
    assert cli(hub, "lock").code == 0
    lines = hub.explicit.read_text().splitlines()
    [numpy] = [i for i, line in enumerate(lines) if line.rsplit("/", 1)[-1].startswith("numpy-")]
    url, md5 = lines[numpy].split("#")
    wrong = hashlib.md5(b"not numpy", usedforsecurity=False).hexdigest()
    lines[numpy] = f"{url}#{wrong}"
    tampered = tmp_path / "conda-linux-64.lock"
    tampered.write_text("\n".join(lines) + "\n")
    prefix = tmp_path / "env"

    result = conda_lock_install(tampered, prefix, rig_channel.url)

    assert result.returncode != 0
    file_name = url.rsplit("/", 1)[1]
    assert f"failed to fetch {file_name}" in result.stderr
    assert f"hash mismatch when extracting {url}" in result.stderr
    assert f"expected {wrong}, got {md5}" in result.stderr
    assert "numpy" not in installed(prefix)
