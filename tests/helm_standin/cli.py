"""Helm's command line for the stand-in: the subcommands and flags the toolkit uses, as Helm spells them."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from tests.helm_standin import cluster, commands, releases


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

    _release_commands(sub)

    version = sub.add_parser("version")
    version.add_argument("--template", default="")
    version.add_argument("--short", action="store_true")
    version.set_defaults(run=commands.version)
    return parser


def _cluster_flags(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("-n", "--namespace", default="default")
    parser.add_argument("--kube-context", default="")


def _release_commands(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    upgrade = sub.add_parser("upgrade")
    upgrade.add_argument("release")
    upgrade.add_argument("chart")
    _cluster_flags(upgrade)
    _values_flags(upgrade)
    upgrade.add_argument("-i", "--install", action="store_true")
    upgrade.add_argument("--create-namespace", action="store_true")
    upgrade.add_argument("--cleanup-on-fail", action="store_true")
    upgrade.add_argument("--atomic", action="store_true")
    upgrade.add_argument("--timeout", default="5m0s")
    upgrade.add_argument("--history-max", type=int, default=10)
    upgrade.add_argument("-o", "--output", default="table")
    upgrade.set_defaults(run=releases.upgrade)

    history = sub.add_parser("history")
    history.add_argument("release")
    _cluster_flags(history)
    history.add_argument("--max", type=int, default=256)
    history.add_argument("-o", "--output", default="table")
    history.set_defaults(run=releases.history)

    get = sub.add_parser("get").add_subparsers(dest="what", required=True, parser_class=_Parser)
    values = get.add_parser("values")
    values.add_argument("release")
    _cluster_flags(values)
    values.add_argument("--revision", type=int, default=0)
    values.add_argument("-o", "--output", default="table")
    values.set_defaults(run=releases.get_values)
    manifest = get.add_parser("manifest")
    manifest.add_argument("release")
    _cluster_flags(manifest)
    manifest.add_argument("--revision", type=int, default=0)
    manifest.set_defaults(run=releases.get_manifest)

    rollback = sub.add_parser("rollback")
    rollback.add_argument("release")
    rollback.add_argument("revision", type=int, nargs="?", default=0)
    _cluster_flags(rollback)
    rollback.add_argument("--cleanup-on-fail", action="store_true")
    rollback.add_argument("--timeout", default="5m0s")
    rollback.add_argument("--history-max", type=int, default=10)
    rollback.set_defaults(run=releases.rollback)

    status = sub.add_parser("status")
    status.add_argument("release")
    _cluster_flags(status)
    status.add_argument("-o", "--output", default="table")
    status.set_defaults(run=releases.status)


def main(argv: Sequence[str]) -> int:
    try:
        args = build_parser().parse_args(argv)
        output: str = args.run(args)
    except (HelmError, commands.CommandError, cluster.ClusterError) as exc:
        print(f"Error: {exc}", file=sys.stderr)
        return 1
    sys.stdout.write(output)
    return 0
