"""Locking pangeo's real environment (two files, 138 specs) against the conda-forge snapshot."""

from __future__ import annotations

from collections.abc import Callable

from tests.lock_fixtures import PANGEO, PANGEO_SPECS, CliResult, Hub
from tooling.lockfile import read_lock

Cli = Callable[..., CliResult]


def test_pangeo_locks_like_pangeos_own_lock(make_hub: Callable[..., Hub], cli: Cli) -> None:
    hub = make_hub()
    files = [arg for spec in PANGEO_SPECS for arg in ("--file", str(spec))]

    result = cli(hub, "lock", *files)

    assert result.code == 0, result.err
    ours = {p.name: p for p in read_lock(hub.lock).package}
    theirs = {
        p.name: p for p in read_lock(PANGEO / "pangeo-notebook.conda-lock.yml").package if p.platform == "linux-64"
    }
    assert len(ours) == 809
    assert ours.keys() == theirs.keys()
    differing = sorted(name for name in ours if ours[name].version != theirs[name].version)
    assert len(differing) <= 5, differing
    same_file = [name for name in ours if ours[name].url == theirs[name].url]
    assert len(same_file) > 700
    for name in same_file:
        assert same_meaning(ours[name].dependencies) == same_meaning(theirs[name].dependencies), name
        assert ours[name].hash == theirs[name].hash, name


def same_meaning(dependencies: dict[str, str]) -> dict[str, str]:
    """Specs in one spelling: the snapshot was rebuilt from lock entries and lost two spellings on the way.

    A lock's '*' (from `python_abi * *_cp312`) came back as a bare name (''), and '==6.3.0' (from
    `bleach ==6.3.0 pyh..`) as '6.3.0'; in conda both pairs mean the same.
    """
    return {name: "" if spec == "*" else spec.removeprefix("==") for name, spec in dependencies.items()}
