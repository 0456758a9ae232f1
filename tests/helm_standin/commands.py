"""The stand-in's commands, each on Helm's own engine: render, pull, lint, version."""

from __future__ import annotations

import argparse
import os
from pathlib import Path
from typing import Any

import helm_python

VERSIONS = {"3": "v3.19.0", "4": "v4.2.3"}
MAJOR_ENV = "HELM_STANDIN_MAJOR"


class CommandError(Exception):
    """Printed as Helm prints errors: `Error: MESSAGE`, exit code 1."""


def helm_version() -> str:
    major = os.environ.get(MAJOR_ENV, "3")
    if major not in VERSIONS:
        raise CommandError(f"{MAJOR_ENV}={major!r}: the stand-in answers as Helm 3 or 4")
    return VERSIONS[major]


def version(args: argparse.Namespace) -> str:
    if args.template:
        if args.template != "{{.Version}}":
            raise CommandError(f"the stand-in only knows the template {{{{.Version}}}}, not {args.template}")
        return helm_version()
    if args.short:
        return helm_version() + "\n"
    return f'version.BuildInfo{{Version:"{helm_version()}", GitTreeState:"clean", GoVersion:"go1.24"}}\n'


def merged_values(files: list[str]) -> dict[str, Any]:
    """The -f files in order, parsed by Helm's YAML reader and merged as Helm merges them (maps deep, last wins)."""
    merged: dict[str, Any] = {}
    for file in files:
        try:
            text = Path(file).read_text(encoding="utf-8")
        except OSError as exc:
            raise CommandError(f"open {file}: no such file or directory") from exc
        try:
            merged = _merge(merged, helm_python.values_from_yaml(text) or {})
        except helm_python.HelmError as exc:
            raise CommandError(f"failed to parse {file}: {exc}") from exc
    return merged


def _merge(base: dict[str, Any], override: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in override.items():
        out[key] = _merge(out[key], value) if isinstance(value, dict) and isinstance(out.get(key), dict) else value
    return out


def load_chart(reference: str) -> Any:
    try:
        return helm_python.Chart.load(reference)
    except helm_python.HelmError as exc:
        raise CommandError(f"path {reference!r} not found or not a chart: {exc}") from exc


def template(args: argparse.Namespace) -> str:
    if len(args.names) > 2:
        raise CommandError(f"expected at most 2 arguments, received {len(args.names)}")
    release, reference = args.names if len(args.names) == 2 else ("release-name", args.names[0])
    chart = load_chart(reference)
    values = merged_values(args.values)
    try:
        chart.validate_schema(values)
        manifests = chart.render(values, name=release, namespace=args.namespace, is_install=True)
    except helm_python.HelmValuesError as exc:
        raise CommandError(
            f"values don't meet the specifications of the schema(s) in the following chart(s):\n{exc}"
        ) from exc
    except helm_python.HelmError as exc:
        raise CommandError(str(exc)) from exc
    documents = []
    for path in sorted(manifests):
        body = manifests[path].strip()
        if body and path.endswith((".yaml", ".yml")) and body.replace("---", "").strip():
            documents.append(f"---\n# Source: {path}\n{body}\n")
    return "".join(documents)


def pull(args: argparse.Namespace) -> str:
    Path(args.destination).mkdir(parents=True, exist_ok=True)
    try:
        helm_python.pull(
            args.chart,
            destination=args.destination,
            version=args.version or None,
            repo_url=args.repo or None,
            untar=args.untar,
            untar_dir=args.untardir if args.untar else None,
            plain_http=args.plain_http,
        )
    except helm_python.HelmError as exc:
        raise CommandError(str(exc)) from exc
    return ""


def lint(args: argparse.Namespace) -> str:
    report = helm_python.lint(args.path, merged_values(args.values), strict=args.strict or None)
    severities = {1: "INFO", 2: "WARNING", 3: "ERROR"}
    lines = [f"==> Linting {args.path}"]
    failed = 0
    for message in report.get("messages") or []:
        level = severities.get(message.get("severity", 0), "UNKNOWN")
        failed += level == "ERROR" or (args.strict and level == "WARNING")
        lines.append(f"[{level}] {message.get('path', '')}: {message.get('error', '')}")
    total = report.get("total_charts_linted", 1)
    summary = f"\n{total} chart(s) linted, {1 if failed else 0} chart(s) failed\n"
    if failed:
        raise CommandError("\n".join(lines) + summary + "1 chart(s) failed linting")
    return "\n".join(lines) + summary
