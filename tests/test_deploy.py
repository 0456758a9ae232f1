"""`deploy` against the stand-in cluster: the real chart rendered by Helm's engine, releases kept on disk.

No docker here: what the hub then runs is tested in tests/test_deploy_rig.py.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.deploy_helpers import KUBE_TOKEN, StandinCluster, example_hub
from tooling.cli import main


def deploy(config: Path, capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main(["--config", str(config), "deploy", *args])
    captured = capsys.readouterr()
    assert KUBE_TOKEN not in captured.out + captured.err
    return code, captured.out, captured.err


def history(cluster: StandinCluster, namespace: str, release: str) -> list[dict[str, object]]:
    folder = cluster.folder / namespace / "releases" / release
    return [json.loads(path.read_text()) for path in sorted(folder.glob("*.json"))]


@pytest.mark.parametrize("major", ["3", "4"])
def test_deploy_installs_then_upgrades_and_waits_for_every_workload(
    major: str,
    standin_cluster: StandinCluster,
    chart_repo: str,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv("HELM_STANDIN_MAJOR", major)
    tmp_path = standin_cluster.folder.parent
    config = example_hub(tmp_path, chart_repo)

    code, out, err = deploy(config, capsys, "staging")

    assert code == 0, err
    assert f"(Helm v{major}." in out
    assert "deployed staging: release hub-staging revision 1 in hub-staging" in out
    assert "image ghcr.io/example-hub/user-image:img-000000000000" in out
    assert 'rolled out deployment/hub: deployment "hub" successfully rolled out' in out
    assert 'rolled out daemonset/continuous-image-puller: daemon set "continuous-image-puller"' in out
    assert "Next: python -m tooling verify staging" in out
    upgrade = next(line for line in err.splitlines() if "upgrade --install" in line)
    assert "upgrade --install hub-staging jupyterhub --repo" in upgrade
    assert "--version 4.3.3 --namespace hub-staging --kube-context staging-cluster --create-namespace" in upgrade
    assert (
        "--values " + str(tmp_path / "deploy/common.yaml") + " --values " + str(tmp_path / "deploy/staging.yaml")
        in upgrade
    )
    assert "--cleanup-on-fail --timeout 600s --history-max 10" in upgrade
    assert standin_cluster.image_running("hub-staging") == "ghcr.io/example-hub/user-image:img-000000000000"

    staging = tmp_path / "deploy" / "staging.yaml"
    staging.write_text(staging.read_text().replace("img-000000000000", "img-111111111111"))
    code, out, err = deploy(config, capsys, "staging")

    assert code == 0, err
    assert "revision 2" in out
    statuses = [r["info"]["status"] for r in history(standin_cluster, "hub-staging", "hub-staging")]  # type: ignore[index]
    assert statuses == ["superseded", "deployed"]
    assert standin_cluster.image_running("hub-staging") == "ghcr.io/example-hub/user-image:img-111111111111"


def test_a_wrong_kube_context_is_refused_before_anything_runs(
    tmp_path: Path, standin_cluster: StandinCluster, chart_repo: str, capsys: pytest.CaptureFixture[str]
) -> None:
    config = example_hub(tmp_path, chart_repo)

    code, _, err = deploy(config, capsys, "prod")

    assert code == 1
    last = err.strip().splitlines()[-1]
    assert last.startswith(
        "error: The current kube context is 'staging-cluster', but hub.toml's [deploy.prod] kube_context is "
        "'prod-cluster'; nothing was run."
    )
    assert not (standin_cluster.folder / "hub-prod").exists()


def test_values_failing_the_check_are_not_deployed(
    tmp_path: Path, standin_cluster: StandinCluster, chart_repo: str, capsys: pytest.CaptureFixture[str]
) -> None:
    config = example_hub(tmp_path, chart_repo)
    common = tmp_path / "deploy" / "common.yaml"
    common.write_text(common.read_text().replace("    guarantee: 7G", "    guarante: 7G"))

    code, _, err = deploy(config, capsys, "staging")

    assert code == 1
    assert err.strip().splitlines()[-1] == (
        "error: deploy staging refused: its values fail `python -m tooling check staging` (above); "
        "nothing was sent to the cluster."
    )
    assert not (standin_cluster.folder / "hub-staging").exists()


def test_a_chart_version_the_repository_lacks_is_one_line(
    tmp_path: Path, standin_cluster: StandinCluster, chart_repo: str, capsys: pytest.CaptureFixture[str]
) -> None:
    config = example_hub(tmp_path, chart_repo)
    config.write_text(config.read_text().replace('chart_version = "4.3.3"', 'chart_version = "9.9.9"', 1))

    code, _, err = deploy(config, capsys, "staging")

    assert code == 1
    assert len(err.strip().splitlines()) == 1
    assert err.startswith(f"error: helm could not pull jupyterhub/jupyterhub 9.9.9 from {chart_repo}:")


def test_helm_missing_is_one_line(
    tmp_path: Path,
    standin_cluster: StandinCluster,
    chart_repo: str,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    config = example_hub(tmp_path, chart_repo)
    main(["--config", str(config), "check", "staging"])  # the chart is cached: the check needs no helm
    monkeypatch.setenv("HUBSHIP_HELM", str(tmp_path / "no-helm-here"))
    capsys.readouterr()

    code, _, err = main(["--config", str(config), "deploy", "staging"]), *capsys.readouterr()

    assert code == 1
    assert err.strip().splitlines() == [
        f"error: `{tmp_path / 'no-helm-here'}` was not found on this machine. Install Helm 3.13+ or 4, "
        "or name it in hub.toml ([helm] cli) or HUBSHIP_HELM."
    ]


def test_a_failed_upgrade_names_the_step_the_output_the_history_and_the_rollback(
    tmp_path: Path,
    standin_cluster: StandinCluster,
    chart_repo: str,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    config = example_hub(tmp_path, chart_repo)
    assert deploy(config, capsys, "staging")[0] == 0
    monkeypatch.setenv("HELM_STANDIN_FAIL_UPGRADE", "pre-upgrade hooks failed: job image-puller failed")

    code, _, err = deploy(config, capsys, "staging")

    assert code == 1
    message = err[err.index("error: ") :]
    assert message.splitlines()[0] == "error: staging: helm upgrade --install failed."
    assert "    Error: UPGRADE FAILED: pre-upgrade hooks failed: job image-puller failed" in message
    assert "Recent history of release hub-staging (namespace hub-staging):" in message
    assert "   1  deployed         jupyterhub-4.3.3" in message
    assert "   2  failed           jupyterhub-4.3.3" in message
    assert "    python -m tooling rollback staging" in message
    assert "Traceback" not in err


def test_an_upgrade_past_its_timeout_fails_with_helms_words(
    tmp_path: Path,
    standin_cluster: StandinCluster,
    chart_repo: str,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    config = example_hub(tmp_path, chart_repo)
    config.write_text(config.read_text().replace("\ntimeout = 600\n", "\ntimeout = 1\n", 1))
    monkeypatch.setenv("HELM_STANDIN_SLOW_UPGRADE", "1")

    code, _, err = deploy(config, capsys, "staging")

    assert code == 1
    assert "Error: INSTALLATION FAILED: context deadline exceeded" in err
    assert "   1  failed" in err


def test_a_rollout_that_never_finishes_fails_after_its_timeout(
    tmp_path: Path,
    standin_cluster: StandinCluster,
    chart_repo: str,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    config = example_hub(tmp_path, chart_repo)
    config.write_text(config.read_text().replace("\nrollout_timeout = 600\n", "\nrollout_timeout = 1\n", 1))
    monkeypatch.setenv("KUBECTL_STANDIN_STUCK", "deployment/hub")

    code, _, err = deploy(config, capsys, "staging")

    assert code == 1
    message = err[err.index("error: ") :]
    assert (
        message.splitlines()[0]
        == "error: staging: rollout after the upgrade: kubectl rollout status deployment/hub failed."
    )
    assert "error: timed out waiting for the condition" in message
    assert "   1  deployed" in message


def test_rollback_to_a_named_revision_writes_its_image_back_into_the_values(
    standin_cluster: StandinCluster, chart_repo: str, capsys: pytest.CaptureFixture[str]
) -> None:
    tmp_path = standin_cluster.folder.parent
    config = example_hub(tmp_path, chart_repo)
    staging = tmp_path / "deploy" / "staging.yaml"
    first = staging.read_text()
    for tag in ("img-111111111111", "img-222222222222"):
        assert deploy(config, capsys, "staging")[0] == 0
        staging.write_text(first.replace("img-000000000000", tag))
    assert deploy(config, capsys, "staging")[0] == 0
    capsys.readouterr()

    assert main(["--config", str(config), "rollback", "staging", "--to-revision", "7"]) == 1
    assert capsys.readouterr().err.strip() == (
        "error: rollback staging: release hub-staging has no revision 7 (it keeps 1, 2, 3)."
    )
    code = main(["--config", str(config), "rollback", "staging", "--to-revision", "2"])
    out, err = capsys.readouterr()

    # The rollback is done and the values say so; verify then needs the hub's URL, which this hub.toml lacks.
    assert "rolled staging back to revision 2: image ghcr.io/example-hub/user-image:img-111111111111" in out
    assert "staging's values name ghcr.io/example-hub/user-image:img-111111111111 again; commit them." in out
    assert staging.read_text() == first.replace("img-000000000000", "img-111111111111")
    assert standin_cluster.image_running("hub-staging") == "ghcr.io/example-hub/user-image:img-111111111111"
    revisions = history(standin_cluster, "hub-staging", "hub-staging")
    assert [(r["info"]["status"], r["info"]["description"]) for r in revisions][-1] == (  # type: ignore[index]
        "deployed",
        "Rollback to 2",
    )
    assert code == 2
    assert err.strip().endswith("[deploy.staging] hub_url is not set; verify needs the hub's public URL.")
