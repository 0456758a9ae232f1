"""`promote`: copy the image staging verified into prod's values, then `check prod`."""

from __future__ import annotations

import argparse
from pathlib import Path

from tooling.cli.check_cmd import report as check_report
from tooling.cli.check_cmd import values_files
from tooling.cli.common import add_command, load, stage_command
from tooling.errors import ToolingError


def register(subparsers: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    parser = add_command(
        subparsers,
        "promote",
        summary="Promote staging's image to prod, only when deploy/verified/staging.json says verify passed for "
        "exactly the image staging's values hold: it is written into prod's values (as `bump prod --from-env "
        "staging` does) and `check prod` runs. Otherwise refused, naming the image staging last verified.",
        reads="hub.toml, deploy/verified/staging.json, staging's and prod's values files, the pinned chart",
        writes="prod's values files (the image only; put back when `check prod` fails); .hubship/reports/check-prod.md",
        example="python -m tooling promote",
    )
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from tooling.check import CheckRequest, check_values
    from tooling.deploy.promote import PromoteRequest, may_promote
    from tooling.files import write_atomic
    from tooling.values import BumpRequest, bump_image_tag

    config = load(args)
    promotion = may_promote(PromoteRequest.from_config(config))
    before = values_files(config, "prod")
    bump = bump_image_tag(BumpRequest.from_config(config, "prod", from_environment="staging"))
    print(f"promoted {promotion.image} (verified on staging {promotion.verified_at}) into prod's values")
    if bump.update.files:
        print("".join(file.diff for file in bump.update.files if file.changed), end="")
    if check_report(config, check_values(CheckRequest.from_config(config, "prod"))):
        for path, content in before.items():
            write_atomic(Path(path), content)
        raise ToolingError("promote refused: prod's values fail `check prod` with staging's image (above); put back.")
    print(
        "Next: commit prod's values and deploy/verified/staging.json; once prod is approved, "
        f"`{stage_command('deploy-prod')}`."
    )
    return 0
