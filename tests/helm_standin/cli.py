"""Helm's command line for the stand-in: the subcommands and flags the toolkit uses, as Helm spells them."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from tests.helm_standin import commands


class HelmError(Exception):
    """What Helm prints as `Error: ...` before exiting 1."""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # type: ignore[override]
        raise HelmError(message)


def _values_flags(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("-f", "--values", action="append", default=[], help="values file, in order")
    parser.add_argument("--version", default="", help="chart version (for a chart from a repository)")
    parser.add_argument("--repo", default="", help="chart repository URL")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="helm", add_help=False)
    parser.add_argument("--debug", action="store_true")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    template = sub.add_parser("template")
    template.add_argument("names", nargs="+", metavar="[NAME] CHART")
    template.add_argument("-n", "--namespace", default="default")
    _values_flags(template)
    template.set_defaults(run=commands.template)

    pull = sub.add_parser("pull")
    pull.add_argument("chart")
    pull.add_argument("--version", default="")
    pull.add_argument("--repo", default="")
    pull.add_argument("-d", "--destination", default=".")
    pull.add_argument("--untar", action="store_true")
    pull.add_argument("--untardir", default=".")
    pull.add_argument("--plain-http", action="store_true")
    pull.set_defaults(run=commands.pull)

    lint = sub.add_parser("lint")
    lint.add_argument("path")
    lint.add_argument("-f", "--values", action="append", default=[])
    lint.add_argument("--strict", action="store_true")
    lint.add_argument("-n", "--namespace", default="default")
    lint.set_defaults(run=commands.lint)

    version = sub.add_parser("version")
    version.add_argument("--template", default="")
    version.add_argument("--short", action="store_true")
    version.set_defaults(run=commands.version)
    return parser


def main(argv: Sequence[str]) -> int:
    try:
        args = build_parser().parse_args(argv)
        output: str = args.run(args)
    except (HelmError, commands.CommandError) as exc:
        print(f"Error: {exc}", file=sys.stderr)
        return 1
    sys.stdout.write(output)
    return 0
