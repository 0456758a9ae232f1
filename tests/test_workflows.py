"""The GitHub workflows, read as data: pinned actions, least privilege, timeouts, triggers, the stage order.

GitHub itself cannot run here; these tests hold the rules a first real run
depends on (docs/ of the review: ../shared/docs/workflows-review.md), so a
later edit cannot quietly break them.
"""

from __future__ import annotations

import dataclasses
import itertools
import re
import shlex
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from ruamel.yaml import YAML

from tooling.build import TagInputs
from tooling.cli import build_parser
from tooling.config import load_config
from tooling.pipeline import STAGE_NAMES, STAGES

PROJECT = Path(__file__).resolve().parents[1]
WORKFLOW_DIR = PROJECT / ".github" / "workflows"
WORKFLOWS = sorted(WORKFLOW_DIR.glob("*.yml"))
IMAGE = WORKFLOW_DIR / "image.yml"
PINNED = re.compile(r"^[\w.-]+/[\w./-]+@[0-9a-f]{40}$")
APP_TOKEN_ACTION = "actions/create-github-app-token"
PULL_REQUEST_ACTION = "peter-evans/create-pull-request"
APP_SECRETS = ("HUBSHIP_APP_CLIENT_ID", "HUBSHIP_APP_PRIVATE_KEY")

# What GITHUB_TOKEN must allow for each action the workflows use. An action missing here fails the
# permissions test until someone says what it needs.
ACTION_NEEDS: dict[str, dict[str, str]] = {
    "actions/checkout": {"contents": "read"},
    "actions/setup-python": {},
    "actions/upload-artifact": {},
    "actions/download-artifact": {},
    APP_TOKEN_ACTION: {},
    # With GITHUB_TOKEN; given an App's token (its `token` input) it needs nothing of GITHUB_TOKEN.
    PULL_REQUEST_ACTION: {"contents": "write", "pull-requests": "write"},
}
# The App's token may open pull requests and nothing else.
APP_TOKEN_PERMISSIONS = {"permission-contents": "write", "permission-pull-requests": "write"}
PUSH_STAGE = STAGE_NAMES.index("push")

# Where each input of the image's tag (tooling/build.py TagInputs) comes from, as paths of the hub
# repository; hub.toml's own settings name the environment and context folders.


def in_repository(path: Path) -> str:
    """A hub.toml path (relative to hub.toml, or absolute inside the repository) as the filters name it."""
    return (path.relative_to(PROJECT) if path.is_absolute() else path).as_posix()


def tag_input_paths() -> dict[str, tuple[str, ...]]:
    config = load_config(PROJECT / "hub.toml")
    return {
        "install_plan_sha256": (
            in_repository(config.environment.spec),
            *(in_repository(path) for path in config_lock_files()),
        ),
        "context": (f"{in_repository(config.image.context)}/postBuild",),
        "base_reference": ("hub.toml",),
        "base_image_id": ("hub.toml",),
        "toolkit_version": ("pyproject.toml",),
        "buildpack_version": ("tooling/buildpack/__init__.py",),
        "installer_sha256": ("tooling/buildpack/files/install_lock.py",),
        "repo2docker_version": ("pyproject.toml",),
        "rattler_version": ("pyproject.toml",),
    }


def config_lock_files() -> list[Path]:
    config = load_config(PROJECT / "hub.toml")
    lock_dir = config.environment.lock_dir
    return [lock_dir / "conda-lock.yml", *(lock_dir / f"conda-{p}.lock" for p in config.environment.platforms)]


# What else decides what the image build does: the nox session that runs it, and the workflow itself.
BUILD_INPUTS = ("noxfile.py", ".github/workflows/image.yml", "tooling/smoke/__init__.py")


def load(path: Path) -> dict[str, Any]:
    # YAML 1.2 (ruamel): `on:` stays the string "on", as GitHub reads it.
    data: dict[str, Any] = YAML(typ="safe").load(path.read_text(encoding="utf-8"))
    return data


def jobs(path: Path) -> Iterator[tuple[str, dict[str, Any]]]:
    yield from load(path)["jobs"].items()


def steps(job: dict[str, Any]) -> list[dict[str, Any]]:
    return list(job.get("steps", []))


def action(step: dict[str, Any]) -> str:
    return str(step["uses"]).split("@")[0]


def filter_matches(pattern: str, path: str) -> bool:
    """GitHub's path filter glob: `**` crosses folders, `*` does not."""
    parts = re.split(r"(\*\*|\*)", pattern)
    regex = "".join(".*" if part == "**" else "[^/]*" if part == "*" else re.escape(part) for part in parts)
    return re.fullmatch(regex, path) is not None


def triggered_by(filters: list[str], path: str) -> bool:
    return any(filter_matches(pattern, path) for pattern in filters)


def image_filters() -> dict[str, list[str]]:
    triggers = load(IMAGE)["on"]
    return {event: list(triggers[event]["paths"]) for event in ("pull_request", "push")}


def stage_invocations(job: dict[str, Any]) -> list[tuple[int, int]]:
    """The stages a job's run steps run (`nox -s NAME`, `python -m tooling NAME`), as (first, last) indices
    into STAGE_NAMES, in step order."""
    by_command: dict[str, int] = {}
    for index, stage in enumerate(STAGES):
        if stage.automated:
            by_command.setdefault(stage.command[0], index)
    found = []
    for step in steps(job):
        words = shlex.split(str(step.get("run", "")))
        for position in range(1, len(words) - 1):
            if words[position - 1 : position + 1] not in (["nox", "-s"], ["-m", "tooling"]):
                continue
            command, rest = words[position + 1], words[position + 2 :]
            if command == "pipeline":
                found.append(pipeline_range(rest))
            elif command in by_command:
                found.append((by_command[command], by_command[command]))
    return found


def pipeline_range(arguments: list[str]) -> tuple[int, int]:
    defaults = build_parser().parse_args(["pipeline"])
    start, stop = defaults.start, defaults.stop
    for option, value in itertools.pairwise(arguments):
        if option == "--from":
            start = value
        elif option == "--to":
            stop = value
    assert start in STAGE_NAMES, f"pipeline --from {start}: no such stage in tooling.pipeline"
    assert stop in STAGE_NAMES, f"pipeline --to {stop}: no such stage in tooling.pipeline"
    return STAGE_NAMES.index(start), STAGE_NAMES.index(stop)


def needed_permissions(job: dict[str, Any]) -> dict[str, str]:
    needed: dict[str, str] = {}

    def need(scope: str, level: str) -> None:
        if needed.get(scope) != "write":
            needed[scope] = level

    for step in steps(job):
        if "uses" in step:
            name = action(step)
            assert name in ACTION_NEEDS, f"{name}: say in ACTION_NEEDS what GITHUB_TOKEN must allow it"
            uses_app_token = name == PULL_REQUEST_ACTION and "token" in step.get("with", {})
            for scope, level in ({} if uses_app_token else ACTION_NEEDS[name]).items():
                need(scope, level)
    if any(first <= PUSH_STAGE <= last for first, last in stage_invocations(job)):
        need("packages", "write")
    return needed


# ---------------------------------------------------------------- the tests


def test_the_workflows_are_found() -> None:
    assert {path.name for path in WORKFLOWS} >= {"image.yml", "toolkit.yml", "relock.yml", "values.yml"}


@pytest.mark.parametrize("path", WORKFLOWS, ids=lambda path: path.name)
def test_every_action_is_pinned_by_a_commit_sha_with_its_version_beside_it(path: Path) -> None:
    lines = path.read_text(encoding="utf-8").splitlines()
    for name, job in jobs(path):
        for step in steps(job):
            if "uses" not in step:
                continue
            assert PINNED.match(step["uses"]), f"{path.name} job {name}: {step['uses']} is not pinned by a 40-hex SHA"
            line = next(line for line in lines if step["uses"] in line)
            assert re.search(r"# v\d+\.\d+\.\d+$", line), f"{path.name}: `{line.strip()}` lacks its # vX.Y.Z"


@pytest.mark.parametrize("path", WORKFLOWS, ids=lambda path: path.name)
def test_every_job_has_a_timeout(path: Path) -> None:
    for name, job in jobs(path):
        minutes = job.get("timeout-minutes")
        assert isinstance(minutes, int), f"{path.name} job {name} has no timeout-minutes (GitHub's default is 6 h)"
        assert 0 < minutes <= 180, f"{path.name} job {name}: timeout-minutes {minutes}"


@pytest.mark.parametrize("path", WORKFLOWS, ids=lambda path: path.name)
def test_nothing_is_granted_at_the_top_level(path: Path) -> None:
    assert load(path)["permissions"] == {}, f"{path.name}: top-level permissions must be {{}}; grant per job"


@pytest.mark.parametrize("path", WORKFLOWS, ids=lambda path: path.name)
def test_every_job_is_granted_exactly_what_its_steps_need(path: Path) -> None:
    for name, job in jobs(path):
        granted = job.get("permissions", {})
        assert isinstance(granted, dict), f"{path.name} job {name}: permissions: {granted} (list each scope)"
        assert granted == needed_permissions(job), f"{path.name} job {name}: granted {granted}"


@pytest.mark.parametrize("path", WORKFLOWS, ids=lambda path: path.name)
def test_pull_requests_are_opened_with_an_app_token_limited_to_pull_requests(path: Path) -> None:
    for name, job in jobs(path):
        app_steps = {step.get("id"): step for step in steps(job) if "uses" in step and action(step) == APP_TOKEN_ACTION}
        for step in steps(job):
            if "uses" in step and action(step) == PULL_REQUEST_ACTION:
                token = step.get("with", {}).get("token", "")
                step_id = re.fullmatch(r"\$\{\{ steps\.([\w-]+)\.outputs\.token \}\}", token)
                assert step_id, f"{path.name} job {name}: a GITHUB_TOKEN pull request starts no CI; use the App's"
                assert step_id[1] in app_steps
        for step in app_steps.values():
            inputs = {key: value for key, value in step["with"].items() if key.startswith("permission-")}
            assert inputs == APP_TOKEN_PERMISSIONS, f"{path.name} job {name}: the App token may do {inputs}"


def test_a_missing_app_is_one_failing_step_before_anything_is_pushed() -> None:
    workflow = dict(jobs(IMAGE))
    pushing = [name for name, job in workflow.items() if "packages" in job.get("permissions", {})]
    assert pushing == ["release"]

    def upstream(name: str) -> set[str]:
        needs = workflow[name].get("needs", [])
        direct = {needs} if isinstance(needs, str) else set(needs)
        return direct.union(*(upstream(parent) for parent in direct)) if direct else set()

    checks = [
        name
        for name in upstream("release")
        if any(f"tooling.ci require {' '.join(APP_SECRETS)}" in step.get("run", "") for step in steps(workflow[name]))
    ]
    assert checks, "release must need a job that checks the App's id and key before it pushes"


def test_the_bump_waits_for_the_newest_check_and_pushing_and_opening_are_separate_jobs() -> None:
    workflow = dict(jobs(IMAGE))
    bump = next(
        name
        for name, job in workflow.items()
        if any("uses" in step and action(step) == PULL_REQUEST_ACTION for step in steps(job))
    )
    assert "packages" not in workflow[bump].get("permissions", {})
    assert "newest" in workflow[bump]["needs"]
    assert workflow[bump]["if"] == "needs.newest.outputs.newest == 'true'"


def test_every_tag_input_is_in_the_image_builds_path_filters_and_in_the_newest_check() -> None:
    sources = tag_input_paths()
    assert set(sources) == {field.name for field in dataclasses.fields(TagInputs)}, (
        "TagInputs changed: say in tag_input_paths which files decide the new input"
    )
    wanted = {path for paths in sources.values() for path in paths} | set(BUILD_INPUTS)
    for event, filters in image_filters().items():
        missing = sorted(path for path in wanted if not triggered_by(filters, path))
        assert not missing, f"image.yml on {event}: a change to {missing} would not build the image"
    runs = [step.get("run", "") for _, job in jobs(IMAGE) for step in steps(job)]
    words = shlex.split(next(run for run in runs if "tooling.ci newest" in run))
    newest_paths = words[words.index("--since") + 2 : words.index(">>")]
    newest_filters = [f"{path}/**" if (PROJECT / path).is_dir() else path for path in newest_paths]
    missing = sorted(path for path in wanted if not triggered_by(newest_filters, path))
    assert not missing, f"the newest check ignores changes to {missing}"


def test_a_values_change_builds_nothing_and_is_checked_instead() -> None:
    values_file = load_config(PROJECT / "hub.toml").deploy_target("staging").image[0].file
    changed = in_repository(values_file)
    for event, filters in image_filters().items():
        assert not triggered_by(filters, changed), f"image.yml on {event} builds after a change to {changed}"
    values = load(WORKFLOW_DIR / "values.yml")
    assert triggered_by(list(values["on"]["pull_request"]["paths"]), changed)
    runs = [step.get("run", "") for _, job in jobs(WORKFLOW_DIR / "values.yml") for step in steps(job)]
    assert "python -m nox -s check -- --all" in runs


@pytest.mark.parametrize("path", WORKFLOWS, ids=lambda path: path.name)
def test_workflows_run_the_stages_in_pipelines_order(path: Path) -> None:
    for name, job in jobs(path):
        invocations = stage_invocations(job)
        for first, last in invocations:
            assert first <= last, f"{path.name} job {name}: pipeline from {STAGE_NAMES[first]} to {STAGE_NAMES[last]}"
        ends = [index for pair in invocations for index in pair]
        assert ends == sorted(ends), f"{path.name} job {name} runs stages out of tooling.pipeline's order"


def test_the_stage_order_check_sees_the_pipeline_calls() -> None:
    workflow = dict(jobs(IMAGE))
    assert stage_invocations(workflow["check"]) == [(0, STAGE_NAMES.index("test"))]
    assert stage_invocations(workflow["release"]) == [(0, STAGE_NAMES.index("check-staging"))]
    out_of_order = {"steps": [{"run": "python -m nox -s build"}, {"run": "python -m tooling lock"}]}
    assert stage_invocations(out_of_order) == [(1, 1), (0, 0)]


@pytest.mark.parametrize("path", WORKFLOWS, ids=lambda path: path.name)
def test_runs_are_startable_by_hand_and_pull_request_runs_cancel_superseded_ones(path: Path) -> None:
    workflow = load(path)
    assert "workflow_dispatch" in workflow["on"]
    if "pull_request" in workflow["on"]:
        cancel = str(workflow["concurrency"]["cancel-in-progress"])
        assert cancel in ("True", "${{ github.event_name == 'pull_request' }}"), f"{path.name}: {cancel}"


@pytest.mark.parametrize("path", WORKFLOWS, ids=lambda path: path.name)
def test_every_job_that_runs_the_toolkit_uploads_its_reports_and_logs(path: Path) -> None:
    for name, job in jobs(path):
        if not any("nox -s" in step.get("run", "") and "lint" not in step["run"] for step in steps(job)):
            continue
        uploads = [
            step
            for step in steps(job)
            if "uses" in step and action(step) == "actions/upload-artifact" and step.get("if") == "always()"
        ]
        assert uploads, f"{path.name} job {name}: no upload of .hubship/ that runs on failure too"
        settings = uploads[0]["with"]
        assert settings["include-hidden-files"] is True, "upload-artifact drops .hubship/ without it"
        assert {".hubship/reports", ".hubship/logs"} <= set(settings["path"].split())


def test_registry_credentials_default_to_ghcr_with_the_runs_token_and_follow_settings() -> None:
    release = dict(jobs(IMAGE))["release"]
    pipeline = next(step for step in steps(release) if "nox -s pipeline" in step.get("run", ""))
    assert pipeline["env"] == {
        "HUBSHIP_REGISTRY_USERNAME": "${{ vars.HUBSHIP_REGISTRY_USERNAME || github.actor }}",
        "HUBSHIP_REGISTRY_PASSWORD": "${{ secrets.HUBSHIP_REGISTRY_PASSWORD || secrets.GITHUB_TOKEN }}",
    }


def test_the_path_filter_glob_reads_as_githubs() -> None:
    assert filter_matches("tooling/**", "tooling/cli/lock_cmd.py")
    assert not filter_matches("deploy/*.yaml", "deploy/sub/staging.yaml")
    assert filter_matches("deploy/*.yaml", "deploy/staging.yaml")
    assert not filter_matches("hub.toml", "hub.tomlx")
