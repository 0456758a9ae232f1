"""How many users fit a node, how many nodes the expected users need, and what a day costs.

Kubernetes places a user by the guarantees (requests), so a node holds as
many users as its allocatable cpu and memory (the node minus what it keeps
for itself) divided by the guarantees, whichever is fewer.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from tooling.check.blind_spots import Resources, memory_bytes
from tooling.config import CapacitySettings

GIB = 1024**3
# Below a whole user: 7.5 / 1.75 must stay 4, not 4.000000001 or 3.999999.
EPSILON = 1e-9


@dataclass(frozen=True)
class CapacityRow:
    label: str
    cpu_guarantee: float | None
    mem_guarantee: int | None
    by_cpu: int | None  # None: no guarantee, nothing bounds it
    by_memory: int | None

    @property
    def per_node(self) -> int | None:
        bounds = [count for count in (self.by_cpu, self.by_memory) if count is not None]
        return min(bounds) if bounds else None


@dataclass(frozen=True)
class Capacity:
    settings: CapacitySettings
    allocatable_cpu: float
    allocatable_memory: int
    rows: tuple[CapacityRow, ...]  # the default server first, then each profile

    @property
    def nodes(self) -> int | None:
        """Nodes for the expected users on the default server; None when a user fits no node or is unbounded."""
        per_node = self.rows[0].per_node
        return math.ceil(self.settings.users / per_node) if per_node else None

    @property
    def node_hours_per_day(self) -> float | None:
        return None if self.nodes is None else self.nodes * self.settings.hours_per_day

    @property
    def cost_per_day(self) -> float | None:
        hours = self.node_hours_per_day
        if hours is None or not self.settings.price_per_node_hour:
            return None
        return hours * self.settings.price_per_node_hour


def capacity(settings: CapacitySettings, resources: list[Resources]) -> Capacity:
    cpu = settings.node_cpu - settings.reserved_cpu
    memory = (memory_bytes(settings.node_memory) or 0) - (memory_bytes(settings.reserved_memory) or 0)
    rows = tuple(
        CapacityRow(
            server.label,
            server.cpu_guarantee,
            server.mem_guarantee,
            _fits(cpu, server.cpu_guarantee),
            _fits(memory, server.mem_guarantee),
        )
        for server in resources
    )
    return Capacity(settings, cpu, memory, rows)


def _fits(available: float, guarantee: float | None) -> int | None:
    if not guarantee:
        return None
    return max(0, math.floor(available / guarantee + EPSILON))


def gib(size: float | None) -> str:
    return "-" if size is None else f"{size / GIB:g} GiB"
