"""`rollback`: back to the previous deployed revision, the values saying so again, then verify."""

from __future__ import annotations

import argparse

from tooling.cli.common import add_command, load


def register(subparsers: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    parser = add_command(
        subparsers,
        "rollback",
        summary="Roll ENV's release back to its previous deployed revision (from `helm history`), or to "
        "--to-revision N, with `helm rollback --cleanup-on-fail`; wait for the rollout; write that revision's "
        "image (`helm get values --revision N`) back into ENV's values so the repository says what runs; verify.",
        reads="hub.toml, KUBECONFIG (through helm and kubectl), the release's history and values",
        writes="the release on ENV's cluster; ENV's values files (the image only); deploy/verified/ENV.json",
        example="python -m tooling rollback staging\n  python -m tooling rollback prod --to-revision 7",
    )
    parser.add_argument("environment", metavar="ENV", help="a [deploy.ENV] table of hub.toml")
    parser.add_argument("--to-revision", type=int, metavar="N", help="the helm revision to go back to")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from tooling.cli import verify_cmd
    from tooling.deploy.rollback import RollbackRequest, rollback
    from tooling.values import image_targets, set_image

    config = load(args)
    result = rollback(RollbackRequest.from_config(config, args.environment, to_revision=args.to_revision))
    print(f"rolled {result.environment} back to revision {result.revision}: image {result.image}")
    for line in result.rolled_out:
        print(f"  rolled out {line}")
    update = set_image(image_targets(config, args.environment), result.image)
    for file in update.files:
        if file.changed:
            print(file.diff, end="")
    print(f"{args.environment}'s values name {result.image} again; commit them.")
    return int(verify_cmd.run(args))
