"""A lock with a pip: section: its `# pip` lines are installed by the environment's own pip, with hashes.

A small hub (python and pip from the rig's channel, one wheel through pip)
keeps the extra image cheap. The wheel is real: pip downloads it from PyPI
once, and a PEP 503 index on 127.0.0.1 serves it to the lock stage and to
the build.
"""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
import threading
from collections.abc import Iterator
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from tests.rig.hub_fixtures import HubCopies, RigHub, in_image
from tooling.build import build_image
from tooling.config import load_config
from tooling.docker import Docker
from tooling.errors import ToolingError
from tooling.lock import lock_environment
from tooling.lockrequest import LockRequest

pytestmark = [pytest.mark.docker, pytest.mark.rig]

WHEEL = "tomli-w==1.0.0"
# conda-lock needs a PyPI-to-conda name mapping to tell pip packages from conda ones.
MAPPING = {"pip": {"pypi_name": "pip", "conda_name": "pip", "import_name": "pip", "mapping_source": "test"}}
SPEC = """\
channels:
  - conda-forge
dependencies:
  - python=3.11
  - pip
  - pip:
    - {wheel}
pip-repositories:
  - {index}
allow-pypi-requests: false
"""


PIP_INSTALLED = (
    "import importlib.metadata as m, tomli_w\n"
    "print(m.version('tomli-w'), m.distribution('tomli-w').read_text('INSTALLER'))"
)


class _QuietHandler(SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:
        return


@pytest.fixture(scope="module")
def pip_index(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A simple index on 127.0.0.1 serving one real wheel; yields its URL."""
    root = tmp_path_factory.mktemp("pip-index")
    files = root / "files"
    subprocess.run(
        [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:", "--dest", str(files), WHEEL],
        check=True,
        capture_output=True,
    )
    wheel = next(files.glob("*.whl"))
    digest = hashlib.sha256(wheel.read_bytes()).hexdigest()
    project = root / "simple" / "tomli-w"
    project.mkdir(parents=True)
    (project / "index.html").write_text(f'<a href="../../files/{wheel.name}#sha256={digest}">{wheel.name}</a>\n')
    server = ThreadingHTTPServer(("127.0.0.1", 0), partial(_QuietHandler, directory=str(root)))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/simple"
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture
def pip_hub(copy_rig_hub: HubCopies, pip_index: str, tmp_path: Path) -> tuple[RigHub, str]:
    """A copy of the rig's hub whose environment is python, pip and one pip wheel, locked; and its mapping file."""
    hub = copy_rig_hub("pip-hub")
    mapping = tmp_path / "mapping.json"
    mapping.write_text(json.dumps(MAPPING))
    hub.spec.write_text(SPEC.format(wheel=WHEEL, index=pip_index))
    hub.set_hub_toml("environment", "require_singleuser", False)
    lock_environment(LockRequest.from_config(load_config(hub.config), pypi_mapping=str(mapping)))
    return hub, str(mapping)


def test_pip_lines_are_installed_by_the_environments_pip(
    pip_hub: tuple[RigHub, str], copy_rig_hub: HubCopies, docker_cli: Docker
) -> None:
    hub, mapping = pip_hub
    assert "# pip tomli-w @ " in hub.explicit.read_text()

    result = copy_rig_hub.build(hub, pypi_mapping=mapping)

    shown = in_image(docker_cli, result.reference, "python", "-c", PIP_INSTALLED)
    assert "1.0.0 pip" in shown
    conda_meta = in_image(docker_cli, result.reference, "/srv/conda/envs/notebook/conda-meta", entrypoint="ls")
    assert "tomli" not in conda_meta
    assert "pip-" in conda_meta


def test_pip_wheel_whose_hash_does_not_match_the_lock_fails_the_build(pip_hub: tuple[RigHub, str]) -> None:
    hub, mapping = pip_hub
    real = hub.explicit.read_text().split("#sha256=")[1].split()[0]
    altered = real[:-1] + ("0" if real[-1] != "0" else "1")
    for path in (hub.explicit, hub.lock):
        path.write_text(path.read_text().replace(real, altered))

    with pytest.raises(ToolingError) as raised:
        build_image(hub.request(pypi_mapping=mapping, allow_stale_lock=True))

    message = raised.value.message
    assert "The image build failed at: installing the locked environment (py-rattler)." in message
    assert "THESE PACKAGES DO NOT MATCH THE HASHES" in message
    assert "pip install of the lock's pip packages failed" in message
