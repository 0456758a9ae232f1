"""What `set-image` and `bump` print and publish: the diff, each location, a verdict, Markdown."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING

from tooling.cli.common import publish_markdown

if TYPE_CHECKING:
    from tooling.values import ImageUpdate
    from tooling.yamledit import LocationChange


def add_write_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--check",
        action="store_true",
        help="write nothing; exit 0 when the files already hold the image, 1 (printing the diff) when not",
    )
    parser.add_argument(
        "--create",
        action="store_true",
        help="add mapping keys the path lacks (a name/tag mapping; a string under kubespawner_override)",
    )


def report(
    update: ImageUpdate, *, title: str, source: str | None, check: bool, next_step: str, report_path: Path | None
) -> int:
    """Print the diff and a summary, publish it as Markdown; the exit code says whether a check found changes.

    `source` says where the image came from (the last push, another environment), if not from the command line.
    """
    print(update.diff, end="")
    for location in update.locations:
        print(_location_line(location))
    if source is not None:
        print(f"Image {update.image} from {source}.")
    verdict = _verdict(update, check)
    print(verdict)
    if update.written:
        print(f"Next: {next_step}")
    # A check writes nothing of its own; GitHub's job summary still shows it.
    publish_markdown(_markdown(update, title, source, verdict, next_step), None if check else report_path)
    return 1 if check and update.changed else 0


def _location_line(location: LocationChange) -> str:
    where = f"{location.file}:{location.line} {location.path}"
    if not location.changed:
        return f"  {where}: {location.new} (already)"
    aliases = ""
    if location.also_read_at:
        plural = "s" if len(location.also_read_at) > 1 else ""
        aliases = f" (also read by the aliases at line{plural} {', '.join(map(str, location.also_read_at))})"
    return f"  {where}: {location.old or '(new)'} -> {location.new}{aliases}"


def _verdict(update: ImageUpdate, check: bool) -> str:
    changed = [location for location in update.locations if location.changed]
    count = f"{len(changed)} of {len(update.locations)} location{'s' if len(update.locations) != 1 else ''}"
    if not changed:
        return f"{'OK: ' if check else ''}every location already holds {update.image}; nothing to write."
    if check:
        return f"--check: {count} would change to {update.image} (diff above); run without --check to write them."
    files = ", ".join(file.label for file in update.files if file.changed)
    return f"Wrote {update.image} into {count} in {files}."


def _markdown(update: ImageUpdate, title: str, source: str | None, verdict: str, next_step: str) -> str:
    rows = [
        f"| `{location.file}:{location.line}` | `{location.path}` | `{location.old or '(new)'}` | "
        f"`{location.new}` | {'changed' if location.changed else 'already'} |"
        for location in update.locations
    ]
    parts = [f"### {title}: `{update.image}`", ""]
    if source is not None:
        parts += [f"Image from {source}.", ""]
    parts += [
        verdict,
        "",
        "| File | Path | Before | After | |",
        "| --- | --- | --- | --- | --- |",
        *rows,
    ]
    if update.diff:
        parts += ["", "```diff", update.diff.rstrip("\n"), "```"]
    if update.written:
        parts += ["", f"**Next:** {next_step}"]
    return "\n".join(parts) + "\n"
