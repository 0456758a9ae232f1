"""The stand-in's release commands: upgrade --install, history, get values/manifest, rollback, status.

Releases live in the stand-ins' cluster folder (`cluster.py`). Upgrades
render the real chart with Helm's engine, schema check included. Faults, for
tests: HELM_STANDIN_FAIL_UPGRADE=MESSAGE records a failed revision and fails
as Helm does; HELM_STANDIN_SLOW_UPGRADE=1 runs until its --timeout and then
fails with Helm's `context deadline exceeded`.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import helm_python

from tests.helm_standin import cluster
from tests.helm_standin.commands import CommandError, helm_version, load_chart, merged_values

FAIL_ENV = "HELM_STANDIN_FAIL_UPGRADE"
SLOW_ENV = "HELM_STANDIN_SLOW_UPGRADE"
# However long a --timeout says, a stand-in never sleeps longer than this.
LONGEST_SLEEP = 120.0
_DURATION = re.compile(r"^(?:(\d+)h)?(?:(\d+)m)?(?:(\d+)s)?$")


def duration(text: str) -> float:
    """A Go duration as Helm's --timeout takes it (300s, 5m, 1h2m3s)."""
    match = _DURATION.match(text)
    if not text or match is None:
        raise CommandError(f'invalid argument "{text}" for "--timeout" flag: time: invalid duration "{text}"')
    hours, minutes, seconds = (int(part or 0) for part in match.groups())
    return hours * 3600.0 + minutes * 60.0 + seconds


def _now() -> str:
    return datetime.now(UTC).isoformat()


def _chart(args: argparse.Namespace) -> Any:
    """The chart as Helm finds it: a local path, or NAME from --repo / an oci:// reference at --version."""
    reference = args.chart
    if Path(reference).exists():
        return load_chart(reference)
    if not args.repo and not reference.startswith("oci://"):
        raise CommandError(f"repo {reference.split('/')[0]} not found")
    with tempfile.TemporaryDirectory(prefix="helm-standin-") as scratch:
        try:
            helm_python.pull(reference, destination=scratch, version=args.version or None, repo_url=args.repo or None)
        except helm_python.HelmError as exc:
            raise CommandError(str(exc)) from exc
        archive = next(Path(scratch).glob("*.tgz"))
        return load_chart(str(archive))


def _release(revision: dict[str, Any], *, with_manifest: bool = True) -> dict[str, Any]:
    shown = dict(revision)
    if not with_manifest:
        shown.pop("manifest", None)
    return shown


def _render(chart: Any, values: dict[str, Any], release: str, namespace: str, *, version: int, action: str) -> str:
    try:
        chart.validate_schema(values)
        manifests = chart.render(
            values, name=release, namespace=namespace, revision=version, is_install=version == 1, is_upgrade=version > 1
        )
    except helm_python.HelmValuesError as exc:
        raise CommandError(
            f"{action} FAILED: values don't meet the specifications of the schema(s) in the following chart(s):\n{exc}"
        ) from exc
    except helm_python.HelmError as exc:
        raise CommandError(f"{action} FAILED: {exc}") from exc
    return "".join(
        f"---\n# Source: {path}\n{manifests[path].strip()}\n"
        for path in sorted(manifests)
        if path.endswith((".yaml", ".yml")) and manifests[path].replace("---", "").strip()
    )


def upgrade(args: argparse.Namespace) -> str:
    cluster.require_context(args.kube_context)
    timeout = duration(args.timeout)
    if helm_version().startswith("v4") and args.atomic:
        print("Flag --atomic has been deprecated, use --rollback-on-failure instead", file=sys.stderr)
    history = cluster.revisions(args.namespace, args.release)
    if not history and not args.install:
        raise CommandError(f'UPGRADE FAILED: "{args.release}" has no deployed releases')
    action = "UPGRADE" if history else "INSTALLATION"
    if not cluster.namespace_dir(args.namespace).is_dir():
        if not args.create_namespace:
            raise CommandError(f'{action} FAILED: create: failed to create: namespaces "{args.namespace}" not found')
        cluster.namespace_dir(args.namespace).mkdir(parents=True)
    chart = _chart(args)
    values = merged_values(args.values)
    version = history[-1]["version"] + 1 if history else 1
    manifest = _render(chart, values, args.release, args.namespace, version=version, action=action)
    revision = _revision(args, chart, values, manifest, version)
    if os.environ.get(SLOW_ENV):
        time.sleep(min(timeout, LONGEST_SLEEP))
        _fail(revision, "context deadline exceeded")
        raise CommandError(f"{action} FAILED: context deadline exceeded")
    if os.environ.get(FAIL_ENV):
        _fail(revision, os.environ[FAIL_ENV])
        raise CommandError(f"{action} FAILED: {os.environ[FAIL_ENV]}")
    _deploy(revision, history, args.history_max, "Upgrade complete" if history else "Install complete")
    if args.output == "json":
        return json.dumps(_release(revision)) + "\n"
    return (
        f'Release "{args.release}" has been upgraded. Happy Helming!\nNAME: {args.release}\n'
        f"NAMESPACE: {args.namespace}\nSTATUS: deployed\nREVISION: {version}\n"
    )


def _revision(
    args: argparse.Namespace, chart: Any, values: dict[str, Any], manifest: str, version: int
) -> dict[str, Any]:
    now = _now()
    return {
        "name": args.release,
        "namespace": args.namespace,
        "version": version,
        "info": {"first_deployed": now, "last_deployed": now, "status": "pending-upgrade", "description": ""},
        "chart": {"metadata": chart.metadata},
        "config": values,
        "manifest": manifest,
    }


def _fail(revision: dict[str, Any], reason: str) -> None:
    revision["info"].update(status="failed", description=f'Upgrade "{revision["name"]}" failed: {reason}')
    cluster.save(revision)


def _deploy(revision: dict[str, Any], history: list[dict[str, Any]], history_max: int, description: str) -> None:
    """The new revision runs; the one that ran is superseded; revisions beyond --history-max are forgotten."""
    cluster.apply(revision["namespace"], revision["manifest"])
    for old in history:
        if old["info"]["status"] == "deployed":
            old["info"]["status"] = "superseded"
            cluster.save(old)
    revision["info"].update(status="deployed", description=description)
    cluster.save(revision)
    kept = [*history, revision]
    for old in kept[: max(0, len(kept) - history_max)] if history_max > 0 else []:
        cluster.forget(old["namespace"], old["name"], old["version"])


def _require(namespace: str, release: str) -> list[dict[str, Any]]:
    cluster.root()
    history = cluster.revisions(namespace, release)
    if not history:
        raise CommandError("release: not found")
    return history


def history(args: argparse.Namespace) -> str:
    cluster.require_context(args.kube_context)
    revisions = _require(args.namespace, args.release)[-args.max :]
    rows = [
        {
            "revision": r["version"],
            "updated": r["info"]["last_deployed"],
            "status": r["info"]["status"],
            "chart": f"{r['chart']['metadata']['name']}-{r['chart']['metadata']['version']}",
            "app_version": r["chart"]["metadata"].get("appVersion", ""),
            "description": r["info"]["description"],
        }
        for r in revisions
    ]
    if args.output != "json":
        raise CommandError("the stand-in prints history as JSON only (-o json)")
    return json.dumps(rows) + "\n"


def _at_revision(namespace: str, release: str, wanted: int) -> dict[str, Any]:
    history = _require(namespace, release)
    if not wanted:
        return history[-1]
    found = [r for r in history if r["version"] == wanted]
    if not found:
        raise CommandError("release: not found")
    return found[0]


def get_values(args: argparse.Namespace) -> str:
    cluster.require_context(args.kube_context)
    revision = _at_revision(args.namespace, args.release, args.revision)
    if args.output != "json":
        raise CommandError("the stand-in prints values as JSON only (-o json)")
    return json.dumps(revision["config"] or None) + "\n"


def get_manifest(args: argparse.Namespace) -> str:
    cluster.require_context(args.kube_context)
    return str(_at_revision(args.namespace, args.release, args.revision)["manifest"])


def status(args: argparse.Namespace) -> str:
    cluster.require_context(args.kube_context)
    revision = _at_revision(args.namespace, args.release, 0)
    if args.output != "json":
        raise CommandError("the stand-in prints status as JSON only (-o json)")
    return json.dumps(_release(revision, with_manifest=False)) + "\n"


def rollback(args: argparse.Namespace) -> str:
    cluster.require_context(args.kube_context)
    duration(args.timeout)
    history = _require(args.namespace, args.release)
    if args.revision:
        target = _at_revision(args.namespace, args.release, args.revision)
    else:
        earlier = [r for r in history[:-1] if r["info"]["status"] in ("deployed", "superseded")]
        if not earlier:
            raise CommandError(f'release "{args.release}" has no previous revision to roll back to')
        target = earlier[-1]
    revision = {
        **target,
        "version": history[-1]["version"] + 1,
        "info": {**target["info"], "last_deployed": _now(), "status": "pending-rollback"},
    }
    _deploy(revision, history, args.history_max, f"Rollback to {target['version']}")
    return "Rollback was a success! Happy Helming!\n"
