"""deploy -> verify -> promote -> deploy prod -> verify prod on the rig, and a broken image rolled back.

The cluster is the stand-ins (helm on Helm's own engine rendering the real
z2jh 4.3.3 chart; kubectl); each namespace's hub is a real JupyterHub with
configurable-http-proxy and DockerSpawner on 127.0.0.1, spawning the image
the deploy RENDERED into Secret `hub`. The image is the rig's real build,
which carries its own reference (HUBSHIP_IMAGE).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path

import pytest
import tomlkit

from tests.deploy_helpers import KUBE_TOKEN, StandinCluster
from tests.rig.cluster_hub import cluster_hub
from tests.rig.docker import build_with_buildkit
from tests.rig.hub_fixtures import HubCopies, RigHub
from tooling.build import BuildResult
from tooling.cli import main
from tooling.docker import Docker
from tooling.smoke.hub import LocalHub

ENVIRONMENTS = ("staging", "prod")


@dataclass
class Run:
    code: int
    out: str
    err: str

    @property
    def text(self) -> str:
        return self.out + self.err


@dataclass
class DeployRig:
    hub: RigHub
    cluster: StandinCluster
    hubs: dict[str, LocalHub]
    capsys: pytest.CaptureFixture[str]
    monkeypatch: pytest.MonkeyPatch
    said: list[str]

    def run(self, *args: str, environment: str = "staging", helm: str = "3") -> Run:
        self.cluster.use_context(f"{environment}-cluster")
        self.monkeypatch.setenv("HELM_STANDIN_MAJOR", helm)
        code = main(["--config", str(self.hub.config), *args])
        captured = self.capsys.readouterr()
        self.said.append(captured.out + captured.err)
        return Run(code, captured.out, captured.err)

    def values_image(self, environment: str) -> str:
        text = (self.hub.root / "deploy" / f"{environment}.yaml").read_text(encoding="utf-8")
        return text

    def record(self, environment: str) -> dict[str, object]:
        return dict(json.loads((self.hub.root / "deploy" / "verified" / f"{environment}.json").read_text()))


@pytest.fixture
def deploy_rig(
    copy_rig_hub: HubCopies,
    standin_cluster: StandinCluster,
    chart_repo: str,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> Iterator[DeployRig]:
    # The session image's own registry: the values then name the image the engine has (and that it names itself).
    hub = copy_rig_hub("deploy", registry=copy_rig_hub.hub.registry)
    with ExitStack() as stack:
        hubs = {
            name: stack.enter_context(cluster_hub(standin_cluster.folder, f"hub-{name}", monkeypatch))
            for name in ENVIRONMENTS
        }
        document = tomlkit.parse(hub.config.read_text(encoding="utf-8"))
        for name in ENVIRONMENTS:
            table = document["deploy"][name]
            table["chart_repository"] = chart_repo
            table["hub_url"] = hubs[name].url
            table["api_token_env"] = f"HUBSHIP_{name.upper()}_TOKEN"
            table["secret_values_env"] = ""
            table["verify_attempts"] = 2
            table["verify_spawn_timeout"] = 60
            monkeypatch.setenv(f"HUBSHIP_{name.upper()}_TOKEN", hubs[name].token)
        hub.config.write_text(tomlkit.dumps(document), encoding="utf-8")
        yield DeployRig(hub, standin_cluster, hubs, capsys, monkeypatch, [])


def assert_nothing_secret_shown(rig: DeployRig) -> None:
    secrets = [KUBE_TOKEN, *(hub.token for hub in rig.hubs.values())]
    for text in rig.said:
        assert not any(secret in text for secret in secrets)
    for path in [*rig.hub.root.rglob("*.json"), *rig.hub.root.rglob("*.yaml"), *rig.hub.root.rglob("*.md")]:
        content = path.read_text(encoding="utf-8", errors="replace")
        assert not any(secret in content for secret in secrets), path


def test_staging_then_prod_each_deployed_and_verified_with_helm_3_and_4(
    deploy_rig: DeployRig, rig_built_image: BuildResult
) -> None:
    rig = deploy_rig
    image = rig_built_image.reference
    assert rig.run("bump", "staging", "--tag", rig_built_image.tag).code == 0

    # The order, automated: deploy staging, verify staging, promote, check prod; then stops before approving prod.
    staged = rig.run("pipeline", "--from", "deploy-staging", "--to", "verify-prod", helm="3")
    assert staged.code == 0, staged.text
    assert "(Helm v3." in staged.out
    assert "helm upgrade --install hub-staging jupyterhub" in staged.err
    assert f"verified staging: the hub runs {image} (helm revision 1)" in staged.out
    assert "intro.ipynb: 3 code cells ran" in staged.out
    assert f"promoted {image}" in staged.out
    assert "check prod (chart jupyterhub/jupyterhub 4.3.3): all passed" in staged.out
    assert "The pipeline ran 4 stages" in staged.out
    assert "Next: Approve prod (manual):" in staged.out
    assert rig.cluster.image_running("hub-staging") == image
    record = rig.record("staging")
    assert (record["image"], record["passed"], record["helm_revision"], record["chart_version"]) == (
        image,
        True,
        1,
        "4.3.3",
    )
    assert rig_built_image.tag in rig.values_image("prod")
    assert not (rig.cluster.folder / "hub-prod").exists()

    approved = rig.run("pipeline", "--from", "deploy-prod", "--to", "verify-prod", environment="prod", helm="4")
    assert approved.code == 0, approved.text
    assert "(Helm v4." in approved.out
    assert "helm upgrade --install hub-prod jupyterhub" in approved.err
    assert f"verified prod: the hub runs {image}" in approved.out
    assert rig.cluster.image_running("hub-prod") == image
    assert rig.record("prod")["image"] == image
    assert_nothing_secret_shown(rig)


def test_a_broken_image_fails_verify_is_not_promoted_and_is_rolled_back(
    deploy_rig: DeployRig, rig_built_image: BuildResult, docker_cli: Docker, tmp_path: Path
) -> None:
    rig = deploy_rig
    good = rig_built_image.reference
    broken = f"{good.rsplit(':', 1)[0]}:broken-{tmp_path.name[-8:]}".lower()
    context = tmp_path / "broken-context"
    context.mkdir()
    (context / "Dockerfile").write_text(
        f"FROM {good}\nENV HUBSHIP_IMAGE={broken}\nRUN rm ${{NB_PYTHON_PREFIX}}/bin/jupyterhub-singleuser\n"
    )
    build_with_buildkit(docker_cli, "--network", "none", "--tag", broken, str(context))
    try:
        assert rig.run("bump", "staging", "--tag", rig_built_image.tag).code == 0
        assert rig.run("deploy", "staging").code == 0
        assert rig.run("verify", "staging").code == 0

        assert rig.run("bump", "staging", "--tag", broken.rsplit(":", 1)[1]).code == 0
        assert rig.run("deploy", "staging").code == 0
        assert rig.cluster.image_running("hub-staging") == broken
        failed = rig.run("verify", "staging")
        assert failed.code == 1
        message = failed.err[failed.err.index("error: ") :]
        assert message.startswith("error: staging: verify failed.\nLast lines of output:\n")
        assert "the hub could not spawn the server" in message
        assert "Recent history of release hub-staging" in message
        assert "    python -m tooling rollback staging" in message
        assert "Traceback" not in failed.err
        assert rig.record("staging")["image"] == good

        refused = rig.run("promote")
        assert refused.code == 1
        assert (
            refused.err.strip()
            .splitlines()[-1]
            .startswith(f"error: promote refused: staging's values name {broken}, but staging last verified {good}")
        )

        rolled = rig.run("rollback", "staging")
        assert rolled.code == 0, rolled.text
        assert f"rolled staging back to revision 1: image {good}" in rolled.out
        assert rig_built_image.tag in rig.values_image("staging")
        assert rig.cluster.image_running("hub-staging") == good
        assert f"verified staging: the hub runs {good} (helm revision 3)" in rolled.out
        assert_nothing_secret_shown(rig)
    finally:
        docker_cli.run("rmi", broken, check=False)
