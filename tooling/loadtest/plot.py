"""The run as a PNG: spawn-ready CDF, users pending and running over time, cell slowdown against one user."""

from __future__ import annotations

import io

import matplotlib

matplotlib.use("Agg")  # files only: no display, no GUI toolkit

import matplotlib.pyplot as plt

from tooling.loadtest import LoadtestResult
from tooling.loadtest.records import UserRecord
from tooling.loadtest.results import Report

TIMELINE_POINTS = 400


def _ready_times(records: tuple[UserRecord, ...]) -> list[float]:
    return sorted(value for record in records if (value := record.since_start("ready")) is not None)


def _counts_over_time(records: tuple[UserRecord, ...], end: float) -> tuple[list[float], list[int], list[int]]:
    """Users waiting for their server (arrived, not ready) and with a running server (ready, not stopped)."""
    times = [end * step / TIMELINE_POINTS for step in range(TIMELINE_POINTS + 1)]
    pending, running = [], []
    for at in times:
        waiting = serving = 0
        for record in records:
            if not record.moments and record.started == 0.0:
                continue
            ready = record.moments.get("ready")
            stopped = record.moments.get("stopped", end)
            if record.started <= at and (ready is None or at < ready) and at < stopped:
                waiting += 1
            elif ready is not None and ready <= at < stopped:
                serving += 1
        pending.append(waiting)
        running.append(serving)
    return times, pending, running


def plot(result: LoadtestResult, report: Report) -> bytes:
    """The three panels as PNG bytes."""
    figure, (cdf, timeline, slowdown) = plt.subplots(1, 3, figsize=(16, 4.5))
    n = result.request.users
    for records, label in ((result.baseline, "one user"), (result.users, f"N={n}")):
        ready = _ready_times(records)
        if ready:
            fractions = [(index + 1) / len(records) for index in range(len(ready))]
            # Markers: a baseline of one user is a single point, which a bare step line would not show.
            cdf.step(ready, fractions, where="post", marker="o", markersize=4, label=label)
    cdf.set_xlabel("seconds from arrival to server ready")
    cdf.set_ylabel("share of users ready")
    cdf.set_ylim(0, 1.02)
    cdf.set_title("time to server ready (CDF)")
    if cdf.get_lines():
        cdf.legend(loc="lower right")

    everyone = (*result.baseline, *result.users)
    end = max([result.generator.wall_seconds, *(max(r.moments.values(), default=0.0) for r in everyone)])
    times, pending, running = _counts_over_time(result.users, end)
    timeline.plot(times, pending, label="waiting for their server")
    timeline.plot(times, running, label="server running")
    timeline.set_xlabel("seconds from the start of the run")
    timeline.set_ylabel("users")
    timeline.set_title("users over time")
    timeline.legend(loc="upper right")

    cells = [cell for cell in report.cells if cell.slowdown is not None]
    slowdown.bar(range(len(cells)), [cell.slowdown or 0.0 for cell in cells])
    slowdown.axhline(1.0, color="grey", linewidth=0.8)
    slowdown.set_xticks(range(len(cells)), [cell.label for cell in cells], rotation=30, ha="right", fontsize=8)
    slowdown.set_ylabel(f"p50 at N={n} / one user")
    slowdown.set_title("cell slowdown" if cells else "cell slowdown (no baseline)")

    figure.suptitle(f"loadtest {result.run}")
    figure.tight_layout()
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=100)
    plt.close(figure)
    return buffer.getvalue()
