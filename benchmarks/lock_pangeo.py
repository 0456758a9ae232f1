"""Time the whole `lock` command on pangeo's environment (138 specs, 809 packages) against the conda-forge snapshot.

    python benchmarks/lock_pangeo.py [--runs N]

Runs `python -m tooling lock` as a subprocess, as a person would, in a
scratch hub repository whose hub.toml mirrors conda-forge to a file://
channel unpacked from ../shared/data/conda-forge-snapshot. For each engine
(py-rattler; conda-lock with the test-only micromamba stand-in) it measures a
first lock (no previous lock) and a relock (previous lock read and diffed),
and prints wall time, the solver's share, CPU time and peak memory (largest
resident set of any process of the run). Budget from the issue: 3 s wall and
500 MB. The load average is printed too: other work on the machine slows wall
time, not CPU time.
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

PROJECT = Path(__file__).resolve().parents[1]
DATA = PROJECT.parent / "shared" / "data"
SNAPSHOT = DATA / "conda-forge-snapshot"
SPECS = (
    DATA / "pangeo-2026.01" / "pangeo-notebook.environment.yml",
    DATA / "pangeo-2026.01" / "base-notebook.environment.yml",
)
FAKE_MICROMAMBA = PROJECT / "tests" / "fake_micromamba" / "micromamba.py"

# Runs one command and prints its children's peak RSS and CPU time as JSON: getrusage(RUSAGE_CHILDREN)
# covers the whole process tree, and a fresh measuring process keeps one run's peak from the next.
MEASURE = """
import json, resource, subprocess, sys, time
started = time.monotonic()
done = subprocess.run(sys.argv[1:], capture_output=True, text=True)
wall = time.monotonic() - started
usage = resource.getrusage(resource.RUSAGE_CHILDREN)
print(json.dumps({"code": done.returncode, "wall": wall, "cpu": usage.ru_utime + usage.ru_stime,
                  "peak_kb": usage.ru_maxrss, "out": done.stdout, "err": done.stderr}))
"""


@dataclass(frozen=True)
class Figures:
    engine: str
    run: str
    wall: float
    solver: float
    cpu: float
    peak_mb: float


def make_channel(root: Path) -> str:
    channel = root / "conda-forge"
    for subdir in ("linux-64", "noarch"):
        (channel / subdir).mkdir(parents=True)
        with gzip.open(SNAPSHOT / subdir / "repodata.json.gz") as source:
            (channel / subdir / "repodata.json").write_bytes(source.read())
    return channel.as_uri()


def make_hub(root: Path, channel: str) -> Path:
    root.mkdir()
    text = (PROJECT / "hub.toml").read_text(encoding="utf-8")
    (root / "hub.toml").write_text(text.replace("[mirrors]\n", f'[mirrors]\nconda-forge = "{channel}"\n', 1))
    (root / "environments").mkdir()
    return root / "hub.toml"


def make_fake_micromamba(folder: Path) -> Path:
    executable = folder / "micromamba"
    executable.write_text(f'#!/bin/sh\nexec "{sys.executable}" "{FAKE_MICROMAMBA}" "$@"\n')
    executable.chmod(0o755)
    return executable


def measure(engine: str, run: str, argv: list[str]) -> Figures:
    done = subprocess.run([sys.executable, "-c", MEASURE, *argv], capture_output=True, text=True, check=True)
    result = json.loads(done.stdout)
    if result["code"] != 0:
        sys.exit(f"{engine} {run} failed:\n{result['err']}")
    solver = re.search(r"solver ([0-9.]+) s", result["out"])
    return Figures(
        engine=engine,
        run=run,
        wall=result["wall"],
        solver=float(solver.group(1)) if solver else float("nan"),
        cpu=result["cpu"],
        peak_mb=result["peak_kb"] / 1024,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3, help="measurements of each engine and run kind (best is shown)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="hubship-bench-lock-") as tmp:
        scratch = Path(tmp)
        channel = make_channel(scratch)
        micromamba = make_fake_micromamba(scratch)
        files = [arg for spec in SPECS for arg in ("--file", str(spec))]
        engines = {"rattler": [], "conda-lock": ["--engine", "conda-lock", "--conda-exe", str(micromamba)]}
        rows = []
        for engine, extra in engines.items():
            for run in ("first lock", "relock"):
                best = None
                for attempt in range(args.runs):
                    hub = make_hub(scratch / f"{engine}-{run.replace(' ', '-')}-{attempt}", channel)
                    command = [sys.executable, "-m", "tooling", "--config", str(hub), "lock", *files, *extra]
                    if run == "relock":
                        subprocess.run(command, capture_output=True, check=True)
                    figures = measure(engine, run, command)
                    best = figures if best is None or figures.wall < best.wall else best
                    shutil.rmtree(hub.parent)
                assert best is not None
                rows.append(best)
    print(f"lock of pangeo (809 packages, linux-64), best of {args.runs}; load average {os.getloadavg()[0]:.2f}")
    print(f"{'engine':<11} {'run':<11} {'wall s':>7} {'solver s':>9} {'cpu s':>7} {'peak MB':>8}")
    for row in rows:
        print(f"{row.engine:<11} {row.run:<11} {row.wall:7.2f} {row.solver:9.2f} {row.cpu:7.2f} {row.peak_mb:8.0f}")
    print(f"(measured {time.strftime('%Y-%m-%d %H:%M')}; budget: 3 s wall, 500 MB)")


if __name__ == "__main__":
    main()
