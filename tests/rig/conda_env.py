"""Solve conda specs against a channel and install them into a prefix, with py-rattler, for rig tests.

The hub image's environment is locked and installed for linux-64 with the
virtual packages of tooling.config.DEFAULT_VIRTUAL_PACKAGES (`__glibc 2.28`,
...), never this machine's, so a solve here answers as it would for the image.

Installing runs in a child process (`python -m tests.rig.conda_env`): the
installer has been seen to crash at interpreter exit after a complete
install, which must not take a test session down with it. The child ends
with os._exit once its output is flushed, and the caller checks its exit
status and the prefix's conda-meta/.
"""

from __future__ import annotations

import asyncio
import os
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path

from rattler import BuildString, Channel, Gateway, GenericVirtualPackage, PackageName, RepoDataRecord, Version
from rattler import install as rattler_install
from rattler import solve as rattler_solve
from ruamel.yaml import YAML

from tooling.config import DEFAULT_VIRTUAL_PACKAGES
from tooling.errors import ToolingError
from tooling.proc import run

INSTALL_TIMEOUT = 600.0


def environment_specs(spec_file: Path) -> list[str]:
    """The conda specs under `dependencies:` of an environment.yml."""
    document = YAML(typ="safe").load(spec_file.read_text(encoding="utf-8"))
    dependencies = document.get("dependencies") if isinstance(document, dict) else None
    if not isinstance(dependencies, list) or not all(isinstance(spec, str) for spec in dependencies):
        raise ToolingError(f"{spec_file}: `dependencies` must be a list of conda specs such as `numpy>=2`.")
    return dependencies


def virtual_packages(spec: Mapping[str, str] = DEFAULT_VIRTUAL_PACKAGES["linux-64"]) -> list[GenericVirtualPackage]:
    """`{"__glibc": "2.28", "__archspec": "1 x86_64"}` as rattler's virtual packages (build string "0" if none)."""
    packages = []
    for name, value in spec.items():
        version, _, build = value.partition(" ")
        packages.append(GenericVirtualPackage(PackageName(name), Version(version), BuildString(build or "0")))
    return packages


def solve(specs: Sequence[str], channel_url: str, cache_dir: Path) -> list[RepoDataRecord]:
    """The records a linux-64 environment of `specs` gets from the channel at `channel_url`."""
    return asyncio.run(
        rattler_solve(
            sources=[Channel(channel_url)],
            specs=list(specs),
            platforms=["linux-64", "noarch"],
            virtual_packages=virtual_packages(),
            gateway=Gateway(cache_dir=cache_dir / "repodata"),
        )
    )


def install_in_child(specs: Sequence[str], channel_url: str, prefix: Path, cache_dir: Path) -> None:
    """Solve and install `specs` into `prefix` in a child process; raises CommandFailed if it fails."""
    run(
        [sys.executable, "-m", "tests.rig.conda_env", channel_url, str(prefix), str(cache_dir), *specs],
        cwd=Path(__file__).resolve().parents[2],
        timeout=INSTALL_TIMEOUT,
    )


def _solve_and_install(specs: Sequence[str], channel_url: str, prefix: Path, cache_dir: Path) -> None:
    records = solve(specs, channel_url, cache_dir)
    asyncio.run(rattler_install(records, target_prefix=prefix, cache_dir=cache_dir / "pkgs", show_progress=False))


if __name__ == "__main__":
    _solve_and_install(sys.argv[4:], sys.argv[1], Path(sys.argv[2]), Path(sys.argv[3]))
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)
