"""The one definition of the order: the runbook, the pipeline command and nox all follow it."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from tooling.cli import main
from tooling.config import load_config
from tooling.pipeline import STAGE_NAMES, STAGES, automated_run, runbook

ROOT = Path(__file__).resolve().parents[1]


def test_the_order_is_the_documented_one() -> None:
    assert STAGE_NAMES == (
        "lock",
        "build",
        "test",
        "push",
        "bump-staging",
        "check-staging",
        "deploy-staging",
        "verify-staging",
        "promote",
        "check-prod",
        "approve-prod",
        "deploy-prod",
        "verify-prod",
    )


def test_committed_runbook_is_rendered_from_the_order_and_hub_toml() -> None:
    committed = (ROOT / "docs" / "runbook.md").read_text(encoding="utf-8")
    assert committed == runbook(load_config(ROOT / "hub.toml"))
    assert main(["--config", str(ROOT / "hub.toml"), "runbook", "--check", str(ROOT / "docs" / "runbook.md")]) == 0


def test_runbook_check_fails_on_a_stale_copy(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    stale = tmp_path / "runbook.md"
    stale.write_text("# an old runbook\n", encoding="utf-8")
    assert main(["--config", str(ROOT / "hub.toml"), "runbook", "--check", str(stale)]) == 1
    assert "is not the current runbook" in capsys.readouterr().out


def test_runbook_gives_every_command_and_the_one_manual_step() -> None:
    text = runbook(load_config(ROOT / "hub.toml"))
    assert "python -m tooling deploy staging\n" in text
    assert "python -m tooling verify staging\n" in text
    assert "python -m tooling promote\n" in text
    assert text.index("## 5. Bump staging") < text.index("## 6. Check the staging values")
    assert text.index("## 6. Check the staging values") < text.index("## 7. Deploy staging\n")
    assert text.index("## 9. Promote to prod") < text.index("## 10. Check the prod values")
    assert text.index("## 11. Approve prod (manual)") < text.index("## 12. Deploy prod\n")
    assert "deploy/verified/staging.json" in text


def test_automated_run_stops_before_the_first_manual_stage() -> None:
    assert [stage.name for stage in automated_run("lock", "verify-prod")] == [
        "lock",
        "build",
        "test",
        "push",
        "bump-staging",
        "check-staging",
        "deploy-staging",
        "verify-staging",
        "promote",
        "check-prod",
    ]
    assert [stage.name for stage in automated_run("deploy-prod", "verify-prod")] == ["deploy-prod", "verify-prod"]
    assert automated_run("approve-prod", "verify-prod") == []
    assert all(stage.automated == bool(stage.command) for stage in STAGES)


def copy_hub(hub: Path, config_name: str = "hub.toml") -> None:
    """This repository's hub files under `hub`, its hub.toml as `config_name`."""
    hub.mkdir()
    shutil.copy2(ROOT / "hub.toml", hub / config_name)
    for part in ("environments", "image", "deploy"):
        shutil.copytree(ROOT / part, hub / part)


def test_pipeline_stops_at_the_first_failing_stage(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    hub = tmp_path / "hub"
    copy_hub(hub)
    spec = hub / "environments" / "environment.yml"
    spec.write_text(spec.read_text(encoding="utf-8").replace("  - pandas\n", "  - pandas\n  - scipy\n"))
    assert main(["--config", str(hub / "hub.toml"), "pipeline"]) == 1
    out = capsys.readouterr().out
    assert "== [1/6] Check the lock: python -m tooling lock --check" in out
    assert "== [2/6]" not in out
    assert "The pipeline stopped at lock" in out
    assert "python -m tooling pipeline --from lock" in out


def test_pipeline_stages_read_the_config_file_it_was_given(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    hub = tmp_path / "hub"
    copy_hub(hub, config_name="staging-hub.toml")
    assert main(["--config", str(hub / "staging-hub.toml"), "pipeline", "--to", "lock"]) == 0
    captured = capsys.readouterr()
    assert "== [1/1] Check the lock" in captured.out
    assert "ok: " in captured.out and "is current" in captured.out
    assert "error:" not in captured.err
