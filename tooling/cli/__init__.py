"""`python -m tooling [--config PATH] COMMAND`: the command line of every stage.

Each command lives in its own module here and contributes a subparser through
`register`. This is the edge of the toolkit: the only place that prints
results, turns `ToolingError` into one message and an exit code, and reads
arguments. Stages themselves return typed results.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path
from types import ModuleType

from tooling import __version__, log
from tooling.cli import (
    build_cmd,
    bump_cmd,
    config_cmd,
    loadtest_cmd,
    lock_cmd,
    lock_diff_cmd,
    pipeline_cmd,
    push_cmd,
    runbook_cmd,
    set_image_cmd,
    test_cmd,
)
from tooling.errors import ToolingError

# The order of this list is the order of `--help`.
COMMANDS: list[ModuleType] = [
    config_cmd,
    lock_cmd,
    lock_diff_cmd,
    build_cmd,
    test_cmd,
    push_cmd,
    bump_cmd,
    set_image_cmd,
    pipeline_cmd,
    runbook_cmd,
    loadtest_cmd,
]


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
    parser.add_argument("--version", action="version", version=f"hubship {__version__}")
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for module in COMMANDS:
        module.register(subparsers)
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
