"""When each simulated user arrives: a burst, a ramp, or a seeded Poisson process.

A schedule is a list of offsets in seconds from the start of the load, one
per user, fixed before anyone starts. Arrival happens on that schedule
whatever else is going on: a concurrency cap (`launch`) makes a user wait
for a free slot AFTER it arrived, so the intended times never drift and the
wait shows as the gap between intended and actual start.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass

from tooling.config import ArrivalKind
from tooling.errors import ToolingError


@dataclass(frozen=True)
class Arrival:
    """How users arrive: all at once, evenly over `ramp` seconds, or at `rate` per second on average."""

    kind: ArrivalKind = "burst"
    ramp: float = 0.0  # seconds, for "ramp"
    rate: float = 0.0  # users per second, for "poisson"
    seed: int = 0  # for "poisson": the same seed gives the same arrivals

    def __post_init__(self) -> None:
        if self.kind == "ramp" and self.ramp <= 0:
            raise ToolingError("--arrival ramp needs --ramp SECONDS above 0.")
        if self.kind == "poisson" and self.rate <= 0:
            raise ToolingError("--arrival poisson needs --rate USERS_PER_SECOND above 0.")

    def describe(self) -> str:
        if self.kind == "ramp":
            return f"ramp over {self.ramp:g} s"
        if self.kind == "poisson":
            return f"poisson {self.rate:g}/s (seed {self.seed})"
        return "burst"


def offsets(arrival: Arrival, users: int) -> list[float]:
    """The intended start of each of `users`, in seconds from the start, in arrival order."""
    if users <= 0:
        return []
    if arrival.kind == "ramp":
        if users == 1:
            return [0.0]
        step = arrival.ramp / (users - 1)
        return [index * step for index in range(users)]
    if arrival.kind == "poisson":
        # A Poisson process: exponential gaps with mean 1/rate; the first user arrives at 0.
        generator = random.Random(arrival.seed)  # noqa: S311  (a reproducible schedule, not a secret)
        times = [0.0]
        for _ in range(users - 1):
            times.append(times[-1] + generator.expovariate(arrival.rate))
        return times
    return [0.0] * users


@dataclass(frozen=True)
class Launched:
    """When a user was meant to start and when it actually did (after waiting for a slot), from the start."""

    index: int
    intended: float
    actual: float


async def launch(
    schedule: Sequence[float],
    journey: Callable[[int, Launched], Awaitable[None]],
    *,
    max_concurrent: int = 0,
    clock: Callable[[], float] = time.monotonic,
) -> list[Launched]:
    """Start `journey(index, launched)` for every user at its offset; at most `max_concurrent` run at once (0: all).

    Each user sleeps until its own intended time outside the cap, so a full
    cap delays the actual start, never the schedule of the users after it.
    """
    started = clock()
    slots = asyncio.Semaphore(max_concurrent) if max_concurrent > 0 else None
    launched: list[Launched] = []

    async def one(index: int, offset: float) -> None:
        await asyncio.sleep(max(0.0, started + offset - clock()))
        if slots is None:
            await _run(index, offset)
            return
        async with slots:
            await _run(index, offset)

    async def _run(index: int, offset: float) -> None:
        record = Launched(index, offset, clock() - started)
        launched.append(record)
        await journey(index, record)

    async with asyncio.TaskGroup() as group:
        for index, offset in enumerate(schedule):
            group.create_task(one(index, offset))
    return sorted(launched, key=lambda item: item.index)
