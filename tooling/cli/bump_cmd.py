"""`bump`: write the image into an environment's Helm values, at the places hub.toml names."""

from __future__ import annotations

import argparse

from tooling.cli.check_cmd import refuse_failing_values, values_files
from tooling.cli.common import add_command, load
from tooling.cli.values_report import add_write_options, report
from tooling.pipeline import STAGES
from tooling.state import reports_dir


def register(subparsers: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    parser = add_command(
        subparsers,
        "bump",
        summary="Write the image into an environment's Helm values at the places hub.toml names "
        "([deploy.ENV].image); every other byte of the files stays as it is. Values that would then fail "
        "`check ENV` (without the render) are put back as they were and the bump is refused.",
        reads="hub.toml, .hubship/state.json (the last push), the values files of [deploy.ENV].image "
        "(and of the environment --from-env names)",
        writes="those values files, only the image values in them (nothing with --check, nor when they would fail "
        "the check); .hubship/reports/bump-ENV.md",
        example="python -m tooling bump staging\n  python -m tooling bump prod --from-env staging",
    )
    parser.add_argument("environment", metavar="ENV", help="the environment to write: a [deploy.ENV] table of hub.toml")
    source = parser.add_mutually_exclusive_group()
    source.add_argument(
        "--tag", help="tag to write with hub.toml's image (default: the tag of the last `python -m tooling push`)"
    )
    source.add_argument(
        "--from-env",
        dest="from_environment",
        metavar="OTHER",
        help="copy the image that environment OTHER's values hold (its first [deploy.OTHER].image place); "
        "this is how prod gets staging's image",
    )
    add_write_options(parser)
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from tooling.values import BumpRequest, bump_image_tag

    config = load(args)
    before = values_files(config, args.environment) if args.environment in config.deploy else {}
    request = BumpRequest.from_config(
        config,
        args.environment,
        tag=args.tag,
        from_environment=args.from_environment,
        create=args.create,
        check=args.check,
    )
    bump = bump_image_tag(request)
    if bump.update.written:
        refuse_failing_values(config, bump.environment, before)
    changed_files = " and ".join(file.label for file in bump.update.files if file.changed)
    return report(
        bump.update,
        title=f"bump {bump.environment}",
        source=bump.source,
        check=args.check,
        next_step=f"commit {changed_files}, then {_after_bump(bump.environment)}",
        report_path=reports_dir(config.root) / f"bump-{bump.environment}.md",
    )


def _after_bump(environment: str) -> str:
    """What comes after writing ENV's values: the order's stage that deploys ENV, from the runbook."""
    deploy = next((stage for stage in STAGES if stage.name == f"deploy-{environment}"), None)
    if deploy is None:
        return f"deploy {environment} with these values (`python -m tooling runbook` shows how for the order's hubs)."
    return f"{deploy.title.lower()}: `{deploy.command_line()}`."
