"""Time of `check staging` on the example hub, chart cached: without and with the render.

Each figure is the median of 5 runs in a fresh process (imports included),
after one warm-up run that fills the caches (the chart, KubeSpawner's option
names). Two ways: the check stage alone (`tooling.check`, what the budget is
about), and the whole `python -m tooling check staging` command (the CLI's
own start-up included). The render uses the helm stand-in
of the tests (Helm's own engine through helm-python-sdk), as no helm binary
is here. Budget: <= 1 s without the render.

    python benchmarks/check_values.py
"""

from __future__ import annotations

import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

PROJECT = Path(__file__).resolve().parents[1]
CHART = PROJECT.parent / "shared" / "data" / "charts" / "jupyterhub-4.3.3.tgz"
RUNS = 5
STAGE_ONLY = """
import sys
from pathlib import Path
from tooling.check import CheckRequest, check_values
from tooling.config import load_config
request = CheckRequest.from_config(load_config(Path(sys.argv[1])), "staging", render=sys.argv[2] == "render")
sys.exit(1 if check_values(request).failed else 0)
"""


def example_hub(root: Path) -> Path:
    shutil.copytree(PROJECT / "deploy", root / "deploy")
    text = (PROJECT / "hub.toml").read_text(encoding="utf-8")
    (root / "hub.toml").write_text(text.replace('chart = "jupyterhub/jupyterhub"', f'chart = "{CHART}"'))
    return root / "hub.toml"


def seconds(argv: list[str], env: dict[str, str]) -> float:
    start = time.perf_counter()
    subprocess.run(argv, env=env, check=True, stdout=subprocess.DEVNULL)
    return time.perf_counter() - start


def main() -> None:
    with tempfile.TemporaryDirectory() as scratch:
        root = Path(scratch)
        config = example_hub(root)
        env = dict(os.environ)
        env |= {
            "XDG_CACHE_HOME": str(root / "cache"),
            "HUBSHIP_HELM": str(PROJECT / "tests" / "helm_standin" / "helm"),
            "HELM_STANDIN_PYTHON": sys.executable,
        }
        env.pop("GITHUB_STEP_SUMMARY", None)
        command = [sys.executable, "-m", "tooling", "--config", str(config), "check", "staging"]
        stage = [sys.executable, "-c", STAGE_ONLY, str(config)]
        seconds(command, env)
        runs = (
            ("check stage, without the render", [*stage, "no-render"]),
            ("check stage, with the render", [*stage, "render"]),
            ("`python -m tooling check staging --no-render`", [*command, "--no-render"]),
            ("`python -m tooling check staging`", command),
        )
        for label, argv in runs:
            times = [seconds(argv, env) for _ in range(RUNS)]
            print(
                f"{label}: median {statistics.median(times):.2f} s of {RUNS} "
                f"(min {min(times):.2f}, max {max(times):.2f})"
            )


if __name__ == "__main__":
    main()
