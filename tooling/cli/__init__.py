"""`python -m tooling [--config PATH] COMMAND`: the command line of every stage.

Each command lives in its own module here: `register` declares its options,
`run` runs it. This is the edge of the toolkit: it reads arguments, renders
the stages' typed results (summaries, Markdown, JUnit), prints them, and
turns `ToolingError` into one message and an exit code.

A command module imports its stage inside `run`, so that declaring every
command's options (all `--help` needs) imports no stage, nor the libraries
the stages use.
"""

from __future__ import annotations

import argparse
import gc
import importlib
import sys
from collections.abc import Sequence
from pathlib import Path

import tooling
from tooling import log
from tooling.errors import ToolingError

# Each command, and the module under tooling.cli that declares and runs it. The order is `--help`'s.
COMMANDS: dict[str, str] = {
    "config": "config_cmd",
    "lock": "lock_cmd",
    "lock-diff": "lock_diff_cmd",
    "build": "build_cmd",
    "test": "smoke_cmd",
    "push": "push_cmd",
    "bump": "bump_cmd",
    "set-image": "set_image_cmd",
    "check": "check_cmd",
    "deploy": "deploy_cmd",
    "verify": "verify_cmd",
    "promote": "promote_cmd",
    "rollback": "rollback_cmd",
    "pipeline": "pipeline_cmd",
    "runbook": "runbook_cmd",
    "loadtest": "loadtest_cmd",
}


# A command's process imports up to a thousand modules (conda-lock's, pydantic's) whose objects live until it
# exits. At the cyclic collector's default pace (a collection every 700 new objects, and full ones as the heap
# grows) traversing them took a no-op build 0.1 s, and the collections as the process ends 0.07 s more (on a
# busy machine, 15% of the whole): collections are made rare, and what is left at the end is frozen, so the
# interpreter's own collections at exit pass it by. A few thousand more objects awaiting collection is
# nothing to a long command.
GC_THRESHOLD = 10_000


class _Version(argparse.Action):
    """argparse's version action, reading the version only when asked for."""

    def __call__(self, parser: argparse.ArgumentParser, *_: object) -> None:
        print(f"hubship {tooling.__version__}")
        parser.exit()


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m tooling",
        description="Lock, build, smoke-test, push and deploy a JupyterHub user image, in one order.",
        epilog="Run `python -m tooling COMMAND --help` for what a command reads, writes and an example.",
    )
    parser.add_argument(
        "--config",
        type=Path,
        metavar="PATH",
        help="hub.toml to read (default: $HUBSHIP_CONFIG, else the nearest hub.toml here or above)",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="also log every external command line")
    parser.add_argument("--version", action=_Version, nargs=0, help="show program's version number and exit")
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for module in COMMANDS.values():
        importlib.import_module(f"tooling.cli.{module}").register(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Parse one command line and run it: an expected failure becomes one message and its exit code."""
    args = build_parser().parse_args(argv)
    log.configure(verbose=args.verbose)
    try:
        exit_code: int = args.run(args)
    except ToolingError as exc:
        print(f"error: {log.redact(exc.message)}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("interrupted; files written so far are complete, the rest were left as they were.", file=sys.stderr)
        return 130
    return exit_code


def entry_point() -> int:
    """`python -m tooling` and the `hubship` command: `main` in a process of its own, which exits afterwards."""
    gc.set_threshold(GC_THRESHOLD)
    exit_code = main()
    gc.freeze()
    return exit_code
