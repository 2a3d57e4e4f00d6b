"""File-system steps the JSON Lines sink and the spool both need."""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["fsync_directory", "write_all"]


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
