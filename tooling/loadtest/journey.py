"""One simulated user: created, spawned, its notebooks run cell by cell, optionally a shared file read, removed.

Each step runs under its own deadline (`Limits`) and records the moments
and failures on the user's `UserRecord`. A failed step ends the journey
with one classified failure; a cell that raises is recorded with its
exception's name and the next cells still run. Whatever happened, the
journey ends by stopping the server and deleting the user (the run's
cleanup does it again for users whose journey was cancelled).
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Callable, Mapping
from contextlib import suppress
from dataclasses import dataclass, field
from typing import Any

import aiohttp

from tooling.loadtest.client import Answer, HubClient, HubUnreachable
from tooling.loadtest.kernel import CellExecution, execute_request, parse_frame
from tooling.loadtest.progress import SpawnProgress, spawn_phases
from tooling.loadtest.records import CellRecord, FailureKind, Throttle, UserRecord

# Seconds to wait after a 429 without Retry-After (JupyterHub's active_server_limit answer has none).
DEFAULT_RETRY_AFTER = 5.0
POLL_INTERVAL = 0.5
# Share of the stop timeout given to a pending spawn to end before its server is stopped.
SPAWN_SETTLE_SHARE = 0.5
READ_MARKER = "hubship-read"


@dataclass(frozen=True)
class Notebook:
    """A tutorial notebook's code cells, as the journey runs them."""

    label: str  # its path as hub.toml names it
    cells: tuple[str, ...]


@dataclass(frozen=True)
class Limits:
    spawn_timeout: float
    kernel_timeout: float
    cell_timeout: float
    stop_timeout: float


@dataclass(frozen=True)
class Plan:
    """What every user does: the notebooks, the spawn options, the file to read (none: '')."""

    notebooks: tuple[Notebook, ...]
    limits: Limits
    user_options: Mapping[str, Any] = field(default_factory=dict)
    read_file: str = ""


class ReadGate:
    """Holds the users that reach the shared-file read until every user still on its journey is there."""

    def __init__(self, expected: int) -> None:
        self._expected = expected
        self._arrived = 0
        self._open = asyncio.Event()

    def _check(self) -> None:
        if self._arrived >= self._expected:
            self._open.set()

    async def arrive(self) -> None:
        self._arrived += 1
        self._check()
        await self._open.wait()

    def withdraw(self) -> None:
        """A user that will never arrive (it failed or was cancelled) no longer holds the others."""
        self._expected -= 1
        self._check()


@dataclass(frozen=True)
class _Kernel:
    """A running kernel of a user's server and the open websocket of its channels."""

    url: str  # the server's URL path
    id: str
    socket: aiohttp.ClientWebSocketResponse
    session: str


class JourneyFailed(Exception):
    """The journey cannot go on; the failure is already on the record."""


@dataclass
class Journey:
    hub: HubClient
    plan: Plan
    record: UserRecord
    clock: Callable[[], float]
    gate: ReadGate | None = None
    _gate_done: bool = False
    _progress: SpawnProgress = field(default_factory=SpawnProgress)

    def now(self) -> float:
        return self.clock()

    def fail(self, kind: FailureKind, message: str, cell: str = "") -> JourneyFailed:
        self.record.fail(kind, message, cell)
        return JourneyFailed(message)

    async def run(self) -> None:
        """The whole journey; returns normally whatever failed (failures are on the record)."""
        self.record.started = self.now()
        try:
            await self.create()
            url = await self.spawn()
            await self.use_server(url)
        except JourneyFailed:
            pass
        except HubUnreachable as exc:
            self.record.fail("hub_error", exc.message)
        finally:
            self.leave_gate()
        await self.remove()

    def leave_gate(self) -> None:
        if self.gate is not None and not self._gate_done:
            self._gate_done = True
            self.gate.withdraw()

    # --- the steps -------------------------------------------------------------------------------

    async def create(self) -> None:
        answer = await self.hub.call("POST", self.hub.user_api(self.record.name))
        if answer.status not in (201, 409):
            raise self.fail("create_user", _said(answer))
        self.record.mark("created", self.now())

    async def spawn(self) -> str:
        """Request the server (honouring 429s), follow the progress stream; the server's URL path."""
        remaining = self.plan.limits.spawn_timeout - (self.now() - self.record.started)
        try:
            async with asyncio.timeout(max(remaining, 0.0)):
                await self.request_spawn()
                self.record.mark("spawn_accepted", self.now())
                url = await self.follow_progress()
        except TimeoutError:
            if "spawn_accepted" not in self.record.moments and self.record.throttles:
                raise self.fail(
                    "throttled",
                    f"still answered 429 after {len(self.record.throttles)} tries: {self.record.throttles[-1].message}",
                ) from None
            raise self.fail(
                "spawn_timeout", f"the server was not ready within {self.plan.limits.spawn_timeout:g} s"
            ) from None
        ready = self.now()
        self.record.mark("ready", ready)
        accepted = self.record.moments["spawn_accepted"]
        self.record.spawn_phases = spawn_phases(self._progress, accepted, ready)
        return url

    async def request_spawn(self) -> None:
        while True:
            self.record.mark("spawn_requested", self.now())
            answer = await self.hub.call(
                "POST", self.hub.user_api(self.record.name, "/server"), body=dict(self.plan.user_options)
            )
            if answer.status in (201, 202):
                return
            if answer.status == 429:
                await self.wait_after_throttle(answer)
                continue
            if answer.status >= 500:
                raise self.fail("spawn_failed", _said(answer))
            raise self.fail("hub_error", f"the spawn request answered {answer.status}: {_said(answer)}")

    async def wait_after_throttle(self, answer: Answer) -> None:
        at = self.now()
        wait = answer.retry_after if answer.retry_after is not None else DEFAULT_RETRY_AFTER
        await asyncio.sleep(wait)
        self.record.throttles.append(Throttle(at, answer.retry_after, self.now() - at, _said(answer)))

    async def follow_progress(self) -> str:
        self._progress = SpawnProgress()
        try:
            async for event in self.hub.progress(self.record.name):
                at = self.now()
                self._progress.add(at, event)
                self.record.progress.append(_progress_sample(at, event))
                if event.get("ready"):
                    return str(event.get("url") or f"/user/{self.record.name}/")
                if event.get("failed"):
                    kind: FailureKind = "image_pull" if self._progress.pull_failed() else "spawn_failed"
                    raise self.fail(kind, str(event.get("message") or "the hub says the spawn failed"))
        except HubUnreachable as exc:
            raise self.fail("progress_stream", exc.message) from None
        raise self.fail("progress_stream", "the progress stream ended without saying ready or failed")

    async def use_server(self, url: str) -> None:
        await self.reach_server(url)
        for notebook in self.plan.notebooks:
            await self.run_notebook(url, notebook)
        self.record.mark("notebooks_done", self.now())
        if self.plan.read_file:
            await self.read_shared_file(url)

    async def reach_server(self, url: str) -> None:
        """Until the server answers through the proxy; a proxy error when it does not in time."""
        deadline = self.now() + self.plan.limits.kernel_timeout
        last = ""
        while self.now() < deadline:
            try:
                answer = await self.hub.call("GET", self.hub.server(url, "api/status"))
            except HubUnreachable as exc:
                last = exc.message
            else:
                if answer.status == 200:
                    self.record.mark("server_answered", self.now())
                    return
                last = f"{answer.status} {_said(answer)}".strip()
            await asyncio.sleep(POLL_INTERVAL)
        raise self.fail("proxy_error", f"{url} did not answer through the proxy: {last}")

    async def start_kernel(self, url: str) -> str:
        try:
            async with asyncio.timeout(self.plan.limits.kernel_timeout):
                answer = await self.hub.call("POST", self.hub.server(url, "api/kernels"), body={})
        except TimeoutError:
            raise self.fail("kernel_start", "no kernel within the kernel timeout") from None
        kernel = answer.body.get("id") if isinstance(answer.body, dict) else None
        if answer.status != 201 or not kernel:
            raise self.fail("kernel_start", f"starting a kernel answered {answer.status}: {_said(answer)}")
        self.record.mark("kernel_started", self.now())
        return str(kernel)

    async def run_notebook(self, url: str, notebook: Notebook) -> None:
        kernel_id = await self.start_kernel(url)
        try:
            async with self.hub.kernel_socket(url, kernel_id) as socket:
                kernel = _Kernel(url, kernel_id, socket, uuid.uuid4().hex)
                for index, code in enumerate(notebook.cells, start=1):
                    if not await self.run_cell(kernel, notebook.label, index, code):
                        break
        except aiohttp.ClientError as exc:
            raise self.fail("kernel_died", f"the kernel's websocket failed: {exc}") from None
        finally:
            await self.shut_kernel(url, kernel_id)

    async def run_cell(self, kernel: _Kernel, notebook: str, index: int, code: str) -> bool:
        """Run one cell; False when the notebook cannot go on (timeout, dead kernel)."""
        started = self.now()
        execution = await self.execute(kernel, code)
        finished = self.now()
        status = "timeout" if execution is None else execution.status
        ename = "" if execution is None else execution.ename
        cell = CellRecord(notebook, index, started, finished, status, ename)
        self.record.cells.append(cell)
        if status in ("ok", "error"):
            self.record.mark("first_execution", finished)
        if status == "error" and execution is not None:
            self.record.fail("cell_error", f"{execution.ename}: {execution.evalue}", cell.label)
        elif status == "timeout":
            self.record.fail("cell_timeout", f"still running after {self.plan.limits.cell_timeout:g} s", cell.label)
        elif status == "died":
            self.record.fail("kernel_died", "the kernel died while running the cell", cell.label)
        return status in ("ok", "error")

    async def execute(self, kernel: _Kernel, code: str) -> CellExecution | None:
        """The kernel's answer to `code`; None when it took longer than the cell timeout (then it is interrupted)."""
        message = execute_request(code, kernel.session)
        execution = CellExecution(message["header"]["msg_id"])
        try:
            async with asyncio.timeout(self.plan.limits.cell_timeout):
                await kernel.socket.send_json(message)
                while not execution.done:
                    frame = await kernel.socket.receive()
                    if frame.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED, aiohttp.WSMsgType.ERROR):
                        execution.died = True
                        break
                    parsed = parse_frame(frame.data) if frame.type == aiohttp.WSMsgType.TEXT else None
                    if parsed is not None:
                        execution.feed(parsed)
        except TimeoutError:
            await self.interrupt(kernel.url, kernel.id)
            return None
        return execution

    async def interrupt(self, url: str, kernel: str) -> None:
        try:
            await self.hub.call("POST", self.hub.server(url, f"api/kernels/{kernel}/interrupt"))
        except HubUnreachable:
            return

    async def shut_kernel(self, url: str, kernel: str) -> None:
        try:
            await self.hub.call("DELETE", self.hub.server(url, f"api/kernels/{kernel}"))
        except HubUnreachable:
            return

    async def read_shared_file(self, url: str) -> None:
        """Read the shared file in the user's kernel, all users at once; bytes and seconds as the kernel timed them."""
        if self.gate is not None:
            self._gate_done = True
            await self.gate.arrive()
        kernel = await self.start_kernel(url)
        try:
            async with self.hub.kernel_socket(url, kernel) as socket:
                execution = await self.execute(
                    _Kernel(url, kernel, socket, uuid.uuid4().hex), _read_code(self.plan.read_file)
                )
        except aiohttp.ClientError as exc:
            raise self.fail("read_error", f"the kernel's websocket failed: {exc}") from None
        finally:
            await self.shut_kernel(url, kernel)
        if execution is None or execution.status != "ok":
            said = "timed out" if execution is None else f"{execution.ename}: {execution.evalue}"
            raise self.fail("read_error", f"reading {self.plan.read_file} failed: {said}")
        for line in "".join(execution.stdout).splitlines():
            if line.startswith(READ_MARKER):
                _, size, seconds = line.split()
                self.record.read_bytes, self.record.read_seconds = int(size), float(seconds)
                return
        raise self.fail("read_error", f"reading {self.plan.read_file} printed nothing")

    async def remove(self) -> None:
        """Stop the server and delete the user, under the stop timeout; a failure is recorded as `cleanup`."""
        problem = await remove_user(self.hub, self.record.name, self.plan.limits.stop_timeout, self.record, self.now)
        if problem:
            self.record.fail("cleanup", problem)


async def remove_user(
    hub: HubClient,
    name: str,
    timeout: float,
    record: UserRecord | None = None,
    clock: Callable[[], float] = time.monotonic,
) -> str:
    """Stop `name`'s server and delete the user (gone already counts as done); '' or what went wrong."""
    try:
        async with asyncio.timeout(timeout):
            await _stop_server(hub, name, timeout * SPAWN_SETTLE_SHARE)
            if record is not None:
                record.mark("stopped", clock())
            await _delete_user(hub, name)
            if record is not None:
                record.mark("deleted", clock())
    except TimeoutError:
        return f"{name} was not stopped and deleted within {timeout:g} s"
    except HubUnreachable as exc:
        return exc.message
    return ""


async def _stop_server(hub: HubClient, name: str, settle: float) -> None:
    # A stop asked for while the spawner is still starting the server can leave it behind (DockerSpawner
    # leaves a created container the hub no longer knows of): let a pending spawn end first, for a while.
    with suppress(TimeoutError):
        async with asyncio.timeout(settle):
            while await _pending(hub, name) == "spawn":
                await asyncio.sleep(POLL_INTERVAL)
    while True:
        answer = await hub.call("DELETE", hub.user_api(name, "/server"))
        if answer.status in (202, 204, 404) or (answer.status == 400 and "not running" in answer.message):
            break
        # 400 while a spawn or a stop is pending: ask again when it has settled.
        await asyncio.sleep(POLL_INTERVAL)
    while True:
        user = await hub.call("GET", hub.user_api(name))
        if user.status == 404:
            return
        body = user.body if isinstance(user.body, dict) else {}
        if not body.get("servers") and not body.get("pending"):
            return
        await asyncio.sleep(POLL_INTERVAL)


async def _pending(hub: HubClient, name: str) -> str:
    """What the user's server is waiting for ("spawn", "stop"), or '' when nothing (or no such user)."""
    answer = await hub.call("GET", hub.user_api(name))
    body = answer.body if answer.status == 200 and isinstance(answer.body, dict) else {}
    return str(body.get("pending") or "")


async def _delete_user(hub: HubClient, name: str) -> None:
    while True:
        answer = await hub.call("DELETE", hub.user_api(name))
        if answer.status in (204, 404):
            return
        await asyncio.sleep(POLL_INTERVAL)


def _read_code(path: str) -> str:
    return (
        "import time as _t\n"
        f"_start, _size = _t.perf_counter(), 0\n"
        f"with open({path!r}, 'rb') as _f:\n"
        "    while _chunk := _f.read(1 << 20):\n"
        "        _size += len(_chunk)\n"
        f"print({READ_MARKER!r}, _size, _t.perf_counter() - _start)\n"
    )


def _progress_sample(at: float, event: Mapping[str, Any]) -> dict[str, Any]:
    raw = event.get("raw_event")
    reason = str(raw.get("reason", "")) if isinstance(raw, dict) else ""
    return {"at": at, "progress": event.get("progress"), "message": str(event.get("message") or ""), "reason": reason}


def _said(answer: Answer) -> str:
    return answer.message or f"HTTP {answer.status}"
