"""`pipeline`: run the automated stages in their one order, stopping at the first failure."""

from __future__ import annotations

import argparse
import time

from tooling.cli.common import add_command, load
from tooling.pipeline import STAGE_NAMES, automated_run, next_after


def register(subparsers: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    parser = add_command(
        subparsers,
        "pipeline",
        summary="Run the stages in order (lock check, build, smoke test, push, bump staging, check staging), stopping "
        "at the "
        "first that fails and before the first manual stage (deploy).",
        reads="what each stage reads (see `python -m tooling runbook`)",
        writes="what each stage writes; each stage's report under .hubship/reports/",
        example="python -m tooling pipeline --to test   # on a pull request: no push",
    )
    parser.add_argument("--from", dest="start", choices=STAGE_NAMES, default="lock", help="first stage to run")
    parser.add_argument("--to", dest="stop", choices=STAGE_NAMES, default="check-staging", help="last stage to run")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    # The pipeline runs the other commands exactly as typed on the command line; the command table
    # imports this module, so the dispatcher is imported when the pipeline runs.
    from tooling.cli import main

    config = load(args)
    stages = automated_run(args.start, args.stop)
    if not stages:
        print(f"Nothing to run: stage {args.start} is manual; see `python -m tooling runbook`.")
        return 0
    shared = ["--config", str(config.path), *(["--verbose"] if args.verbose else [])]
    started = time.monotonic()
    for number, stage in enumerate(stages, start=1):
        print(f"\n== [{number}/{len(stages)}] {stage.title}: {stage.command_line()}", flush=True)
        exit_code = main([*shared, *stage.command])
        if exit_code != 0:
            print(
                f"\nThe pipeline stopped at {stage.name}. Fix what it says, then rerun from there: "
                f"`python -m tooling pipeline --from {stage.name}`."
            )
            return exit_code
    print(f"\nThe pipeline ran {len(stages)} stages in {time.monotonic() - started:.0f} s.")
    following = next_after(stages[-1].name)
    if following is not None:
        print(f"Next: {following.title}{'' if following.automated else ' (manual)'}:")
        for line in following.instructions(config):
            print(f"  {line}")
    return 0
