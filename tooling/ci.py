"""Decisions the GitHub workflows make, kept out of their YAML: `python -m tooling.ci COMMAND`.

The jobs that run these do not install the toolkit (they only check out the
repository), so this module needs nothing beyond the standard library and
`tooling.proc`.

- `newest --since SHA PATH...`: whether SHA is still the newest state of PATHs
  on the checked-out branch. A release run whose image inputs were changed
  again on main since must not open a bump pull request: the newer commit's
  own run builds and bumps the newer image, and an older run that finishes
  last would otherwise point staging back at the older image. Writes
  `newest=true|false` for `$GITHUB_OUTPUT`.
- `require NAME...`: fail with one message naming the variables that are
  unset or empty (the GitHub App's id and key), before a release pushes
  anything it could then not finish.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Mapping, Sequence

from tooling.errors import ToolingError
from tooling.proc import run

APP_SETUP = "README.md, section 'Running it on GitHub'"


def inputs_changed_since(since: str, paths: Sequence[str]) -> list[str]:
    """The files among `paths` that differ between commit `since` and HEAD of this checkout."""
    completed = run(
        ["git", "diff", "--name-only", since, "HEAD", "--", *paths],
        timeout=60,
        hint="The checkout needs the whole history of the branch (actions/checkout with fetch-depth: 0).",
    )
    return completed.stdout.split()


def missing_variables(names: Sequence[str], environ: Mapping[str, str]) -> list[str]:
    return [name for name in names if not environ.get(name, "").strip()]


def _newest(args: argparse.Namespace) -> int:
    changed = inputs_changed_since(args.since, args.paths)
    if changed:
        print(
            f"{args.since} is no longer the newest state of the image's inputs: a later commit changed "
            f"{', '.join(changed[:5])}. That commit's run bumps its own image; this one does not.",
            file=sys.stderr,
        )
    print(f"newest={'false' if changed else 'true'}")
    return 0


def _require(args: argparse.Namespace) -> int:
    missing = missing_variables(args.names, os.environ)
    if missing:
        raise ToolingError(
            f"Not set: {', '.join(missing)}. The bump pull request is opened with a GitHub App's token so "
            f"that CI runs on it; set up the App and store its id and key as {APP_SETUP} describes."
        )
    print(f"ok: {', '.join(args.names)} are set.")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m tooling.ci", description=__doc__.split("\n\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    newest = commands.add_parser("newest", help="is commit SINCE still the newest state of PATHs at HEAD?")
    newest.add_argument("--since", required=True, metavar="SHA")
    newest.add_argument("paths", nargs="+", metavar="PATH")
    newest.set_defaults(run=_newest)
    require = commands.add_parser("require", help="fail unless every named environment variable is set")
    require.add_argument("names", nargs="+", metavar="NAME")
    require.set_defaults(run=_require)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        exit_code: int = args.run(args)
    except ToolingError as exc:
        print(f"error: {exc.message}", file=sys.stderr)
        return exc.exit_code
    return exit_code


if __name__ == "__main__":
    sys.exit(main())
