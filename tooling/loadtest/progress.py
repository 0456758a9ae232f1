"""The hub's spawn progress stream (`GET /hub/api/users/NAME/server/progress`, server-sent events).

`EventStreamDecoder` turns the bytes as they arrive (split anywhere, LF or
CRLF, keepalive comments, long lines) into the JSON events the hub sends.
An event with `ready` ends a good spawn (it carries the server's URL); one
with `failed` ends a bad one (its `message` is the hub's reason).

Under KubeSpawner the events carry the pod's Kubernetes events
(`raw_event`, with a `reason`): `spawn_phases` splits a spawn into waiting
for a node (until `Scheduled`), pulling the image (`Pulling` .. `Pulled`)
and the server starting (the rest until ready). Other spawners send no such
events; their spawn is one number.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

# Kubernetes event reasons, as kubelet and the scheduler report them.
SCHEDULED = "Scheduled"
PULLING = "Pulling"
PULLED = "Pulled"
PULL_FAILURES = ("ErrImagePull", "ImagePullBackOff", "Failed to pull image", "ErrImageNeverPull")


class EventStreamDecoder:
    """Bytes of a text/event-stream in, the JSON objects of its `data:` fields out, event by event."""

    def __init__(self) -> None:
        self._pending = b""
        self._data: list[str] = []

    def feed(self, chunk: bytes) -> list[dict[str, Any]]:
        """The events completed by `chunk`; a partial line or event waits for the next chunk."""
        self._pending += chunk
        events: list[dict[str, Any]] = []
        while b"\n" in self._pending:
            raw, self._pending = self._pending.split(b"\n", 1)
            line = raw.rstrip(b"\r").decode("utf-8", errors="replace")
            if line == "":
                events += self._dispatch()
            elif line.startswith("data:"):
                self._data.append(line[5:].removeprefix(" "))
            # Other fields (event:, id:, retry:) and comments (":...") carry nothing the hub uses.
        return events

    def _dispatch(self) -> list[dict[str, Any]]:
        if not self._data:
            return []
        text = "\n".join(self._data)
        self._data = []
        try:
            event = json.loads(text)
        except ValueError:
            return []
        return [event] if isinstance(event, dict) else []


@dataclass(frozen=True)
class TimedEvent:
    """A progress event and when it arrived, in seconds from the start of the run."""

    at: float
    event: dict[str, Any]

    @property
    def reason(self) -> str:
        raw = self.event.get("raw_event")
        return str(raw.get("reason", "")) if isinstance(raw, dict) else ""

    @property
    def message(self) -> str:
        return str(self.event.get("message") or "")


@dataclass
class SpawnProgress:
    """The events of one spawn, in order of arrival."""

    events: list[TimedEvent] = field(default_factory=list)

    def add(self, at: float, event: dict[str, Any]) -> None:
        self.events.append(TimedEvent(at, event))

    def pull_failed(self) -> bool:
        """True when an event says the image could not be pulled."""
        return any(marker in item.message or marker == item.reason for item in self.events for marker in PULL_FAILURES)

    def first(self, reason: str) -> TimedEvent | None:
        return next((item for item in self.events if item.reason == reason), None)


def spawn_phases(progress: SpawnProgress, accepted: float, ready: float) -> dict[str, float]:
    """Seconds spent waiting for a node, pulling the image and starting, from KubeSpawner's events.

    Empty when the spawner sends no Kubernetes events. `accepted` is when the
    hub took the spawn request, `ready` when the server was ready.
    """
    scheduled = progress.first(SCHEDULED)
    if scheduled is None:
        return {}
    phases = {"node_wait": scheduled.at - accepted}
    pulling, pulled = progress.first(PULLING), progress.first(PULLED)
    started_from = scheduled.at
    if pulling is not None and pulled is not None:
        phases["image_pull"] = pulled.at - pulling.at
        started_from = pulled.at
    phases["server_start"] = ready - started_from
    return phases
