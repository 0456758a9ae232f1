"""Helm, as the deploy stage runs it: only flags that mean the same in Helm 3.13+ and Helm 4.

Every call names the release's namespace and kube context, so a change of
the KUBECONFIG's current context between two calls cannot move a deploy to
another cluster. Output that may hold values (`get values`, `upgrade -o
json`) is parsed, never logged; command lines are logged (they hold no
secret: a secret values file is passed by path, and its path is redacted).
"""

from __future__ import annotations

import json
import re
import shlex
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tooling import proc
from tooling.errors import CommandFailed, ToolingError
from tooling.log import logger, redact

HELM_HINT = "Install Helm 3.13+ or 4, or name it in hub.toml ([helm] cli) or HUBSHIP_HELM."
# Seconds a quick helm call (version, history, status, get) may take.
QUICK_TIMEOUT = 120.0
# Seconds helm gets beyond its own --timeout before it is stopped.
GRACE = 60.0
HISTORY_SHOWN = 5
_VERSION = re.compile(r"^v(\d+)\.(\d+)\.(\d+)")


@dataclass(frozen=True)
class Release:
    """Where a release lives: helm's name for it, its namespace, the kube context of its cluster."""

    name: str
    namespace: str
    context: str

    def flags(self) -> list[str]:
        return ["--namespace", self.namespace, "--kube-context", self.context]


@dataclass(frozen=True)
class Revision:
    number: int
    status: str
    chart: str
    updated: str
    description: str


@dataclass(frozen=True)
class Helm:
    cli: str

    def run(self, *args: str, timeout: float = QUICK_TIMEOUT, show: bool = False) -> proc.Completed:
        argv = [self.cli, *args]
        if show:
            logger.info("$ %s", redact(shlex.join(argv)))
        return proc.run(argv, timeout=timeout, hint=HELM_HINT)

    def version(self) -> str:
        """Helm's version (v3.x.y or v4.x.y); Helm before 3.13 is refused."""
        said = self.run("version", "--template", "{{.Version}}").stdout.strip()
        match = _VERSION.match(said)
        if match is None:
            raise ToolingError(f"`{self.cli} version` said {said[:80]!r}, not a Helm version. {HELM_HINT}")
        major, minor = int(match.group(1)), int(match.group(2))
        if major < 3 or (major == 3 and minor < 13):
            raise ToolingError(f"{self.cli} is Helm {said}; the deploy needs Helm 3.13+ or 4. {HELM_HINT}")
        return said

    def upgrade(self, release: Release, chart: list[str], values: list[Path], timeout: int, history_max: int) -> int:
        """`helm upgrade --install` as the chart's docs run it; the revision it made."""
        argv = ["upgrade", "--install", release.name, *chart, *release.flags(), "--create-namespace"]
        for file in values:
            argv += ["--values", str(file)]
        argv += ["--cleanup-on-fail", "--timeout", f"{timeout}s", "--history-max", str(history_max)]
        completed = self.run(*argv, "--output", "json", timeout=timeout + GRACE, show=True)
        return int(_json(completed.stdout, "upgrade").get("version", 0))

    def rollback(self, release: Release, revision: int, timeout: int, history_max: int) -> None:
        argv = ["rollback", release.name, str(revision), *release.flags(), "--cleanup-on-fail"]
        argv += ["--timeout", f"{timeout}s", "--history-max", str(history_max)]
        self.run(*argv, timeout=timeout + GRACE, show=True)

    def history(self, release: Release) -> list[Revision]:
        rows = _json(self.run("history", release.name, *release.flags(), "--output", "json").stdout, "history")
        return [
            Revision(
                int(row["revision"]),
                str(row["status"]),
                str(row["chart"]),
                str(row["updated"]),
                str(row["description"]),
            )
            for row in rows
        ]

    def values(self, release: Release, revision: int) -> dict[str, Any]:
        argv = ["get", "values", release.name, *release.flags(), "--revision", str(revision), "--output", "json"]
        return dict(_json(self.run(*argv).stdout, "get values") or {})

    def manifest(self, release: Release) -> str:
        return self.run("get", "manifest", release.name, *release.flags()).stdout

    def status(self, release: Release) -> dict[str, Any]:
        return dict(_json(self.run("status", release.name, *release.flags(), "--output", "json").stdout, "status"))


def _json(text: str, what: str) -> Any:
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        raise ToolingError(f"`helm {what} --output json` printed something that is not JSON.") from None


def recent_history(helm: Helm, release: Release) -> list[str]:
    """The release's last revisions as lines, for a failure message; what went wrong reading it, otherwise."""
    try:
        revisions = helm.history(release)[-HISTORY_SHOWN:]
    except (CommandFailed, ToolingError) as exc:
        return [f"(helm history failed: {exc.message.splitlines()[0]})"]
    return [f"{r.number:>4}  {r.status:<16} {r.chart:<20} {r.updated[:19]}  {r.description}" for r in revisions]
