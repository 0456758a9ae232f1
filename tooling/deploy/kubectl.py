"""kubectl, as the deploy stage runs it: the current context, and `rollout status` of a release's workloads."""

from __future__ import annotations

import shlex
from collections.abc import Iterator
from dataclasses import dataclass

import yaml

from tooling import proc
from tooling.log import logger

KUBECTL_HINT = "Install kubectl, or name it in hub.toml ([kubectl] cli) or HUBSHIP_KUBECTL."
QUICK_TIMEOUT = 60.0
GRACE = 30.0
# The kinds whose rollout a deploy waits for, as `kubectl rollout status` names them.
ROLLOUT_KINDS = {"Deployment": "deployment", "DaemonSet": "daemonset"}


@dataclass(frozen=True)
class Kubectl:
    cli: str

    def current_context(self) -> str:
        completed = proc.run([self.cli, "config", "current-context"], timeout=QUICK_TIMEOUT, hint=KUBECTL_HINT)
        return completed.stdout.strip()

    def rollout_status(self, context: str, namespace: str, workload: str, timeout: int) -> str:
        """Wait until `workload` (KIND/NAME) has rolled out; kubectl's last line."""
        argv = [self.cli, "--context", context, "--namespace", namespace, "rollout", "status", workload]
        argv.append(f"--timeout={timeout}s")
        logger.info("$ %s", shlex.join(argv))
        completed = proc.run(argv, timeout=timeout + GRACE, hint=KUBECTL_HINT)
        lines = completed.stdout.strip().splitlines()
        return lines[-1] if lines else ""


def workloads(manifest: str) -> list[str]:
    """KIND/NAME of every Deployment and DaemonSet in a release's rendered manifest, in its order."""
    return list(dict.fromkeys(_workloads(manifest)))


def _workloads(manifest: str) -> Iterator[str]:
    for document in yaml.safe_load_all(manifest):
        if isinstance(document, dict) and document.get("kind") in ROLLOUT_KINDS:
            yield f"{ROLLOUT_KINDS[document['kind']]}/{document['metadata']['name']}"
