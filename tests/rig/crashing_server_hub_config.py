"""JupyterHub configuration of a local hub whose server ends right after the hub found it ready.

The product's configuration (HUBSHIP_RIG_PRODUCT_CONFIG) is loaded first;
then the spawner is replaced by one whose server is a Python process on
loopback, at the spawner's own ip and port. It answers the hub's check that it
is up (404, which the hub takes as up, as from any server), and on the next
request it writes EXIT_CODE to HUBSHIP_RIG_ENDED_FILE and exits without an
answer, as a server that crashes once ready does. A test's watch reads that
file, as the smoke test's watch reads the state of the server's container.
No container is involved: the hub, its proxy and its REST API are real.
"""

import asyncio
import os
import sys
from pathlib import Path

from jupyterhub.spawner import Spawner

c = get_config()  # type: ignore[name-defined]  # noqa: F821  (JupyterHub's config loader provides it)
product = Path(os.environ["HUBSHIP_RIG_PRODUCT_CONFIG"])
exec(compile(product.read_text(encoding="utf-8"), str(product), "exec"), globals())
EXIT_CODE = 3

SERVER = f"""
import os, sys
from http.server import BaseHTTPRequestHandler, HTTPServer

class AnswersOnce(BaseHTTPRequestHandler):
    answered = False

    def do_GET(self):
        if AnswersOnce.answered:
            with open(sys.argv[2], "w", encoding="utf-8") as ended:
                ended.write("{EXIT_CODE}")
            os._exit({EXIT_CODE})
        AnswersOnce.answered = True
        self.send_response(404)
        self.send_header("Content-Length", "0")
        self.end_headers()

HTTPServer(("127.0.0.1", int(sys.argv[1])), AnswersOnce).serve_forever()
"""


class CrashingServerSpawner(Spawner):  # type: ignore[misc]  # JupyterHub is untyped
    """Starts a server that answers once and then ends; its poll and stop follow that process."""

    process: asyncio.subprocess.Process | None = None

    async def start(self) -> tuple[str, int]:
        ended_file = os.environ["HUBSHIP_RIG_ENDED_FILE"]
        self.process = await asyncio.create_subprocess_exec(sys.executable, "-c", SERVER, str(self.port), ended_file)
        return "127.0.0.1", int(self.port)

    async def poll(self) -> int | None:
        return 0 if self.process is None else self.process.returncode

    async def stop(self, now: bool = False) -> None:
        if self.process is not None and self.process.returncode is None:
            self.process.kill()
            await self.process.wait()


c.JupyterHub.spawner_class = CrashingServerSpawner
