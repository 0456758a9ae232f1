"""Files the toolkit writes are replaced whole or not at all, even when the write fails or is interrupted.

Failures are injected between writing the new content and renaming it into
place (the moment a naive writer leaves a half-written or half-replaced
file); the lock stage's two files are written for real, from a real solve.
"""

from __future__ import annotations

import errno
import os
import signal
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.lock_fixtures import CliResult, Hub
from tooling.files import write_atomic

Cli = Callable[..., CliResult]


def leftovers(folder: Path) -> list[str]:
    return sorted(path.name for path in folder.iterdir() if path.name.endswith(".tmp"))


@pytest.fixture
def fsync_fails_on_call(monkeypatch: pytest.MonkeyPatch) -> Callable[[int, BaseException | None], None]:
    """fsync_fails_on_call(n, error): the n-th os.fsync from now raises `error` (None: sends this process SIGINT)."""

    def arrange(failing_call: int, error: BaseException | None) -> None:
        real_fsync = os.fsync
        calls = iter(range(1, 1000))

        def fsync(fd: int) -> None:
            real_fsync(fd)
            if next(calls) == failing_call:
                if error is None:
                    os.kill(os.getpid(), signal.SIGINT)
                else:
                    raise error

        monkeypatch.setattr(os, "fsync", fsync)

    return arrange


def test_a_failure_between_write_and_rename_keeps_the_previous_file_and_its_mode(
    tmp_path: Path, fsync_fails_on_call: Callable[[int, BaseException | None], None]
) -> None:
    target = tmp_path / "values.yaml"
    target.write_bytes(b"tag: img-old\n")
    target.chmod(0o600)
    fsync_fails_on_call(1, OSError(errno.ENOSPC, "No space left on device"))
    with pytest.raises(OSError, match="No space left"):
        write_atomic(target, "tag: img-new\n")
    assert target.read_bytes() == b"tag: img-old\n"
    assert target.stat().st_mode & 0o777 == 0o600
    assert leftovers(tmp_path) == []


def test_a_failed_rename_keeps_the_previous_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    target = tmp_path / "state.json"
    target.write_bytes(b"{}\n")

    def refuse(self: Path, other: Path) -> Path:
        raise PermissionError(errno.EACCES, "Permission denied", str(other))

    monkeypatch.setattr(Path, "replace", refuse)
    with pytest.raises(PermissionError):
        write_atomic(target, '{"built": 1}\n')
    monkeypatch.undo()
    assert target.read_bytes() == b"{}\n"
    assert leftovers(tmp_path) == []


def test_a_new_file_is_written_readable_and_whole(tmp_path: Path) -> None:
    target = tmp_path / "reports" / "lock.md"
    write_atomic(target, "# Lock\n")
    assert target.read_text() == "# Lock\n"
    assert target.stat().st_mode & 0o777 == 0o644
    assert leftovers(target.parent) == []


@pytest.fixture
def relock_pending(make_hub: Callable[..., Hub], cli: Cli) -> Iterator[tuple[Hub, dict[Path, bytes]]]:
    """A hub with a lock, then a spec change that makes `lock` rewrite both lock files; their bytes before it."""
    hub = make_hub()
    assert cli(hub, "lock").code == 0
    before = hub.snapshot()
    assert set(before) == {hub.lock, hub.explicit}
    hub.spec.write_text(hub.spec.read_text().replace("  - numpy\n", "  - numpy<2\n"))
    yield hub, before


def test_a_lock_write_failing_at_its_second_file_leaves_both_previous_files(
    relock_pending: tuple[Hub, dict[Path, bytes]],
    cli: Cli,
    fsync_fails_on_call: Callable[[int, BaseException | None], None],
) -> None:
    hub, before = relock_pending
    fsync_fails_on_call(2, OSError(errno.ENOSPC, "No space left on device"))
    with pytest.raises(OSError, match="No space left"):
        cli(hub, "lock")
    assert hub.snapshot() == before
    assert leftovers(hub.lock.parent) == []


def test_ctrl_c_between_the_two_lock_files_still_writes_a_matching_pair(
    relock_pending: tuple[Hub, dict[Path, bytes]],
    cli: Cli,
    fsync_fails_on_call: Callable[[int, BaseException | None], None],
) -> None:
    hub, before = relock_pending
    fsync_fails_on_call(1, None)
    interrupted = cli(hub, "lock")
    assert interrupted.code == 130
    assert "interrupted; files written so far are complete" in interrupted.err
    after = hub.snapshot()
    assert after[hub.lock] != before[hub.lock] and after[hub.explicit] != before[hub.explicit]
    assert leftovers(hub.lock.parent) == []
    check = cli(hub, "lock", "--check")
    assert check.code == 0, check.err


def test_lock_check_refuses_a_pair_from_two_different_locks(
    relock_pending: tuple[Hub, dict[Path, bytes]], cli: Cli
) -> None:
    hub, before = relock_pending
    assert cli(hub, "lock").code == 0
    hub.explicit.write_bytes(before[hub.explicit])
    check = cli(hub, "lock", "--check")
    assert check.code == 1
    assert f"{hub.explicit} does not match {hub.lock} (edited, or left from another lock)" in check.err
