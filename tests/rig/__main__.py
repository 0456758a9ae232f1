"""`python -m tests.rig up`: bring the offline rig up by hand, to rehearse the pipeline against it.

It makes (or reuses from the cache) the conda channel and the base image,
serves the channel and a registry on 127.0.0.1, prints their addresses and
the hub.toml settings that point a hub at them, then holds them up until
Ctrl-C, SIGTERM or `--hold` seconds, and stops what it started. It needs the
Docker engine that DOCKER_HOST names (`source tests/rig/start-dockerd.sh`).
With `--hold 0` it stops as soon as everything answers (what the rig-start
benchmark times).
"""

from __future__ import annotations

import argparse
import signal
import sys
import tempfile
import threading
import time
from pathlib import Path
from types import FrameType

from tests.rig.baseimage import ensure_base_image
from tests.rig.channel import CHANNEL_NAME, ensure_channel
from tests.rig.channel_server import serve_channel
from tests.rig.docker import require_rig_engine, rig_docker
from tests.rig.registry import RunningRegistry, serve_registry
from tooling import log
from tooling.errors import ToolingError
from tooling.files import write_atomic

DEFAULT_HOLD = 4 * 3600


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m tests.rig",
        description="Bring up the offline rig: a conda channel, a base image and a registry, on 127.0.0.1.",
    )
    sub = parser.add_subparsers(dest="command", required=True)
    up = sub.add_parser("up", help="make or reuse the rig, serve it, print its addresses")
    up.add_argument("--auth", action="store_true", help="require a login on the registry (htpasswd)")
    up.add_argument(
        "--hold",
        type=float,
        default=DEFAULT_HOLD,
        metavar="SECONDS",
        help=f"stop after this long (default {DEFAULT_HOLD} s; 0: stop as soon as everything answers)",
    )
    return parser.parse_args(argv)


def credentials_file(registry: RunningRegistry, folder: Path) -> Path | None:
    """A shell file (mode 600) exporting the registry login, so the password is never printed."""
    if registry.credentials is None:
        return None
    path = folder / "registry.env"
    write_atomic(
        path,
        f"export HUBSHIP_REGISTRY_USERNAME={registry.credentials.username}\n"
        f"export HUBSHIP_REGISTRY_PASSWORD={registry.credentials.password}\n",
    )
    path.chmod(0o600)
    return path


def describe(channel_url: str, base_image: str, registry: RunningRegistry, env_file: Path | None) -> str:
    lines = [
        "The rig is up:",
        f"  conda channel  {channel_url}",
        f"  base image     {base_image}",
        f"  registry       {registry.address}" + (" (login required)" if registry.auth else ""),
        "",
        "Point a hub at it with these hub.toml settings:",
        "  [image]",
        f'  registry = "{registry.address}"',
        f'  base = "{base_image}"',
        "  [mirrors]",
        f'  {CHANNEL_NAME} = "{channel_url}"',
    ]
    if env_file is not None:
        lines += ["", f"Registry login for push: source {env_file}"]
    return "\n".join(lines)


def hold(seconds: float) -> None:
    """Wait until the time is up or a SIGINT/SIGTERM arrives."""
    stop = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    stop.wait(timeout=seconds)


def up(auth: bool, hold_seconds: float) -> None:
    started = time.monotonic()
    docker = rig_docker()
    require_rig_engine(docker)
    root = ensure_channel()
    base_image = ensure_base_image(docker)
    with (
        serve_channel(root) as served,
        serve_registry(auth=auth) as registry,
        tempfile.TemporaryDirectory(prefix="hubship-rig-") as scratch,
    ):
        env_file = credentials_file(registry, Path(scratch))
        print(describe(served.channel_url(CHANNEL_NAME), base_image, registry, env_file), flush=True)
        print(f"\nReady in {time.monotonic() - started:.1f} s.", flush=True)
        if hold_seconds > 0:
            print("Press Ctrl-C to stop.", flush=True)
            hold(hold_seconds)


def main(argv: list[str]) -> int:
    args = parse_args(argv)
    log.configure()
    try:
        up(args.auth, args.hold)
    except ToolingError as exc:
        print(f"error: {exc.message}", file=sys.stderr)
        return exc.exit_code
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
