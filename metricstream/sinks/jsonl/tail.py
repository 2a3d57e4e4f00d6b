"""A torn tail, set aside when a sink opens a file, so that every reader reads the file whole.

A crash can tear the last record a sink wrote: a plain line cut short, or a
zstd frame or gzip member missing its end. Left in place, the next append
would follow it, and every reader but metricstream's would stop there:
``zstd -t`` calls the file corrupt, ``zstdcat`` stops at the tear, DuckDB
refuses the whole file. So a `JsonLinesSink` that opens a file holding data
first finds where its last intact record or frame ends (`find_torn_tail`);
whatever follows is appended to ``PATH.torn`` beside it and cut from the
file (`set_aside`), logged and recorded in the sink's ``torn_tails``.

A plain file whose last line lacks only its newline, a complete JSON
record, keeps it: the next append writes the newline first.
"""

from __future__ import annotations

import dataclasses
import mmap
import os
from pathlib import Path

import orjson

from metricstream._files import write_all
from metricstream.codecs.compression import Compression
from metricstream.codecs.frames import intact_end

__all__ = ["TORN_SUFFIX", "TornTail", "complete_record", "find_torn_tail", "set_aside"]

TORN_SUFFIX = ".torn"
"""What a file's torn tails are appended to: ``PATH.torn``."""

_CHUNK = 1 << 20


@dataclasses.dataclass(frozen=True)
class TornTail:
    """Bytes a crash cut short: skipped by `read_events`, or set aside by a sink.

    Attributes:
        path: The file.
        offset: Where the bytes start, in bytes from the start of the file.
        length: How many bytes (including a terminating newline).
        line: The 1-based line number in a plain file; None in a compressed one.
        detail: What was wrong, in words.
    """

    path: str
    offset: int
    length: int
    line: int | None
    detail: str


def complete_record(line: bytes) -> bool:
    """True when `line` is a whole JSON value (a record a crash did not cut)."""
    try:
        orjson.loads(line)
    except orjson.JSONDecodeError:
        return False
    return True


def find_torn_tail(fd: int, path: Path, codec: Compression) -> TornTail | None:
    """The torn tail at the end of an open file, or None when it ends intact.

    Only the tail is read: for a compressed file, back from the end to the
    start of the last intact frame; for a plain one, the last line.

    Args:
        fd: The file, open for reading.
        path: Its path (for the report).
        codec: What it holds.
    """
    size = os.fstat(fd).st_size
    if size == 0:
        return None
    with mmap.mmap(fd, size, access=mmap.ACCESS_READ) as data:
        if codec is not Compression.NONE:
            start = intact_end(data, size, codec)
            kind = "zstd frame" if codec is Compression.ZSTD else "gzip member"
            line = None
        else:
            start = data.rfind(b"\n", 0, size) + 1
            tail = data[start:size]
            if not tail.strip() or complete_record(tail):
                return None
            kind, line = "JSON record", _lines_before(data, start) + 1
    if start == size:
        return None
    return TornTail(str(path), start, size - start, line, f"torn {kind} at the end of the file")


def _lines_before(data: mmap.mmap, end: int) -> int:
    """The newlines among the first `end` bytes, counted a chunk at a time."""
    return sum(data[at : min(at + _CHUNK, end)].count(b"\n") for at in range(0, end, _CHUNK))


def set_aside(fd: int, path: Path, tail: TornTail, *, file_mode: int, fsync: bool) -> Path:
    """Append a file's torn tail to ``PATH.torn``, then cut it off the file.

    They are copied before the file is truncated, so a crash in between
    leaves them in both places, never in neither.

    Args:
        fd: The file, open for reading and writing.
        path: Its path.
        tail: The torn tail (`find_torn_tail`).
        file_mode: Permission bits of ``PATH.torn`` if it is created.
        fsync: Force both files to disk.

    Returns:
        The path of ``PATH.torn``.

    Raises:
        OSError: If either file cannot be written.
    """
    aside = path.with_name(path.name + TORN_SUFFIX)
    torn = os.pread(fd, tail.length, tail.offset)
    flags = os.O_WRONLY | os.O_CREAT | os.O_APPEND | getattr(os, "O_CLOEXEC", 0)
    aside_fd = os.open(aside, flags, file_mode)
    try:
        write_all(aside_fd, torn)
        if fsync:
            os.fsync(aside_fd)
    finally:
        os.close(aside_fd)
    os.ftruncate(fd, tail.offset)
    if fsync:
        os.fsync(fd)
    return aside
