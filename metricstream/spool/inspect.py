"""`inspect_spool`: what a spool directory holds, per sink, read without locking it."""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path

from metricstream.spool.positions import PositionFiles, parse
from metricstream.spool.segments import Damage, SegmentLog

__all__ = ["SinkBacklog", "SpoolReport", "inspect_spool"]


@dataclass(frozen=True)
class SinkBacklog:
    """What one sink still has to receive from a spool.

    Attributes:
        sink: The sink's name.
        position: Its acknowledged position (sequence number).
        events: Events stored at or after it.
        batches: Records holding them.
        segments: Segment files holding them.
        oldest_age_s: Age of the oldest of them, in seconds (None when none).
    """

    sink: str
    position: int
    events: int
    batches: int
    segments: int
    oldest_age_s: float | None


@dataclass(frozen=True)
class SpoolReport:
    """A spool directory's contents.

    Attributes:
        directory: The spool directory.
        first_seq: The oldest stored event's sequence number.
        next_seq: The sequence number the next event would get.
        bytes: Bytes of its segment files.
        segments: Number of segment files.
        sinks: Each sink's backlog, by name.
        damage: What is damaged in it.
    """

    directory: str
    first_seq: int
    next_seq: int
    bytes: int
    segments: int
    sinks: dict[str, SinkBacklog]
    damage: list[Damage]


def inspect_spool(directory: str | os.PathLike[str]) -> SpoolReport:
    """Read a spool directory (without changing it, even while a streamer uses it).

    Raises:
        FileNotFoundError: If `directory` holds no spool.
    """
    root = Path(os.fspath(directory))
    if not (root / "segments").is_dir():
        raise FileNotFoundError(f"no spool in {str(root)!r} (no segments directory)")
    log = SegmentLog(root / "segments", segment_bytes=1, fsync="never", readonly=True)
    try:
        segments = log.segments()
        sinks = {}
        for name, raw in PositionFiles(root, readonly=True).saved().items():
            saved = parse(raw)
            # An untrusted position resumes at the oldest record (see `positions`).
            if saved is None or saved > log.next_seq or not log.starts_record(saved):
                saved = log.first_seq
            sinks[name] = _backlog(log, name, max(saved, log.first_seq), segments)
        return SpoolReport(
            str(root),
            log.first_seq,
            log.next_seq,
            sum(size for *_, size in segments),
            len(segments),
            sinks,
            list(log.damage),
        )
    finally:
        log.close()


def _backlog(
    log: SegmentLog, name: str, position: int, segments: list[tuple[str, int, int, int]]
) -> SinkBacklog:
    batches = 0
    oldest: float | None = None
    seq = position
    while (stored := log.read(seq)) is not None:
        batches += 1
        if oldest is None and stored.batch is not None:
            oldest = max(0.0, (time.time_ns() - stored.batch.created_ns) / 1e9)
        seq = stored.end_seq
    holding = sum(1 for _, first, end, _ in segments if end > position and end > first)
    return SinkBacklog(name, position, log.next_seq - position, batches, holding, oldest)
