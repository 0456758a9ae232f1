"""How long the offline rig takes to come up: cold (nothing cached) and warm (a second run).

    python benchmarks/rig_start.py [--warm-runs N]

Cold: a fresh, empty rig cache (channel, wheels, base-image tarball), no pip
cache, and a base image name of its own so nothing the tests use is touched;
the channel is built from PyPI wheels and the base image made with
debootstrap. Warm: the same command again, as a second `.ci/run` on the same
machine sees it. Each run is `python -m tests.rig up --hold 0` (make or
reuse, serve, answer, stop). Needs root, the Docker engine DOCKER_HOST names,
and Debian's archive and PyPI. Removes its cache and its image at the end.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BENCH_REPOSITORY = f"hubship-rig/base-benchmark-{os.getpid()}"


def rig_up(env: dict[str, str]) -> float:
    started = time.monotonic()
    subprocess.run(
        [sys.executable, "-m", "tests.rig", "up", "--hold", "0"],
        cwd=ROOT,
        env=env,
        check=True,
        stdout=subprocess.DEVNULL,
    )
    return time.monotonic() - started


def folder_size(path: Path) -> int:
    return sum(item.stat().st_size for item in path.rglob("*") if item.is_file())


def remove_benchmark_images(env: dict[str, str]) -> None:
    docker = env.get("HUBSHIP_DOCKER") or "docker"
    listed = subprocess.run(
        [docker, "images", "--format", "{{.Repository}}:{{.Tag}}", BENCH_REPOSITORY],
        env=env,
        check=True,
        capture_output=True,
        text=True,
    ).stdout.split()
    if listed:
        subprocess.run([docker, "rmi", *listed], env=env, check=True, stdout=subprocess.DEVNULL)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--warm-runs", type=int, default=3, help="warm starts to time (default 3)")
    args = parser.parse_args()
    cache = Path(tempfile.mkdtemp(prefix="hubship-rig-bench-"))
    env = dict(os.environ)
    env.update(HUBSHIP_RIG_CACHE=str(cache), HUBSHIP_RIG_BASE_REPOSITORY=BENCH_REPOSITORY, PIP_NO_CACHE_DIR="1")
    try:
        cold = rig_up(env)
        warm = [rig_up(env) for _ in range(args.warm_runs)]
        channel = next(cache.glob("channel-*"))
        print(f"cold rig start : {cold:7.1f} s  (channel built from wheels, base image made with debootstrap)")
        print(f"warm rig start : {min(warm):7.1f} s  best of {len(warm)} (max {max(warm):.1f} s)")
        packages = sum(1 for _ in channel.rglob("*.conda"))
        print(f"channel        : {packages} packages, {folder_size(channel) / 1e6:.0f} MB")
        print(f"cache on disk  : {folder_size(cache) / 1e6:.0f} MB")
    finally:
        remove_benchmark_images(env)
        shutil.rmtree(cache, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
