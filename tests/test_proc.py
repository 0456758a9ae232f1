"""tooling.proc: external programs fail with their own last lines, and secrets stay hidden."""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

import pytest

from tooling import proc
from tooling.config import ENV_PASSWORD, ENV_USERNAME
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


ENVIRONMENT_DUMP = "import json, os; print(json.dumps(dict(os.environ)))"


def test_children_never_inherit_the_toolkits_credentials(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """repo2docker, JupyterHub and the proxy run through proc: none of them may see a registry password."""
    register_secret("mirror-token-5e1d")
    monkeypatch.setenv("HUBSHIP_REGISTRY_USERNAME", "robot")
    monkeypatch.setenv("HUBSHIP_REGISTRY_PASSWORD", "registry-pw-9c2b")
    monkeypatch.setenv("SOME_MIRROR_TOKEN", "mirror-token-5e1d")
    monkeypatch.setenv("HUBSHIP_ORDINARY_SETTING", "kept")

    lines: list[str] = []
    proc.stream([sys.executable, "-c", ENVIRONMENT_DUMP], on_line=lines.append)
    server = proc.start([sys.executable, "-c", ENVIRONMENT_DUMP], log_path=tmp_path / "server.log")
    server.process.wait(timeout=60)
    seen = {
        "run": json.loads(proc.run([sys.executable, "-c", ENVIRONMENT_DUMP]).stdout),
        "stream": json.loads(lines[0]),
        "start": json.loads((tmp_path / "server.log").read_text()),
    }
    for how, environment in seen.items():
        assert environment["HUBSHIP_ORDINARY_SETTING"] == "kept", how
        assert environment["PATH"] == os.environ["PATH"], how
        assert "HUBSHIP_REGISTRY_USERNAME" not in environment, how
        assert "HUBSHIP_REGISTRY_PASSWORD" not in environment, how
        assert "SOME_MIRROR_TOKEN" not in environment, how
        assert "registry-pw-9c2b" not in json.dumps(environment), how


def test_a_caller_hands_a_credential_to_one_child_explicitly(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HUBSHIP_REGISTRY_PASSWORD", "registry-pw-4a7f")
    handed = proc.run([sys.executable, "-c", ENVIRONMENT_DUMP], env={"HUBSHIP_REGISTRY_PASSWORD": "registry-pw-4a7f"})
    assert json.loads(handed.stdout)["HUBSHIP_REGISTRY_PASSWORD"] == "registry-pw-4a7f"


def test_the_registry_credentials_variables_are_the_ones_withheld() -> None:
    assert {ENV_USERNAME, ENV_PASSWORD} <= proc.WITHHELD_VARIABLES


def test_ports_picked_together_are_all_different() -> None:
    # Picked one by one, 300 ports from the system's range of free ones repeat one most of the time.
    ports = proc.free_ports(300)

    assert len(set(ports)) == 300
    assert all(1024 < port < 65536 for port in ports)
