"""kubectl's command line for the stand-in: `config current-context` and `rollout status`."""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Sequence

from tests.helm_standin import cluster
from tests.helm_standin.releases import LONGEST_SLEEP, duration

STUCK_ENV = "KUBECTL_STANDIN_STUCK"
# What `rollout status` says of each kind, as kubectl words it.
KINDS = {"deployment": ("Deployment", "deployment"), "daemonset": ("DaemonSet", "daemon set")}


class KubectlError(Exception):
    """Printed as `error: MESSAGE`, exit code 1."""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # type: ignore[override]
        raise KubectlError(message)


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="kubectl", add_help=False)
    parser.add_argument("--context", default="")
    parser.add_argument("-n", "--namespace", default="default")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)
    config = sub.add_parser("config").add_subparsers(dest="what", required=True, parser_class=_Parser)
    config.add_parser("current-context").set_defaults(run=current_context)
    rollout = sub.add_parser("rollout").add_subparsers(dest="what", required=True, parser_class=_Parser)
    status = rollout.add_parser("status")
    status.add_argument("object")
    status.add_argument("--timeout", default="0s")
    status.set_defaults(run=rollout_status)
    return parser


def current_context(args: argparse.Namespace) -> str:
    context = cluster.current_context()
    if not context:
        raise KubectlError("current-context is not set")
    return context + "\n"


def rollout_status(args: argparse.Namespace) -> str:
    context = args.context or cluster.current_context()
    if context not in cluster.contexts():
        raise KubectlError(f'context "{context}" does not exist')
    kind_name, _, name = args.object.partition("/")
    if kind_name not in KINDS:
        raise KubectlError(f'no matches for kind "{kind_name}"; the stand-in knows deployment and daemonset')
    kind, said = KINDS[kind_name]
    if (kind, name) not in cluster.deployed_objects(args.namespace):
        raise KubectlError(f'Error from server (NotFound): {kind_name}s.apps "{name}" not found')
    if args.object in os.environ.get(STUCK_ENV, "").split(","):
        print(f'Waiting for {said} "{name}" rollout to finish: 0 of 1 updated pods are available...', flush=True)
        time.sleep(min(duration(args.timeout), LONGEST_SLEEP))
        raise KubectlError("timed out waiting for the condition")
    return f'{said} "{name}" successfully rolled out\n'


def main(argv: Sequence[str]) -> int:
    try:
        args = build_parser().parse_args(argv)
        output: str = args.run(args)
    except (KubectlError, cluster.ClusterError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    sys.stdout.write(output)
    return 0
