"""`verify`: prove ENV's hub runs the image its values name, and that the tutorials run there."""

from __future__ import annotations

import argparse

from tooling.cli.common import add_command, load, next_command
from tooling.pipeline import STAGE_NAMES


def register(subparsers: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    parser = add_command(
        subparsers,
        "verify",
        summary="Verify a deployed hub through its REST API: a check user's server is spawned, answers through "
        "the proxy, runs code in a kernel that reports the image's own reference (it must be the image ENV's "
        "values name), runs the [smoke] notebooks cell by cell, stops; the user is removed. Tries as often as "
        "hub.toml says. A pass writes deploy/verified/ENV.json (commit it: promote decides from it).",
        reads="hub.toml ([deploy.ENV] hub_url, api_token_env, verify_*; [smoke] notebooks), ENV's values, "
        "$API_TOKEN_ENV, `helm status` of the release",
        writes="deploy/verified/ENV.json on a pass; a server and a user on the hub, removed again",
        example="HUBSHIP_API_TOKEN=... python -m tooling verify staging",
    )
    parser.add_argument("environment", metavar="ENV", help="a [deploy.ENV] table of hub.toml")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from tooling.deploy.verify import VerifyRequest, verify

    config = load(args)
    result = verify(VerifyRequest.from_config(config, args.environment))
    print(
        f"verified {result.environment}: the hub runs {result.image} (helm revision {result.helm_revision}); "
        f"{result.check.reason} (attempt {result.attempts}, {result.seconds:.1f} s)"
    )
    for line in result.check.details:
        print(f"  {line}")
    print(f"wrote {result.record.relative_to(config.root)}; commit it.")
    if f"verify-{result.environment}" in STAGE_NAMES and result.environment != "prod":
        print(f"Next: {next_command(f'verify-{result.environment}')}")
    return 0
