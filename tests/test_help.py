"""`python -m tooling COMMAND --help`, for every command: what it does, reads and writes, and an example."""

from __future__ import annotations

import argparse
import ast
from pathlib import Path
from types import ModuleType

import pytest

from tooling.cli import COMMANDS, main


def command_name(module: ModuleType) -> str:
    """The name a command module registers (read from argparse, not from the module's file name)."""
    parser = argparse.ArgumentParser()
    names = parser.add_subparsers()
    module.register(names)
    (name,) = names.choices
    return name


@pytest.mark.parametrize("module", COMMANDS, ids=command_name)
def test_help_says_what_the_command_reads_and_writes_and_shows_an_example(
    module: ModuleType, capsys: pytest.CaptureFixture[str]
) -> None:
    name = command_name(module)
    with pytest.raises(SystemExit) as exited:
        main([name, "--help"])
    assert exited.value.code == 0
    text = capsys.readouterr().out
    reads = next(line for line in text.splitlines() if line.startswith("Reads:"))
    writes = next(line for line in text.splitlines() if line.startswith("Writes:"))
    assert len(reads.split(":", 1)[1].strip()) > 3, reads
    assert len(writes.split(":", 1)[1].strip()) > 3, writes
    example = text[text.index("Example:") :].splitlines()[1].strip()
    assert f"python -m tooling {name}" in example, example


def test_the_top_level_help_lists_every_command(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["--help"])
    assert exited.value.code == 0
    text = capsys.readouterr().out
    for module in COMMANDS:
        assert f"    {command_name(module)} " in text


def test_every_command_is_a_nox_session_of_the_same_name() -> None:
    """README: "Every command is also a nox session of the same name" (noxfile.py STAGE_COMMANDS)."""
    noxfile = ast.parse((Path(__file__).resolve().parents[1] / "noxfile.py").read_text(encoding="utf-8"))
    assignment = next(
        node
        for node in noxfile.body
        if isinstance(node, ast.Assign) and any(getattr(t, "id", "") == "STAGE_COMMANDS" for t in node.targets)
    )
    sessions = ast.literal_eval(assignment.value)
    assert sorted(sessions) == sorted(command_name(module) for module in COMMANDS)
