"""One writer per file: an advisory lock beside each JSON Lines file.

Two writers appending to and rotating the same file lose records (each
renames the other's file away). A `JsonLinesSink` therefore holds an
exclusive ``flock`` on a hidden sidecar file, ``.NAME.lock`` in the same
directory, from its construction until it is closed or collected; a second
sink for the same path, in this process or another, gets a `ConfigError` at
once. The lock file is left in place: removing it would let two writers lock
two different files.
"""

from __future__ import annotations

from pathlib import Path
from typing import IO

from metricstream._files import lock_exclusively
from metricstream.exceptions import ConfigError

__all__ = ["WriterLock", "lock_path"]


def lock_path(path: Path) -> Path:
    """The sidecar lock file of `path`."""
    return path.with_name(f".{path.name}.lock")


class WriterLock:
    """An exclusive advisory lock on `path`'s sidecar file, held until `release`.

    Args:
        path: The data file the lock stands for.

    Raises:
        ConfigError: If another writer holds the lock, naming the file.
        OSError: If the lock file cannot be created, or the platform cannot
            lock files (see `metricstream._files.lock_exclusively`).
    """

    def __init__(self, path: Path) -> None:
        self.path = lock_path(path)
        # A file object, so that the lock is released if the sink is collected.
        try:
            handle = lock_exclusively(self.path)
        except BlockingIOError:
            raise ConfigError(
                "path",
                f"{str(path)!r} already has a writer (another JsonLinesSink, in this "
                f"process or another, holds {str(self.path)!r}); one file has one "
                "writer: give each sink its own path",
            ) from None
        self._handle: IO[bytes] | None = handle

    def release(self) -> None:
        """Release the lock (idempotent)."""
        handle, self._handle = self._handle, None
        if handle is not None:
            handle.close()

    def forget_in_child(self) -> None:
        """Drop this process's copy of the lock without releasing the parent's (after fork).

        The descriptor a forked child inherits shares the parent's lock, so
        the child closes its copy: the parent keeps the lock.
        """
        handle, self._handle = self._handle, None
        if handle is not None:
            handle.close()
