"""`set-image`: write an image into any Helm values file, changing nothing else in it.

The primitive under `bump`, for values files that live anywhere (another
repository, another chart). What both commands print is `tooling.cli.values_report`.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from tooling.cli.common import add_command
from tooling.cli.values_report import add_write_options, report


def register(subparsers: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    parser = add_command(
        subparsers,
        "set-image",
        summary="Write an image (NAME:TAG) at YAML paths of a values file; every other byte stays as it is.",
        reads="FILE",
        writes="FILE, only the image values in it (nothing with --check)",
        example="python -m tooling set-image deploy/staging.yaml --path jupyterhub.singleuser.image "
        "--image ghcr.io/org/hub-image:img-3f2a",
    )
    parser.add_argument("file", type=Path, metavar="FILE", help="the values file to write into")
    parser.add_argument(
        "--path",
        dest="paths",
        action="append",
        required=True,
        metavar="P",
        help="YAML path of the image, e.g. jupyterhub.singleuser.profileList[0].kubespawner_override.image; "
        "repeat for several. The value there is a NAME:TAG string or a mapping with name and tag keys",
    )
    parser.add_argument("--image", required=True, metavar="NAME:TAG", help="the image to write")
    add_write_options(parser)
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from tooling.images import ImageReference
    from tooling.values import ImageTarget, set_image

    image = ImageReference.parse(args.image, source="--image")
    targets = [ImageTarget(args.file, path, str(args.file)) for path in args.paths]
    update = set_image(targets, image, create=args.create, check=args.check)
    return report(
        update,
        title=f"set-image {args.file}",
        source=None,
        check=args.check,
        next_step="commit the change, then deploy the chart that reads these values.",
        report_path=None,
    )
