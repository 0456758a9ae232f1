"""Pieces every command shares: loading hub.toml, help text layout, Markdown cells, writing reports."""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from tooling.config import HubConfig, find_config, load_config
from tooling.files import write_atomic
from tooling.pipeline import next_after, stage_named


def config_path(args: argparse.Namespace) -> Path:
    """The hub.toml that --config names, or the nearest one."""
    return args.config if args.config is not None else find_config()


def load(args: argparse.Namespace) -> HubConfig:
    """The hub.toml that --config names, or the nearest one, read and checked."""
    return load_config(config_path(args))


def add_command(
    subparsers: argparse._SubParsersAction,  # type: ignore[type-arg]
    name: str,
    *,
    summary: str,
    reads: str,
    writes: str,
    example: str,
) -> argparse.ArgumentParser:
    """A subcommand whose --help says what it does, what it reads and writes, with an example."""
    return subparsers.add_parser(  # type: ignore[no-any-return]
        name,
        help=summary,
        description=f"{summary}\n\nReads:  {reads}\nWrites: {writes}",
        epilog=f"Example:\n  {example}",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )


def publish_markdown(markdown: str, report_path: Path | None) -> None:
    """Write a stage's Markdown summary to its report file and to GitHub's job summary."""
    if report_path is not None:
        write_atomic(report_path, markdown)
    summary = os.environ.get("GITHUB_STEP_SUMMARY")
    if summary:
        with Path(summary).open("a", encoding="utf-8") as handle:
            handle.write(markdown.rstrip("\n") + "\n\n")


def md_cell(text: str) -> str:
    """Text for one cell of a Markdown table: a `|` would end the cell, a line break the row."""
    return text.replace("|", "\\|").replace("\n", " ")


def next_command(stage_name: str) -> str:
    """The command line of the stage after `stage_name` in the order (`tooling.pipeline.STAGES`)."""
    following = next_after(stage_name)
    assert following is not None and following.automated, f"the stage after {stage_name} is a command"
    return following.command_line()


def next_title(stage_name: str) -> str:
    """What the stage after `stage_name` does, in its title's words: 'build the image'."""
    following = next_after(stage_name)
    assert following is not None, f"{stage_name} is not the last stage"
    return following.title.lower()


def stage_command(stage_name: str) -> str:
    """The command line of the stage `stage_name` of the order."""
    return stage_named(stage_name).command_line()
