"""The pip: section, locked by conda-lock's own PyPI solver to exact versions with sha256.

The wheels are real (pip downloads them from PyPI), served from a PEP 503
index on 127.0.0.1: this machine's route to PyPI answers the simple index but
not the per-version JSON API that conda-lock's PyPI client reads, so the
spec names the local index (`pip-repositories`) instead of PyPI. The real
`conda-lock install` then installs such a lock's pip lines with the
environment's own pip (through the test-only micromamba stand-in).
"""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from packaging.utils import canonicalize_name, parse_wheel_filename

from tests.lock_fixtures import PROJECT, CliResult, Hub, hub_toml_with
from tests.rig.channel_fixtures import RigChannel
from tooling.lockfile import read_lock

Cli = Callable[..., CliResult]
WHEELS = ("tomli-w==1.0.0", "six==1.17.0")
PIP_MAPPING = {"pip": {"pypi_name": "pip", "conda_name": "pip", "import_name": "pip", "mapping_source": "test"}}


class _QuietHandler(SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:
        return


@pytest.fixture(scope="module")
def pip_index(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, dict[str, str]]]:
    """A simple index of real wheels on 127.0.0.1; yields its URL and each wheel's sha256."""
    root = tmp_path_factory.mktemp("pip-index")
    files = root / "files"
    subprocess.run(
        [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:", "--dest", str(files), *WHEELS],
        check=True,
        capture_output=True,
    )
    digests = {}
    for wheel in sorted(files.glob("*.whl")):
        digest = hashlib.sha256(wheel.read_bytes()).hexdigest()
        digests[wheel.name] = digest
        project = root / "simple" / canonicalize_name(parse_wheel_filename(wheel.name)[0])
        project.mkdir(parents=True)
        (project / "index.html").write_text(
            f'<html><body><a href="../../files/{wheel.name}#sha256={digest}">{wheel.name}</a></body></html>\n'
        )
    server = ThreadingHTTPServer(("127.0.0.1", 0), partial(_QuietHandler, directory=str(root)))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/simple", digests
    finally:
        server.shutdown()
        server.server_close()


def test_pip_section_is_locked_with_versions_and_sha256(
    make_hub: Callable[..., Hub], cli: Cli, pip_index: tuple[str, dict[str, str]], tmp_path: Path
) -> None:
    index, digests = pip_index
    mapping = tmp_path / "mapping.json"
    mapping.write_text(json.dumps(PIP_MAPPING))
    spec = PROJECT.joinpath("environments", "environment.yml").read_text()
    spec += f"  - pip:\n    - tomli-w==1.0.0\n    - six\npip-repositories:\n  - {index}\nallow-pypi-requests: false\n"
    hub = make_hub(spec=spec)

    result = cli(hub, "lock", "--pypi-mapping", str(mapping))

    assert result.code == 0, result.err
    lock = read_lock(hub.lock)
    pip = {p.name: p for p in lock.package if p.manager == "pip"}
    # six is already a conda package of the environment: pip must not install it a second time.
    assert set(pip) == {"tomli-w"}
    entry = pip["tomli-w"]
    assert entry.version == "1.0.0"
    file_name = entry.url.rsplit("/", 1)[1]
    assert entry.hash.sha256 == digests[file_name]
    assert "six" in {p.name for p in lock.package if p.manager == "conda"}
    assert f"# pip tomli-w @ {entry.url}#sha256={entry.hash.sha256}" in hub.explicit.read_text().splitlines()
    check = cli(hub, "lock", "--check", "--pypi-mapping", str(mapping))
    assert check.code == 0, check.err


@pytest.mark.rig
def test_conda_lock_install_runs_pip_for_the_pip_lines(
    make_hub: Callable[..., Hub],
    cli: Cli,
    pip_index: tuple[str, dict[str, str]],
    rig_channel: RigChannel,
    conda_lock_install: Callable[..., subprocess.CompletedProcess[str]],
) -> None:
    index, _ = pip_index
    spec = "channels:\n  - conda-forge\ndependencies:\n  - python=3.11\n  - pip\n  - pip:\n    - tomli-w==1.0.0\n"
    spec += f"pip-repositories:\n  - {index}\nallow-pypi-requests: false\n"
    no_hub_server = hub_toml_with(rig_channel.url, {"require_singleuser = true": "require_singleuser = false"})
    hub = make_hub(spec=spec, hub_toml=no_hub_server)
    mapping = hub.root / "mapping.json"
    mapping.write_text(json.dumps(PIP_MAPPING))
    assert cli(hub, "lock", "--pypi-mapping", str(mapping)).code == 0
    prefix = hub.root / "env"

    result = conda_lock_install(hub.lock, prefix, rig_channel.url)

    assert result.returncode == 0, result.stderr
    show = (
        "import importlib.metadata as m, tomli_w; d = m.distribution('tomli-w'); "
        "print(d.version, d.read_text('INSTALLER'), tomli_w.__file__)"
    )
    installed = subprocess.run(
        [prefix / "bin" / "python", "-c", show], capture_output=True, text=True, timeout=120, check=False
    )
    assert installed.returncode == 0, installed.stderr
    version, installer, location = installed.stdout.split()
    assert (version, installer) == ("1.0.0", "pip")
    assert Path(location).is_relative_to(prefix / "lib" / "python3.11" / "site-packages")
    assert not list((prefix / "conda-meta").glob("tomli*"))
