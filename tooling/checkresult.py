"""What one check of the smoke test (or of a deployed hub) found: a typed result, and the way a check ends.

A check is a function that returns an `Outcome` (why it passed, and any
further lines worth keeping) or raises `CheckFailed` (why it failed, and the
lines that show it: every difference, a log's last lines). `run_check` times
it and turns either into a `CheckResult`. A `ToolingError` raised inside a
check (docker could not run a container, a file is missing) fails that check
with its message; other checks go on. Anything else is a bug and propagates.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from tooling.errors import ToolingError
from tooling.log import redact


@dataclass(frozen=True)
class CheckResult:
    name: str
    passed: bool
    reason: str  # one line: why it passed or failed
    seconds: float
    details: tuple[str, ...] = ()  # further lines: the differences, a log's last lines, the steps taken


@dataclass(frozen=True)
class Outcome:
    """A check passed: why, in one line, and optionally more lines."""

    reason: str
    details: tuple[str, ...] = ()


class CheckFailed(Exception):
    """Ends a check with a failure: why, in one line, and the lines that show it."""

    def __init__(self, reason: str, details: Sequence[str] = ()) -> None:
        super().__init__(reason)
        self.reason = reason
        self.details = tuple(details)


def run_check(name: str, check: Callable[[], Outcome]) -> CheckResult:
    """Run one check, timed; its failure (or a `ToolingError` inside it) becomes a failed result."""
    started = time.monotonic()
    try:
        outcome = check()
    except CheckFailed as exc:
        return _result(name, False, exc.reason, exc.details, started)
    except ToolingError as exc:
        first, *rest = exc.message.splitlines() or [type(exc).__name__]
        return _result(name, False, first, rest, started)
    return _result(name, True, outcome.reason, outcome.details, started)


def _result(name: str, passed: bool, reason: str, details: Sequence[str], started: float) -> CheckResult:
    return CheckResult(
        name=name,
        passed=passed,
        reason=redact(reason),
        seconds=time.monotonic() - started,
        details=tuple(redact(line) for line in details),
    )
