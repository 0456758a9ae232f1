"""pytest fixtures for the rig's conda channel (loaded as a plugin by tests/conftest.py).

- `rig_channel` (session): the channel of real packages (tests/rig/channel.py),
  built on first use and cached between runs, served on a free 127.0.0.1
  port for the whole session. Its `url` is the channel as conda-forge, its
  `root_url` the server root (a mirror of https://conda.anaconda.org maps
  there), its `path` the conda-forge folder on disk.

Tests that use it are marked `@pytest.mark.rig`. A failure to build the
channel (`ToolingError`) fails the test with its message; it never skips.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.rig.channel import CHANNEL_NAME, ensure_channel
from tests.rig.channel_server import serve_channel
from tooling.errors import ToolingError


@dataclass(frozen=True)
class RigChannel:
    """The rig's conda-forge channel, on disk and over HTTP."""

    path: Path
    url: str
    root_url: str


@pytest.fixture(scope="session")
def rig_channel() -> Iterator[RigChannel]:
    try:
        root = ensure_channel()
    except ToolingError as exc:
        pytest.fail(exc.message, pytrace=False)
    with serve_channel(root) as served:
        yield RigChannel(path=root / CHANNEL_NAME, url=served.channel_url(CHANNEL_NAME), root_url=served.root_url)
