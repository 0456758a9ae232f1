"""`runbook`: the runbook, rendered from the one definition of the order and this hub's hub.toml."""

from __future__ import annotations

import argparse
from pathlib import Path

from tooling.cli.common import add_command, load
from tooling.files import write_atomic
from tooling.pipeline import runbook


def register(subparsers: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    parser = add_command(
        subparsers,
        "runbook",
        summary="Print the runbook: every stage from environment.yml to the production hub, in order, with "
        "what it refuses and the exact commands (helm ones included, from hub.toml).",
        reads="hub.toml",
        writes="standard output, or the --write file (atomically)",
        example="python -m tooling runbook --write docs/runbook.md",
    )
    target = parser.add_mutually_exclusive_group()
    target.add_argument("--write", type=Path, metavar="PATH", help="write the runbook to PATH")
    target.add_argument(
        "--check", type=Path, metavar="PATH", help="exit 1 when PATH is not the current runbook (a CI gate)"
    )
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    text = runbook(load(args))
    if args.write is not None:
        write_atomic(args.write, text)
        print(f"Wrote {args.write}.")
    elif args.check is not None:
        current = args.check.read_text(encoding="utf-8") if args.check.exists() else ""
        if current != text:
            print(f"{args.check} is not the current runbook: run `python -m tooling runbook --write {args.check}`.")
            return 1
        print(f"{args.check} is current.")
    else:
        print(text, end="")
    return 0
