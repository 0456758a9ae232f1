"""The deploy stage: put an environment's committed values on its cluster, and prove the hub runs them.

- `deploy` (this module): refuses a kube context other than hub.toml's, reads
  Helm's major version, runs `helm upgrade --install` of the release with the
  pinned chart, the values files in hub.toml order (and a secret values file
  an environment variable names), `--create-namespace --cleanup-on-fail
  --timeout --history-max`, then waits for every Deployment and DaemonSet of
  the release's manifest to roll out (`kubectl rollout status`).
- `verify`: the hub spawn check (`tooling.hubcheck`) against ENV's hub URL,
  the image's own reference read in the kernel, the tutorials run cell by
  cell; a pass writes deploy/verified/ENV.json (`records`).
- `promote`: decides from staging's record whether its image may go to prod.
- `rollback`: helm rollback to the previous deployed revision (or one named),
  waits for the rollout, and says which image now runs.

The values check before a deploy, the bump of prod's values and the verify
after a rollback are other stages: the CLI composes them (tooling/cli/).
Every failure against the cluster is a `DeployFailed` with the failing step,
the program's last lines, the release's recent history and the rollback
command.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from tooling.config import HubConfig
from tooling.deploy.failure import DeployFailed, failed, output_of
from tooling.deploy.kubectl import workloads
from tooling.deploy.target import Target
from tooling.errors import CommandFailed
from tooling.log import logger

__all__ = ["DeployFailed", "DeployRequest", "DeployResult", "deploy", "wait_for_rollout"]


@dataclass(frozen=True)
class DeployRequest:
    target: Target

    @classmethod
    def from_config(cls, config: HubConfig, environment: str) -> DeployRequest:
        return cls(Target.from_config(config, environment))


@dataclass(frozen=True)
class DeployResult:
    environment: str
    release: str
    namespace: str
    revision: int
    chart: str  # NAME VERSION as hub.toml pins it
    image: str  # what the values hold
    helm_version: str
    rolled_out: tuple[str, ...]  # KIND/NAME: kubectl's last line
    seconds: float


def deploy(request: DeployRequest) -> DeployResult:
    """helm upgrade --install, then the rollout of every Deployment and DaemonSet; `DeployFailed` otherwise."""
    target = request.target
    started = time.monotonic()
    image = target.image()
    target.require_context()
    helm_version = target.helm.version()
    logger.info(
        "%s: Helm %s, release %s in %s", target.environment, helm_version, target.release.name, target.release.namespace
    )
    values = [*target.values_files(), *target.secret_values()]
    settings = target.settings
    try:
        revision = target.helm.upgrade(
            target.release, target.chart_arguments(), values, settings.timeout, settings.history_max
        )
    except CommandFailed as exc:
        raise failed(target, "helm upgrade --install", output_of(exc)) from None
    rolled_out = wait_for_rollout(target, "rollout after the upgrade")
    return DeployResult(
        environment=target.environment,
        release=target.release.name,
        namespace=target.release.namespace,
        revision=revision,
        chart=f"{settings.chart} {settings.chart_version}",
        image=str(image),
        helm_version=helm_version,
        rolled_out=rolled_out,
        seconds=time.monotonic() - started,
    )


def wait_for_rollout(target: Target, step: str) -> tuple[str, ...]:
    """`kubectl rollout status` of every Deployment and DaemonSet of the release, one after another."""
    release = target.release
    try:
        names = workloads(target.helm.manifest(release))
    except CommandFailed as exc:
        raise failed(target, f"{step}: helm get manifest", output_of(exc)) from None
    said = []
    for workload in names:
        try:
            line = target.kubectl.rollout_status(
                release.context, release.namespace, workload, target.settings.rollout_timeout
            )
        except CommandFailed as exc:
            raise failed(target, f"{step}: kubectl rollout status {workload}", output_of(exc)) from None
        said.append(f"{workload}: {line}")
    return tuple(said)
