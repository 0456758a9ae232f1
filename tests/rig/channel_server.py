"""Serve a conda channel folder over HTTP on 127.0.0.1, from a thread of the calling process.

Plain static files are all a conda client needs (repodata.json and the
package files). The server binds 127.0.0.1 on a port the kernel picks, so
parallel runs never collide; it handles requests on a fixed pool of threads
(at most WORKERS at once, each connection with a socket timeout), and it is
stopped and joined when the `serve_channel` block ends.
"""

from __future__ import annotations

import functools
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from http import HTTPStatus
from http.server import HTTPServer, SimpleHTTPRequestHandler
from pathlib import Path
from socket import socket
from typing import Any

from tooling.errors import ToolingError
from tooling.log import logger

WORKERS = 8
SOCKET_TIMEOUT = 30.0
STOP_TIMEOUT = 10.0


class _QuietHandler(SimpleHTTPRequestHandler):
    """Static files, with each request logged at debug level instead of printed to stderr."""

    timeout = SOCKET_TIMEOUT

    def log_message(self, format: str, *args: Any) -> None:
        logger.debug("rig channel server: " + format, *args)

    def send_response(self, code: int, message: str | None = None) -> None:
        super().send_response(code, message)
        if code == HTTPStatus.NOT_MODIFIED:
            # A 304 repeats the file's validator, as real servers send it (RFC 9110, 15.4.5); py-rattler
            # refuses a 304 without one for sharded repodata, which http.server would otherwise send.
            modified = Path(self.translate_path(self.path)).stat().st_mtime
            self.send_header("Last-Modified", self.date_time_string(int(modified)))


class _PooledHTTPServer(HTTPServer):
    """An HTTPServer that hands each connection to a bounded pool of threads."""

    # Installers open dozens of connections at once; the default backlog of 5 would drop most of them.
    request_queue_size = 64

    def __init__(self, address: tuple[str, int], handler: Any, workers: int) -> None:
        super().__init__(address, handler)
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="rig-channel")

    def process_request(self, request: Any, client_address: Any) -> None:
        self._pool.submit(self._handle, request, client_address)

    def _handle(self, request: socket, client_address: Any) -> None:
        try:
            self.finish_request(request, client_address)
        except Exception:
            self.handle_error(request, client_address)
        finally:
            self.shutdown_request(request)

    def server_close(self) -> None:
        super().server_close()
        self._pool.shutdown(wait=True, cancel_futures=True)


@dataclass(frozen=True)
class ServedChannel:
    """Where a served channel root answers."""

    root: Path
    root_url: str

    def channel_url(self, name: str) -> str:
        return f"{self.root_url}/{name}"


@contextmanager
def serve_channel(root: Path, *, workers: int = WORKERS) -> Iterator[ServedChannel]:
    """Serve the files under `root` at http://127.0.0.1:PORT/ until the block ends."""
    if not root.is_dir():
        raise ToolingError(f"{root}: no such folder to serve as a conda channel. Build it with ensure_channel().")
    handler = functools.partial(_QuietHandler, directory=str(root))
    server = _PooledHTTPServer(("127.0.0.1", 0), handler, workers)
    host, port = server.server_address[:2]
    served = ServedChannel(root=root, root_url=f"http://{host!s}:{port}")
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.2}, name="rig-channel-server")
    thread.start()
    logger.info("rig channel: serving %s at %s", root, served.root_url)
    try:
        yield served
    finally:
        server.shutdown()
        thread.join(timeout=STOP_TIMEOUT)
        server.server_close()
