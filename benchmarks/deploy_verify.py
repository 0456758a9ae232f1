"""Time `deploy staging` (rollout included) and `verify staging` (the tutorial included) on the rig.

    python benchmarks/deploy_verify.py [--runs N]

Needs the rig's Docker engine (DOCKER_HOST, HUBSHIP_DOCKER; see
tests/rig/start-dockerd.sh) and configurable-http-proxy on PATH. In a
scratch copy of the hub, locked against the rig's channel as the tests do,
it builds the image, then N times: bumps staging to it, runs
`python -m tooling deploy staging` against the stand-in cluster (helm on
Helm's own engine rendering the real z2jh 4.3.3 chart, kubectl's rollout
status) and `python -m tooling verify staging` against a real JupyterHub
spawning what the deploy rendered, each as a subprocess, as a person would.
Prints each run and the medians (budget: verify at most 60 s). The image is
removed at the end.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest
import tomlkit

PROJECT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(PROJECT))  # the rig and the stand-ins live in the project's tests package

from tests.check_helpers import CHART_TGZ  # noqa: E402
from tests.deploy_helpers import kubeconfig_text  # noqa: E402
from tests.helm_standin import HELM  # noqa: E402
from tests.kubectl_standin import KUBECTL  # noqa: E402
from tests.rig.baseimage import ensure_base_image  # noqa: E402
from tests.rig.channel import ensure_channel  # noqa: E402
from tests.rig.channel_server import serve_channel  # noqa: E402
from tests.rig.cluster_hub import cluster_hub  # noqa: E402
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
    if done.returncode != 0:
        sys.exit(f"`{' '.join(args)}` failed:\n{done.stdout}\n{done.stderr}")
    return time.monotonic() - started, done


def point_at(hub: RigHub, hub_url: str) -> None:
    """Staging's table: the local chart, the cluster's hub, no secret values file."""
    document = tomlkit.parse(hub.config.read_text(encoding="utf-8"))
    table = document["deploy"]["staging"]
    table["chart"] = str(CHART_TGZ)
    table["hub_url"] = hub_url
    table["secret_values_env"] = ""
    hub.config.write_text(tomlkit.dumps(document), encoding="utf-8")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=3, help="deploy + verify rounds to time (default 3)")
    args = parser.parse_args()
    docker = rig_docker()
    with (
        serve_channel(ensure_channel()) as channel,
        tempfile.TemporaryDirectory(prefix="hubship-bench-") as scratch,
        pytest.MonkeyPatch.context() as patch,
    ):
        folder = Path(scratch)
        hub = make_rig_hub(
            folder / "hub",
            base_image=ensure_base_image(docker),
            channel_url=channel.channel_url("conda-forge"),
            registry=f"127.0.0.1:{free_port()}",
        )
        (folder / "cluster").mkdir()
        (folder / "kubeconfig").write_text(kubeconfig_text("staging-cluster"), encoding="utf-8")
        for name, value in {
            "HUBSHIP_HELM": str(HELM),
            "HUBSHIP_KUBECTL": str(KUBECTL),
            "HELM_STANDIN_PYTHON": sys.executable,
            "HUBSHIP_STANDIN_CLUSTER": str(folder / "cluster"),
            "KUBECONFIG": str(folder / "kubeconfig"),
            "XDG_CACHE_HOME": str(folder / "cache"),
        }.items():
            patch.setenv(name, value)
        _, built = tooling(hub, "build")
        reference = built.stdout.splitlines()[0]
        try:
            with cluster_hub(folder / "cluster", "hub-staging", patch) as running:
                patch.setenv("HUBSHIP_API_TOKEN", running.token)
                point_at(hub, running.url)
                tooling(hub, "bump", "staging", "--tag", reference.rsplit(":", 1)[1])
                rounds = [
                    (tooling(hub, "deploy", "staging")[0], tooling(hub, "verify", "staging")[0])
                    for _ in range(args.runs)
                ]
        finally:
            docker.run("rmi", reference, check=False)

    print(f"image {reference}; {args.runs} rounds of deploy staging + verify staging (stand-in cluster, real hub):")
    for number, (deploy_seconds, verify_seconds) in enumerate(rounds, start=1):
        print(f"  round {number}: deploy {deploy_seconds:6.1f} s   verify {verify_seconds:6.1f} s")
    deploy_median = statistics.median(seconds for seconds, _ in rounds)
    verify_median = statistics.median(seconds for _, seconds in rounds)
    verdict = "within budget" if verify_median <= BUDGET_SECONDS else "OVER BUDGET"
    print(f"deploy (rollout included), median: {deploy_median:6.1f} s")
    print(f"verify (tutorial included), median: {verify_median:6.1f} s   budget {BUDGET_SECONDS:.0f} s: {verdict}")
    return 0 if verify_median <= BUDGET_SECONDS else 1


if __name__ == "__main__":
    sys.exit(main())
