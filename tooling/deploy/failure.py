"""A failed deploy, rollout, rollback or verify: the failing step, what the program said, the history, the way back."""

from __future__ import annotations

from collections.abc import Sequence

from tooling.deploy.helm import recent_history
from tooling.deploy.target import Target
from tooling.errors import CommandFailed, ToolingError


class DeployFailed(ToolingError):
    """One message with everything a person needs to act on a failed step against a cluster."""


def failed(target: Target, step: str, said: Sequence[str]) -> DeployFailed:
    """The failure of `step` against `target`'s release, with its last lines, the release's history and rollback."""
    release = target.release
    lines = [f"{target.environment}: {step} failed."]
    if said:
        lines += ["Last lines of output:", *(f"    {line}" for line in said)]
    lines += [f"Recent history of release {release.name} (namespace {release.namespace}):"]
    lines += [f"    {line}" for line in recent_history(target.helm, release)]
    lines += [
        "To go back to the revision that ran before:",
        f"    python -m tooling rollback {target.environment}",
        f"    (helm itself: {target.helm.cli} rollback {release.name} --namespace {release.namespace} "
        f"--kube-context {release.context} --cleanup-on-fail)",
    ]
    return DeployFailed("\n".join(lines))


def output_of(error: ToolingError) -> list[str]:
    """The program's own last lines when `error` is a failed command; the message's lines otherwise."""
    if isinstance(error, CommandFailed):
        return [*error.output_tail, *([] if error.output_tail else [error.message.splitlines()[0]])]
    return error.message.splitlines()
