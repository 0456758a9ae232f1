"""The order every change to the user image travels in, written once.

    lock -> build -> smoke-test -> push -> bump staging -> check staging
         -> deploy staging -> verify staging -> promote -> check prod
         -> deploy prod -> verify prod

`STAGES` is the only place this order exists. `python -m tooling pipeline`
runs its automated stages in order, the runbook (`python -m tooling runbook`,
committed as docs/runbook.md) is rendered from it, every command's "Next:"
line is derived from it (`next_after`, `Stage.command_line`), and the nox
session and GitHub workflow call `pipeline` rather than listing stages
themselves. The stages appear here as data (names and command lines): this
module imports none of them. Each
stage is a `python -m tooling` command, so a step of the runbook, a nox
session and a CI step are the same command line.

Deploying and verifying a hub need a cluster, which the toolkit does not
drive yet: those stages are manual, and the runbook gives their exact helm
command lines from hub.toml. The pipeline stops before the first manual
stage and says what to do next.
"""

from __future__ import annotations

import shlex
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from tooling.config import HubConfig


@dataclass(frozen=True)
class Stage:
    """One step of the order: a toolkit command, or a manual step with the commands to run."""

    name: str
    title: str
    does: str
    gate: str  # what the stage refuses; for a manual stage, what to check first
    command: tuple[str, ...] = ()
    manual: Callable[[HubConfig], list[str]] | None = None

    @property
    def automated(self) -> bool:
        return bool(self.command)

    def command_line(self) -> str:
        return shlex.join(("python", "-m", "tooling", *self.command))

    def instructions(self, config: HubConfig) -> list[str]:
        """The command lines a person runs for this stage."""
        if self.automated:
            return [self.command_line()]
        assert self.manual is not None
        return self.manual(config)


def helm_upgrade(environment: str) -> Callable[[HubConfig], list[str]]:
    def commands(config: HubConfig) -> list[str]:
        target = config.deploy_target(environment)
        values = " ".join(f"--values {shlex.quote(str(path))}" for path in target.values)
        setup = []
        repository, slash, _ = target.chart.partition("/")
        if slash and not target.chart.startswith(("oci://", ".", "/")) and not target.chart.endswith(".tgz"):
            setup = [f"helm repo add {repository} {target.chart_repository} && helm repo update {repository}"]
        return [
            *setup,
            f"helm upgrade --install {target.release} {target.chart} --version {target.chart_version} "
            f"--namespace {target.namespace} --create-namespace {values} --wait --timeout 10m",
        ]

    return commands


def verify_hub(environment: str) -> Callable[[HubConfig], list[str]]:
    def commands(config: HubConfig) -> list[str]:
        target = config.deploy_target(environment)
        where = ", ".join(f"{location.path} in {location.file}" for location in target.image)
        return [
            f"# the user pods must run the image the values hold ({where})",
            f"kubectl --namespace {target.namespace} get pods --selector component=singleuser-server "
            "--output jsonpath='{..image}'",
            "# then log in, start a server, and run the tutorial notebooks that hub.toml [smoke] lists",
        ]

    return commands


STAGES: tuple[Stage, ...] = (
    Stage(
        "lock",
        "Check the lock",
        "`conda-lock.yml` and `conda-linux-64.lock` match `environment.yml`. After an edit to it, "
        "`python -m tooling lock` rewrites them; commit both.",
        "a lock that is stale, hand-edited or missing a platform",
        command=("lock", "--check"),
    ),
    Stage(
        "build",
        "Build the image",
        "repo2docker builds the user image with exactly the lock installed; its tag is derived from the inputs.",
        "a stale lock (unless --allow-stale-lock)",
        command=("build",),
    ),
    Stage(
        "test",
        "Smoke-test the image",
        "The image runs as jovyan, holds exactly the lock, imports its packages, starts the way JupyterHub "
        "starts it, spawns through a real hub, and runs the tutorials and `image/tests`.",
        "an image the build stage did not record (or --image)",
        command=("test",),
    ),
    Stage(
        "push",
        "Push the image",
        "The tested image goes to the registry under its immutable tag; prints `NAME:TAG@DIGEST`.",
        "an image that did not pass the smoke test; a tag that already holds another image",
        command=("push",),
    ),
    Stage(
        "bump-staging",
        "Bump staging",
        "The pushed tag is written into the staging values. Commit the change.",
        "no recorded push (pass --tag to name a tag); a values file with duplicate keys or no such path",
        command=("bump", "staging"),
    ),
    Stage(
        "check-staging",
        "Check the staging values",
        "The staging values against the pinned chart's schema, KubeSpawner's option names, the rules learned in "
        "2020 and a `helm template` render: the image lands where the values say.",
        "duplicate keys, schema findings, unknown KubeSpawner options or volume fields, a failing rule",
        command=("check", "staging"),
    ),
    Stage(
        "deploy-staging",
        "Deploy staging",
        "Helm upgrades the staging hub with the committed values.",
        "the bumped values are committed and pushed, so the hub runs what the repository says",
        manual=helm_upgrade("staging"),
    ),
    Stage(
        "verify-staging",
        "Verify staging",
        "Spawn a server on the staging hub and run the tutorials, as a user would.",
        "the staging hub's user pods run the new tag",
        manual=verify_hub("staging"),
    ),
    Stage(
        "promote",
        "Promote to prod",
        "The image verified on staging is copied into the prod values, never typed by hand. Commit the change.",
        "staging values without a valid image at their path; a values file with duplicate keys",
        command=("bump", "prod", "--from-env", "staging"),
    ),
    Stage(
        "check-prod",
        "Check the prod values",
        "The promoted prod values pass the same check as staging's before anyone deploys them.",
        "duplicate keys, schema findings, unknown KubeSpawner options or volume fields, a failing rule",
        command=("check", "prod"),
    ),
    Stage(
        "deploy-prod",
        "Deploy prod",
        "Helm upgrades the production hub with the committed values.",
        "the promoted values are committed and pushed",
        manual=helm_upgrade("prod"),
    ),
    Stage(
        "verify-prod",
        "Verify prod",
        "Spawn a server on the production hub and run the tutorials, as a user would.",
        "the production hub's user pods run the new tag",
        manual=verify_hub("prod"),
    ),
)

STAGE_NAMES = tuple(stage.name for stage in STAGES)


def automated_run(start: str, stop: str) -> list[Stage]:
    """The stages from `start` to `stop`, cut before the first manual stage."""
    first, last = STAGE_NAMES.index(start), STAGE_NAMES.index(stop)
    selected: list[Stage] = []
    for stage in STAGES[first : last + 1]:
        if not stage.automated:
            break
        selected.append(stage)
    return selected


def stage_named(name: str) -> Stage:
    """The stage called `name`."""
    return STAGES[STAGE_NAMES.index(name)]


def next_after(name: str) -> Stage | None:
    """The stage after `name`, or None after the last one."""
    index = STAGE_NAMES.index(name)
    return STAGES[index + 1] if index + 1 < len(STAGES) else None


def runbook(config: HubConfig) -> str:
    """The runbook as Markdown: every stage, in order, with its gate and the exact commands."""
    lines = [
        "# Runbook: from environment.yml to the production hub",
        "",
        "Written by `python -m tooling runbook` from the order defined in `tooling/pipeline.py` and this hub's "
        "`hub.toml`; do not edit by hand. `python -m tooling pipeline` (or `nox -s pipeline`, or the GitHub "
        "workflow) runs the automated stages in this order and stops before the first manual one.",
        "",
        "Each stage refuses input that did not pass the stage before it (its gate).",
        "",
    ]
    for number, stage in enumerate(STAGES, start=1):
        kind = "" if stage.automated else " (manual)"
        gate = f"Refuses: {stage.gate}." if stage.automated else f"Check first: {stage.gate}."
        lines += [f"## {number}. {stage.title}{kind}", "", stage.does, ""]
        lines += [gate, "", "```bash", *stage.instructions(config), "```", ""]
    return "\n".join(lines)
