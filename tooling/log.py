"""What a person sees while a stage runs: steps, their durations, and secrets kept out.

On a terminal a step shows one live line (what is happening, the latest
output line, the seconds so far); in CI logs every line is plain and
timestamped. Every line goes through `redact`, so a registered secret (a
registry password, a token) never reaches the screen or a log file.
"""

from __future__ import annotations

import logging
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TextIO

logger = logging.getLogger("tooling")

_secrets: set[str] = set()


def register_secret(value: str) -> None:
    """Hide `value` from every line this process logs or prints from now on."""
    if len(value) >= 3:
        _secrets.add(value)


def is_secret(value: str) -> bool:
    """Whether `value` is, as a whole, a registered secret."""
    return value in _secrets


def redact(text: str) -> str:
    for secret in sorted(_secrets, key=len, reverse=True):
        text = text.replace(secret, "********")
    return text


class _RedactingFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        return redact(super().format(record))


class _StderrHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """Writes to whatever sys.stderr is when a line is logged, not the one it was made with.

    A caller that replaces sys.stderr (a test's capture, a redirection) and
    later closes it must not leave the toolkit writing to a closed stream.
    """

    @property
    def stream(self) -> TextIO:
        return sys.stderr

    @stream.setter
    def stream(self, value: TextIO) -> None:
        """StreamHandler sets its stream when made; the current sys.stderr always wins."""


def configure(verbose: bool = False) -> None:
    """Send the toolkit's log to stderr: plain on a terminal, timestamped elsewhere."""
    handler = _StderrHandler()
    if sys.stderr.isatty():
        handler.setFormatter(_RedactingFormatter("%(message)s"))
    else:
        handler.setFormatter(_RedactingFormatter("%(asctime)s %(message)s", "%Y-%m-%dT%H:%M:%S"))
    logger.handlers[:] = [handler]
    logger.setLevel(logging.DEBUG if verbose else logging.INFO)
    logger.propagate = False


class Step:
    """A long-running step; `update` reports progress, the duration is logged at the end."""

    def __init__(self, title: str) -> None:
        self.title = title
        self.started = time.monotonic()
        self._live = sys.stderr.isatty() and logger.isEnabledFor(logging.INFO) and bool(logger.handlers)

    @property
    def elapsed(self) -> float:
        return time.monotonic() - self.started

    def update(self, detail: str) -> None:
        detail = redact(detail.strip())
        if not detail:
            return
        if self._live:
            line = f"  {self.title} [{self.elapsed:5.0f}s] {detail}"
            sys.stderr.write("\r\x1b[2K" + line[:160])
            sys.stderr.flush()
        else:
            logger.debug("  %s", detail)

    def _clear_live_line(self) -> None:
        if self._live:
            sys.stderr.write("\r\x1b[2K")
            sys.stderr.flush()

    def finish(self, ok: bool) -> None:
        self._clear_live_line()
        mark = "done" if ok else "FAILED"
        logger.info("%s: %s in %.1f s", self.title, mark, self.elapsed)


@contextmanager
def step(title: str) -> Iterator[Step]:
    """Log `title`, run the block, then log whether it finished and how long it took."""
    logger.info("%s ...", title)
    current = Step(title)
    try:
        yield current
    except BaseException:
        current.finish(ok=False)
        raise
    current.finish(ok=True)
