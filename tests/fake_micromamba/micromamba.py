"""A stand-in for micromamba, for tests only: answers what conda-lock asks of it, solving with py-rattler.

No micromamba binary can be had on these machines, and conda-lock's CLI needs one.
conda-lock runs (see conda_lock/conda_solver.py and invoke_conda.py):

    micromamba --version
    micromamba create --prefix P --dry-run --json --override-channels --channel C ... SPEC ...
    micromamba list --no-pip -p PREFIX --json                          (for --update)
    micromamba update --override-channels --channel C ... -p PREFIX --json --dry-run SPEC ...

with CONDA_SUBDIR naming the target platform and CONDA_OVERRIDE_<NAME> the
virtual packages. Like micromamba with --json, it prints
{"actions": {"FETCH": [repodata records], "LINK": [...]}, "success": true, ...},
or {"success": false, "message": ...} and exits 1 when it cannot solve.
It is never shipped and the toolkit never runs it by default.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
from pathlib import Path
from typing import Any

import rattler
from rattler import BuildString, GenericVirtualPackage, PackageName, RepoDataRecord, Subdir, Version
from rattler.exceptions import GatewayError, SolverError

VERSION = "2.0.5"
OVERRIDES = {"GLIBC": "__glibc", "LINUX": "__linux", "CUDA": "__cuda", "OSX": "__osx", "WIN": "__win"}


def main(argv: list[str]) -> int:
    if argv[:1] == ["--version"]:
        print(VERSION)
        return 0
    commands = {"create": create, "update": update, "list": list_prefix}
    if not argv or argv[0] not in commands:
        print(f"fake micromamba: unsupported command {argv[:1]}", file=sys.stderr)
        return 2
    return commands[argv[0]](parse(argv[1:]))


def parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="micromamba")
    parser.add_argument("-p", "--prefix")
    parser.add_argument("-c", "--channel", action="append", default=[])
    for flag in ("--dry-run", "--json", "--override-channels", "--no-pip", "--yes", "--quiet"):
        parser.add_argument(flag, action="store_true")
    parser.add_argument("specs", nargs="*")
    return parser.parse_args(argv)


def platform() -> str:
    return os.environ.get("CONDA_SUBDIR") or "linux-64"


def subdirs() -> list[Subdir]:
    return [Subdir(platform()), Subdir("noarch")]


def virtual_packages() -> list[GenericVirtualPackage]:
    """The target's virtual packages, from the CONDA_OVERRIDE_* variables conda-lock sets."""
    found = []
    if not platform().startswith("win"):
        found.append(("__unix", "0", "0"))
    for variable, name in OVERRIDES.items():
        value = os.environ.get(f"CONDA_OVERRIDE_{variable}")
        if value:
            found.append((name, value, "0"))
    archspec = os.environ.get("CONDA_OVERRIDE_ARCHSPEC")
    if archspec:
        found.append(("__archspec", "1", archspec))
    return [GenericVirtualPackage(PackageName(n), Version(v), BuildString(b)) for n, v, b in found]


async def solve(channels: list[str], specs: list[str], locked: list[RepoDataRecord]) -> list[RepoDataRecord]:
    return await rattler.solve(
        sources=[rattler.Channel(channel) for channel in channels],
        specs=specs,
        platforms=subdirs(),
        locked_packages=locked,
        virtual_packages=virtual_packages(),
        channel_relations="disabled",
    )


def fetch_entry(record: RepoDataRecord) -> dict[str, Any]:
    entry: dict[str, Any] = json.loads(record.to_json())
    return entry


def link_entry(record: RepoDataRecord) -> dict[str, Any]:
    dist_name = record.file_name.removesuffix(".conda").removesuffix(".tar.bz2")
    return {
        "base_url": record.channel.rstrip("/"),
        "channel": record.channel.rstrip("/"),
        "dist_name": dist_name,
        "name": record.name.normalized,
        "platform": record.subdir,
        "version": str(record.version),
    }


def answer(prefix: str, fetch: list[RepoDataRecord], link: list[RepoDataRecord], unlink: list[str]) -> int:
    actions = {
        "FETCH": [fetch_entry(r) for r in fetch],
        "LINK": [link_entry(r) for r in link],
        "UNLINK": [{"name": name} for name in unlink],
        "PREFIX": prefix,
    }
    print(json.dumps({"actions": actions, "dry_run": True, "prefix": prefix, "success": True}, indent=2))
    return 0


def failure(message: str) -> int:
    print(json.dumps({"success": False, "message": message}))
    return 1


def real(records: list[RepoDataRecord]) -> list[RepoDataRecord]:
    # micromamba never fetches or links virtual packages, though conda-lock's fake channel lists them.
    return [r for r in records if not r.name.normalized.startswith("__")]


def create(args: argparse.Namespace) -> int:
    try:
        records = real(asyncio.run(solve(args.channel, args.specs, [])))
    except (SolverError, GatewayError) as exc:
        return failure(str(exc))
    return answer(args.prefix, records, records, [])


def installed_entries(prefix: str) -> list[dict[str, Any]]:
    return [json.loads(path.read_text()) for path in sorted((Path(prefix) / "conda-meta").glob("*.json"))]


def list_prefix(args: argparse.Namespace) -> int:
    listing = [
        {
            "base_url": entry["channel"],
            "build_number": entry["build_number"],
            "build_string": entry["build"],
            "channel": entry["channel"],
            "dist_name": entry["fn"].removesuffix(".conda").removesuffix(".tar.bz2"),
            "name": entry["name"],
            "platform": entry["subdir"],
            "version": entry["version"],
        }
        for entry in installed_entries(args.prefix)
    ]
    print(json.dumps(listing, indent=2))
    return 0


def update(args: argparse.Namespace) -> int:
    """Update the named specs to their newest fit, keeping the installed packages where the solver can."""
    installed = {entry["name"]: entry for entry in installed_entries(args.prefix)}
    targets = {rattler.MatchSpec(spec).name.normalized for spec in args.specs}
    keep = {name: entry for name, entry in installed.items() if name not in targets}
    try:
        locked = asyncio.run(installed_records(args.channel, keep))
        solved = real(asyncio.run(solve(args.channel, [*args.specs, *keep, *python_pin(installed)], locked)))
    except (SolverError, GatewayError) as exc:
        return failure(str(exc))
    changed = [r for r in solved if installed.get(r.name.normalized, {}).get("fn") != r.file_name]
    solved_names = {r.name.normalized for r in solved}
    unlink = [name for name in installed if name not in solved_names or name in {r.name.normalized for r in changed}]
    return answer(args.prefix, changed, changed, unlink)


def python_pin(installed: dict[str, dict[str, Any]]) -> list[str]:
    """micromamba keeps an environment's Python minor version on update unless told --no-py-pin."""
    if "python" not in installed:
        return []
    major, minor = installed["python"]["version"].split(".")[:2]
    return [f"python {major}.{minor}.*"]


async def installed_records(channels: list[str], keep: dict[str, dict[str, Any]]) -> list[RepoDataRecord]:
    gateway = rattler.Gateway()
    found = await gateway.query(
        [rattler.Channel(channel) for channel in channels],
        subdirs(),
        sorted(keep),
        recursive=False,
        channel_relations="disabled",
    )
    files = {entry["fn"] for entry in keep.values()}
    return [record for records in found for record in records if record.file_name in files]


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
