"""`loadtest`: N temporary users spawn and run the tutorials at once against an environment's hub."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from tooling.cli.common import add_command, load, publish_markdown
from tooling.config import ARRIVALS
from tooling.errors import ConfigError

INTERRUPTED_EXIT = 130


def register(subparsers: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    parser = add_command(
        subparsers,
        "loadtest",
        summary="Load-test an environment's hub: a one-user baseline, then N temporary users (named after the "
        "run) arrive in a burst, a ramp or at a seeded Poisson rate; each spawns its server through the REST "
        "API (following the progress stream, honouring 429 Retry-After), runs the [smoke] notebooks cell by "
        "cell over a kernel's websocket, optionally reads a shared file, and is stopped and deleted. Cleanup "
        "always runs (also on Ctrl-C and SIGTERM). Exits 1 when a [loadtest] limit (p95 time to ready, "
        "failure rate) is exceeded, 130 when interrupted.",
        reads="hub.toml ([deploy.ENV] hub_url and api_token_env, [loadtest], [smoke] notebooks), the API token "
        "from the environment variable api_token_env names (never printed or written)",
        writes=".hubship/loadtest/RUN.json (the run's users, for --cleanup), .hubship/reports/RUN.json "
        "(raw samples, schema hubship-loadtest/1), RUN-users.csv, RUN-cells.csv, RUN.md, RUN.png",
        example="HUBSHIP_API_TOKEN=... python -m tooling loadtest staging --users 20 --arrival ramp --ramp 120",
    )
    parser.add_argument("environment", nargs="?", metavar="ENV", help="the [deploy.ENV] whose hub to load")
    parser.add_argument("-n", "--users", type=int, default=1, metavar="N", help="simulated users (default 1)")
    parser.add_argument("--arrival", choices=ARRIVALS, default="burst", help="how users arrive (default burst)")
    parser.add_argument("--ramp", type=float, default=0.0, metavar="S", help="for --arrival ramp: over S seconds")
    parser.add_argument(
        "--rate", type=float, default=0.0, metavar="R", help="for --arrival poisson: R users per second on average"
    )
    parser.add_argument("--seed", type=int, default=0, help="for --arrival poisson: the random seed (default 0)")
    parser.add_argument("--profile", default="", help="profile to spawn with (KubeSpawner profile_list slug)")
    parser.add_argument(
        "--user-option",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="a spawn option (user_options); VALUE is JSON when it parses as JSON, else a string; repeatable",
    )
    parser.add_argument(
        "--read-file", default="", metavar="PATH", help="a file of the shared data every user reads at once"
    )
    parser.add_argument(
        "--max-concurrent", type=int, metavar="K", help="at most K journeys at once (default [loadtest])"
    )
    parser.add_argument("--no-baseline", action="store_true", help="skip the one-user baseline")
    parser.add_argument("--output", type=Path, metavar="DIR", help="write the reports here (default .hubship/reports)")
    parser.add_argument("--allow-prod", action="store_true", help="allow ENV prod (its users would share the hub)")
    parser.add_argument(
        "--cleanup", metavar="RUN", help="only finish the cleanup of run RUN (its users stopped and deleted)"
    )
    parser.set_defaults(run=run)


def user_options(pairs: list[str]) -> dict[str, Any]:
    options: dict[str, Any] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise ConfigError(f"--user-option {pair!r}: expected KEY=VALUE.")
        try:
            options[key] = json.loads(value)
        except ValueError:
            options[key] = value
    return options


def run(args: argparse.Namespace) -> int:
    from tooling.cli.loadtest_report import markdown, table
    from tooling.loadtest import CleanupRequest, LoadtestRequest, cleanup_run, loadtest
    from tooling.loadtest.results import Report, write_outputs
    from tooling.loadtest.schedule import Arrival

    config = load(args)
    if args.cleanup:
        outcome = cleanup_run(CleanupRequest.from_config(config, args.cleanup))
        print(f"run {args.cleanup}: {len(outcome.removed)} users removed, {len(outcome.left)} left.")
        for problem in outcome.problems:
            print(f"  {problem}")
        return 0 if outcome.complete else 1
    if not args.environment:
        raise ConfigError("loadtest needs ENV (a [deploy.ENV] table), or --cleanup RUN.")
    request = LoadtestRequest.from_config(
        config,
        args.environment,
        users=args.users,
        arrival=Arrival(args.arrival, args.ramp, args.rate, args.seed),
        profile=args.profile,
        user_options=user_options(args.user_option),
        read_file=args.read_file,
        baseline=not args.no_baseline,
        max_concurrent=args.max_concurrent,
        output=args.output,
        allow_prod=args.allow_prod,
    )
    result = loadtest(request)
    report = Report.of(result)
    files = write_outputs(result, report)
    publish_markdown(markdown(result, report), request.output / f"{result.run}.md")
    print(table(result, report))
    print(f"Reports: {files['json']} (.md, .png, -users.csv, -cells.csv beside it)")
    if not result.cleanup.complete:
        print(
            f"Cleanup incomplete ({result.state_file} names the run's users): "
            f"run `python -m tooling loadtest --cleanup {result.run}`."
        )
    if result.interrupted:
        return INTERRUPTED_EXIT
    return 0 if report.passed else 1
