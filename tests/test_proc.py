"""tooling.proc: external programs fail with their own last lines, and secrets stay hidden."""

from __future__ import annotations

import sys
import time
from pathlib import Path

import pytest

from tooling import proc
from tooling.errors import CommandFailed, ToolingError
from tooling.log import register_secret


def test_failure_carries_exit_code_and_last_lines_of_output() -> None:
    script = "import sys\nfor i in range(40): print('line', i)\nsys.exit(3)"
    with pytest.raises(CommandFailed) as raised:
        proc.run([sys.executable, "-c", script], hint="Check the script.")
    failure = raised.value
    assert failure.returncode == 3
    assert failure.output_tail[-1] == "line 39"
    assert len(failure.output_tail) == proc.TAIL_LINES
    assert failure.message.endswith("Check the script.")
    assert failure.last_line == "line 39"


def test_a_silent_failure_is_named_by_its_exit_code() -> None:
    with pytest.raises(CommandFailed) as raised:
        proc.run([sys.executable, "-c", "raise SystemExit(4)"])
    assert raised.value.last_line == "exit code 4"


def test_missing_program_is_one_clear_error() -> None:
    with pytest.raises(ToolingError, match=r"`no-such-program-hubship` was not found on this machine\. Install it"):
        proc.run(["no-such-program-hubship"], hint="Install it.")


def test_timeout_is_reported_with_the_limit() -> None:
    with pytest.raises(CommandFailed, match=r"did not finish within 1 s"):
        proc.run([sys.executable, "-c", "import time; time.sleep(30)"], timeout=1)


def test_stream_hands_over_lines_and_hides_registered_secrets() -> None:
    register_secret("hunter2-secret")
    seen: list[str] = []
    tail = proc.stream([sys.executable, "-c", "print('a'); print('token hunter2-secret')"], on_line=seen.append)
    assert seen == ["a", "token ********"]
    assert tail == seen


def test_started_server_is_stopped_by_its_pid(tmp_path: Path) -> None:
    server = proc.start(
        [sys.executable, "-c", "import time; print('up', flush=True); time.sleep(60)"], log_path=tmp_path / "log"
    )
    deadline = time.monotonic() + 10
    while not server.log_tail() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert server.log_tail() == ["up"]
    assert server.running()
    server.stop(timeout=5)
    assert not server.running()
