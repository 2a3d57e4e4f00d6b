"""File-system steps the JSON Lines sink and the spool both need."""

from __future__ import annotations

import errno
import os
from pathlib import Path
from typing import IO

__all__ = ["fsync_directory", "lock_exclusively", "write_all"]


def write_all(fd: int, data: bytes) -> None:
    """Write every byte of `data` to `fd` (``os.write`` may write fewer at a time)."""
    view = memoryview(data)
    while view:
        written = os.write(fd, view)
        view = view[written:]


def fsync_directory(directory: Path) -> None:
    """Force `directory`'s entries to disk, so a file created or renamed in it survives a crash."""
    fd = os.open(directory, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def lock_exclusively(path: Path) -> IO[bytes]:
    """Open `path` (created with mode 0600) and take an exclusive advisory lock on it.

    The lock (``flock``) lasts until the returned file is closed, or the
    process ends. It needs ``fcntl``, which POSIX systems (Linux, macOS, the
    BSDs) have and Windows has not: ``fcntl`` is imported here, when a lock
    is first needed, so that ``import metricstream`` works everywhere.

    Returns:
        The open lock file.

    Raises:
        BlockingIOError: If another open file holds the lock.
        OSError: If the file cannot be opened, or (``ENOTSUP``) the platform
            has no ``fcntl``.
    """
    try:
        import fcntl
    except ImportError:
        raise OSError(
            errno.ENOTSUP,
            "locking a file needs fcntl, which this platform lacks: the JSON Lines "
            "sink and the spool run on POSIX systems (Linux, macOS)",
            str(path),
        ) from None
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    handle = os.fdopen(descriptor, "ab")
    try:
        fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError as exc:
        handle.close()
        if exc.errno in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
            raise BlockingIOError(exc.errno, "held by another open file", str(path)) from None
        raise
    return handle
