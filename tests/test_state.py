"""tooling.state: what one stage records for the next, and what a stage says when nothing is recorded."""

from __future__ import annotations

from pathlib import Path

import pytest

from tooling.cli import main
from tooling.errors import ToolingError
from tooling.state import BuiltImage, PushedImage, State
from tooling.state import TestedImage as SmokeRecord  # pytest would collect a Test* name

ROOT = Path(__file__).resolve().parents[1]


def test_records_survive_a_reload(tmp_path: Path) -> None:
    state = State.load(tmp_path)
    state.record_build(BuiltImage("127.0.0.1:5000/hub/image:img-1", "sha256:aa", "cc"))
    state.record_test(SmokeRecord("127.0.0.1:5000/hub/image:img-1", "sha256:aa", True, "report.md"))
    state.record_push(PushedImage("127.0.0.1:5000/hub/image:img-1", "sha256:dd", "sha256:aa"))
    again = State.load(tmp_path)
    assert again.require_built().image_id == "sha256:aa"
    assert again.passed_smoke_test("sha256:aa")
    assert not again.passed_smoke_test("sha256:other")
    assert again.pushed is not None
    assert again.pushed.pinned == "127.0.0.1:5000/hub/image:img-1@sha256:dd"


def test_a_stage_that_needs_a_build_says_how_to_get_one(tmp_path: Path) -> None:
    with pytest.raises(ToolingError, match=r"No built image is recorded in .*state\.json\. Build one first"):
        State.load(tmp_path).require_built()


def test_an_unreadable_state_file_says_it_may_be_deleted(tmp_path: Path) -> None:
    path = tmp_path / ".hubship" / "state.json"
    path.parent.mkdir()
    path.write_text("{not json", encoding="utf-8")
    with pytest.raises(ToolingError, match=r"state\.json: unreadable .* delete it and rerun the stages"):
        State.load(tmp_path)


@pytest.mark.parametrize("command", ["test", "push"])
def test_test_and_push_without_a_build_exit_with_one_message(
    command: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = tmp_path / "hub.toml"
    config.write_text((ROOT / "hub.toml").read_text(encoding="utf-8"), encoding="utf-8")
    assert main(["--config", str(config), command]) == 1
    err = capsys.readouterr().err
    assert err.startswith("error: No built image is recorded in")
    assert "Traceback" not in err
