"""Writing files so that a failed or interrupted run leaves the previous file untouched; naming them; the cache."""

from __future__ import annotations

import hashlib
import os
import tempfile
from collections.abc import Mapping
from pathlib import Path

from tooling.log import logger


def write_atomic(path: Path, content: str | bytes, *, durable: bool = True) -> None:
    """Write `content` to a temporary file beside `path`, then rename it over `path`.

    The rename is atomic on POSIX, so readers see the old file or the new one,
    never a mix. An existing file's permissions are kept. `durable=False` is
    for the cache (`keep_in_cache`): the content is not forced to disk before
    the rename, which a crash may then leave empty.
    """
    write_atomic_together({path: content}, durable=durable)


def write_atomic_together(files: Mapping[Path, str | bytes], *, durable: bool = True) -> None:
    """Write several files that belong together (a lock and its explicit locks): all, or none of them.

    Every new content is written beside its file first (and flushed to disk,
    when durable); only then are the files renamed into place, one after the
    other. A failure while writing (a full disk, an error) leaves every
    previous file as it was. The renames need no space; should one fail all
    the same, each file is still a whole one, old or new (`lock --check`
    reports such a mixed lock).
    """
    staged: dict[Path, Path] = {}
    try:
        for path, content in files.items():
            staged[path] = _staged_copy(path, content.encode() if isinstance(content, str) else content, durable)
        for path, tmp in staged.items():
            tmp.replace(path)
    except BaseException:
        for tmp in staged.values():
            tmp.unlink(missing_ok=True)
        raise


def _staged_copy(path: Path, data: bytes, durable: bool) -> Path:
    """`data` in a temporary file beside `path` (on disk, when durable), with `path`'s permissions (0644 if new)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    mode = path.stat().st_mode & 0o7777 if path.exists() else 0o644
    fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    tmp = Path(tmp_name)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            if durable:
                handle.flush()
                os.fsync(handle.fileno())
        tmp.chmod(mode)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return tmp


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def shown(path: Path) -> str:
    """A path as a person reads it in a report: relative to the working directory when inside it."""
    try:
        return str(path.resolve().relative_to(Path.cwd().resolve()))
    except ValueError:
        return str(path)


def keep_in_cache(path: Path, content: str) -> bool:
    """Write a file of the cache whole, not forced to disk; whether it was written.

    What the cache holds is computed again when lost, so a full or read-only
    cache costs the next run that computation: it is logged, never raised.
    """
    try:
        write_atomic(path, content, durable=False)
    except OSError as exc:
        logger.debug("could not keep %s: %s", path, exc)
        return False
    return True


def cache_folder() -> Path:
    """Where the toolkit keeps what outlives a run: $XDG_CACHE_HOME/hubship (default ~/.cache/hubship)."""
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "hubship"
