"""`Spool`: a streamer's write-ahead log on disk, shared by its sinks.

Every batch is appended once, whatever the number of sinks, before it is
handed to them. Each sink acknowledges the batches it is done with (written,
or dropped for a reason that retrying cannot fix), in order, and its
position is kept in ``acks/<sink>.ack``. A segment file is deleted once
every configured sink has acknowledged all of it. A streamer opened on the
same directory later resumes each sink at its acknowledged position, so
what was left is delivered first, oldest first.

One streamer uses a spool directory at a time: it holds an advisory lock on
``DIR/.lock``. Acknowledged positions are written at most every 0.1 s (and
at close), so a crash may deliver again what was acknowledged in its last
0.1 s: delivery is at least once.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import shutil
import threading
import time
import urllib.parse
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import IO

from metricstream._log import RateLimitedLog
from metricstream.contract import EventBatch
from metricstream.exceptions import ConfigError
from metricstream.spool.segments import FSYNC_MODES, Damage, SegmentLog, StoredBatch

__all__ = ["ACK_INTERVAL", "Spool", "rewind"]

ACK_INTERVAL = 0.1
"""Seconds between two writes of a sink's acknowledged position."""

_MIN_SEGMENT = 1 << 20
_MAX_SEGMENT = 64 << 20


class Spool:
    """The write-ahead spool of one streamer.

    Args:
        directory: The spool directory (created, mode 0700, if missing).
        sinks: The names of the sinks that read from it.
        max_bytes: The most bytes its segment files may hold.
        fsync: ``"batch"``, ``"interval"`` or ``"never"``.
        file_mode: Permission bits of the files it creates.
        clock: Monotonic seconds.
        ephemeral: Remove the directory at `close` when every sink is done
            with everything in it (a forked child's spool).

    Raises:
        ConfigError: If another streamer uses the directory, or it cannot be
            created.
    """

    def __init__(
        self,
        directory: str | os.PathLike[str],
        *,
        sinks: Iterable[str],
        max_bytes: int,
        fsync: str,
        file_mode: int = 0o600,
        clock: Callable[[], float] = time.monotonic,
        ephemeral: bool = False,
    ) -> None:
        self.ephemeral = ephemeral
        if fsync not in FSYNC_MODES:
            raise ConfigError("spool_fsync", f"must be one of {', '.join(FSYNC_MODES)}")
        self.directory = Path(os.path.abspath(os.fspath(directory)))
        self.max_bytes = max_bytes
        self.file_mode = file_mode
        self._clock = clock
        try:
            self.directory.mkdir(mode=0o700, parents=True, exist_ok=True)
            self._lock_file: IO[bytes] | None = _lock_directory(self.directory)
        except OSError as exc:
            raise ConfigError("spool_dir", f"cannot use {str(self.directory)!r}: {exc}") from exc
        segment_bytes = min(_MAX_SEGMENT, max(_MIN_SEGMENT, max_bytes // 8))
        self.log = SegmentLog(
            self.directory / "segments",
            segment_bytes=segment_bytes,
            fsync=fsync,
            file_mode=file_mode,
            clock=clock,
        )
        self._acks_dir = self.directory / "acks"
        self._acks_dir.mkdir(mode=0o700, exist_ok=True)
        self._lock = threading.Lock()
        self._persist_lock = threading.Lock()
        self._warnings = RateLimitedLog()
        self._acks: dict[str, int] = {}
        self._written_acks: dict[str, int] = {}
        self._last_ack_write = 0.0
        for sink in sinks:
            saved = self._read_ack(sink)
            if saved is None:
                # A sink seen for the first time starts with the data to come;
                # its position is written at once, so a crash before its first
                # acknowledgement cannot skip what it was sent.
                saved = self.log.next_seq
                self._write_ack(sink, saved)
            self._acks[sink] = max(saved, self.log.first_seq)
            self._written_acks[sink] = saved
        self.log.delete_before(self._min_ack())

    # --- acknowledgements ----------------------------------------------------------

    def _ack_path(self, sink: str) -> Path:
        return self._acks_dir / f"{urllib.parse.quote(sink, safe='')}.ack"

    def _read_ack(self, sink: str) -> int | None:
        try:
            text = self._ack_path(sink).read_text(encoding="ascii").strip()
        except (FileNotFoundError, UnicodeDecodeError):
            return None
        return int(text) if text.isdigit() else None

    def _write_ack(self, sink: str, seq: int) -> None:
        path = self._ack_path(sink)
        temporary = path.with_name(path.name + ".tmp")
        fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, self.file_mode)
        try:
            os.write(fd, f"{seq}\n".encode())
        finally:
            os.close(fd)
        os.replace(temporary, path)

    def start(self, sink: str) -> int:
        """The sequence number `sink` resumes delivery at."""
        with self._lock:
            return self._acks[sink]

    def acknowledge(self, sink: str, seq: int, *, now: bool = False) -> None:
        """Record that `sink` is done with every event below `seq`; free what all are done with.

        Positions are written at most every `ACK_INTERVAL` seconds, or at
        once when `now` is True (the sink has caught up).
        """
        with self._lock:
            if seq <= self._acks[sink] and not now:
                return
            self._acks[sink] = max(seq, self._acks[sink])
            moment = self._clock()
            if moment - self._last_ack_write < ACK_INTERVAL and not now:
                return
            self._last_ack_write = moment
            self._last_ack_write = now
            changed = {s: q for s, q in self._acks.items() if q != self._written_acks.get(s)}
        self._persist(changed)

    def _persist(self, acks: dict[str, int]) -> None:
        with self._persist_lock:  # one writer of the position files at a time
            for sink, seq in acks.items():
                with self._lock:
                    if seq <= self._written_acks.get(sink, -1):
                        continue
                try:
                    self._write_ack(sink, seq)
                except OSError as exc:
                    self._warnings.error(
                        "ack",
                        "cannot record the spool position of sink %r in %s: %s",
                        sink,
                        str(self._acks_dir),
                        exc,
                    )
                    return
                with self._lock:
                    self._written_acks[sink] = seq
        # The positions are on disk before the segments they release go away,
        # so a crash in between leaves segments that the next open deletes.
        self.log.delete_before(self._min_written_ack())

    def _min_ack(self) -> int:
        with self._lock:
            return min(self._acks.values(), default=self.log.next_seq)

    def _min_written_ack(self) -> int:
        with self._lock:
            return min(self._written_acks.values(), default=self.log.next_seq)

    # --- data ------------------------------------------------------------------------

    def append(self, batch: EventBatch) -> tuple[int, int]:
        """Append a batch; return its (first, end) sequence numbers.

        Raises:
            OSError: If it cannot be written.
        """
        return self.log.append(batch)

    def read(self, seq: int) -> StoredBatch | None:
        """The stored batch holding event `seq` (or the next one), or None."""
        return self.log.read(seq)

    @property
    def next_seq(self) -> int:
        """The sequence number the next appended event gets."""
        return self.log.next_seq

    @property
    def fsync(self) -> str:
        """When appended batches are forced to disk (``batch``, ``interval`` or ``never``)."""
        return self.log.fsync

    @property
    def synced_seq(self) -> int:
        """Events below this sequence number are durable as `fsync` says (see `SegmentLog`)."""
        return self.log.synced_seq

    def sync_if_due(self) -> bool:
        """Under ``interval``: force what was appended to disk if the last sync is 1 s old.

        Returns:
            True if more events are durable now.
        """
        return self.log.sync_if_due()

    def is_full(self) -> bool:
        """True when the segment files hold `max_bytes` or more."""
        return self.log.size_bytes >= self.max_bytes

    def drop_oldest(self) -> tuple[int, int] | None:
        """Delete the oldest segment, acknowledged or not (the spool is full)."""
        dropped = self.log.drop_oldest()
        if dropped is not None:
            with self._lock:
                for sink, seq in self._acks.items():
                    self._acks[sink] = max(seq, dropped[1])
        return dropped

    @property
    def damage(self) -> list[Damage]:
        """What opening the spool skipped or truncated."""
        return self.log.damage

    def close(self) -> None:
        """Write every position, force data to disk, release the directory. Idempotent."""
        with self._lock:
            changed = {s: q for s, q in self._acks.items() if q != self._written_acks.get(s)}
        with contextlib.suppress(OSError):
            self._persist(changed)
        drained = self._min_ack() >= self.log.next_seq
        self.log.close()
        if self.ephemeral and drained:
            shutil.rmtree(self.directory, ignore_errors=True)
        lock_file, self._lock_file = self._lock_file, None
        if lock_file is not None:
            lock_file.close()

    def forget_in_child(self) -> None:
        """Drop this process's handles without touching the parent's files (after fork)."""
        lock_file, self._lock_file = self._lock_file, None
        if lock_file is not None:
            lock_file.close()


def _lock_directory(directory: Path) -> IO[bytes]:
    descriptor = os.open(directory / ".lock", os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    handle = os.fdopen(descriptor, "ab")
    try:
        fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        handle.close()
        raise ConfigError(
            "spool_dir",
            f"{str(directory)!r} is in use by another streamer; one spool has one streamer",
        ) from None
    return handle


def rewind(directory: str | os.PathLike[str], sink: str) -> None:
    """Make `sink` receive everything a spool holds the next time it is opened.

    Its acknowledged position is set to 0 (before the oldest stored event).
    """
    acks = Path(os.fspath(directory)) / "acks"
    acks.mkdir(mode=0o700, parents=True, exist_ok=True)
    path = acks / f"{urllib.parse.quote(sink, safe='')}.ack"
    path.write_text("0\n", encoding="ascii")
    os.chmod(path, 0o600)
