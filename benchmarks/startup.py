"""Time whole `python -m tooling` processes where start-up dominates: --help, config, a pangeo relock, a no-op build.

    python benchmarks/startup.py [--project PATH] [--runs N] [--no-build]

Each figure is the median wall time of N runs (default 5) of the command as a
subprocess, as a person would run it:

- `python -m tooling --help` and `python -m tooling config` (budget 0.3 s each);
- a relock of pangeo's environment (138 specs, 809 packages) against the
  conda-forge snapshot in ../shared/data, after a first lock made it
  (budget 1.5 s);
- a no-op build (the image of these inputs already exists) of this hub on the
  rig: its conda channel, base image and the Docker engine DOCKER_HOST names
  (budget 0.8 s). `--no-build` leaves it out.

`--project PATH` times the toolkit of another checkout (e.g. an older commit
unpacked with `git archive`): its folder goes first on PYTHONPATH of the timed
processes. The load average is printed too: other work slows wall time.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

PROJECT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(PROJECT))  # the rig lives in the project's tests package
sys.path.insert(0, str(PROJECT / "benchmarks"))

from lock_pangeo import SPECS, make_channel, make_hub  # noqa: E402

from tests.rig.baseimage import ensure_base_image  # noqa: E402
from tests.rig.channel import ensure_channel  # noqa: E402
from tests.rig.channel_server import serve_channel  # noqa: E402
from tests.rig.docker import rig_docker  # noqa: E402
from tests.rig.hub_fixtures import make_rig_hub  # noqa: E402
from tooling.proc import free_port  # noqa: E402

BUDGETS = {"--help": 0.3, "config": 0.3, "pangeo relock": 1.5, "no-op build": 0.8}


def timed(argv: Sequence[str], env: dict[str, str]) -> float:
    started = time.monotonic()
    # From the root folder: `python -m` puts the working directory ahead of PYTHONPATH.
    done = subprocess.run(argv, capture_output=True, text=True, env=env, cwd="/", check=False)
    seconds = time.monotonic() - started
    if done.returncode != 0:
        sys.exit(f"{' '.join(argv)} failed:\n{done.stderr}")
    return seconds


def median_of(runs: int, argv: Sequence[str], env: dict[str, str]) -> float:
    return statistics.median(timed(argv, env) for _ in range(runs))


def tooling(config: Path | None, *args: str) -> list[str]:
    return [sys.executable, "-m", "tooling", *(["--config", str(config)] if config else []), *args]


def no_op_build(runs: int, env: dict[str, str], scratch: Path) -> float:
    docker = rig_docker()
    with serve_channel(ensure_channel()) as channel:
        hub = make_rig_hub(
            scratch / "rig-hub",
            base_image=ensure_base_image(docker),
            channel_url=channel.channel_url("conda-forge"),
            registry=f"127.0.0.1:{free_port()}",
        )
        command = tooling(hub.config, "build")
        timed(command, env)  # builds the image once (or finds it from an earlier run)
        return median_of(runs, command, env)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--project", type=Path, default=PROJECT, help="the checkout whose toolkit is timed")
    parser.add_argument("--runs", type=int, default=5, help="runs of each command (the median is shown)")
    parser.add_argument("--no-build", action="store_true", help="leave out the no-op build (needs the rig)")
    args = parser.parse_args()
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(args.project.resolve()), str(PROJECT)])}
    figures: dict[str, float] = {}
    with tempfile.TemporaryDirectory(prefix="hubship-bench-startup-") as tmp:
        scratch = Path(tmp)
        hub = make_hub(scratch / "pangeo-hub", make_channel(scratch))
        figures["--help"] = median_of(args.runs, tooling(None, "--help"), env)
        figures["config"] = median_of(args.runs, tooling(hub, "config"), env)
        relock = tooling(hub, "lock", *[arg for spec in SPECS for arg in ("--file", str(spec))])
        timed(relock, env)  # the first lock, which the relocks read and diff against
        figures["pangeo relock"] = median_of(args.runs, relock, env)
        if not args.no_build:
            figures["no-op build"] = no_op_build(args.runs, env, scratch)
    print(f"start-up of {args.project}, median of {args.runs}; load average {os.getloadavg()[0]:.2f}")
    for name, seconds in figures.items():
        budget = BUDGETS[name]
        print(f"{name:<14} {seconds:6.2f} s   budget {budget} s: {'ok' if seconds <= budget else 'OVER'}")


if __name__ == "__main__":
    main()
