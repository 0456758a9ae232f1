"""rollback ENV: back to the previous deployed revision (or one named), rolled out, and the image it runs."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from tooling.config import HubConfig
from tooling.deploy import wait_for_rollout
from tooling.deploy.failure import failed, output_of
from tooling.deploy.helm import Revision
from tooling.deploy.target import Target
from tooling.errors import CommandFailed, ToolingError
from tooling.images import ImageReference

# Statuses of revisions that ran on the cluster (Helm marks the one before the current one `superseded`).
RAN = ("deployed", "superseded")


@dataclass(frozen=True)
class RollbackRequest:
    target: Target
    to_revision: int | None

    @classmethod
    def from_config(cls, config: HubConfig, environment: str, *, to_revision: int | None = None) -> RollbackRequest:
        return cls(Target.from_config(config, environment), to_revision)


@dataclass(frozen=True)
class RollbackResult:
    environment: str
    revision: int  # the revision rolled back to
    image: ImageReference  # the image that revision's values hold
    rolled_out: tuple[str, ...]


def rollback(request: RollbackRequest) -> RollbackResult:
    target = request.target
    target.require_context()
    target.helm.version()
    history = target.helm.history(target.release)
    revision = _chosen(target, history, request.to_revision)
    image = _image_of(target, target.helm.values(target.release, revision))
    try:
        target.helm.rollback(target.release, revision, target.settings.timeout, target.settings.history_max)
    except CommandFailed as exc:
        raise failed(target, f"helm rollback to revision {revision}", output_of(exc)) from None
    rolled_out = wait_for_rollout(target, f"rollout after the rollback to revision {revision}")
    return RollbackResult(target.environment, revision, image, rolled_out)


def _chosen(target: Target, history: list[Revision], wanted: int | None) -> int:
    numbers = [revision.number for revision in history]
    if wanted is not None:
        if wanted not in numbers:
            raise ToolingError(
                f"rollback {target.environment}: release {target.release.name} has no revision {wanted} "
                f"(it keeps {', '.join(map(str, numbers)) or 'none'})."
            )
        return wanted
    current = max((r.number for r in history if r.status == "deployed"), default=0)
    earlier = [r.number for r in history if r.status in RAN and r.number < current]
    if not earlier:
        raise ToolingError(
            f"rollback {target.environment}: release {target.release.name} has no earlier revision that ran; "
            "name one with --to-revision N."
        )
    return earlier[-1]


def _image_of(target: Target, values: dict[str, Any]) -> ImageReference:
    """The image at the first [deploy.ENV].image path of a revision's values (name and tag, or NAME:TAG)."""
    path = target.settings.image[0].path
    node: Any = values
    for key in path.split("."):
        node = node.get(key) if isinstance(node, dict) else None
    if isinstance(node, dict) and node.get("name") and node.get("tag") is not None:
        return ImageReference.parse(f"{node['name']}:{node['tag']}", source=f"helm get values ({path})")
    if isinstance(node, str):
        return ImageReference.parse(node, source=f"helm get values ({path})")
    raise ToolingError(f"rollback {target.environment}: that revision's values hold no image at {path}.")
