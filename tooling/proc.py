"""The one way the toolkit runs external programs (docker, git, ...).

Every call logs its exact command line; a failure raises `CommandFailed`
carrying the program's own last lines of output. Secrets never go on a
command line: pass them through `stdin_text`. Children inherit this process's
environment without the toolkit's own credentials (`child_environment`).
"""

from __future__ import annotations

import collections
import contextlib
import os
import shlex
import socket
import subprocess
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from tooling.errors import CommandFailed, CommandTimedOut, ProgramNotFound
from tooling.log import is_secret, logger, redact

TAIL_LINES = 25


@dataclass(frozen=True)
class Completed:
    argv: list[str]
    returncode: int
    stdout: str
    stderr: str


# Credentials the toolkit itself reads (tooling/registry.py). No program it runs needs them in its
# environment (`docker login` reads the password on stdin); a caller that must hand one over passes it in `env`.
WITHHELD_VARIABLES = frozenset({"HUBSHIP_REGISTRY_USERNAME", "HUBSHIP_REGISTRY_PASSWORD"})


def child_environment(env: Mapping[str, str] | None = None) -> dict[str, str]:
    """This process's environment for a child, without the toolkit's credentials, plus `env`.

    Left out: WITHHELD_VARIABLES and any variable whose value was registered as a secret
    (`tooling.log.register_secret`), so repo2docker, JupyterHub or configurable-http-proxy never see them.
    """
    inherited = {
        name: value for name, value in os.environ.items() if name not in WITHHELD_VARIABLES and not is_secret(value)
    }
    return {**inherited, **(env or {})}


def _not_found(argv: Sequence[str], hint: str) -> ProgramNotFound:
    return ProgramNotFound(argv[0], hint)


def _tail(text: str) -> list[str]:
    return [redact(line) for line in text.splitlines()[-TAIL_LINES:]]


def run(
    argv: Sequence[str],
    *,
    env: Mapping[str, str] | None = None,
    cwd: Path | None = None,
    stdin_text: str | None = None,
    timeout: float | None = None,
    check: bool = True,
    hint: str = "",
) -> Completed:
    """Run a program to completion, capturing its output."""
    args = [str(a) for a in argv]
    logger.debug("$ %s", redact(shlex.join(args)))
    try:
        proc = subprocess.run(
            args,
            env=child_environment(env),
            cwd=cwd,
            input=stdin_text,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
    except FileNotFoundError as exc:
        raise _not_found(args, hint) from exc
    except subprocess.TimeoutExpired as exc:
        output = (exc.stdout or b"") + (exc.stderr or b"")
        text = output.decode(errors="replace") if isinstance(output, bytes) else output
        raise CommandTimedOut(args, exc.timeout, _tail(text), hint) from exc
    if check and proc.returncode != 0:
        raise CommandFailed(args, proc.returncode, _tail(proc.stdout + proc.stderr), hint)
    return Completed(args, proc.returncode, proc.stdout, proc.stderr)


def stream(
    argv: Sequence[str],
    *,
    on_line: Callable[[str], None],
    env: Mapping[str, str] | None = None,
    cwd: Path | None = None,
    hint: str = "",
) -> list[str]:
    """Run a long program, handing each output line (stdout and stderr merged) to `on_line`.

    Returns the last lines of output; raises `CommandFailed` with them when
    the program fails.
    """
    args = [str(a) for a in argv]
    logger.debug("$ %s", redact(shlex.join(args)))
    tail: collections.deque[str] = collections.deque(maxlen=TAIL_LINES)
    try:
        proc = subprocess.Popen(
            args,
            env=child_environment(env),
            cwd=cwd,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            errors="replace",
        )
    except FileNotFoundError as exc:
        raise _not_found(args, hint) from exc
    assert proc.stdout is not None
    with proc:
        for raw_line in proc.stdout:
            line = redact(raw_line.rstrip("\n"))
            tail.append(line)
            on_line(line)
    if proc.returncode != 0:
        raise CommandFailed(args, proc.returncode, list(tail), hint)
    return list(tail)


@dataclass
class Server:
    """A long-running program this process started; stop it with `stop`, by its own PID."""

    argv: list[str]
    process: subprocess.Popen[bytes]
    log_path: Path

    @property
    def pid(self) -> int:
        return self.process.pid

    def running(self) -> bool:
        return self.process.poll() is None

    def log_tail(self) -> list[str]:
        try:
            return _tail(self.log_path.read_text(errors="replace"))
        except FileNotFoundError:
            return []

    def stop(self, timeout: float = 10) -> None:
        """Ask the program to end (SIGTERM), then kill it if it has not within `timeout` seconds."""
        if self.process.poll() is not None:
            return
        self.process.terminate()
        try:
            self.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=timeout)


def start(
    argv: Sequence[str],
    *,
    log_path: Path,
    env: Mapping[str, str] | None = None,
    cwd: Path | None = None,
    hint: str = "",
) -> Server:
    """Start a long-running program (a server), its output going to `log_path`."""
    args = [str(a) for a in argv]
    logger.debug("$ %s &", redact(shlex.join(args)))
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with log_path.open("wb") as log_file:
        try:
            process = subprocess.Popen(
                args,
                env=child_environment(env),
                cwd=cwd,
                stdin=subprocess.DEVNULL,
                stdout=log_file,
                stderr=subprocess.STDOUT,
            )
        except FileNotFoundError as exc:
            raise _not_found(args, hint) from exc
    return Server(args, process, log_path)


def free_port() -> int:
    """A TCP port nothing listens on at 127.0.0.1 right now."""
    return free_ports(1)[0]


def free_ports(count: int) -> tuple[int, ...]:
    """`count` different TCP ports nothing listens on at 127.0.0.1 right now.

    Every probe stays bound until all are picked: probes closed one by one may be
    handed the same free port twice, and two servers of one hub then share a port.
    """
    with contextlib.ExitStack() as probes:
        bound = [probes.enter_context(socket.socket(socket.AF_INET, socket.SOCK_STREAM)) for _ in range(count)]
        for probe in bound:
            probe.bind(("127.0.0.1", 0))
        return tuple(int(probe.getsockname()[1]) for probe in bound)
