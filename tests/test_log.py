"""tooling.log: lines go to the stderr of the moment, secrets never show."""

from __future__ import annotations

import io
import sys

import pytest

from tooling import log


def test_log_follows_a_replaced_stderr_even_after_the_old_one_closed(monkeypatch: pytest.MonkeyPatch) -> None:
    first = io.StringIO()
    monkeypatch.setattr(sys, "stderr", first)
    log.configure()
    log.logger.info("one")
    first.close()
    second = io.StringIO()
    monkeypatch.setattr(sys, "stderr", second)
    log.logger.info("two")
    assert second.getvalue().endswith(" two\n")


def test_registered_secret_is_hidden_in_log_lines(monkeypatch: pytest.MonkeyPatch) -> None:
    stream = io.StringIO()
    monkeypatch.setattr(sys, "stderr", stream)
    log.configure()
    log.register_secret("s3cr3t-value")
    log.logger.info("logging in with s3cr3t-value")
    assert "s3cr3t-value" not in stream.getvalue()
    assert "logging in with ********" in stream.getvalue()
