"""verify, promote and deploy refuse with one clear line; a secret values file never shows (stand-in cluster)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.deploy_helpers import KUBE_TOKEN, StandinCluster, example_hub
from tooling.cli import main
from tooling.proc import free_port

TOKEN = "verify-token-5e4d3c2b1a0f9e8d7c6b5a4f3e2d1c0b"


def run(config: Path, capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str]:
    code = main(["--config", str(config), *args])
    captured = capsys.readouterr()
    assert TOKEN not in captured.out + captured.err
    assert KUBE_TOKEN not in captured.out + captured.err
    return code, captured.err


def test_verify_without_its_token_is_one_line(
    tmp_path: Path,
    standin_cluster: StandinCluster,
    chart_repo: str,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    config = example_hub(tmp_path, chart_repo, hub_urls={"staging": "http://127.0.0.1:9/"})
    monkeypatch.delenv("HUBSHIP_API_TOKEN", raising=False)

    code, err = run(config, capsys, "verify", "staging")

    assert code == 1
    assert err.strip().splitlines() == [
        "error: verify staging: $HUBSHIP_API_TOKEN is not set; it must hold the API token of the hub's verify "
        'service (README: "Deploy, verify, promote, rollback").'
    ]


def test_verify_without_a_hub_url_is_a_hub_toml_problem(
    tmp_path: Path, standin_cluster: StandinCluster, chart_repo: str, capsys: pytest.CaptureFixture[str]
) -> None:
    config = example_hub(tmp_path, chart_repo)

    code, err = run(config, capsys, "verify", "staging")

    assert code == 2
    assert err.strip() == (f"error: {config}: [deploy.staging] hub_url is not set; verify needs the hub's public URL.")


def test_an_unreachable_hub_is_tried_as_often_as_hub_toml_says_then_one_line(
    tmp_path: Path,
    standin_cluster: StandinCluster,
    chart_repo: str,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    url = f"http://127.0.0.1:{free_port()}/"
    config = example_hub(tmp_path, chart_repo, hub_urls={"staging": url})
    config.write_text(config.read_text().replace("verify_attempts = 3", "verify_attempts = 2", 1))
    monkeypatch.setenv("HUBSHIP_API_TOKEN", TOKEN)
    assert run(config, capsys, "deploy", "staging")[0] == 0

    code, err = run(config, capsys, "verify", "staging")

    assert code == 1
    assert "verify attempt 1 of 2 failed: GET /hub/api/ got no answer" in err
    assert "verify attempt 2 of 2 failed" in err
    assert "attempt 3" not in err
    last = err.strip().splitlines()[-1]
    assert last.startswith(f"error: verify staging: the hub at {url} did not answer in 2 attempts: GET /hub/api/")
    assert not (tmp_path / "deploy" / "verified" / "staging.json").exists()


def test_promote_refuses_a_record_of_another_image_naming_the_one_staging_verified(
    tmp_path: Path, standin_cluster: StandinCluster, chart_repo: str, capsys: pytest.CaptureFixture[str]
) -> None:
    config = example_hub(tmp_path, chart_repo)
    record = tmp_path / "deploy" / "verified" / "staging.json"
    record.parent.mkdir(parents=True)
    record.write_text(
        json.dumps(
            {
                "environment": "staging",
                "image": "ghcr.io/example-hub/user-image:img-0123456789ab",
                "digest": "",
                "chart_version": "4.3.3",
                "helm_revision": 4,
                "passed": True,
                "checks": [],
                "verified_at": "2026-12-01T10:00:00+00:00",
            }
        )
    )
    prod_before = (tmp_path / "deploy" / "prod.yaml").read_text()

    code, err = run(config, capsys, "promote")

    assert code == 1
    assert err.strip().splitlines() == [
        "error: promote refused: staging's values name ghcr.io/example-hub/user-image:img-000000000000, but staging "
        "last verified ghcr.io/example-hub/user-image:img-0123456789ab (deploy/verified/staging.json, "
        "2026-12-01T10:00:00+00:00); deploy and verify staging first."
    ]
    assert (tmp_path / "deploy" / "prod.yaml").read_text() == prod_before


def test_promote_without_a_record_is_one_line(
    tmp_path: Path, standin_cluster: StandinCluster, chart_repo: str, capsys: pytest.CaptureFixture[str]
) -> None:
    config = example_hub(tmp_path, chart_repo)

    code, err = run(config, capsys, "promote")

    assert code == 1
    assert err.strip() == (
        "error: promote refused: deploy/verified/staging.json does not exist; staging has not passed "
        "`python -m tooling verify staging`."
    )


def test_the_secret_values_file_reaches_helm_but_never_the_output(
    tmp_path: Path,
    standin_cluster: StandinCluster,
    chart_repo: str,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    config = example_hub(tmp_path, chart_repo)
    config.write_text(config.read_text().replace('secret_values_env = ""', 'secret_values_env = "HUB_SECRETS"', 1))
    secrets = tmp_path / "outside" / "secret-values.yaml"
    secrets.parent.mkdir()
    secrets.write_text(f"hub:\n  services:\n    hubship-verify:\n      apiToken: {TOKEN}\n")
    monkeypatch.setenv("HUB_SECRETS", str(secrets))

    code = main(["--config", str(config), "-v", "deploy", "staging"])
    captured = capsys.readouterr()

    assert code == 0, captured.err
    assert TOKEN not in captured.out + captured.err
    assert str(secrets) not in captured.out + captured.err
    assert "--values ********" in captured.err
    stored = next((standin_cluster.folder / "hub-staging" / "releases" / "hub-staging").glob("1.json")).read_text()
    assert TOKEN in stored  # helm got it: the release's values hold it, as in a cluster
    for path in tmp_path.rglob("*"):
        if path.is_file() and standin_cluster.folder not in path.parents and path != secrets:
            assert TOKEN not in path.read_text(errors="replace"), path


def test_a_missing_secret_values_variable_is_one_line(
    tmp_path: Path, standin_cluster: StandinCluster, chart_repo: str, capsys: pytest.CaptureFixture[str]
) -> None:
    config = example_hub(tmp_path, chart_repo)
    config.write_text(config.read_text().replace('secret_values_env = ""', 'secret_values_env = "HUB_SECRETS"', 1))

    code, err = run(config, capsys, "deploy", "staging")

    assert code == 1
    assert err.strip().splitlines()[-1] == (
        "error: hub.toml's [deploy.staging] secret_values_env names $HUB_SECRETS, which is not set; set it to the "
        "path of the secret values file (in CI: written from a secret, removed after)."
    )
