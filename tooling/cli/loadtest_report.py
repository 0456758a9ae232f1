"""The load test's summary for a person: the table the command prints and the Markdown of RUN.md."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from tooling.loadtest import LoadtestResult
    from tooling.loadtest.results import Report


def verdict(result: LoadtestResult, report: Report) -> str:
    if result.interrupted:
        return "INTERRUPTED"
    return "PASSED" if report.passed else "FAILED"


def _fmt(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}"


def table(result: LoadtestResult, report: Report) -> str:
    """The plain-text summary the CLI prints."""
    request = result.request
    lines = [
        f"loadtest {result.run}  hub={request.hub_url}  JupyterHub {result.hub_version}  "
        f"N={request.users} {request.arrival.describe()}"
        + (f"  cap={request.max_concurrent}" if request.max_concurrent else ""),
        f"{'measure (s)':<34} {'n':>4} {'fail':>4} {'p50':>8} {'p90':>8} {'p95':>8} {'max':>8}",
    ]
    rows = [(name, summary) for name, summary in report.measures.items()]
    rows += [(f"cell {cell.label}", cell.summary) for cell in report.cells]
    for name, summary in rows:
        lines.append(
            f"{name:<34} {summary.n:>4} {summary.failed:>4} {_fmt(summary.p50):>8} {_fmt(summary.p90):>8} "
            f"{_fmt(summary.p95):>8} {_fmt(summary.max):>8}"
        )
    for cell in report.cells:
        if cell.slowdown is not None:
            lines.append(f"slowdown of cell {cell.label} at N={request.users} vs one user: x{cell.slowdown:.2f}")
    if report.failures:
        lines.append("failures: " + ", ".join(f"{kind} {count}" for kind, count in report.failures.items()))
        lines += [f"  {example}" for example in failure_examples(result)]
    else:
        lines.append("failures: none")
    if report.throttled:
        lines.append(f"429 answers: {report.throttled}, each waited out as its Retry-After asked")
    load = result.generator
    lines.append(
        f"generator: {load.cpu_cores * 100:.1f}% of one core, event-loop lag p95 {load.lag_p95 * 1000:.0f} ms "
        f"(max {load.lag_max * 1000:.0f} ms), peak memory {load.peak_rss_mb:.0f} MB"
        + (f"  CONTENDED: {'; '.join(load.reasons)}" if load.contended else "")
    )
    cleanup = result.cleanup
    lines.append(
        f"cleanup: {len(cleanup.removed)} users removed at the end, {len(cleanup.left)} left"
        + (f"; {'; '.join(cleanup.problems)}" if cleanup.problems else "")
    )
    for limit in report.limits:
        lines.append(f"limit {limit.name} <= {limit.limit:g}: {_fmt(limit.value)} {'PASS' if limit.passed else 'FAIL'}")
    lines.append(f"result: {verdict(result, report)}")
    return "\n".join(lines)


def failure_examples(result: LoadtestResult) -> list[str]:
    """The first message of each failure kind, with the user (and cell) it happened to."""
    seen: dict[str, str] = {}
    for record in result.users:
        for failure in record.failures:
            where = f"{record.name}" + (f" cell {failure.cell}" if failure.cell else "")
            seen.setdefault(failure.kind, f"{failure.kind}: {failure.message} ({where})")
    return list(seen.values())


def markdown(result: LoadtestResult, report: Report) -> str:
    request = result.request
    lines = [
        f"## Load test {result.run}: {verdict(result, report)}",
        "",
        f"{request.users} users ({request.arrival.describe()}) against {request.hub_url} "
        f"(JupyterHub {result.hub_version}, environment {request.environment}).",
        "",
        "| measure (s) | n | failed | p50 | p90 | p95 | max |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    rows = [(name, summary) for name, summary in report.measures.items()]
    rows += [(f"cell {cell.label}", cell.summary) for cell in report.cells]
    for name, s in rows:
        lines.append(f"| {name} | {s.n} | {s.failed} | {_fmt(s.p50)} | {_fmt(s.p90)} | {_fmt(s.p95)} | {_fmt(s.max)} |")
    slow = [cell for cell in report.cells if cell.slowdown is not None]
    if slow:
        lines += ["", "Cell slowdown against one user: " + ", ".join(f"{c.label} x{c.slowdown:.2f}" for c in slow)]
    lines += ["", "Failures: " + (", ".join(f"{k} {v}" for k, v in report.failures.items()) or "none")]
    lines += [f"- {example}" for example in failure_examples(result)]
    load = result.generator
    lines += [
        "",
        f"Generator: {load.cpu_cores * 100:.1f}% of one core, loop lag p95 {load.lag_p95 * 1000:.0f} ms, "
        f"peak {load.peak_rss_mb:.0f} MB" + (f". **Contended**: {'; '.join(load.reasons)}" if load.contended else "."),
        "",
        "| limit | value | allowed | |",
        "|---|---:|---:|---|",
    ]
    lines += [
        f"| {limit.name} | {_fmt(limit.value)} | {limit.limit:g} | {'pass' if limit.passed else 'FAIL'} |"
        for limit in report.limits
    ]
    lines.append("")
    return "\n".join(lines)
