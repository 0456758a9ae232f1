"""`deploy`: check ENV's values, then helm upgrade --install the release and wait for it to roll out."""

from __future__ import annotations

import argparse

from tooling.cli.check_cmd import report as check_report
from tooling.cli.common import add_command, load, next_command
from tooling.config import HubConfig
from tooling.errors import ToolingError
from tooling.pipeline import STAGE_NAMES


def register(subparsers: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    parser = add_command(
        subparsers,
        "deploy",
        summary="Deploy an environment: `check ENV` first (it must pass), then `helm upgrade --install` of its "
        "release with the pinned chart and version, its namespace (created if missing), its values files in "
        "hub.toml order and the secret values file an environment variable names, --cleanup-on-fail, a timeout "
        "and a history limit; then wait for every Deployment and DaemonSet of the release to roll out. Refused "
        "before anything runs when the current kube context is not the one hub.toml names.",
        reads="hub.toml ([deploy.ENV], [helm], [kubectl]), ENV's values files, the file $SECRET_VALUES_ENV names, "
        "KUBECONFIG (through helm and kubectl)",
        writes="the release on ENV's cluster; .hubship/reports/check-ENV.md; never the values files",
        example="python -m tooling deploy staging",
    )
    parser.add_argument("environment", metavar="ENV", help="a [deploy.ENV] table of hub.toml")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from tooling.deploy import DeployRequest, deploy

    config = load(args)
    request = DeployRequest.from_config(config, args.environment)
    require_passing_check(config, args.environment)
    result = deploy(request)
    print(
        f"deployed {result.environment}: release {result.release} revision {result.revision} in {result.namespace}, "
        f"{result.chart}, image {result.image} (Helm {result.helm_version}), in {result.seconds:.1f} s"
    )
    for line in result.rolled_out:
        print(f"  rolled out {line}")
    if f"deploy-{result.environment}" in STAGE_NAMES:
        print(f"Next: {next_command(f'deploy-{result.environment}')}")
    return 0


def require_passing_check(config: HubConfig, environment: str) -> None:
    """`check ENV`, with its report; a deploy of values that fail it is refused."""
    from tooling.check import CheckRequest, check_values

    result = check_values(CheckRequest.from_config(config, environment))
    if check_report(config, result):
        raise ToolingError(
            f"deploy {environment} refused: its values fail `python -m tooling check {environment}` (above); "
            "nothing was sent to the cluster."
        )
