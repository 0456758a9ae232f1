"""`python -m tooling COMMAND --help`, for every command: what it does, reads and writes, and an example."""

from __future__ import annotations

import pytest

from tooling.cli import COMMANDS, main


@pytest.mark.parametrize("name", COMMANDS)
def test_help_says_what_the_command_reads_and_writes_and_shows_an_example(
    name: str, capsys: pytest.CaptureFixture[str]
) -> None:
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
    for name in COMMANDS:
        assert f"    {name} " in text
