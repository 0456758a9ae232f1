"""What the load test records about each user, as it happens (raw samples; the report derives the rest).

Times are seconds from the start of the run (the generator's monotonic
clock). A failure has a kind (`FailureKind`) and, where there is one,
the hub's or the kernel's own message.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

from tooling.loadtest.kernel import CellStatus

FailureKind = Literal[
    "create_user",
    "throttled",
    "spawn_failed",
    "spawn_timeout",
    "image_pull",
    "progress_stream",
    "proxy_error",
    "kernel_start",
    "kernel_died",
    "cell_error",
    "cell_timeout",
    "read_error",
    "hub_error",
    "run_deadline",
    "interrupted",
    "cleanup",
]


@dataclass(frozen=True)
class Failure:
    kind: FailureKind
    message: str
    cell: str = ""


@dataclass(frozen=True)
class Throttle:
    """A 429 answer: when, the Retry-After it asked for, and how long the user then waited."""

    at: float
    retry_after: float | None
    waited: float
    message: str


@dataclass(frozen=True)
class CellRecord:
    notebook: str
    index: int  # the cell's position among the notebook's code cells, from 1
    started: float
    finished: float
    status: CellStatus
    ename: str = ""

    @property
    def label(self) -> str:
        return f"{self.notebook}#{self.index}"

    @property
    def seconds(self) -> float:
        return self.finished - self.started


@dataclass
class UserRecord:
    name: str
    group: Literal["baseline", "load"]
    intended: float
    started: float = 0.0
    moments: dict[str, float] = field(default_factory=dict)
    progress: list[dict[str, Any]] = field(default_factory=list)  # {at, progress, message, reason}
    spawn_phases: dict[str, float] = field(default_factory=dict)
    throttles: list[Throttle] = field(default_factory=list)
    cells: list[CellRecord] = field(default_factory=list)
    read_bytes: int | None = None
    read_seconds: float | None = None
    failures: list[Failure] = field(default_factory=list)

    def mark(self, moment: str, at: float) -> None:
        self.moments.setdefault(moment, at)

    def fail(self, kind: FailureKind, message: str, cell: str = "") -> None:
        self.failures.append(Failure(kind, message.strip()[:500], cell))

    def since_start(self, moment: str) -> float | None:
        at = self.moments.get(moment)
        return None if at is None else at - self.started

    def between(self, first: str, last: str) -> float | None:
        begin, end = self.moments.get(first), self.moments.get(last)
        return None if begin is None or end is None else end - begin

    @property
    def ok(self) -> bool:
        return not self.failures
