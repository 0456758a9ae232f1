"""`config`: print the effective configuration, defaults included."""

from __future__ import annotations

import argparse
import json
from typing import Any

from tooling.cli.common import add_command, load
from tooling.config import HubConfig


def register(subparsers: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    parser = add_command(
        subparsers,
        "config",
        summary="Print the effective configuration: hub.toml with every default filled in.",
        reads="hub.toml",
        writes="nothing (standard output only)",
        example="python -m tooling config --json | jq .deploy.staging",
    )
    parser.add_argument("--json", action="store_true", help="print JSON instead of TOML")
    parser.set_defaults(run=run)


def effective(config: HubConfig) -> dict[str, Any]:
    data = config.model_dump(mode="json")
    data["smoke"]["size_budget"] = config.smoke.size_budget.human_readable(decimal=True, separator=" ")
    return data


def run(args: argparse.Namespace) -> int:
    config = load(args)
    data = effective(config)
    if args.json:
        print(json.dumps(data, indent=2))
    else:
        import tomlkit

        print(f"# Effective configuration of {config.path}")
        print(tomlkit.dumps(data), end="")
    return 0
