"""`SegmentLog`: append batch records to segment files, read them back, delete them.

The log is the sequence of records of a spool directory's ``segments/``
folder (the format is in `metricstream.spool.format`). Opening it checks
every record: a torn record at the end of the newest segment is truncated
away (a crash can only tear the record being written), and damaged records
anywhere are kept in the index as damage, with the exact number of events
they held (from their header, or from the gap in sequence numbers), so that
readers skip and count them. Nothing found on disk stops the log from
opening.

All methods are thread-safe: the batcher appends while lanes read.
"""

from __future__ import annotations

import bisect
import contextlib
import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import zstandard

from metricstream._files import fsync_directory, write_all
from metricstream.contract import EventBatch
from metricstream.exceptions import InvalidEventError, SchemaVersionError
from metricstream.spool.format import (
    HEADER_SIZE,
    RECORD_MAGIC,
    SEGMENT_MAGIC,
    decode_payload,
    encode_record,
    payload_intact,
    read_header,
)

__all__ = ["FSYNC_MODES", "Damage", "SegmentLog", "StoredBatch"]

FSYNC_MODES = ("batch", "interval", "never")
"""When appended records are forced to disk: after each one, at most once a second, never."""

_SUFFIX = ".seg"


@dataclass(slots=True)
class _Entry:
    """One record of a segment, or a run of events lost to damage (``offset`` -1)."""

    first_seq: int
    count: int
    offset: int
    size: int
    intact: bool


@dataclass(slots=True)
class _Segment:
    path: Path
    first_seq: int
    fd: int
    size: int
    entries: list[_Entry] = field(default_factory=list)
    starts: list[int] = field(default_factory=list)

    @property
    def end_seq(self) -> int:
        if not self.entries:
            return self.first_seq
        last = self.entries[-1]
        return last.first_seq + last.count

    def add(self, entry: _Entry) -> None:
        self.entries.append(entry)
        self.starts.append(entry.first_seq)


@dataclass(frozen=True)
class Damage:
    """Bytes of a segment that were not an intact record.

    Attributes:
        path: The segment file.
        offset: Where the damage starts.
        length: Its size in bytes.
        events: Events lost to it (0 for a torn tail that was truncated).
        detail: What was wrong.
    """

    path: str
    offset: int
    length: int
    events: int
    detail: str


@dataclass(frozen=True)
class StoredBatch:
    """What `SegmentLog.read` found at a sequence number.

    Attributes:
        first_seq: The sequence number of its first event.
        end_seq: The sequence number after its last event.
        batch: The events, or None when the record is damaged.
        detail: Why it is damaged, or None.
    """

    first_seq: int
    end_seq: int
    batch: EventBatch | None
    detail: str | None = None


class SegmentLog:
    """The records of one spool directory.

    Args:
        directory: The ``segments`` directory (created if missing, mode 0700).
        segment_bytes: A segment is closed and a new one started once it
            holds this many bytes.
        fsync: ``"batch"``, ``"interval"`` or ``"never"`` (see `FSYNC_MODES`).
        file_mode: Permission bits of new segment files.
        clock: Monotonic seconds (for the ``interval`` mode).
        readonly: Only read (to inspect a spool a streamer may be using):
            nothing is truncated, created or deleted.

    Attributes:
        damage: What opening found and skipped or truncated.
    """

    def __init__(
        self,
        directory: Path,
        *,
        segment_bytes: int,
        fsync: str,
        file_mode: int = 0o600,
        clock: Callable[[], float] = time.monotonic,
        readonly: bool = False,
    ) -> None:
        self.directory = directory
        self.readonly = readonly
        self.segment_bytes = segment_bytes
        self.fsync = fsync
        self.file_mode = file_mode
        self._clock = clock
        self._last_sync = clock()
        self._lock = threading.Lock()
        self._short_of_space = False  # an append failed: see `delete_before`
        self.damage: list[Damage] = []
        if not readonly:
            directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        self._segments: list[_Segment] = []
        found = directory.iterdir() if directory.is_dir() else iter(())
        paths = sorted(p for p in found if p.suffix == _SUFFIX and p.stem.isdigit())
        for index, path in enumerate(paths):
            self._segments.append(self._load(path, newest=index == len(paths) - 1))
        self._link_gaps()
        self._next_seq = self._segments[-1].end_seq if self._segments else 0
        self._synced_seq = self._next_seq  # what opening found is as durable as it will be

    # --- opening -----------------------------------------------------------------

    def _load(self, path: Path, *, newest: bool) -> _Segment:
        mode = os.O_RDONLY if self.readonly else os.O_RDWR | os.O_APPEND
        fd = os.open(path, mode | getattr(os, "O_CLOEXEC", 0))
        data = os.pread(fd, os.fstat(fd).st_size, 0)
        segment = _Segment(path, int(path.stem), fd, len(data))
        pos = len(SEGMENT_MAGIC) if data.startswith(SEGMENT_MAGIC) else 0
        expected = segment.first_seq
        while pos < len(data):
            header = read_header(memoryview(data)[pos : pos + HEADER_SIZE])
            if header is not None and pos + header.size <= len(data):
                if header.first_seq > expected:
                    segment.add(_Entry(expected, header.first_seq - expected, -1, 0, False))
                intact = payload_intact(header, memoryview(data)[pos : pos + header.size])
                if header.first_seq >= expected:
                    segment.add(_Entry(header.first_seq, header.count, pos, header.size, intact))
                    expected = header.end_seq
                if not intact:
                    self._report(path, pos, header.size, header.count, "payload checksum mismatch")
                pos += header.size
                continue
            resume = _next_record(data, pos + 1)
            if resume is None and newest:
                self._truncate(segment, pos, "torn record at the end of the newest segment")
                break
            end = len(data) if resume is None else resume
            self._report(path, pos, end - pos, 0, "bytes that are not an intact record")
            pos = end
        return segment

    def _truncate(self, segment: _Segment, offset: int, detail: str) -> None:
        if not self.readonly:
            os.ftruncate(segment.fd, offset)
        self.damage.append(Damage(str(segment.path), offset, segment.size - offset, 0, detail))
        segment.size = offset

    def _report(self, path: Path, offset: int, length: int, events: int, detail: str) -> None:
        self.damage.append(Damage(str(path), offset, length, events, detail))

    def _link_gaps(self) -> None:
        """Record events missing between segments as damage of the earlier one."""
        for earlier, later in zip(self._segments, self._segments[1:], strict=False):
            gap = later.first_seq - earlier.end_seq
            if gap > 0:
                earlier.add(_Entry(earlier.end_seq, gap, -1, 0, False))
                self._report(earlier.path, earlier.size, 0, gap, "events missing between segments")

    # --- state -------------------------------------------------------------------

    @property
    def next_seq(self) -> int:
        """The sequence number the next appended event gets."""
        with self._lock:
            return self._next_seq

    @property
    def synced_seq(self) -> int:
        """The events below this sequence number are as durable as the fsync mode makes them.

        ``batch``: forced to disk; ``interval``: forced to disk at the last
        sync; ``never``: appended (the operating system writes them when it
        likes). Read without the lock (one int), so that asking never waits
        for a sync in progress.
        """
        return self._synced_seq

    @property
    def first_seq(self) -> int:
        """The sequence number of the oldest event still stored."""
        with self._lock:
            return self._segments[0].first_seq if self._segments else self._next_seq

    @property
    def size_bytes(self) -> int:
        """Bytes of all segment files."""
        with self._lock:
            return sum(segment.size for segment in self._segments)

    def starts_record(self, seq: int) -> bool:
        """True when `seq` is where a stored record (or a run of damage) starts, or the end."""
        with self._lock:
            if seq == self._next_seq:
                return True
            for segment in self._segments:
                if segment.first_seq <= seq < segment.end_seq:
                    at = bisect.bisect_left(segment.starts, seq)
                    return at < len(segment.starts) and segment.starts[at] == seq
            return False

    def segments(self) -> list[tuple[str, int, int, int]]:
        """(path, first sequence number, end sequence number, bytes) of every segment."""
        with self._lock:
            return [(str(s.path), s.first_seq, s.end_seq, s.size) for s in self._segments]

    # --- appending ---------------------------------------------------------------

    def append(self, batch: EventBatch) -> tuple[int, int]:
        """Append `batch` as one record; return its (first, end) sequence numbers.

        Raises:
            OSError: If the record cannot be written; nothing is then recorded.
        """
        with self._lock:
            first = self._next_seq
            record = encode_record(batch, first)
            try:
                segment = self._writable()
                write_all(segment.fd, record)
            except OSError:
                self._short_of_space = True
                if self._segments:
                    with contextlib.suppress(OSError):
                        os.ftruncate(self._segments[-1].fd, self._segments[-1].size)
                raise
            segment.add(_Entry(first, len(batch), segment.size, len(record), True))
            segment.size += len(record)
            self._next_seq = first + len(batch)
            self._sync_after_append(segment)
            return first, self._next_seq

    def _writable(self) -> _Segment:
        if self._segments and self._segments[-1].size < self.segment_bytes:
            return self._segments[-1]
        path = self.directory / f"{self._next_seq:020d}{_SUFFIX}"
        flags = os.O_RDWR | os.O_APPEND | os.O_CREAT | getattr(os, "O_CLOEXEC", 0)
        fd = os.open(path, flags, self.file_mode)
        try:
            os.fchmod(fd, self.file_mode)
            if os.fstat(fd).st_size == 0:
                write_all(fd, SEGMENT_MAGIC)
            size = os.fstat(fd).st_size
        except OSError:  # a full disk: the next append tries again
            os.close(fd)
            raise
        segment = _Segment(path, self._next_seq, fd, size)
        if self._segments and self.fsync == "interval" and self._synced_seq < self._next_seq:
            # Only the newest segment is synced later: the one it replaces is synced now.
            os.fsync(self._segments[-1].fd)
        self._segments.append(segment)
        if self.fsync == "batch":
            fsync_directory(self.directory)
        return segment

    def _sync_after_append(self, segment: _Segment) -> None:
        if self.fsync == "batch":
            os.fsync(segment.fd)
        elif self.fsync == "interval":
            now = self._clock()
            if now - self._last_sync < 1.0:
                return
            os.fsync(segment.fd)
            self._last_sync = now
        self._synced_seq = self._next_seq

    def sync(self) -> None:
        """Force the newest segment to disk (at shutdown, whatever the mode but ``never``)."""
        with self._lock:
            if self._segments and self.fsync != "never":
                os.fsync(self._segments[-1].fd)
            self._synced_seq = self._next_seq

    def sync_if_due(self) -> bool:
        """Under ``interval``: sync what was appended if the last sync is a second old.

        Returns:
            True if a sync made more events durable.
        """
        with self._lock:
            if self.fsync != "interval" or self._synced_seq >= self._next_seq:
                return False
            now = self._clock()
            if now - self._last_sync < 1.0 or not self._segments:
                return False
            os.fsync(self._segments[-1].fd)
            self._last_sync = now
            self._synced_seq = self._next_seq
            return True

    # --- reading -------------------------------------------------------------------

    def read(self, seq: int) -> StoredBatch | None:
        """Return the record that holds event `seq` (or the first one after it).

        Returns:
            The stored batch (with ``batch`` None when it is damaged), or
            None when no event at or after `seq` is stored yet.
        """
        with self._lock:
            found = self._entry_at(seq)
            if found is None:
                return None
            segment, entry = found
            end = entry.first_seq + entry.count
            if entry.offset < 0:
                return StoredBatch(entry.first_seq, end, None, "events lost to damage")
            if not entry.intact:
                return StoredBatch(entry.first_seq, end, None, "payload checksum mismatch")
            record = os.pread(segment.fd, entry.size, entry.offset)
        header = read_header(record)
        if header is None or not payload_intact(header, record):
            return StoredBatch(entry.first_seq, end, None, "record changed on disk")
        try:
            return StoredBatch(entry.first_seq, end, decode_payload(header, record))
        except (zstandard.ZstdError, InvalidEventError, SchemaVersionError) as exc:
            return StoredBatch(entry.first_seq, end, None, f"undecodable record: {exc}")

    def _entry_at(self, seq: int) -> tuple[_Segment, _Entry] | None:
        starts = [segment.first_seq for segment in self._segments]
        index = max(0, bisect.bisect_right(starts, seq) - 1)
        for segment in self._segments[index:]:
            if seq >= segment.end_seq:
                continue
            position = max(0, bisect.bisect_right(segment.starts, seq) - 1)
            for entry in segment.entries[position:]:
                if entry.first_seq + entry.count > seq:
                    return segment, entry
        return None

    # --- deleting ------------------------------------------------------------------

    def delete_before(self, seq: int) -> int:
        """Delete every segment whose events all lie below `seq`.

        The newest segment is kept, since its name and records carry the
        sequence numbers on; but once an append failed for want of space and
        every event lies below `seq`, it is emptied (`_restart_newest`), so
        that a full disk gets its room back.

        Returns:
            Bytes freed.
        """
        freed = 0
        with self._lock:
            while len(self._segments) > 1 and self._segments[0].end_seq <= seq:
                freed += self._delete_oldest()
            if self._short_of_space and seq >= self._next_seq and self._segments:
                freed += self._restart_newest()
        return freed

    def _restart_newest(self) -> int:
        """Empty the newest segment, renamed after the next sequence number (hold the lock).

        Renamed first and emptied after, so that a crash in between leaves a
        segment whose name says where the numbering goes on, and whose
        records, all below that name, are skipped at open.
        """
        segment = self._segments[-1]
        freed = segment.size - len(SEGMENT_MAGIC)
        if freed <= 0 or segment.first_seq == self._next_seq:
            return 0
        path = self.directory / f"{self._next_seq:020d}{_SUFFIX}"
        try:
            os.rename(segment.path, path)
            if self.fsync == "batch":
                fsync_directory(self.directory)
            os.ftruncate(segment.fd, len(SEGMENT_MAGIC))
        except OSError:
            return 0
        self._segments[-1] = _Segment(path, self._next_seq, segment.fd, len(SEGMENT_MAGIC))
        self._short_of_space = False
        return freed

    def drop_oldest(self) -> tuple[int, int] | None:
        """Delete the oldest segment even if unacknowledged (the spool is full).

        The newest segment is closed first when it is the only one, so that
        new records go to a fresh file.

        Returns:
            The (first, end) sequence numbers of the events deleted, or None
            when there is nothing to delete.
        """
        with self._lock:
            if not self._segments or self._segments[0].end_seq == self._segments[0].first_seq:
                return None
            if len(self._segments) == 1:
                self._segments[0].size = max(self._segments[0].size, self.segment_bytes)
                self._writable()
            oldest = self._segments[0]
            dropped = (oldest.first_seq, oldest.end_seq)
            self._delete_oldest()
            return dropped

    def _delete_oldest(self) -> int:
        segment = self._segments.pop(0)
        with contextlib.suppress(OSError):
            os.close(segment.fd)
        with contextlib.suppress(FileNotFoundError):
            os.unlink(segment.path)
        if self.fsync == "batch":
            fsync_directory(self.directory)
        return segment.size

    def close(self) -> None:
        """Force data to disk (unless ``never``) and close every file."""
        self.sync()
        with self._lock:
            for segment in self._segments:
                with contextlib.suppress(OSError):
                    os.close(segment.fd)
            self._segments = []


def _next_record(data: bytes, start: int) -> int | None:
    """The offset of the next intact record header at or after `start`, or None."""
    while True:
        at = data.find(RECORD_MAGIC[:3], start)  # b"MSR": the start of every record magic
        if at < 0:
            return None
        header = read_header(memoryview(data)[at : at + HEADER_SIZE])
        if header is not None and at + header.size <= len(data):
            return at
        start = at + 1
