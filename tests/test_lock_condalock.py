"""`--engine conda-lock`: the real conda-lock CLI, with the test-only micromamba stand-in as its solver."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from tests.lock_fixtures import PROJECT, CliResult, Hub
from tooling.lockfile import read_lock

Cli = Callable[..., CliResult]
SPEC = PROJECT.joinpath("environments", "environment.yml").read_text()


def test_both_engines_write_the_same_lock(make_hub: Callable[..., Hub], cli: Cli, fake_micromamba: Path) -> None:
    by_rattler, by_conda_lock = make_hub(), make_hub()
    assert cli(by_rattler, "lock").code == 0
    result = cli(by_conda_lock, "lock", "--engine", "conda-lock", "--conda-exe", str(fake_micromamba))
    assert result.code == 0, result.err
    assert "engine conda-lock" in result.out
    assert by_conda_lock.lock.read_text() == by_rattler.lock.read_text()
    assert by_conda_lock.explicit.read_text() == by_rattler.explicit.read_text()
    assert cli(by_conda_lock, "lock", "--check").code == 0


def test_update_through_conda_lock(make_hub: Callable[..., Hub], cli: Cli, fake_micromamba: Path) -> None:
    hub = make_hub(spec=SPEC.replace("  - numpy\n", "  - numpy<2\n").replace("  - pandas\n", "  - pandas<2.2\n"))
    engine = ("--engine", "conda-lock", "--conda-exe", str(fake_micromamba))
    assert cli(hub, "lock", *engine).code == 0
    before = {p.name: p for p in read_lock(hub.lock).package}
    hub.spec.write_text(SPEC)

    result = cli(hub, "lock", *engine, "--update", "pandas")

    assert result.code == 0, result.err
    after = {p.name: p for p in read_lock(hub.lock).package}
    assert after["pandas"].version != before["pandas"].version
    assert after["numpy"].version == before["numpy"].version
    assert all(after[name].url.startswith("https://conda.anaconda.org/conda-forge/") for name in after)


def test_conda_lock_cannot_update_a_transitive_package(
    make_hub: Callable[..., Hub], cli: Cli, fake_micromamba: Path
) -> None:
    hub = make_hub()
    assert cli(hub, "lock").code == 0
    result = cli(hub, "lock", "--engine", "conda-lock", "--conda-exe", str(fake_micromamba), "--update", "zstd")
    assert result.code == 1
    assert "can update only top-level specs; zstd" in result.err


def test_unsatisfiable_spec_through_conda_lock(make_hub: Callable[..., Hub], cli: Cli, fake_micromamba: Path) -> None:
    conflicting = (
        "channels:\n  - conda-forge\ndependencies:\n  - jupyterhub-singleuser\n  - numpy<1.24\n  - pandas>=2.3\n"
    )
    hub = make_hub(spec=conflicting)
    result = cli(hub, "lock", "--engine", "conda-lock", "--conda-exe", str(fake_micromamba))
    assert result.code == 1
    error = result.err.strip().splitlines()[-1]
    assert error.startswith("error: conda-lock: Could not lock the environment for platform linux-64: ")
    assert "cannot be installed together" in error
    assert "'numpy <1.24'" in error and "'pandas >=2.3'" in error
    assert not hub.lock.exists()


def test_conda_lock_without_a_solver_executable(
    make_hub: Callable[..., Hub], cli: Cli, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    monkeypatch.delenv("CONDA_LOCK_CONDA", raising=False)
    result = cli(make_hub(), "lock", "--engine", "conda-lock")
    assert result.code == 1
    assert "needs a conda, mamba or micromamba executable" in result.err
