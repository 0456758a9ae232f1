"""The lock change report as people read it: a table for the terminal, Markdown for reports and GitHub."""

from __future__ import annotations

from typing import TYPE_CHECKING

from tooling.cli.common import md_cell

if TYPE_CHECKING:
    from tooling.lockdiff import LockReport, ReportRow

# Markdown tables longer than this fold into a <details> block.
MARKDOWN_FOLD_ROWS = 30


def summary_lines(report: LockReport) -> list[str]:
    """One line per platform: how many packages, whether the spec changed, how many changes of each kind."""
    lines = []
    for summary in report.platforms:
        if summary.new_count is None:
            lines.append(f"{summary.platform}: not in the new lock (was {summary.old_count} packages)")
        elif summary.old_count is None:
            lines.append(f"{summary.platform}: {summary.new_count} packages (no previous lock for it)")
        else:
            counts = ", ".join(f"{n} {kind}" for kind, n in report.counts(summary.platform).items() if n)
            spec = "spec changed" if summary.spec_changed else "same spec"
            lines.append(
                f"{summary.platform}: {summary.new_count} packages (was {summary.old_count}), {spec}: "
                f"{counts or 'no changes'}"
            )
    return lines


def _platform_cell(report: LockReport, row: ReportRow) -> str:
    compared = [s.platform for s in report.platforms if s.compared]
    return "all" if list(row.platforms) == compared else ", ".join(row.platforms)


def _several_platforms(report: LockReport) -> bool:
    return sum(1 for s in report.platforms if s.compared) > 1


def report_table(report: LockReport) -> str:
    """The changes as a plain-text table for a terminal."""
    if not report.changes:
        return "\n".join(summary_lines(report))
    header = ["change", "package", "old", "new"] + (["platforms"] if _several_platforms(report) else []) + ["why"]
    rows = [header]
    for row in report.rows():
        c = row.change
        cells = [c.kind, c.label + (" *" if c.top_level else ""), c.old, c.new]
        cells += [_platform_cell(report, row)] if _several_platforms(report) else []
        rows.append([*cells, c.reason])
    widths = [max(len(r[i]) for r in rows) for i in range(len(header) - 1)]
    body = ["  ".join([*(cell.ljust(w) for cell, w in zip(r, widths, strict=False)), r[-1]]).rstrip() for r in rows]
    footer = ["* top-level spec"] if any(c.top_level for c in report.changes) else []
    return "\n".join([*summary_lines(report), "", *body, *footer])


def report_markdown(report: LockReport, title: str) -> str:
    """The report as Markdown under a `### title` heading."""
    if report.first_lock:
        compared = f"New lock `{report.new_label}`"
    elif report.old_label == report.new_label:
        compared = f"Changes to `{report.new_label}`"
    else:
        compared = f"`{report.old_label}` → `{report.new_label}`"
    lines = [f"### {title}", "", compared, ""]
    lines += [f"- {line}" for line in summary_lines(report)]
    if report.first_lock and report.resolved_specs:
        lines += ["", "| Top-level spec | Resolved to |", "|---|---|"]
        lines += [f"| `{f'{label} {spec}'.rstrip()}` | {version} |" for label, spec, version in report.resolved_specs]
    if report.changes and not report.first_lock:
        lines += ["", *_markdown_table(report)]
    return "\n".join(lines) + "\n"


def _markdown_table(report: LockReport) -> list[str]:
    several = _several_platforms(report)
    header = "| Change | Package | Old | New |" + (" Platforms |" if several else "") + " Why |"
    table = [header, "|---" * header.count(" |") + "|"]
    for row in report.rows():
        c = row.change
        name = f"**{c.label}**" if c.top_level else c.label
        platforms = f" {_platform_cell(report, row)} |" if several else ""
        table.append(f"| {c.kind} | {name} | {c.old} | {c.new} |{platforms} {md_cell(c.reason)} |")
    if len(table) - 2 <= MARKDOWN_FOLD_ROWS:
        return table
    return [f"<details><summary>{len(table) - 2} changed packages</summary>", "", *table, "", "</details>"]
