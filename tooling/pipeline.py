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

Deploying, verifying and promoting are commands too (`tooling.deploy`).
The one manual stage is approving prod: in CI, the `prod` GitHub
Environment's required reviewers. The pipeline stops before it and says
what to do next.
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


def approve_prod(config: HubConfig) -> list[str]:
    target = config.deploy_target("prod")
    where = ", ".join(f"{location.path} in {location.file}" for location in target.image)
    return [
        f"# read the promotion's diff ({where}) and staging's record (deploy/verified/staging.json), then:",
        "# in GitHub: approve the deploy job of the 'prod' environment (Actions -> the run -> Review deployments)",
        "# by hand: merge the promotion, then run the next step",
    ]


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
        "`check staging` first, then Helm upgrades the staging release with the committed values and the pinned "
        "chart, and every Deployment and DaemonSet of the release rolls out.",
        "values that fail `check staging`; a kube context other than hub.toml's; a rollout that does not finish",
        command=("deploy", "staging"),
    ),
    Stage(
        "verify-staging",
        "Verify staging",
        "Through the staging hub's API: a check user's server starts, runs the image's own reference check and "
        "the tutorials cell by cell, and stops. A pass writes `deploy/verified/staging.json`; commit it.",
        "a hub that runs another image than the values name; a server that does not start; a failing cell",
        command=("verify", "staging"),
    ),
    Stage(
        "promote",
        "Promote to prod",
        "The image staging's record says passed is copied into the prod values (never typed by hand), and "
        "`check prod` runs. Commit the change.",
        "a staging record that is missing, failed, or names another image than staging's values",
        command=("promote",),
    ),
    Stage(
        "check-prod",
        "Check the prod values",
        "The promoted prod values pass the same check as staging's before anyone deploys them.",
        "duplicate keys, schema findings, unknown KubeSpawner options or volume fields, a failing rule",
        command=("check", "prod"),
    ),
    Stage(
        "approve-prod",
        "Approve prod",
        "A person reviews the promotion and approves the prod deploy (the workflow's `prod` environment requires it).",
        "the promotion names the image staging verified",
        manual=approve_prod,
    ),
    Stage(
        "deploy-prod",
        "Deploy prod",
        "`check prod` first, then Helm upgrades the production release and every workload rolls out.",
        "values that fail `check prod`; a kube context other than hub.toml's; a rollout that does not finish",
        command=("deploy", "prod"),
    ),
    Stage(
        "verify-prod",
        "Verify prod",
        "The same check as staging's, against the production hub; a pass writes `deploy/verified/prod.json`.",
        "a hub that runs another image than the values name; a server that does not start; a failing cell",
        command=("verify", "prod"),
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
