"""The load generator watches itself: its CPU, its event loop's lag, its peak memory.

On one machine the generator, the hub, the proxy and every user's server
share the CPUs. When the generator itself is slow (its ticks late, its CPU
high), the latencies it measures include its own delays: the run is then
marked "contended" and its figures are to be read with that in mind.
"""

from __future__ import annotations

import asyncio
import resource
import time
from dataclasses import dataclass

from tooling.loadtest.stats import percentile

TICK = 0.1  # seconds between lag probes


@dataclass(frozen=True)
class GeneratorLoad:
    cpu_seconds: float
    wall_seconds: float
    cpu_cores: float  # cpu_seconds / wall_seconds: 1.0 is one core busy all the time
    lag_p95: float  # seconds a 100 ms tick came late, p95
    lag_max: float
    peak_rss_mb: float  # the process's high-water mark (ru_maxrss)
    contended: bool
    reasons: tuple[str, ...]


class Monitor:
    """Start it as the run starts; `stop` gives the generator's load over the run."""

    def __init__(self, contended_cpu: float, contended_lag: float) -> None:
        self.contended_cpu = contended_cpu
        self.contended_lag = contended_lag
        self.lags: list[float] = []
        self._task: asyncio.Task[None] | None = None
        self._cpu0 = time.process_time()
        self._wall0 = time.monotonic()

    def start(self) -> None:
        self._cpu0, self._wall0 = time.process_time(), time.monotonic()
        self._task = asyncio.get_running_loop().create_task(self._probe())

    async def _probe(self) -> None:
        while True:
            expected = time.monotonic() + TICK
            await asyncio.sleep(TICK)
            self.lags.append(max(0.0, time.monotonic() - expected))

    async def stop(self) -> GeneratorLoad:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        cpu = time.process_time() - self._cpu0
        wall = max(time.monotonic() - self._wall0, 1e-9)
        lags = self.lags or [0.0]
        cores = cpu / wall
        lag_p95 = percentile(lags, 95)
        reasons: list[str] = []
        if cores > self.contended_cpu:
            reasons.append(f"generator CPU {cores:.2f} cores > {self.contended_cpu:g}")
        if lag_p95 > self.contended_lag:
            reasons.append(f"event-loop lag p95 {lag_p95 * 1000:.0f} ms > {self.contended_lag * 1000:.0f} ms")
        peak_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # kilobytes on Linux
        return GeneratorLoad(cpu, wall, cores, lag_p95, max(lags), peak_kb / 1024, bool(reasons), tuple(reasons))
