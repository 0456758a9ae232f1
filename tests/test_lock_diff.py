"""`lock-diff` on real lock pairs, and the change report's reasons on small locks."""

from __future__ import annotations

from collections.abc import Callable

from conda_lock.lockfile.v2prelim.models import HashModel, LockedDependency, Lockfile, LockMeta

from tests.lock_fixtures import PANGEO, PANGEO_SPECS, CliResult, Hub
from tooling.cli.lock_report import summary_lines
from tooling.lockdiff import diff_locks

Cli = Callable[..., CliResult]
PREVIOUS = PANGEO / "pangeo-notebook.conda-lock.previous.yml"
CURRENT = PANGEO / "pangeo-notebook.conda-lock.yml"


def row(output: str, name: str) -> list[str]:
    """The table row of a package: its cells split on runs of two or more spaces."""
    line = next(line for line in output.splitlines() if line.split()[1:2] in ([name], [f"{name}"]))
    return [cell.strip() for cell in line.split("  ") if cell.strip()]


def test_pangeo_previous_to_current(make_hub: Callable[..., Hub], cli: Cli) -> None:
    hub = make_hub()
    specs = [arg for spec in PANGEO_SPECS for arg in ("--spec", str(spec))]
    result = cli(hub, "lock-diff", str(PREVIOUS), str(CURRENT), *specs)

    assert result.code == 0, result.err
    lines = result.out.splitlines()
    assert lines[0] == "linux-64: 809 packages (was 806), spec changed: 5 upgraded, 3 added"
    assert lines[3] == "osx-arm64: 743 packages (was 740), spec changed: 5 upgraded, 3 added, 1 rebuilt"
    assert row(result.out, "intake-esm") == ["upgraded", "intake-esm *", "2023.11.10", "2025.12.12", "all"]
    assert row(result.out, "itables") == ["added", "itables", "2.6.2", "all", "needed by intake-esm 2025.12.12"]
    assert row(result.out, "polars-default")[-1] == "needed by polars 1.32.3"
    assert row(result.out, "openssl")[:5] == [
        "upgraded",
        "openssl",
        "3.6.0",
        "3.6.1",
        "linux-64, linux-aarch64, osx-64",
    ]
    markdown = (hub.root / ".hubship" / "reports" / "lock-diff.md").read_text()
    assert "| upgraded | **intake-esm** | 2023.11.10 | 2025.12.12 | all |  |" in markdown
    assert "- linux-64: 809 packages (was 806), spec changed: 5 upgraded, 3 added" in markdown


def test_explicit_lock_against_the_lock_it_was_rendered_from(make_hub: Callable[..., Hub], cli: Cli) -> None:
    result = cli(make_hub(), "lock-diff", str(PANGEO / "pangeo-notebook.conda-linux-64.lock"), str(CURRENT))
    assert result.code == 0, result.err
    assert result.out.splitlines()[0] == "linux-64: 809 packages (was 809), same spec: no changes"


def test_explicit_lock_against_an_older_lock(make_hub: Callable[..., Hub], cli: Cli) -> None:
    result = cli(make_hub(), "lock-diff", str(PREVIOUS), str(PANGEO / "pangeo-notebook.conda-linux-64.lock"))
    assert result.code == 0, result.err
    assert result.out.splitlines()[0] == "linux-64: 809 packages (was 806), spec changed: 5 upgraded, 3 added"


def test_unreadable_lock_is_named(make_hub: Callable[..., Hub], cli: Cli) -> None:
    hub = make_hub()
    broken = hub.root / "broken.yml"
    broken.write_text("version: 1\nmetadata: [\n")
    result = cli(hub, "lock-diff", str(broken), str(CURRENT))
    assert result.code == 1
    assert result.err.startswith(f"error: {broken}:3:1: not valid YAML")


def test_lock_with_a_control_character_is_named(make_hub: Callable[..., Hub], cli: Cli) -> None:
    hub = make_hub()
    broken = hub.root / "broken.yml"
    broken.write_text("version: 1\nmetadata: {}\npackage: [\x07]\n")
    result = cli(hub, "lock-diff", str(broken), str(CURRENT))
    assert result.code == 1
    assert "Traceback" not in result.err
    assert result.err.startswith(f"error: {broken}:3:11: not valid YAML: character 0x0007 is not allowed")


def package(name: str, version: str, build: str = "0", **dependencies: str) -> LockedDependency:
    return LockedDependency(
        name=name,
        version=version,
        manager="conda",
        platform="linux-64",
        dependencies=dependencies,
        url=f"https://conda.anaconda.org/conda-forge/noarch/{name}-{version}-{build}.conda",
        hash=HashModel(md5=f"{name}{version}{build}".ljust(32, "0")[:32]),
        categories={"main"},
    )


def lock(content_hash: str, *packages: LockedDependency) -> Lockfile:
    metadata = LockMeta(
        content_hash={"linux-64": content_hash}, channels=["conda-forge"], platforms=["linux-64"], sources=["e.yml"]
    )
    return Lockfile(package=list(packages), metadata=metadata)


def test_reasons_for_each_kind_of_change() -> None:
    old = lock(
        "a",
        package("app", "1.0", lib="<2"),
        package("lib", "1.5"),
        package("tool", "3.0", lib=">=1"),
        package("gone", "1.0"),
        package("base", "1.0", "h1_0"),
    )
    new = lock(
        "b",
        package("app", "2.0", lib=">=2", extra=""),
        package("lib", "2.1"),
        package("tool", "2.0", lib=">=1"),
        package("extra", "0.1"),
        package("base", "1.0", "h2_1"),
    )
    report = diff_locks(
        old, new, old_label="old", new_label="new", specs={("conda", "app"): ">=2", ("conda", "tool"): ""}
    )
    by_name = {c.name: c for c in report.changes}

    assert by_name["app"].kind == "upgraded" and by_name["app"].top_level
    assert "spec `app >=2` excludes 1.0" in by_name["app"].reason
    assert by_name["lib"].reason == "app 2.0 needs `lib >=2`; no longer held back by app 1.0 (`lib <2`)"
    assert by_name["tool"].kind == "downgraded"
    assert by_name["extra"].reason == "needed by app 2.0"
    assert by_name["gone"].reason == "nothing in the new lock depends on it"
    assert (by_name["base"].kind, by_name["base"].old, by_name["base"].new) == ("rebuilt", "1.0 h1_0", "1.0 h2_1")
    assert summary_lines(report) == [
        "linux-64: 5 packages (was 5), spec changed: 2 upgraded, 1 downgraded, 1 added, 1 removed, 1 rebuilt"
    ]


def test_an_upgrade_under_the_same_spec_comes_from_the_channel() -> None:
    report = diff_locks(
        lock("same", package("lib", "1.0")), lock("same", package("lib", "1.1")), old_label="a", new_label="b"
    )
    assert [(c.kind, c.reason) for c in report.changes] == [("upgraded", "the channel changed (same spec)")]
