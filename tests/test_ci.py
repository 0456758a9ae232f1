"""tooling.ci, the decisions the workflows make: on a real git repository and a real environment."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tooling import ci

INPUTS = ["environments", "image", "hub.toml"]


def git(repo: Path, *args: str) -> str:
    completed = subprocess.run(["git", "-C", str(repo), *args], capture_output=True, text=True, check=True)
    return completed.stdout.strip()


def commit(repo: Path, path: str, text: str) -> str:
    (repo / path).parent.mkdir(parents=True, exist_ok=True)
    (repo / path).write_text(text)
    git(repo, "add", path)
    git(repo, "-c", "user.name=t", "-c", "user.email=t@example.org", "commit", "-q", "-m", f"change {path}")
    return git(repo, "rev-parse", "HEAD")


@pytest.fixture
def repo(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    git(tmp_path, "init", "-q", "-b", "main")
    monkeypatch.chdir(tmp_path)
    return tmp_path


def newest(capsys: pytest.CaptureFixture[str], since: str) -> tuple[str, str]:
    assert ci.main(["newest", "--since", since, *INPUTS]) == 0
    captured = capsys.readouterr()
    return captured.out, captured.err


def test_a_run_stays_newest_when_later_commits_leave_the_image_inputs_alone(
    repo: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    built = commit(repo, "environments/environment.yml", "dependencies: [numpy]\n")
    commit(repo, "README.md", "docs\n")
    commit(repo, "deploy/staging.yaml", "tag: img-1\n")
    assert newest(capsys, built) == ("newest=true\n", "")


def test_a_run_whose_inputs_changed_again_on_main_does_not_bump(repo: Path, capsys: pytest.CaptureFixture[str]) -> None:
    built = commit(repo, "environments/environment.yml", "dependencies: [numpy]\n")
    commit(repo, "image/postBuild", "echo hi\n")
    out, err = newest(capsys, built)
    assert out == "newest=false\n"
    assert f"{built} is no longer the newest state of the image's inputs: a later commit changed image/postBuild" in err


def test_a_commit_missing_from_a_shallow_checkout_is_one_error(repo: Path, capsys: pytest.CaptureFixture[str]) -> None:
    commit(repo, "hub.toml", "[image]\n")
    assert ci.main(["newest", "--since", "0" * 40, *INPUTS]) == 1
    assert "fetch-depth: 0" in capsys.readouterr().err


def test_missing_app_settings_fail_naming_each(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("HUBSHIP_APP_CLIENT_ID", "Iv1.abc")
    monkeypatch.setenv("HUBSHIP_APP_PRIVATE_KEY", " ")
    assert ci.main(["require", "HUBSHIP_APP_CLIENT_ID", "HUBSHIP_APP_PRIVATE_KEY"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("error: Not set: HUBSHIP_APP_PRIVATE_KEY. ")
    assert "Running it on GitHub" in err
    monkeypatch.setenv("HUBSHIP_APP_PRIVATE_KEY", "-----BEGIN RSA PRIVATE KEY-----")
    assert ci.main(["require", "HUBSHIP_APP_CLIENT_ID", "HUBSHIP_APP_PRIVATE_KEY"]) == 0


def test_it_runs_with_the_standard_library_alone(repo: Path) -> None:
    """The workflow jobs run it with the runner's python3, without installing the toolkit."""
    project = Path(__file__).resolve().parents[1]
    completed = subprocess.run(
        [
            sys.executable,
            "-I",
            "-S",
            "-c",
            "import sys; sys.path.insert(0, sys.argv[1]); import tooling.ci",
            str(project),
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    assert completed.returncode == 0, completed.stderr
