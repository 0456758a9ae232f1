"""A build from a mirror that needs a password: the password reaches no layer, label, history, log or report.

The rig's conda channel is served behind HTTP basic auth on 127.0.0.1 and
named, with its credentials, as hub.toml's conda-forge mirror. The hub's
environment is changed (so the environment layer cannot come from Docker's
cache: the packages really are fetched through the mirror inside the build)
and the toolkit's cache is empty, so the bootstrap environment is made from
the mirror too; this is the test that runs the bootstrap path in every CI.
"""

from __future__ import annotations

import base64
import io
import json
import tarfile
from pathlib import Path

import pytest

from tests.rig.channel_fixtures import RigChannel
from tests.rig.hub_fixtures import HubCopies
from tests.test_lock_stage import channel_behind_basic_auth
from tooling.build import BuildResult
from tooling.cli import main
from tooling.docker import Docker
from tooling.state import State

pytestmark = [pytest.mark.docker, pytest.mark.rig]

USERNAME = "mirror-robot"
PASSWORD = "mirror-pw-c41d9e7b"


def secret_forms() -> tuple[str, ...]:
    return (PASSWORD, base64.b64encode(f"{USERNAME}:{PASSWORD}".encode()).decode())


def layer_tars_holding_a_secret(docker: Docker, reference: str, scratch: Path) -> list[str]:
    """The members of `docker save REFERENCE` (every layer tar, the config, the manifest) whose bytes hold a secret."""
    saved = scratch / "image.tar"
    docker.run("save", "--output", str(saved), reference, timeout=600)
    forms = [form.encode() for form in secret_forms()]
    found = []
    with tarfile.open(saved) as outer:
        members = [member for member in outer.getmembers() if member.isfile()]
        assert any(member.name.endswith("layer.tar") or "blobs/" in member.name for member in members)
        for member in members:
            handle = outer.extractfile(member)
            assert handle is not None
            data = handle.read()
            if any(form in data for form in forms):
                found.append(member.name)
            if member.name.endswith("layer.tar") or "blobs/" in member.name:
                found += layer_files_holding(data, forms, member.name)
    saved.unlink()
    return found


def layer_files_holding(data: bytes, forms: list[bytes], layer: str) -> list[str]:
    """Files inside one layer tar whose bytes hold a secret (a layer may be compressed; tarfile reads either)."""
    found = []
    try:
        with tarfile.open(fileobj=io.BytesIO(data)) as archive:
            for member in archive.getmembers():
                handle = archive.extractfile(member) if member.isfile() else None
                if handle is not None and any(form in handle.read() for form in forms):
                    found.append(f"{layer}:{member.name}")
    except tarfile.ReadError:
        return []
    return found


def test_a_credentialed_mirror_builds_with_a_cold_cache_and_its_password_is_nowhere(
    *,
    copy_rig_hub: HubCopies,
    rig_channel: RigChannel,
    rig_built_image: BuildResult,
    docker_cli: Docker,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    cache = tmp_path / "xdg-cache"
    monkeypatch.setenv("XDG_CACHE_HOME", str(cache))
    hub = copy_rig_hub("credentialed")
    hub.spec.write_text(hub.spec.read_text(encoding="utf-8").replace("  - h5py\n", ""), encoding="utf-8")

    # Earlier builds (an earlier run of this test too) left the environment layer in Docker's build cache
    # and the packages in a BuildKit cache mount; without either, the image build itself must fetch every
    # package of the lock through the mirror. Images are kept: later tests' builds still find theirs.
    docker_cli.run("builder", "prune", "--all", "--force", timeout=600)
    with channel_behind_basic_auth(rig_channel.path, USERNAME, PASSWORD) as (mirror, authorized):
        hub.set_hub_toml("mirrors", "conda-forge", mirror)
        assert main(["--config", str(hub.config), "lock"]) == 0
        hub.git("commit", "--quiet", "--all", "--message", "Without h5py, from the credentialed mirror")
        requests_before_build = len(authorized)
        capsys.readouterr()
        code = main(["--config", str(hub.config), "build"])
        output = capsys.readouterr()
    assert code == 0, output.err
    built = State.load(hub.root).built
    assert built is not None
    copy_rig_hub.built.append(built.reference)
    assert built.reference != rig_built_image.reference
    assert all(authorized), "a request reached the mirror without its credentials"
    locked = [line for line in hub.explicit.read_text().splitlines() if line.startswith("https://")]
    assert len(authorized) - requests_before_build >= len(locked), "the image build did not fetch through the mirror"
    assert list((cache / "hubship" / "bootstrap").iterdir()), "the bootstrap environment was not made"

    places = {"build output": output.out + output.err}
    places |= {
        str(path): path.read_text(errors="replace") for path in (hub.root / ".hubship").rglob("*") if path.is_file()
    }
    assert any(name.endswith("build.log") for name in places), sorted(places)
    assert any(name.endswith("build.md") for name in places), sorted(places)
    inspect = docker_cli.run("image", "inspect", built.reference).stdout
    places["labels and config"] = json.dumps(json.loads(inspect)[0]["Config"])
    places["history"] = docker_cli.run("history", "--no-trunc", "--format", "{{.CreatedBy}}", built.reference).stdout
    for place, text in places.items():
        for form in secret_forms():
            assert form not in text, f"the mirror's password reached {place}"
    assert layer_tars_holding_a_secret(docker_cli, built.reference, tmp_path) == []
