"""The one exception type for failures a person can act on.

Raise `ToolingError` (or a subclass) for every expected failure: bad input,
a missing daemon, an unreachable registry. The CLI prints its message as one
block, without a traceback, and exits with its `exit_code`. Anything else
that escapes is a bug and keeps its traceback.
"""

from __future__ import annotations

# The return code a timed-out command reports in its message: it never exited on its own.
TIMED_OUT = -1


class ToolingError(Exception):
    """An expected failure: what failed, where (file and line or key), what to do."""

    exit_code: int = 1

    def __init__(self, message: str, *, exit_code: int | None = None) -> None:
        super().__init__(message)
        if exit_code is not None:
            self.exit_code = exit_code

    @property
    def message(self) -> str:
        return str(self.args[0])


class ConfigError(ToolingError):
    """hub.toml (or a file it names) is missing or wrong; usage errors exit with 2."""

    exit_code = 2


class ProgramNotFound(ToolingError):
    """An external program (docker, git, a credential helper, ...) is not installed or not on PATH."""

    def __init__(self, program: str, hint: str = "") -> None:
        super().__init__(f"`{program}` was not found on this machine. {hint}".strip())
        self.program = program


class CommandFailed(ToolingError):
    """An external program (docker, git, ...) exited non-zero."""

    def __init__(self, argv: list[str], returncode: int, output_tail: list[str], hint: str = "") -> None:
        self.argv = argv
        self.returncode = returncode
        self.output_tail = output_tail
        lines = [f"`{' '.join(argv[:3])}` failed with exit code {returncode}."]
        if output_tail:
            lines.append("Its last lines of output:")
            lines.extend(f"    {line}" for line in output_tail)
        if hint:
            lines.append(hint)
        super().__init__("\n".join(lines))

    @property
    def last_line(self) -> str:
        """What the program said last (usually its error), or its exit code when it said nothing."""
        return self.output_tail[-1].strip() if self.output_tail else f"exit code {self.returncode}"


class CommandTimedOut(CommandFailed):
    """An external program did not finish within its time limit, and was stopped."""

    def __init__(self, argv: list[str], timeout: float, output_tail: list[str], hint: str = "") -> None:
        self.timeout = timeout
        super().__init__(argv, TIMED_OUT, output_tail, f"It did not finish within {timeout:.0f} s. {hint}".strip())
