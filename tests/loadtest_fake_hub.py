"""A stand-in for a JupyterHub under KubeSpawner, for what the rig's DockerSpawner hub cannot produce.

DockerSpawner sends no Kubernetes events and never pulls (the rig has no
registry to pull from), so the progress events that split a spawn into
waiting for a node, pulling the image and starting, and an image pull that
fails, exist only on a cluster. This aiohttp.web app speaks the few parts
of the hub's REST API the load test uses, sends KubeSpawner-shaped progress
events (`raw_event` with a Kubernetes `reason`), and answers kernels the way
Jupyter Server does (execute_reply, then idle). A user whose name ends with
one of `pull_fails` gets ErrImagePull and a failed spawn; one ending with
one of `streams_end` sees its progress stream close before ready or failed
(a proxy in between that gave up on it). It runs on
127.0.0.1 in a thread of its own; the product never uses it.
"""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from aiohttp import WSMsgType, web

EVENT_GAP = 0.05  # seconds between progress events


@dataclass
class FakeKubeHub:
    pull_fails: tuple[str, ...] = ()
    streams_end: tuple[str, ...] = ()
    users: dict[str, dict[str, Any]] = field(default_factory=dict)
    spawn_options: dict[str, Any] = field(default_factory=dict)
    url: str = ""

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_get("/hub/api/", self.info)
        app.router.add_get("/hub/api/users", self.list_users)
        app.router.add_route("*", "/hub/api/users/{name}", self.user)
        app.router.add_route("*", "/hub/api/users/{name}/server", self.server)
        app.router.add_get("/hub/api/users/{name}/server/progress", self.progress)
        app.router.add_get("/user/{name}/api/status", self.status)
        app.router.add_route("*", "/user/{name}/api/kernels", self.kernels)
        app.router.add_delete("/user/{name}/api/kernels/{kernel}", self.kernel_gone)
        app.router.add_get("/user/{name}/api/kernels/{kernel}/channels", self.channels)
        return app

    async def info(self, request: web.Request) -> web.Response:
        return web.json_response({"version": "5.4.6"})

    async def list_users(self, request: web.Request) -> web.Response:
        wanted = request.query.get("name_filter", "")
        return web.json_response([{"name": name} for name in self.users if wanted in name])

    async def user(self, request: web.Request) -> web.Response:
        name = request.match_info["name"]
        if request.method == "POST":
            self.users[name] = {"name": name, "servers": {}, "pending": None}
            return web.json_response(self.users[name], status=201)
        if name not in self.users:
            return web.json_response({"message": "Not Found"}, status=404)
        if request.method == "DELETE":
            del self.users[name]
            return web.Response(status=204)
        return web.json_response(self.users[name])

    async def server(self, request: web.Request) -> web.Response:
        name = request.match_info["name"]
        if name not in self.users:
            return web.json_response({"message": "Not Found"}, status=404)
        if request.method == "POST":
            self.spawn_options[name] = await request.json()
            self.users[name]["servers"] = {"": {"pending": "spawn", "ready": False}}
            return web.Response(status=202)
        self.users[name]["servers"] = {}
        return web.Response(status=204)

    async def progress(self, request: web.Request) -> web.StreamResponse:
        name = request.match_info["name"]
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await response.prepare(request)
        fails = name.endswith(self.pull_fails) if self.pull_fails else False
        events: list[dict[str, Any]] = [
            {"progress": 0, "message": "Server requested"},
            _kube(10, "FailedScheduling", "0/3 nodes are available: 3 Insufficient memory."),
            _kube(20, "TriggeredScaleUp", "pod triggered scale-up"),
            _kube(30, "Scheduled", f"Successfully assigned jhub/jupyter-{name} to node-4"),
            _kube(40, "Pulling", 'Pulling image "example/user-image:tag"'),
        ]
        ends_early = name.endswith(self.streams_end) if self.streams_end else False
        if fails:
            events += [
                _kube(50, "Failed", 'Failed to pull image "example/user-image:tag": ErrImagePull'),
                {"progress": 100, "failed": True, "message": "Spawn failed: pod did not start in 300 seconds!"},
            ]
        elif not ends_early:
            events += [
                _kube(60, "Pulled", 'Successfully pulled image "example/user-image:tag"'),
                _kube(70, "Started", "Started container notebook"),
                {"progress": 100, "ready": True, "message": "Server ready", "url": f"/user/{name}/"},
            ]
            self.users[name]["servers"] = {"": {"pending": None, "ready": True}}
        for event in events:
            await asyncio.sleep(EVENT_GAP)
            await response.write(b":keepalive\n\n" + f"data: {json.dumps(event)}\n\n".encode())
        return response

    async def status(self, request: web.Request) -> web.Response:
        return web.json_response({"kernels": 0})

    async def kernels(self, request: web.Request) -> web.Response:
        return web.json_response({"id": "kernel-1", "name": "python3"}, status=201)

    async def kernel_gone(self, request: web.Request) -> web.Response:
        return web.Response(status=204)

    async def channels(self, request: web.Request) -> web.WebSocketResponse:
        socket = web.WebSocketResponse()
        await socket.prepare(request)
        async for frame in socket:
            if frame.type != WSMsgType.TEXT:
                continue
            parent = json.loads(frame.data)["header"]
            for kind, content in (
                ("status", {"execution_state": "busy"}),
                ("execute_reply", {"status": "ok"}),
                ("status", {"execution_state": "idle"}),
            ):
                await socket.send_json(
                    {"header": {"msg_type": kind}, "msg_type": kind, "parent_header": parent, "content": content}
                )
        return socket


def _kube(progress: int, reason: str, message: str) -> dict[str, Any]:
    return {"progress": progress, "message": message, "raw_event": {"reason": reason, "message": message}}


@contextmanager
def serve_fake_kube_hub(pull_fails: tuple[str, ...] = (), streams_end: tuple[str, ...] = ()) -> Iterator[FakeKubeHub]:
    """The fake hub on a free 127.0.0.1 port, served from a thread with its own event loop."""
    hub = FakeKubeHub(pull_fails, streams_end)
    loop = asyncio.new_event_loop()
    runner = web.AppRunner(hub.app())
    loop.run_until_complete(runner.setup())
    site = web.TCPSite(runner, "127.0.0.1", 0)
    loop.run_until_complete(site.start())
    port = runner.addresses[0][1]
    hub.url = f"http://127.0.0.1:{port}/"
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    try:
        yield hub
    finally:
        loop.call_soon_threadsafe(loop.stop)
        thread.join(timeout=10)
        loop.run_until_complete(runner.cleanup())
        loop.close()
