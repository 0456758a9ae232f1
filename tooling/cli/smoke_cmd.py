"""`test`: the smoke test of the built image, the way JupyterHub starts it; exits 1 when any check fails."""

from __future__ import annotations

import argparse
from pathlib import Path

from tooling.cli.common import add_command, load, publish_markdown
from tooling.smoke import SmokeRequest, SmokeResult, markdown, next_step, smoke_test, summary_table


def register(subparsers: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    parser = add_command(
        subparsers,
        "test",
        summary="Smoke-test the built image: it runs as uid 1000 without sudo, its environment is exactly the "
        "lock, environment.yml's packages import, jupyterhub-singleuser suits the deployed hub, the server "
        "starts as a spawner starts it, a real JupyterHub (DockerSpawner, configurable-http-proxy, all on "
        "127.0.0.1) spawns it and runs code in a kernel, the tutorials and image/tests pass inside it, and "
        "it fits the size budget. Records whether this image passed; push refuses one that did not.",
        reads="hub.toml ([smoke], [environment], [deploy.*] chart_version, [docker]), .hubship/state.json (the "
        "built image), environments/environment.yml and conda-lock.yml, the notebooks and tests [smoke] names, "
        "the image in the local Docker engine (never pulled)",
        writes=".hubship/state.json (the result, by image id), .hubship/reports/smoke-test.md and smoke-test.xml "
        "(JUnit); containers it starts are removed",
        example="python -m tooling test --junit reports/smoke.xml",
    )
    parser.add_argument(
        "--image",
        metavar="NAME:TAG",
        help="test this local image instead of the one the build stage recorded (it is never pulled)",
    )
    parser.add_argument(
        "--junit", type=Path, metavar="PATH", help="write the JUnit XML report here (default .hubship/reports/)"
    )
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    config = load(args)
    result = smoke_test(SmokeRequest.from_config(config, image=args.image, junit=args.junit))
    print(summary(result))
    # The stage wrote the report (the state's record names it); this adds it to GitHub's job summary.
    publish_markdown(markdown(result), None)
    return 0 if result.passed else 1


def summary(result: SmokeResult) -> str:
    verdict = "passed" if result.passed else f"FAILED: {len(result.failed)} of {len(result.checks)} checks"
    lines = [summary_table(result.checks)]
    for check in result.failed:
        lines.append(f"\n{check.name}: {check.reason}")
        lines += [f"  {line}" for line in check.details]
    lines.append(f"\n{result.reference} (image {result.image_id[:19]}): {verdict}, in {result.seconds:.1f} s.")
    lines.append(f"Report: {result.report}; JUnit: {result.junit}")
    lines.append(next_step(result))
    return "\n".join(lines)
