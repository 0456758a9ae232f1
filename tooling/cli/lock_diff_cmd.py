"""`lock-diff OLD NEW`: what changed between any two lock files, and why where the locks tell."""

from __future__ import annotations

import argparse
from pathlib import Path

from tooling.cli.common import add_command, config_path, publish_markdown
from tooling.cli.lock_report import report_markdown, report_table
from tooling.errors import ConfigError
from tooling.state import reports_dir

REPORT_NAME = "lock-diff.md"


def register(subparsers: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    parser = add_command(
        subparsers,
        "lock-diff",
        summary="Report the packages added, removed, upgraded, downgraded and rebuilt between two lock files, "
        "with the reason where the locks (and the specs) tell it.",
        reads="two lock files: conda-lock.yml (v1 or v2) or explicit conda-<platform>.lock files",
        writes=".hubship/reports/lock-diff.md inside a hub repository, and $GITHUB_STEP_SUMMARY when set",
        example="python -m tooling lock-diff old/conda-lock.yml environments/conda-lock.yml",
    )
    parser.add_argument("old", type=Path, help="the earlier lock")
    parser.add_argument("new", type=Path, help="the later lock")
    parser.add_argument(
        "--spec",
        action="append",
        default=[],
        type=Path,
        metavar="FILE",
        help="environment file(s) NEW was locked from, to mark top-level specs (locks made by `lock` record them)",
    )
    parser.add_argument(
        "--pypi-mapping",
        metavar="FILE_OR_URL",
        help="PyPI-to-conda name mapping for a --spec file with a pip: section (default: conda-lock's)",
    )
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from conda_lock.lookup import DEFAULT_MAPPING_URL

    from tooling.lock import parse_spec_files, top_level_specs
    from tooling.lockdiff import diff_locks
    from tooling.lockfile import read_lock

    old, new = read_lock(args.old), read_lock(args.new)
    specs = None
    if args.spec:
        spec = parse_spec_files(
            args.spec, platforms=new.metadata.platforms, mapping_url=args.pypi_mapping or DEFAULT_MAPPING_URL
        )
        specs = top_level_specs(spec)
    report = diff_locks(old, new, old_label=str(args.old), new_label=str(args.new), specs=specs)
    print(report_table(report))
    publish_markdown(report_markdown(report, "Lock changes"), _report_path(args))
    return 0


def _report_path(args: argparse.Namespace) -> Path | None:
    """The hub repository's report file, or None outside one (lock-diff works on any two files)."""
    try:
        hub_toml = config_path(args)
    except ConfigError:
        return None
    return reports_dir(hub_toml.resolve().parent) / REPORT_NAME
