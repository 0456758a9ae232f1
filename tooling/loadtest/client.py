"""The one async client of the load test: the hub's REST API, its progress stream, servers and kernels.

Built on aiohttp: HTTP requests, streamed responses (the server-sent events
of the progress stream) and websockets (the kernel's channels) from one
session, with no cap on connections (a cap would queue users in the client
and show up as hub latency). The API token travels only in the
Authorization header of each request; it is registered as a secret.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote, urlsplit, urlunsplit

import aiohttp

from tooling.errors import ToolingError
from tooling.loadtest.progress import EventStreamDecoder
from tooling.log import register_secret

# JupyterHub sends a keepalive on the progress stream every 8 s: a longer silence means trouble.
PROGRESS_SILENCE = 30.0
STREAM_CHUNK = 1 << 16


@dataclass(frozen=True)
class Answer:
    """A response read whole: status, its JSON body (or {}), the hub's message, and Retry-After in seconds."""

    status: int
    body: dict[str, Any] | list[Any]
    message: str
    retry_after: float | None


class HubUnreachable(ToolingError):
    """No answer from the hub (connection refused, DNS, TLS, timeout)."""


class HubClient:
    """Requests to one hub with one token; use as `async with HubClient(url, token, timeout) as hub`."""

    def __init__(self, hub_url: str, token: str, request_timeout: float) -> None:
        register_secret(token)
        self.hub = hub_url.rstrip("/") + "/"
        self.origin = _origin(self.hub)
        self._token = token
        self.request_timeout = request_timeout
        self._session: aiohttp.ClientSession | None = None

    async def __aenter__(self) -> HubClient:
        self._session = aiohttp.ClientSession(
            headers={"Authorization": f"token {self._token}"},
            connector=aiohttp.TCPConnector(limit=0),
            timeout=aiohttp.ClientTimeout(total=self.request_timeout),
        )
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._session is not None:
            await self._session.close()

    @property
    def session(self) -> aiohttp.ClientSession:
        if self._session is None:
            raise RuntimeError("HubClient used outside `async with`")
        return self._session

    def api(self, path: str) -> str:
        return f"{self.hub}hub/api/{path}"

    def user_api(self, name: str, rest: str = "") -> str:
        return self.api(f"users/{quote(name, safe='')}{rest}")

    def server(self, url_path: str, rest: str) -> str:
        """A URL under a user's server, from the path the hub gives (`/user/NAME/`)."""
        return f"{self.origin}{url_path.rstrip('/')}/{rest}"

    async def call(self, method: str, url: str, *, body: Any = None) -> Answer:
        """One request, its answer read whole; `HubUnreachable` when there is no answer."""
        try:
            async with self.session.request(method, url, json=body) as response:
                text = await response.text()
                return _answer(response.status, text, response.headers.get("Retry-After"))
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise HubUnreachable(f"{method} {urlsplit(url).path} got no answer: {_describe(exc)}") from None

    async def progress(self, name: str) -> AsyncIterator[dict[str, Any]]:
        """The events of the user's spawn progress stream, as they arrive, until the hub closes it."""
        timeout = aiohttp.ClientTimeout(total=None, connect=self.request_timeout, sock_read=PROGRESS_SILENCE)
        decoder = EventStreamDecoder()
        try:
            async with self.session.get(
                self.user_api(name, "/server/progress"), headers={"Accept": "text/event-stream"}, timeout=timeout
            ) as response:
                if response.status != 200:
                    raise HubUnreachable(f"the progress stream of {name} answered {response.status}")
                async for chunk in response.content.iter_chunked(STREAM_CHUNK):
                    for event in decoder.feed(chunk):
                        yield event
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise HubUnreachable(f"the progress stream of {name} broke: {_describe(exc)}") from None

    @asynccontextmanager
    async def kernel_socket(self, url_path: str, kernel_id: str) -> AsyncIterator[aiohttp.ClientWebSocketResponse]:
        """The websocket of a kernel's channels, through the proxy, authenticated with the token."""
        url = self.server(url_path, f"api/kernels/{kernel_id}/channels")
        url = url.replace("https://", "wss://", 1).replace("http://", "ws://", 1)
        async with self.session.ws_connect(url, max_msg_size=0, heartbeat=None, autoping=True) as socket:
            yield socket


def _answer(status: int, text: str, retry_after: str | None) -> Answer:
    body: dict[str, Any] | list[Any] = {}
    try:
        parsed = json.loads(text) if text else {}
        if isinstance(parsed, dict | list):
            body = parsed
    except ValueError:
        body = {}
    message = str(body.get("message", "")) if isinstance(body, dict) else ""
    return Answer(status, body, message or (text.strip()[:200] if status >= 400 else ""), _seconds(retry_after))


def _seconds(value: str | None) -> float | None:
    """Retry-After as seconds; JupyterHub sends a number (an HTTP date is not used by it)."""
    if value is None:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        return None


def _origin(url: str) -> str:
    parts = urlsplit(url)
    return urlunsplit((parts.scheme, parts.netloc, "", "", ""))


def _describe(exc: BaseException) -> str:
    if isinstance(exc, TimeoutError | asyncio.TimeoutError):
        return "timed out"
    return str(exc).splitlines()[0] if str(exc) else type(exc).__name__
