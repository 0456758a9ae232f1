"""The whole automated order on the rig: lock check, build, smoke test, push, bump staging, check staging.

One `python -m tooling pipeline` on a copy of this hub: the real stages, in
the order `tooling/pipeline.py` defines, against the rig's channel, base
image, Docker engine, registry and a real JupyterHub. The staging values
then hold the tag the registry serves, and prod is untouched until promoted.
The check pulls the real chart from a chart repository on 127.0.0.1 and
renders it with the helm stand-in (Helm's own engine).
"""

from __future__ import annotations

from pathlib import Path

import pytest
import tomlkit

from tests.rig.hub_fixtures import HubCopies
from tests.rig.registry import RunningRegistry
from tooling.cli import main
from tooling.state import State
from tooling.values import ImageTarget, read_image

pytestmark = [pytest.mark.docker, pytest.mark.rig]


def image_at(root: Path, file: str, path: str) -> str:
    reference = read_image(ImageTarget(file=root / file, path=path, label=file))
    return f"{reference.name}:{reference.tag}"


def test_pipeline_takes_a_change_from_lock_to_staging_then_promotes_it(
    copy_rig_hub: HubCopies,
    registry: RunningRegistry,
    standin: Path,
    chart_repo: str,
    capsys: pytest.CaptureFixture[str],
) -> None:
    hub = copy_rig_hub("pipeline", registry=registry.address)
    document = tomlkit.parse(hub.config.read_text(encoding="utf-8"))
    for environment in ("staging", "prod"):
        document["deploy"][environment]["chart_repository"] = chart_repo
    hub.config.write_text(tomlkit.dumps(document), encoding="utf-8")
    config = str(hub.config)
    prod_before = (hub.root / "deploy" / "prod.yaml").read_bytes()

    assert main(["--config", config, "pipeline"]) == 0
    out = capsys.readouterr().out
    titles = ["Check the lock", "Build the image", "Smoke-test", "Push", "Bump staging", "Check the staging values"]
    for number, title in enumerate(titles, 1):
        assert f"== [{number}/6] {title}" in out
    assert "check staging (chart jupyterhub/jupyterhub 4.3.3): all passed" in out
    assert "Next: Deploy staging:\n  python -m tooling deploy staging" in out

    state = State.load(hub.root)
    assert state.pushed is not None and state.built is not None
    assert state.passed_smoke_test(state.built.image_id)
    name, tag = state.pushed.reference.rsplit(":", 1)
    assert image_at(hub.root, "deploy/staging.yaml", "singleuser.image") == state.pushed.reference
    tags = registry.request(f"/v2/{name.split('/', 1)[1]}/tags/list").json()
    assert tags == {"name": name.split("/", 1)[1], "tags": [tag]}
    assert (hub.root / "deploy" / "prod.yaml").read_bytes() == prod_before
    copy_rig_hub.built.append(state.pushed.reference)

    # Nothing verified staging (deploy and verify: tests/test_deploy_rig.py), so nothing reaches prod.
    assert main(["--config", config, "pipeline", "--from", "promote", "--to", "verify-prod"]) == 1
    err = capsys.readouterr().err
    assert "error: promote refused: deploy/verified/staging.json does not exist" in err
    assert (hub.root / "deploy" / "prod.yaml").read_bytes() == prod_before
