"""What a load-test run found: percentiles, failures, limits; and the files it is written to.

`Report.of(result)` derives everything from the raw samples on the
records. `write_outputs` writes, in the output folder, RUN.json (every raw
sample, schema `SCHEMA_ID`, the file `schema/results-1.schema.json` of this
package), RUN-users.csv and RUN-cells.csv (one row per user, per cell) and RUN.png
(the plot). The summary a person reads (the table, RUN.md) is the CLI's:
tooling/cli/loadtest_report.py.
"""

from __future__ import annotations

import csv
import io
import json
from collections import Counter
from dataclasses import asdict, dataclass
from importlib.resources import files
from pathlib import Path
from typing import Any

from tooling import __version__
from tooling.files import write_atomic
from tooling.loadtest import LoadtestResult
from tooling.loadtest.records import UserRecord
from tooling.loadtest.stats import Summary

SCHEMA_ID = "hubship-loadtest/1"
SCHEMA_FILE = "results-1.schema.json"

# The measures of a journey: name -> what it is, for the table and the JSON.
MEASURES = {
    "time_to_ready": "arrival to server ready (the user's wait)",
    "create_user": "arrival to user created",
    "throttled_wait": "waiting after 429 answers (throttled users only)",
    "spawn": "spawn accepted to server ready",
    "node_wait": "waiting for a node (KubeSpawner events)",
    "image_pull": "pulling the image (KubeSpawner events)",
    "server_start": "scheduled/pulled to ready (KubeSpawner events)",
    "kernel_start": "server answering to kernel started",
    "time_to_first_execution": "arrival to the first cell's reply",
    "read_mb_per_s": "shared-file read, MB/s per user",
}


def schema_path() -> Path:
    return Path(str(files("tooling.loadtest") / "schema" / SCHEMA_FILE))


def _samples(records: tuple[UserRecord, ...], name: str) -> list[float]:
    values: list[float | None]
    if name == "time_to_ready":
        values = [record.since_start("ready") for record in records]
    elif name == "create_user":
        values = [record.since_start("created") for record in records]
    elif name == "throttled_wait":
        values = [sum(t.waited for t in record.throttles) if record.throttles else None for record in records]
    elif name == "spawn":
        values = [record.between("spawn_accepted", "ready") for record in records]
    elif name in ("node_wait", "image_pull", "server_start"):
        values = [record.spawn_phases.get(name) for record in records]
    elif name == "kernel_start":
        values = [record.between("server_answered", "kernel_started") for record in records]
    elif name == "time_to_first_execution":
        values = [record.since_start("first_execution") for record in records]
    else:
        values = [
            record.read_bytes / 1e6 / record.read_seconds
            if record.read_bytes is not None and record.read_seconds
            else None
            for record in records
        ]
    return [value for value in values if value is not None]


def cell_samples(records: tuple[UserRecord, ...]) -> dict[str, list[float]]:
    """Seconds per cell label, for cells that ran to a reply (ok or error), in notebook order."""
    samples: dict[str, list[float]] = {}
    for record in records:
        for cell in record.cells:
            samples.setdefault(cell.label, [])
            if cell.status in ("ok", "error"):
                samples[cell.label].append(cell.seconds)
    return samples


@dataclass(frozen=True)
class CellSummary:
    label: str
    summary: Summary
    baseline: float | None  # the baseline user's seconds for this cell
    slowdown: float | None  # p50 under load / baseline


@dataclass(frozen=True)
class Limit:
    name: str
    limit: float
    value: float | None
    passed: bool


@dataclass(frozen=True)
class Report:
    measures: dict[str, Summary]
    cells: tuple[CellSummary, ...]
    failures: dict[str, int]
    failed_users: int
    limits: tuple[Limit, ...]
    throttled: int  # 429 answers in all

    @property
    def passed(self) -> bool:
        return all(limit.passed for limit in self.limits)

    @classmethod
    def of(cls, result: LoadtestResult) -> Report:
        users = result.users
        n = len(users)
        measures: dict[str, Summary] = {}
        for name in MEASURES:
            samples = _samples(users, name)
            expected = n if name in ("time_to_ready", "create_user", "spawn", "time_to_first_execution") else 0
            if samples or expected:
                measures[name] = Summary.of(samples, max(0, expected - len(samples)))
        baseline_cells = cell_samples(result.baseline)
        cells = []
        for label, samples in cell_samples(users).items():
            summary = Summary.of(samples, sum(1 for r in users for c in r.cells if c.label == label) - len(samples))
            base = baseline_cells.get(label) or []
            base_seconds = base[0] if base else None
            slowdown = summary.p50 / base_seconds if summary.p50 is not None and base_seconds else None
            cells.append(CellSummary(label, summary, base_seconds, slowdown))
        failures = Counter(failure.kind for record in users for failure in record.failures)
        failed_users = sum(1 for record in users if not record.ok)
        settings = result.request.settings
        ready = measures["time_to_ready"]
        rate = failed_users / n if n else 0.0
        limits = (
            Limit(
                "p95 time to ready (s)",
                settings.max_p95_ready,
                ready.p95,
                ready.p95 is not None and ready.p95 <= settings.max_p95_ready,
            ),
            Limit("failure rate", settings.max_failure_rate, rate, rate <= settings.max_failure_rate),
        )
        throttled = sum(len(record.throttles) for record in (*result.baseline, *users))
        return cls(measures, tuple(cells), dict(sorted(failures.items())), failed_users, limits, throttled)


def _user_json(record: UserRecord) -> dict[str, Any]:
    return {
        "name": record.name,
        "group": record.group,
        "intended": record.intended,
        "started": record.started,
        "moments": record.moments,
        "spawn_phases": record.spawn_phases,
        "throttles": [asdict(throttle) for throttle in record.throttles],
        "progress": record.progress,
        "cells": [asdict(cell) for cell in record.cells],
        "read": None if record.read_bytes is None else {"bytes": record.read_bytes, "seconds": record.read_seconds},
        "failures": [asdict(failure) for failure in record.failures],
    }


def to_json(result: LoadtestResult, report: Report) -> dict[str, Any]:
    request = result.request
    return {
        "schema": SCHEMA_ID,
        "run": {
            "id": result.run,
            "tool_version": __version__,
            "environment": request.environment,
            "hub_url": request.hub_url,
            "hub_version": result.hub_version,
            "started_at": result.started_at,
            "users": request.users,
            "arrival": asdict(request.arrival),
            "max_concurrent": request.max_concurrent,
            "baseline": bool(result.baseline),
            "notebooks": [notebook.label for notebook in request.plan.notebooks],
            "user_options": dict(request.plan.user_options),
            "read_file": request.plan.read_file,
        },
        "passed": report.passed and not result.interrupted,
        "interrupted": result.interrupted,
        "deadline_hit": result.deadline_hit,
        "generator": asdict(result.generator) | {"reasons": list(result.generator.reasons)},
        "measures": {name: asdict(summary) for name, summary in report.measures.items()},
        "cells": [
            {"label": c.label, **asdict(c.summary), "baseline": c.baseline, "slowdown": c.slowdown}
            for c in report.cells
        ],
        "failures": report.failures,
        "throttled": report.throttled,
        "limits": [asdict(limit) for limit in report.limits],
        "cleanup": {
            "removed": list(result.cleanup.removed),
            "left": list(result.cleanup.left),
            "problems": list(result.cleanup.problems),
        },
        "users": [_user_json(record) for record in (*result.baseline, *result.users)],
    }


def users_csv(result: LoadtestResult) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(
        [
            "user",
            "group",
            "intended",
            "started",
            "time_to_ready",
            "spawn",
            "kernel_start",
            "time_to_first_execution",
            "throttles",
            "failures",
        ]
    )
    for record in (*result.baseline, *result.users):
        writer.writerow(
            [
                record.name,
                record.group,
                f"{record.intended:.3f}",
                f"{record.started:.3f}",
                _csv(record.since_start("ready")),
                _csv(record.between("spawn_accepted", "ready")),
                _csv(record.between("server_answered", "kernel_started")),
                _csv(record.since_start("first_execution")),
                len(record.throttles),
                " ".join(failure.kind for failure in record.failures),
            ]
        )
    return out.getvalue()


def cells_csv(result: LoadtestResult) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(["user", "group", "notebook", "cell", "seconds", "status", "ename"])
    for record in (*result.baseline, *result.users):
        for cell in record.cells:
            writer.writerow(
                [record.name, record.group, cell.notebook, cell.index, f"{cell.seconds:.3f}", cell.status, cell.ename]
            )
    return out.getvalue()


def _csv(value: float | None) -> str:
    return "" if value is None else f"{value:.3f}"


def write_outputs(result: LoadtestResult, report: Report) -> dict[str, Path]:
    """Write the run's JSON, CSVs and PNG into the request's output folder; their paths by kind."""
    # Imported here: matplotlib stays out of the generator's memory while it runs (its peak is measured).
    from tooling.loadtest.plot import plot  # noqa: PLC0415

    folder = result.request.output
    paths = {
        "json": folder / f"{result.run}.json",
        "users_csv": folder / f"{result.run}-users.csv",
        "cells_csv": folder / f"{result.run}-cells.csv",
        "png": folder / f"{result.run}.png",
    }
    write_atomic(paths["json"], json.dumps(to_json(result, report), indent=2) + "\n")
    write_atomic(paths["users_csv"], users_csv(result))
    write_atomic(paths["cells_csv"], cells_csv(result))
    write_atomic(paths["png"], plot(result, report))
    return paths
