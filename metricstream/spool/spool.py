"""`Spool`: a streamer's write-ahead log on disk, shared by its sinks.

Every batch is appended once, whatever the number of sinks, before it is
handed to them. Each sink acknowledges the batches it is done with (written,
or dropped for a reason that retrying cannot fix), in order, and its
position is kept in ``acks/<sink>.ack`` (`metricstream.spool.positions`). A
segment file is deleted once every configured sink has acknowledged all of
it. A streamer opened on the same directory later resumes each sink at its
acknowledged position, so what was left is delivered first, oldest first;
a position that cannot be trusted resumes at the oldest stored record. The
events held for sinks the streamer does not have (a sink renamed or
removed) are reported (`Spool.unclaimed`), not delivered.

One streamer uses a spool directory at a time: it holds an advisory lock on
``DIR/.lock``. Acknowledged positions are written at most every
`ACK_INTERVAL` seconds (`acknowledge`, and `persist_due` for the last one),
and at close, so a crash may deliver again what was acknowledged in its
last 0.1 s: delivery is at least once. Under ``fsync="batch"`` each
position is forced to disk with its directory.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import threading
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import IO

from metricstream._files import lock_exclusively
from metricstream._log import RateLimitedLog, logger
from metricstream.contract import EventBatch
from metricstream.exceptions import ConfigError
from metricstream.spool.positions import PositionFiles, parse, resolve
from metricstream.spool.segments import FSYNC_MODES, Damage, SegmentLog, StoredBatch

UNCLAIMED_RECORD = "spool_unclaimed"
"""The attribute set on the log record that reports events held for sinks a streamer lacks."""

__all__ = ["ACK_INTERVAL", "UNCLAIMED_RECORD", "Spool", "rewind"]

ACK_INTERVAL = 0.1
"""Seconds between two writes of the acknowledged positions."""

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

    Attributes:
        untrusted: For each sink whose saved position could not be trusted
            at open: the events it receives again from the oldest stored
            record.

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
            self._files = PositionFiles(
                self.directory, durable=fsync == "batch", file_mode=file_mode
            )
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
        self._lock = threading.Lock()
        self._persist_lock = threading.Lock()
        self._warnings = RateLimitedLog()
        self._acks: dict[str, int] = {}
        self._written_acks: dict[str, int] = {}
        self._last_ack_write = -ACK_INTERVAL
        self.untrusted: dict[str, int] = {}
        self._unclaimed: dict[str, int] = {}
        self._unclaimed_end = 0
        self._resume(list(dict.fromkeys(sinks)))
        self.log.delete_before(self._min_ack())

    # --- positions at open -----------------------------------------------------------

    def _resume(self, sinks: list[str]) -> None:
        """Set each sink's start from its saved position; note the positions of other sinks."""
        saved = self._files.saved()
        registry = self._files.registered()
        first, end = self.log.first_seq, self.log.next_seq
        for sink in sinks:
            raw = saved.get(sink)
            registered = (sink in registry) if registry is not None else not saved
            found = resolve(
                raw,
                exists=sink in saved,
                registered=registered,
                first_seq=first,
                next_seq=end,
                starts_record=self.log.starts_record,
            )
            self._acks[sink] = found.start
            if found.untrusted is not None and found.start < end:
                self.untrusted[sink] = end - found.start
                logger.warning(
                    "the spool position of sink %r in %s cannot be trusted (%s); "
                    "it receives the %d events stored from the oldest record on again "
                    "(at least once)",
                    sink,
                    str(self._files.path(sink)),
                    found.untrusted,
                    end - found.start,
                )
            if parse(raw) == found.start:
                self._written_acks[sink] = found.start
            else:
                # Written at once, so that a crash before the first acknowledgement
                # cannot skip what a new sink was sent, or trust a damaged file again.
                self._write_now(sink, found.start)
        for sink, raw in saved.items():
            if sink not in self._acks:
                self._unclaimed[sink] = min(end, max(parse(raw) or 0, first))
        with contextlib.suppress(OSError):
            self._files.register(set(sinks) | set(saved))
        self._unclaimed_end = end
        self._warn_unclaimed(sinks, end)

    def _write_now(self, sink: str, seq: int) -> None:
        try:
            self._files.write(sink, seq)
        except OSError as exc:
            self._cannot_record(sink, exc)
        else:
            self._written_acks[sink] = seq

    def _warn_unclaimed(self, sinks: list[str], end: int) -> None:
        for sink, position in self._unclaimed.items():
            if position >= end:
                continue
            logger.warning(
                "the spool in %s holds %d events for sink %r, which this "
                "streamer does not have (its sinks: %s); they are not delivered, and are "
                "deleted once the configured sinks are done with them. To deliver them, "
                "give a sink that name (name=%s in its URL), or run: metricstream spool "
                "replay %s --sink URL?name=%s",
                str(self.directory),
                end - position,
                sink,
                ", ".join(repr(name) for name in sinks) or "none",
                sink,
                str(self.directory),
                sink,
                extra={UNCLAIMED_RECORD: True},
            )

    def unclaimed(self) -> dict[str, int]:
        """Events still stored for sinks this streamer does not have, by name (none: empty)."""
        first = self.log.first_seq
        end = self._unclaimed_end
        held = {sink: end - max(position, first) for sink, position in self._unclaimed.items()}
        return {sink: count for sink, count in held.items() if count > 0}

    # --- acknowledgements ----------------------------------------------------------

    def start(self, sink: str) -> int:
        """The sequence number `sink` resumes delivery at."""
        with self._lock:
            return self._acks[sink]

    def acknowledge(self, sink: str, seq: int) -> None:
        """Record that `sink` is done with every event below `seq`; free what all are done with.

        The positions are written when the last write is `ACK_INTERVAL`
        seconds old; `persist_due`, called periodically, writes the last ones.
        """
        with self._lock:
            if seq <= self._acks[sink]:
                return
            self._acks[sink] = seq
        self.persist_due()

    def persist_due(self) -> bool:
        """Write the positions that changed, if the last write is `ACK_INTERVAL` seconds old.

        Returns:
            True if positions were written.
        """
        with self._lock:
            moment = self._clock()
            if moment - self._last_ack_write < ACK_INTERVAL:
                return False
            changed = {s: q for s, q in self._acks.items() if q != self._written_acks.get(s)}
            if not changed:
                return False
            self._last_ack_write = moment
        self._persist(changed)
        return True

    def _persist(self, acks: dict[str, int]) -> None:
        with self._persist_lock:  # one writer of the position files at a time
            for sink, seq in acks.items():
                with self._lock:
                    if seq <= self._written_acks.get(sink, -1):
                        continue
                try:
                    self._files.write(sink, seq)
                except OSError as exc:
                    self._cannot_record(sink, exc)
                    break
                with self._lock:
                    self._written_acks[sink] = seq
        # Segments go by the positions in memory, even those a full disk kept
        # from being written, so that deleting them makes room: a position left
        # on disk below the oldest stored event reads as done with all of it.
        self.log.delete_before(self._min_ack())

    def _cannot_record(self, sink: str, exc: OSError) -> None:
        self._warnings.error(
            "ack",
            "cannot record the spool position of sink %r in %s: %s",
            sink,
            str(self._files.acks),
            exc,
        )

    def _min_ack(self) -> int:
        with self._lock:
            return min(self._acks.values(), default=self.log.next_seq)

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
    try:
        return lock_exclusively(directory / ".lock")
    except BlockingIOError:
        raise ConfigError(
            "spool_dir",
            f"{str(directory)!r} is in use by another streamer; one spool has one streamer",
        ) from None


def rewind(directory: str | os.PathLike[str], sink: str) -> None:
    """Make `sink` receive everything a spool holds the next time it is opened.

    Its acknowledged position is set to 0 (before the oldest stored event).
    """
    root = Path(os.fspath(directory))
    root.mkdir(mode=0o700, parents=True, exist_ok=True)
    files = PositionFiles(root)
    files.write(sink, 0)
    files.register({sink})
