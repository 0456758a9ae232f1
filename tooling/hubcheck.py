"""The hub spawn check: a JupyterHub spawns a test user's server, which runs code, then stops.

Given a hub's public URL and an API token with admin rights over users and
servers, `check_hub_spawn` does through the hub's REST API what a user's
first visit does, and reports each step:

1. The hub answers (`GET /hub/api/`: its version).
2. The test user exists (created when missing, deleted again at the end).
3. Its server is spawned (`POST /hub/api/users/NAME/server`), and the
   user's model is polled until the server is ready or the hub gave up on it;
   then the hub's own message (its `failed` progress event) is the reason.
4. The server answers THROUGH THE PROXY, at the URL the hub gives it
   (`GET /user/NAME/api/status` with the token: the hub's auth works there).
5. A kernel starts (the server's REST API) and runs a line of code sent over
   its websocket; the output must be what the line prints.
6. `work`, when given, runs more code in that kernel (verify: the image's
   own reference, the tutorials cell by cell).
7. The server stops (`DELETE .../server`), and the hub says it is gone.

Every request and wait is bounded: `HubCheckSettings` holds the timeouts.
When a step fails, the server is still stopped and the user deleted (best
effort, bounded), and the first failure is the reason. The token travels
only in request headers and is registered as a secret, so it never shows.

The smoke test runs this against a local JupyterHub (`tooling.smoke.hub`).
Nothing here is particular to that hub: any hub's URL (http or https) and
such a token will do.
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote, urlsplit, urlunsplit

import requests
from tornado.httpclient import HTTPClientError, HTTPRequest
from tornado.websocket import WebSocketClientConnection, websocket_connect

from tooling.checkresult import CheckFailed, CheckResult, Outcome, run_check
from tooling.log import register_secret

CHECK_NAME = "hub-spawn"
# The line the kernel runs, and what it must print first.
KERNEL_CODE = 'import sys\nprint("hubship-smoke", 6 * 7, sys.prefix)'
KERNEL_OUTPUT = "hubship-smoke 42"
# JupyterHub sends a keepalive on the progress stream every 8 s; a longer silence means trouble.
PROGRESS_SILENCE = 20.0
# Seconds to read the progress stream for a failed spawn's reason: a spawn that is over sends it at once.
PROGRESS_READ_TIMEOUT = 20.0
POLL_INTERVAL = 0.5
# What the hub's user model says of a server it is starting, and of one it gave up on and is stopping.
PENDING_SPAWN = "spawn"
PENDING_STOP = "stop"


class WorkFailed(Exception):
    """Code run by a check's `work` failed: it raised, timed out, or printed what it must not."""


# Runs code in the check's kernel within a timeout (seconds); what it printed. Raises `WorkFailed`.
KernelRunner = Callable[[str, float], str]
# More to do in the kernel once it ran the check's own code; returns lines for the check's steps.
KernelWork = Callable[[KernelRunner], Sequence[str]]


@dataclass(frozen=True)
class HubCheckSettings:
    user: str = "hubship-smoke"
    spawn_timeout: float = 120.0  # seconds from the spawn request until the server is ready
    kernel_timeout: float = 60.0  # seconds for the kernel to start and run the code
    stop_timeout: float = 60.0  # seconds for the server to stop
    request_timeout: float = 15.0  # seconds for any one HTTP request


def check_hub_spawn(
    hub_url: str,
    token: str,
    settings: HubCheckSettings | None = None,
    watch: Callable[[], str] | None = None,
    work: KernelWork | None = None,
) -> CheckResult:
    """Spawn, use and stop a test user's server on the hub at `hub_url`; the result lists every step.

    `watch`, when given, says how the server ended ('' while it runs). It is asked
    while the spawn is pending, and when using the ready server fails; a non-empty
    answer is then the reason (a caller that can see the server's container knows
    it died long before the hub's own timeout, or its next poll, says so).
    """
    register_secret(token)
    check = _HubSpawn(hub_url, token, settings or HubCheckSettings(), watch, work)
    return run_check(CHECK_NAME, check.run)


class _HubSpawn:
    """One run of the check; `steps` records what happened, with the seconds since the start."""

    def __init__(
        self,
        hub_url: str,
        token: str,
        settings: HubCheckSettings,
        watch: Callable[[], str] | None,
        work: KernelWork | None,
    ) -> None:
        self.work = work
        self.hub = hub_url.rstrip("/") + "/"
        self.token = token
        self.settings = settings
        self.watch = watch
        self.started = time.monotonic()
        self.steps: list[str] = []
        self.session = requests.Session()
        self.session.headers["Authorization"] = f"token {token}"
        self.user_api = f"{self.hub}hub/api/users/{quote(settings.user, safe='')}"

    def step(self, text: str) -> None:
        self.steps.append(f"{time.monotonic() - self.started:6.1f} s  {text}")

    def fail(self, reason: str) -> CheckFailed:
        self.step(f"FAILED: {reason}")
        return CheckFailed(reason, self.steps)

    def run(self) -> Outcome:
        with self.session:
            version = self.hub_version()
            created = self.ensure_user()
            try:
                server_url = self.spawn()
                output = self.use_ready_server(server_url)
                self.stop_server()
            except CheckFailed as failure:
                self.clean_up(created)
                raise CheckFailed(failure.reason, self.steps) from None
            self.delete_user(created)
        seconds = time.monotonic() - self.started
        return Outcome(
            f"JupyterHub {version} spawned {self.settings.user}'s server, reached it through the proxy, "
            f"ran code in a kernel ({output!r}) and stopped it, in {seconds:.1f} s",
            tuple(self.steps),
        )

    # --- HTTP ------------------------------------------------------------------------------------

    def request(self, method: str, url: str, **kwargs: Any) -> requests.Response:
        try:
            return self.session.request(method, url, timeout=self.settings.request_timeout, **kwargs)
        except requests.RequestException as exc:
            raise self.fail(f"{method} {_path(url)} got no answer: {_first_line(exc)}") from None

    def expect(self, response: requests.Response, *statuses: int) -> requests.Response:
        if response.status_code not in statuses:
            said = _hub_message(response)
            raise self.fail(
                f"{response.request.method} {_path(response.url)} answered {response.status_code}"
                + (f": {said}" if said else "")
            )
        return response

    # --- the steps -------------------------------------------------------------------------------

    def hub_version(self) -> str:
        response = self.expect(self.request("GET", f"{self.hub}hub/api/"), 200)
        version = str(_json(response).get("version", "?"))
        self.step(f"JupyterHub {version} answers at {self.hub}")
        return version

    def ensure_user(self) -> bool:
        """True when the check created the user (and so deletes it at the end)."""
        found = self.request("GET", self.user_api)
        if found.status_code == 200:
            self.step(f"user {self.settings.user} exists")
            return False
        self.expect(found, 404)
        self.expect(self.request("POST", self.user_api), 201)
        self.step(f"created user {self.settings.user}")
        return True

    def spawn(self) -> str:
        """Ask for the user's server and wait until the hub says it is ready; its URL path."""
        response = self.request("POST", f"{self.user_api}/server")
        if response.status_code >= 500:
            raise self.spawn_failed(_hub_message(response))
        self.expect(response, 201, 202)
        self.step(f"spawn requested ({response.status_code})")
        url = str(self.wait_ready()["url"])
        self.step(f"server ready at {url}")
        return url

    def wait_ready(self) -> dict[str, Any]:
        """Poll the user's model until the server is ready; a spawn the hub gave up, or the watch's reason, fails.

        When the hub gives up it stops the server, and the server's end is then the hub's doing: the
        hub's own reason says why (it tells it once the server is stopped), the watch's only what
        followed. So what the watch saw counts only if the hub still waits for the server after it.
        """
        deadline = time.monotonic() + self.settings.spawn_timeout
        watched = ""
        while time.monotonic() < deadline:
            server = self.server_model()
            if server.get("ready"):
                return server
            pending = server.get("pending")
            if pending == PENDING_STOP:
                time.sleep(POLL_INTERVAL)
                continue
            if pending != PENDING_SPAWN:
                raise self.spawn_failed(watched or "the hub stopped waiting for it")
            if watched:
                break
            watched = self.watched()
            if not watched:
                time.sleep(POLL_INTERVAL)
        if watched:
            raise self.fail(f"{watched} while the hub waited for it")
        raise self.fail(f"the server was not ready within {self.settings.spawn_timeout:.0f} s")

    def watched(self) -> str:
        """What the caller's watch says of the server's end ('' while it runs, or without a watch)."""
        return self.watch() if self.watch is not None else ""

    def server_model(self) -> dict[str, Any]:
        user = _json(self.expect(self.request("GET", self.user_api), 200))
        return dict(user.get("servers", {}).get("", {}))

    def spawn_failed(self, fallback: str) -> CheckFailed:
        """The hub's own reason for a failed spawn (its `failed` progress event), else `fallback`."""
        said = self.spawn_failure() or fallback
        return self.fail(f"the hub could not spawn the server: {said}")

    def spawn_failure(self) -> str:
        """The message of the hub's `failed` progress event for the last spawn, or '' when it has none.

        A spawn still pending keeps the stream open with keepalives: it is read for PROGRESS_READ_TIMEOUT at most.
        """
        deadline = time.monotonic() + PROGRESS_READ_TIMEOUT
        try:
            with self.session.get(
                f"{self.user_api}/server/progress",
                headers={"Accept": "text/event-stream"},
                stream=True,
                timeout=(self.settings.request_timeout, PROGRESS_SILENCE),
            ) as stream:
                if stream.status_code != 200:
                    return ""
                for event in _events(stream.iter_lines(decode_unicode=True), deadline):
                    if event.get("failed"):
                        return str(event.get("message") or "")
        except requests.RequestException:
            return ""
        return ""

    def use_ready_server(self, server_url: str) -> str:
        """`use_server`; when it fails because the server ended once ready, the watch's reason says so first.

        The hub notices a server's end only at its next poll, and meanwhile answers for it (a redirect
        loop, a 503 from the proxy): the watch knows the actual cause.
        """
        try:
            return self.use_server(server_url)
        except CheckFailed as failure:
            ended = self.watched()
            if not ended:
                raise
            raise self.fail(f"{ended} once the hub had found it ready ({failure.reason})") from None

    def use_server(self, server_url: str) -> str:
        """Reach the server through the proxy, start a kernel, run the code; what the code printed."""
        server = _origin(self.hub) + server_url
        status = _json(self.expect(self.request("GET", f"{server}api/status"), 200))
        self.step(f"server answers through the proxy at {server_url} ({status.get('kernels', 0)} kernels)")
        kernel = _json(self.expect(self.request("POST", f"{server}api/kernels", json={}), 201))
        kernel_id = str(kernel["id"])
        self.step(f"kernel {kernel.get('name', '?')} started ({kernel_id[:8]})")
        try:
            output = self.execute(server, kernel_id)
            self.do_work(server, kernel_id)
        finally:
            self.request("DELETE", f"{server}api/kernels/{kernel_id}")
        if not output.startswith(KERNEL_OUTPUT):
            raise self.fail(f"the kernel printed {output!r}, expected {KERNEL_OUTPUT!r} first")
        self.step(f"kernel ran the code: {output!r}")
        return output

    def execute(self, server: str, kernel_id: str) -> str:
        url = _websocket_url(f"{server}api/kernels/{kernel_id}/channels")
        try:
            return asyncio.run(
                asyncio.wait_for(
                    _run_code(url, self.token, self.settings, KERNEL_CODE), timeout=self.settings.kernel_timeout
                )
            )
        except TimeoutError:
            raise self.fail(f"the kernel did not run the code within {self.settings.kernel_timeout:.0f} s") from None
        except KernelError as exc:
            raise self.fail(f"the kernel failed: {exc}") from None
        except (HTTPClientError, OSError) as exc:
            raise self.fail(f"the kernel's websocket failed: {_first_line(exc)}") from None

    def do_work(self, server: str, kernel_id: str) -> None:
        if self.work is None:
            return
        url = _websocket_url(f"{server}api/kernels/{kernel_id}/channels")

        def run(code: str, timeout: float) -> str:
            try:
                return asyncio.run(asyncio.wait_for(_run_code(url, self.token, self.settings, code), timeout=timeout))
            except TimeoutError:
                raise WorkFailed(f"did not finish within {timeout:.0f} s") from None
            except KernelError as exc:
                raise WorkFailed(str(exc)) from None
            except (HTTPClientError, OSError) as exc:
                raise WorkFailed(f"the kernel's websocket failed: {_first_line(exc)}") from None

        try:
            for line in self.work(run):
                self.step(line)
        except WorkFailed as exc:
            raise self.fail(str(exc)) from None

    def stop_server(self) -> None:
        response = self.expect(self.request("DELETE", f"{self.user_api}/server"), 202, 204)
        self.step(f"stop requested ({response.status_code})")
        self.wait_stopped()
        self.step("server stopped")

    def wait_stopped(self) -> None:
        deadline = time.monotonic() + self.settings.stop_timeout
        while time.monotonic() < deadline:
            user = _json(self.expect(self.request("GET", self.user_api), 200))
            if not user.get("servers") and not user.get("pending"):
                return
            time.sleep(POLL_INTERVAL)
        raise self.fail(f"the server had not stopped {self.settings.stop_timeout:.0f} s after the stop request")

    def delete_user(self, created: bool) -> None:
        if created:
            self.expect(self.request("DELETE", self.user_api), 204)
            self.step(f"deleted user {self.settings.user}")

    def clean_up(self, created: bool) -> None:
        """After a failure: stop the server and delete the user if the check created it; errors are only noted."""
        try:
            if self.request("DELETE", f"{self.user_api}/server").status_code in (202, 204):
                self.wait_stopped()
            self.delete_user(created)
        except CheckFailed:
            self.step("cleaning up after the failure did not finish (see above)")


# --- the kernel's websocket ----------------------------------------------------------------------


class KernelError(Exception):
    """The code raised in the kernel, or the kernel replied with an error."""


async def _run_code(url: str, token: str, settings: HubCheckSettings, code: str) -> str:
    request = HTTPRequest(
        url,
        headers={"Authorization": f"token {token}"},
        connect_timeout=settings.request_timeout,
        request_timeout=settings.request_timeout,
    )
    connection = await websocket_connect(request)
    try:
        message = _execute_request(code)
        await connection.write_message(json.dumps(message))
        return await _collect_output(connection, message["header"]["msg_id"])
    finally:
        connection.close()


def _execute_request(code: str) -> dict[str, Any]:
    """An `execute_request` of the Jupyter messaging protocol (5.3), as the websocket's JSON takes it."""
    return {
        "header": {
            "msg_id": uuid.uuid4().hex,
            "msg_type": "execute_request",
            "username": "hubship",
            "session": uuid.uuid4().hex,
            "date": datetime.now(UTC).isoformat(),
            "version": "5.3",
        },
        "parent_header": {},
        "metadata": {},
        "content": {
            "code": code,
            "silent": False,
            "store_history": False,
            "user_expressions": {},
            "allow_stdin": False,
            "stop_on_error": True,
        },
        "channel": "shell",
        "buffers": [],
    }


async def _collect_output(connection: WebSocketClientConnection, msg_id: str) -> str:
    """The stdout the request produced, once the kernel is idle again; `KernelError` for an error."""
    output: list[str] = []
    while True:
        raw = await connection.read_message()
        if raw is None:
            raise KernelError("the websocket closed before the kernel replied")
        if isinstance(raw, bytes):
            continue  # binary frames carry buffers; the reply comes as JSON text
        message = json.loads(raw)
        if message.get("parent_header", {}).get("msg_id") != msg_id:
            continue
        kind = message.get("msg_type") or message.get("header", {}).get("msg_type")
        content = message.get("content", {})
        if kind == "stream" and content.get("name") == "stdout":
            output.append(str(content.get("text", "")))
        elif kind == "error":
            raise KernelError(f"{content.get('ename')}: {content.get('evalue')}")
        elif kind == "status" and content.get("execution_state") == "idle":
            return "".join(output).strip()


# --- small helpers -------------------------------------------------------------------------------


def _events(lines: Iterator[str], deadline: float) -> Iterator[dict[str, Any]]:
    """The JSON events of a server-sent event stream (`data: {...}` lines) until `deadline`; keepalives are skipped."""
    for line in lines:
        if time.monotonic() > deadline:
            return
        if line and line.startswith("data:"):
            event = json.loads(line[len("data:") :])
            if isinstance(event, dict):
                yield event


def _json(response: requests.Response) -> dict[str, Any]:
    try:
        data = response.json()
    except ValueError:
        return {}
    return data if isinstance(data, dict) else {}


def _hub_message(response: requests.Response) -> str:
    """The hub's own explanation of an error answer (its JSON `message`), else the body's first line."""
    data = _json(response)
    if data.get("message"):
        return str(data["message"])
    lines = response.text.strip().splitlines()
    return lines[0][:200] if lines else ""


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def _path(url: str) -> str:
    return urlsplit(url).path


def _origin(url: str) -> str:
    parts = urlsplit(url)
    return urlunsplit((parts.scheme, parts.netloc, "", "", ""))


def _websocket_url(url: str) -> str:
    parts = urlsplit(url)
    return urlunsplit(("wss" if parts.scheme == "https" else "ws", parts.netloc, parts.path, parts.query, ""))
