"""Fixtures for the lock stage's tests (a pytest plugin that tests/conftest.py loads).

- `snapshot_channel` (session): real conda-forge repodata (../shared/data's
  snapshot) unpacked once into a file:// channel; the tests mirror
  conda-forge to it, so a lock made here is a genuine conda-forge lock.
- `snapshot_records` (session): the snapshot's records by file name, to check
  the hashes a lock records.
- `fake_micromamba` (session): an executable named micromamba that runs
  tests/fake_micromamba/micromamba.py with this interpreter.
- `conda_lock_install`: runs the real `conda-lock install` CLI with that
  stand-in, conda-forge fetched from a mirror.
- `make_hub`: a hub repository in a tmp folder (this project's hub.toml and
  environments/environment.yml, conda-forge mirrored to the snapshot).
- `cli`: runs `python -m tooling --config HUB/hub.toml ...` in this process.
- `loopback_server`: an HTTP handler served on 127.0.0.1 for the length of a block.
"""

from __future__ import annotations

import gzip
import json
import os
import shutil
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from tests.fake_micromamba.micromamba import MIRRORS_VARIABLE
from tooling.cli import main

PROJECT = Path(__file__).resolve().parents[1]
SHARED_DATA = PROJECT.parent / "shared" / "data"
SNAPSHOT = SHARED_DATA / "conda-forge-snapshot"
PANGEO = SHARED_DATA / "pangeo-2026.01"
PANGEO_SPECS = (PANGEO / "pangeo-notebook.environment.yml", PANGEO / "base-notebook.environment.yml")
FAKE_MICROMAMBA = PROJECT / "tests" / "fake_micromamba" / "micromamba.py"
SUBDIRS = ("linux-64", "noarch")


@pytest.fixture(scope="session")
def snapshot_channel(tmp_path_factory: pytest.TempPathFactory) -> str:
    """file:// URL of a conda-forge channel holding the snapshot's real repodata (no package files)."""
    channel = tmp_path_factory.mktemp("snapshot") / "conda-forge"
    for subdir in SUBDIRS:
        (channel / subdir).mkdir(parents=True)
        with gzip.open(SNAPSHOT / subdir / "repodata.json.gz") as source:
            (channel / subdir / "repodata.json").write_bytes(source.read())
    return channel.as_uri()


@pytest.fixture(scope="session")
def snapshot_records() -> dict[str, dict[str, Any]]:
    records: dict[str, dict[str, Any]] = {}
    for subdir in SUBDIRS:
        with gzip.open(SNAPSHOT / subdir / "repodata.json.gz") as source:
            repodata = json.load(source)
        for section in ("packages", "packages.conda"):
            records.update(repodata.get(section, {}))
    return records


@pytest.fixture(scope="session")
def fake_micromamba(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An executable named `micromamba` (conda-lock recognises it by name) running the test-only stand-in."""
    executable = tmp_path_factory.mktemp("fake-micromamba") / "micromamba"
    executable.write_text(f'#!/bin/sh\nexec "{sys.executable}" "{FAKE_MICROMAMBA}" "$@"\n')
    executable.chmod(0o755)
    return executable


@pytest.fixture
def conda_lock_install(fake_micromamba: Path) -> Callable[..., subprocess.CompletedProcess[str]]:
    """conda_lock_install(lock_file, prefix, conda_forge_mirror) runs `conda-lock install` into a new prefix.

    conda-lock install cannot redirect a channel, so the stand-in is told the mirror (see its docstring).
    """

    def install(lock_file: Path, prefix: Path, conda_forge_mirror: str) -> subprocess.CompletedProcess[str]:
        command = [sys.executable, "-m", "conda_lock", "install", "--conda", str(fake_micromamba)]
        command += ["--prefix", str(prefix), str(lock_file)]
        env = {
            **os.environ,
            MIRRORS_VARIABLE: f"conda-forge={conda_forge_mirror}",
            "PIP_DISABLE_PIP_VERSION_CHECK": "1",
        }
        return subprocess.run(command, capture_output=True, text=True, env=env, timeout=600, check=False)

    return install


@dataclass(frozen=True)
class Hub:
    root: Path

    @property
    def config(self) -> Path:
        return self.root / "hub.toml"

    @property
    def spec(self) -> Path:
        return self.root / "environments" / "environment.yml"

    @property
    def lock(self) -> Path:
        return self.root / "environments" / "conda-lock.yml"

    @property
    def explicit(self) -> Path:
        return self.root / "environments" / "conda-linux-64.lock"

    @property
    def report(self) -> Path:
        return self.root / ".hubship" / "reports" / "lock.md"

    def snapshot(self) -> dict[Path, bytes]:
        """The lock files' bytes, to show a failed run left them untouched."""
        return {path: path.read_bytes() for path in (self.lock, self.explicit) if path.exists()}


def _hub_toml(mirror: str | None) -> str:
    text = (PROJECT / "hub.toml").read_text(encoding="utf-8")
    if mirror is not None:
        text = text.replace("[mirrors]\n", f'[mirrors]\nconda-forge = "{mirror}"\n', 1)
    return text


@pytest.fixture
def make_hub(tmp_path: Path, snapshot_channel: str) -> Callable[..., Hub]:
    """make_hub(spec=None, mirror=<snapshot>, hub_toml=None) -> a hub repository in a tmp folder."""
    counter = iter(range(100))

    def make(spec: str | None = None, mirror: str | None = snapshot_channel, hub_toml: str | None = None) -> Hub:
        root = tmp_path / f"hub{next(counter)}"
        (root / "environments").mkdir(parents=True)
        shutil.copy(PROJECT / "environments" / "environment.yml", root / "environments" / "environment.yml")
        if spec is not None:
            (root / "environments" / "environment.yml").write_text(spec, encoding="utf-8")
        (root / "hub.toml").write_text(hub_toml if hub_toml is not None else _hub_toml(mirror), encoding="utf-8")
        return Hub(root)

    return make


@dataclass(frozen=True)
class CliResult:
    code: int
    out: str
    err: str


@pytest.fixture
def cli(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[..., CliResult]]:
    """cli(hub, *args) runs `python -m tooling --config HUB/hub.toml ARGS...` here and returns code, stdout, stderr."""
    monkeypatch.delenv("GITHUB_STEP_SUMMARY", raising=False)

    def run(hub: Hub, *args: str) -> CliResult:
        capsys.readouterr()
        code = main(["--config", str(hub.config), *args])
        captured = capsys.readouterr()
        return CliResult(code, captured.out, captured.err)

    yield run


def hub_toml_with(mirror: str, replacements: dict[str, str]) -> str:
    """This project's hub.toml with conda-forge mirrored and some lines replaced."""
    text = _hub_toml(mirror)
    for old, new in replacements.items():
        assert old in text, old
        text = text.replace(old, new, 1)
    return text


@contextmanager
def loopback_server(handler: type[BaseHTTPRequestHandler]) -> Iterator[int]:
    """`handler` served on 127.0.0.1 (a free port, yielded) from a thread until the block ends."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server.server_address[1]
    finally:
        server.shutdown()
        server.server_close()
