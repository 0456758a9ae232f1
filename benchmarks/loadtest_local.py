"""The load test's curve on the rig's hub, and what the load generator itself costs.

    python benchmarks/loadtest_local.py [--users 1,2,4,8]

Needs the rig's Docker engine (DOCKER_HOST, HUBSHIP_DOCKER; see
tests/rig/start-dockerd.sh) and configurable-http-proxy on PATH. In a
scratch copy of the hub, locked against the rig's channel as the tests do,
it builds the image (`python -m tooling build`), starts the load tests' real
JupyterHub (DockerSpawner, configurable-http-proxy, 127.0.0.1;
tests/rig/loadtest_hub.py), then runs `python -m tooling loadtest staging -n N
--no-baseline` as a subprocess for each N, as a person would, and prints from
each run's JSON: p50/p95 of time to server ready and to first execution, and
the generator's own CPU (share of one core over the run), event-loop lag and
peak memory (its process's high-water mark). Budget for the generator at the
largest N: at most 5% of one core and 150 MB. Everything (hub, proxy, the
users' servers, the generator) shares this machine's CPUs: the absolute
times are this machine's, only the generator's own figures are its.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import tomlkit

PROJECT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(PROJECT))  # the rig lives in the project's tests package

from tests.rig.baseimage import ensure_base_image  # noqa: E402
from tests.rig.channel import ensure_channel  # noqa: E402
from tests.rig.channel_server import serve_channel  # noqa: E402
from tests.rig.docker import rig_docker  # noqa: E402
from tests.rig.hub_fixtures import RigHub, make_rig_hub  # noqa: E402
from tests.rig.loadtest_hub import LoadtestHub, serve_loadtest_hub  # noqa: E402
from tooling.proc import free_port  # noqa: E402

CPU_BUDGET = 0.05  # cores
MEMORY_BUDGET_MB = 150.0
TOKEN_ENV = "HUBSHIP_BENCH_TOKEN"


def tooling(hub: RigHub, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "tooling", "--config", str(hub.config), *args],
        capture_output=True,
        text=True,
        check=False,
        env={**os.environ, **(env or {})},
    )


def point_at(hub: RigHub, running: LoadtestHub) -> None:
    document = tomlkit.parse(hub.config.read_text(encoding="utf-8"))
    staging = document["deploy"]["staging"]
    staging["hub_url"] = running.url
    staging["api_token_env"] = TOKEN_ENV
    hub.config.write_text(tomlkit.dumps(document), encoding="utf-8")


def one_run(hub: RigHub, running: LoadtestHub, users: int, output: Path) -> dict[str, Any]:
    done = tooling(
        hub,
        "loadtest",
        "staging",
        "--users",
        str(users),
        "--no-baseline",
        "--output",
        str(output),
        env={TOKEN_ENV: running.token},
    )
    results = sorted(output.glob("hubship-lt-*[0-9a-f].json"))
    if done.returncode != 0 or not results:
        sys.exit(f"the load test with N={users} failed:\n{done.stdout}\n{done.stderr}")
    data: dict[str, Any] = json.loads(results[-1].read_text(encoding="utf-8"))
    return data


def _seconds(value: float | None) -> str:
    return "-" if value is None else f"{value:6.1f}"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--users", default="1,2,4,8", help="the values of N, comma-separated (default 1,2,4,8)")
    args = parser.parse_args()
    sizes = [int(value) for value in args.users.split(",")]
    docker = rig_docker()
    runs: dict[int, dict[str, Any]] = {}
    with serve_channel(ensure_channel()) as channel, tempfile.TemporaryDirectory(prefix="hubship-bench-") as scratch:
        hub = make_rig_hub(
            Path(scratch) / "hub",
            base_image=ensure_base_image(docker),
            channel_url=channel.channel_url("conda-forge"),
            registry=f"127.0.0.1:{free_port()}",
        )
        built = tooling(hub, "build")
        if built.returncode != 0:
            sys.exit(f"build failed:\n{built.stderr}")
        reference = built.stdout.splitlines()[0]
        try:
            with serve_loadtest_hub(reference) as running:
                point_at(hub, running)
                for users in sizes:
                    runs[users] = one_run(hub, running, users, Path(scratch) / f"n{users}")
        finally:
            docker.run("rmi", reference, check=False)

    print(f"loadtest on the rig's hub ({os.cpu_count()} CPUs shared by hub, proxy, servers and generator)")
    print("   N  ready p50  ready p95   ttfe p50   ttfe p95  failures | generator: CPU  lag p95  peak MB  contended")
    for users, data in runs.items():
        ready, ttfe, load = (
            data["measures"]["time_to_ready"],
            data["measures"]["time_to_first_execution"],
            data["generator"],
        )
        failures = sum(data["failures"].values())
        print(
            f"{users:4d}   {_seconds(ready['p50'])} s   {_seconds(ready['p95'])} s   {_seconds(ttfe['p50'])} s   "
            f"{_seconds(ttfe['p95'])} s  {failures:8d} |  {load['cpu_cores'] * 100:8.1f}%"
            f"  {load['lag_p95'] * 1000:5.0f} ms"
            f"  {load['peak_rss_mb']:7.0f}  {'yes' if load['contended'] else 'no'}"
        )
    largest = runs[max(runs)]["generator"]
    within = largest["cpu_cores"] <= CPU_BUDGET and largest["peak_rss_mb"] <= MEMORY_BUDGET_MB
    print(
        f"generator at N={max(runs)}: {largest['cpu_cores'] * 100:.1f}% of one core (budget {CPU_BUDGET * 100:.0f}%), "
        f"{largest['peak_rss_mb']:.0f} MB (budget {MEMORY_BUDGET_MB:.0f} MB): "
        + ("within budget" if within else "OVER BUDGET")
    )
    return 0 if within else 1


if __name__ == "__main__":
    sys.exit(main())
