"""Time the `test` command (the smoke test) on this repository's image, hub spawn check included.

    python benchmarks/smoke_test.py [--runs N]

Needs the rig's Docker engine (DOCKER_HOST, HUBSHIP_DOCKER; see
tests/rig/start-dockerd.sh) and configurable-http-proxy on PATH. In a
scratch copy of the hub, locked against the rig's channel as the tests do,
it builds the image (`python -m tooling build`), then runs
`python -m tooling test` N times as a subprocess, as a person would, and
prints each check's time and the whole command's (median of the runs;
budget: at most 60 s). The per-check times come from the JUnit report; the
checks run concurrently, so they add up to more than the total. The image is
removed at the end.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
import xml.etree.ElementTree as ET
from pathlib import Path

PROJECT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(PROJECT))  # the rig lives in the project's tests package

from tests.rig.baseimage import ensure_base_image  # noqa: E402
from tests.rig.channel import ensure_channel  # noqa: E402
from tests.rig.channel_server import serve_channel  # noqa: E402
from tests.rig.docker import rig_docker  # noqa: E402
from tests.rig.hub_fixtures import RigHub, make_rig_hub  # noqa: E402
from tooling.proc import free_port  # noqa: E402

BUDGET_SECONDS = 60.0


def tooling(hub: RigHub, *args: str) -> tuple[float, subprocess.CompletedProcess[str]]:
    started = time.monotonic()
    done = subprocess.run(
        [sys.executable, "-m", "tooling", "--config", str(hub.config), *args],
        capture_output=True,
        text=True,
        check=False,
    )
    return time.monotonic() - started, done


def smoke_test(hub: RigHub, junit: Path) -> tuple[float, dict[str, float]]:
    """One run of the command: its wall time, and each check's seconds from the JUnit report."""
    seconds, done = tooling(hub, "test", "--junit", str(junit))
    if done.returncode != 0:
        sys.exit(f"the smoke test failed on the project's image:\n{done.stdout}\n{done.stderr}")
    cases = ET.parse(junit).getroot().iter("testcase")
    return seconds, {str(case.get("name")): float(case.get("time") or 0) for case in cases}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=3, help="smoke tests to time (default 3)")
    args = parser.parse_args()
    docker = rig_docker()
    with serve_channel(ensure_channel()) as channel, tempfile.TemporaryDirectory(prefix="hubship-bench-") as scratch:
        hub = make_rig_hub(
            Path(scratch) / "hub",
            base_image=ensure_base_image(docker),
            channel_url=channel.channel_url("conda-forge"),
            registry=f"127.0.0.1:{free_port()}",
        )
        build_seconds, built = tooling(hub, "build")
        if built.returncode != 0:
            sys.exit(f"build failed:\n{built.stderr}")
        reference = built.stdout.splitlines()[0]
        try:
            runs = [smoke_test(hub, Path(scratch) / f"smoke-{run}.xml") for run in range(args.runs)]
        finally:
            docker.run("rmi", reference, check=False)

    print(f"image {reference} (built in {build_seconds:.1f} s); {args.runs} smoke tests, medians:")
    for name in runs[0][1]:
        check_seconds = statistics.median(checks[name] for _, checks in runs)
        print(f"  {name:<40} {check_seconds:6.1f} s")
    total = statistics.median(seconds for seconds, _ in runs)
    verdict = "within budget" if total <= BUDGET_SECONDS else "OVER BUDGET"
    print(f"whole command (median of {args.runs}): {total:6.1f} s   budget {BUDGET_SECONDS:.0f} s: {verdict}")
    print(f"  each run: {', '.join(f'{seconds:.1f} s' for seconds, _ in runs)}")
    return 0 if total <= BUDGET_SECONDS else 1


if __name__ == "__main__":
    sys.exit(main())
