"""`lock`: environment.yml -> conda-lock.yml and conda-<platform>.lock, with a change report; `--check` gates CI."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from tooling.channels import parse_mirror_options
from tooling.cli.common import add_command, load, next_command, next_title, publish_markdown
from tooling.cli.lock_report import report_markdown, report_table
from tooling.config import ENGINES, HubConfig
from tooling.files import shown
from tooling.state import reports_dir

if TYPE_CHECKING:
    from tooling.lock import LockResult
    from tooling.lockrequest import LockRequest

REPORT_NAME = "lock.md"


def register(subparsers: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    parser = add_command(
        subparsers,
        "lock",
        summary="Lock the user image's conda environment (and its pip: section) for the platforms in hub.toml, "
        "and report what changed since the previous lock.",
        reads="hub.toml ([environment], [mirrors]), environments/environment.yml, the previous lock, "
        "the channels or their mirrors, and PyPI for a pip: section",
        writes="environments/conda-lock.yml, environments/conda-<platform>.lock, .hubship/reports/lock.md, "
        "$XDG_CACHE_HOME/hubship/conda-lock-renderings (the data of each conda-lock.yml written or found current, "
        "so that it is neither rendered nor read as YAML again; with --check, only this)",
        example="python -m tooling lock --mirror conda-forge=https://conda-mirror.example.org/conda-forge",
    )
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument(
        "--check",
        action="store_true",
        help="write nothing; exit 0 if the lock matches the spec, else 1 with the reason (stale, hand-edited, "
        "incomplete, missing platform)",
    )
    mode.add_argument(
        "--update",
        nargs="+",
        metavar="NAME",
        help="relock only these packages, keeping every other one at its locked version where the solver allows",
    )
    parser.add_argument(
        "--engine",
        choices=ENGINES,
        default="rattler",
        help="rattler (default): py-rattler in this process, no conda needed; "
        "conda-lock: run the conda-lock command line, which needs conda, mamba or micromamba",
    )
    parser.add_argument(
        "--mirror",
        action="append",
        default=[],
        metavar="NAME=URL",
        help="read channel NAME from URL (repeatable; wins over [mirrors] in hub.toml); the lock still "
        "records https://conda.anaconda.org/NAME URLs",
    )
    parser.add_argument(
        "--file",
        action="append",
        default=[],
        type=Path,
        metavar="SPEC",
        help="environment file(s) to lock together instead of hub.toml's environment.spec (repeatable)",
    )
    parser.add_argument(
        "--conda-exe", metavar="PATH", help="--engine conda-lock: the conda, mamba or micromamba it runs"
    )
    parser.add_argument(
        "--pypi-mapping",
        metavar="FILE_OR_URL",
        help="PyPI-to-conda name mapping a pip: section needs (default: conda-lock's, from GitHub)",
    )
    parser.set_defaults(run=run)


def request_from(args: argparse.Namespace, config: HubConfig) -> LockRequest:
    from tooling.lockrequest import LockRequest

    return LockRequest.from_config(
        config,
        spec_files=args.file,
        mirrors=parse_mirror_options(args.mirror),
        engine=args.engine,
        update=args.update or (),
        conda_exe=args.conda_exe,
        pypi_mapping=args.pypi_mapping,
    )


def run(args: argparse.Namespace) -> int:
    from tooling.lock import check_lock, lock_environment

    config = load(args)
    request = request_from(args, config)
    if args.check:
        verdict = check_lock(request)
        publish_markdown(f"### Lock check: {'current' if verdict.current else 'FAILED'}\n\n{verdict.reason}\n", None)
        if verdict.current:
            print(f"ok: {verdict.reason}")
            return 0
        print(f"lock --check: {verdict.reason}", file=sys.stderr)
        return 1
    result = lock_environment(request)
    print(report_table(result.report))
    print()
    print(summary(result))
    publish_markdown(markdown(result), reports_dir(config.root) / REPORT_NAME)
    return 0


def summary(result: LockResult) -> str:
    from tooling.lock import describe_counts

    counts = describe_counts(result.package_counts)
    files = ", ".join(shown(path) for path in (result.lock_file, *result.explicit_files))
    done = f"Wrote {files}" if result.written else f"Unchanged: {files}"
    timing = f"{result.total_seconds:.2f} s, solver {result.solver_seconds:.2f} s, engine {result.engine}"
    return f"{done} ({counts}; {timing}).\nNext: commit the lock files, then `{next_command('lock')}`."


def markdown(result: LockResult) -> str:
    body = report_markdown(result.report, f"Lock: {result.lock_file.name}")
    state = "written" if result.written else "unchanged (the solve gave the same lock)"
    return (
        f"{body}\nLock {state}; engine {result.engine}, solver {result.solver_seconds:.1f} s, "
        f"total {result.total_seconds:.1f} s. Next: commit the lock files, then {next_title('lock')}.\n"
    )
