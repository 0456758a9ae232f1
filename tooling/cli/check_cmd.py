"""`check`: an environment's Helm values against the pinned chart, KubeSpawner, and the 2020 lessons."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING

from tooling.cli.common import add_command, load, md_cell, publish_markdown
from tooling.config import HubConfig
from tooling.errors import ToolingError
from tooling.files import write_atomic
from tooling.state import reports_dir

if TYPE_CHECKING:
    from tooling.check import CheckResult
    from tooling.check.findings import Finding


def register(subparsers: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    parser = add_command(
        subparsers,
        "check",
        summary="Check an environment's Helm values before a deploy: duplicate keys and YAML errors, the pinned "
        "chart's values.schema.json, what the schema cannot see (KubeSpawner option names, volume fields, memory "
        "and cpu), the rules learned in 2020 (each named in the report), the capacity of a node, "
        "and a `helm template` render showing where the single-user image lands. Exits 1 on a failure.",
        reads="hub.toml ([deploy.ENV], [check], [capacity], [helm]), ENV's values files, the pinned chart "
        "(pulled with helm into $XDG_CACHE_HOME/hubship/charts once)",
        writes=".hubship/reports/check-ENV.md (and the GitHub job summary); the chart and KubeSpawner's option "
        "names into the cache; never the values files",
        example="python -m tooling check staging\n  python -m tooling check --all --no-render",
    )
    target = parser.add_mutually_exclusive_group(required=True)
    target.add_argument("environment", metavar="ENV", nargs="?", help="a [deploy.ENV] table of hub.toml")
    target.add_argument("--all", action="store_true", help="check every environment of hub.toml")
    parser.add_argument(
        "--no-render", dest="render", action="store_false", help="skip `helm template` (no helm needed once cached)"
    )
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from tooling.check import CheckRequest, check_values

    config = load(args)
    environments = sorted(config.deploy) if args.all else [args.environment]
    failed = False
    for environment in environments:
        failed = (
            report(config, check_values(CheckRequest.from_config(config, environment, render=args.render))) or failed
        )
    return 1 if failed else 0


def values_files(config: HubConfig, environment: str) -> dict[str, bytes]:
    """The bytes of an environment's values files now, to put back if a change makes them fail the check."""
    target = config.deploy_target(environment)
    paths = {config.file(path) for path in target.values} | {config.file(place.file) for place in target.image}
    return {str(path): path.read_bytes() for path in sorted(paths) if path.is_file()}


def refuse_failing_values(config: HubConfig, environment: str, before: dict[str, bytes]) -> None:
    """Put the values files back as they were and refuse when they now fail `check ENV` (without the render).

    `bump` calls this after writing, so it never leaves a values file that
    the check (and so the deploy) would refuse.
    """
    from tooling.check import CheckRequest, check_values

    result = check_values(CheckRequest.from_config(config, environment, render=False))
    if not result.failed:
        return
    for path, content in before.items():
        if Path(path).read_bytes() != content:
            write_atomic(Path(path), content)
    failures = [f"    {f.check} {f.where or '-'}: {f.message}" for f in result.findings if f.failed]
    raise ToolingError(
        "\n".join(
            [
                f"the {environment} values would fail `python -m tooling check {environment}`; they were left as "
                "they were. Fix these, then run the command again:",
                *failures,
            ]
        )
    )


def report(config: HubConfig, result: CheckResult) -> bool:
    print(text(result))
    publish_markdown(markdown(result), reports_dir(config.root) / f"check-{result.environment}.md")
    return result.failed


def _counts(result: CheckResult) -> str:
    failed = sum(finding.failed for finding in result.findings)
    waived = sum(finding.result == "waived" for finding in result.findings)
    verdict = f"{failed} failed" if failed else "all passed"
    return verdict + (f", {waived} waived" if waived else "") + ("" if result.rendered else " (render skipped)")


def text(result: CheckResult) -> str:
    rows = [("rule or finding", "result", "file:line", "what")]
    rows += [(f.check, f.result, f.where or "-", f.message) for f in result.findings]
    widths = [max(len(row[column]) for row in rows) for column in range(3)]
    lines = [f"check {result.environment} (chart {result.chart}): {_counts(result)}", ""]
    for row, finding in zip(rows, [None, *result.findings], strict=True):
        lines.append("  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=False)) + "  " + row[3])
        if finding is not None and finding.failed and finding.fix:
            lines += [
                f"    fix: {line}" if n == 0 else f"         {line}" for n, line in enumerate(finding.fix.splitlines())
            ]
    return "\n".join([*lines, "", *capacity_lines(result)])


def capacity_lines(result: CheckResult) -> list[str]:
    from tooling.check.capacity import gib

    sizes = result.capacity
    settings = sizes.settings
    lines = [
        f"capacity: node {settings.node_cpu:g} cpu / {settings.node_memory}, keeps {settings.reserved_cpu:g} cpu / "
        f"{settings.reserved_memory} for itself: {sizes.allocatable_cpu:g} cpu / {gib(sizes.allocatable_memory)} "
        "for users",
    ]
    for row in sizes.rows:
        lines.append(
            f"  {row.label}: guarantees {row.cpu_guarantee} cpu / {gib(row.mem_guarantee)}; users per node "
            f"{_count(row.by_cpu)} by cpu, {_count(row.by_memory)} by memory -> {_count(row.per_node)}"
        )
    lines.append(
        f"  {settings.users} users: {_count(sizes.nodes)} nodes, {_hours(sizes.node_hours_per_day)} "
        f"node-hours a day ({settings.hours_per_day:g} h)" + _cost(result)
    )
    return lines


def _count(value: int | None) -> str:
    return "-" if value is None else str(value)


def _hours(value: float | None) -> str:
    return "-" if value is None else f"{value:g}"


def _cost(result: CheckResult) -> str:
    cost = result.capacity.cost_per_day
    return (
        "" if cost is None else f", {cost:.2f} a day at {result.capacity.settings.price_per_node_hour:g} per node-hour"
    )


def _markdown_row(finding: Finding) -> str:
    # The fix is YAML: its lines stay lines inside the cell.
    fix = f"<pre>{md_cell(finding.fix.replace(chr(10), '<br>'))}</pre>" if finding.failed and finding.fix else ""
    return (
        f"| `{finding.check}` | {finding.result} | {md_cell(finding.where) or '-'} | {md_cell(finding.message)} "
        f"| {fix} |"
    )


def markdown(result: CheckResult) -> str:
    from tooling.check.capacity import gib
    from tooling.check.rules import RULES

    sizes = result.capacity
    lines = [
        f"## Check `{result.environment}` (chart {result.chart}): {_counts(result)}",
        "",
        "| Rule or finding | Result | File:line | What | Fix |",
        "|---|---|---|---|---|",
        *(_markdown_row(finding) for finding in result.findings),
        "",
        "| Capacity | cpu guarantee | memory guarantee | users/node by cpu | by memory | users/node |",
        "|---|---|---|---|---|---|",
        *(
            f"| {row.label} | {row.cpu_guarantee} | {gib(row.mem_guarantee)} | {_count(row.by_cpu)} | "
            f"{_count(row.by_memory)} | {_count(row.per_node)} |"
            for row in sizes.rows
        ),
        "",
        f"{sizes.settings.users} users: {_count(sizes.nodes)} nodes, {_hours(sizes.node_hours_per_day)} node-hours "
        f"a day{_cost(result)}.",
        "",
        "Rules: " + "; ".join(f"`{rule.id}`: {rule.why}" for rule in RULES),
        "",
    ]
    return "\n".join(lines)
