"""`push`: the smoke-tested image goes to the registry under its immutable tag; prints NAME:TAG@DIGEST."""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING

from tooling.cli.common import add_command, load, next_command, publish_markdown
from tooling.config import ENV_PASSWORD, ENV_USERNAME
from tooling.state import reports_dir

if TYPE_CHECKING:
    from tooling.push import PushResult

REPORT_NAME = "push.md"


def register(subparsers: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    parser = add_command(
        subparsers,
        "push",
        summary="Push the image that passed the smoke test to the registry in hub.toml. A tag never changes "
        "contents: a tag already holding another image is refused, the same image is a no-op. Prints "
        "REGISTRY/NAME:TAG@DIGEST.",
        reads=f"hub.toml ([image], [docker]), .hubship/state.json (the build and smoke-test records), "
        f"credentials from {ENV_USERNAME} and {ENV_PASSWORD} (a token works as the password) "
        "or else your Docker login ($DOCKER_CONFIG or ~/.docker/config.json)",
        writes="the image to the registry, .hubship/state.json (the pushed digest), .hubship/reports/push.md; "
        "never your Docker config",
        example=f'{ENV_USERNAME}=me {ENV_PASSWORD}="$TOKEN" python -m tooling push',
    )
    parser.add_argument(
        "--image",
        metavar="NAME:TAG",
        help="push this local image (it must have passed the smoke test) instead of the one the build stage "
        "recorded; it goes to hub.toml's registry and name with its own tag",
    )
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from tooling.push import PushRequest, push_image

    config = load(args)
    result = push_image(PushRequest.from_config(config, image=args.image))
    print(result.pinned)
    print(summary(result))
    publish_markdown(markdown(result), reports_dir(config.root) / REPORT_NAME)
    return 0


def outcome(result: PushResult) -> str:
    if result.pushed:
        return f"pushed in {result.seconds:.1f} s"
    return "already in the registry with this image: nothing uploaded"


def megabytes(size: int) -> str:
    return f"{size / 1e6:.1f} MB"


def transfer(result: PushResult) -> str:
    """Bytes uploaded, and bytes the registry already had (compressed, as the registry stores layers)."""
    return (
        f"uploaded {megabytes(result.uploaded_bytes)} ({result.uploaded_layers} of {result.layers} layers); "
        f"the registry already had {megabytes(result.reused_bytes)}"
    )


def summary(result: PushResult) -> str:
    return (
        f"{result.source} (image {result.image_id}): {outcome(result)}.\n"
        f"Layers: {transfer(result)}.\n"
        f"Credentials: {result.credentials}.\n"
        f"Next: `{next_command('push')}` writes this tag into the staging values."
    )


def markdown(result: PushResult) -> str:
    return (
        f"## Push: `{result.reference}`\n\n"
        "| | |\n|---|---|\n"
        f"| Image | `{result.source}` (id `{result.image_id}`) |\n"
        f"| In the registry | `{result.pinned}` |\n"
        f"| Result | {outcome(result)} |\n"
        f"| Layers | {transfer(result)} |\n"
        f"| Credentials | {result.credentials} |\n\n"
        f"Next: `{next_command('push')}` writes this tag into the staging values.\n"
    )
