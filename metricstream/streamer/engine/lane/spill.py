"""`SpillCursor`: where a lane stands in the spool, when the spool is on.

A lane keeps prepared payloads in memory up to its ``max_buffer``; batches
beyond that, and batches recovered from an earlier run, stay only on disk
("spilled") and are read back, oldest first, when there is room again. While
a lane is spilling, every newer batch is spilled too, so the sink still sees
batches in the order they were accepted.

Its owner is the lane's `LaneLedger`: its state changes only there, under the
ledger's lock. The preparer reads the disk outside that lock (`Spool.read`),
and the ledger applies what it found (`LaneLedger.read_back`).
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass

from metricstream.spool import Spool, StoredBatch

__all__ = ["RECOVERED", "SpillCursor", "Spilled"]

RECOVERED = -1
"""The position of the events an earlier run left in the spool.

It lies before every event of this run, so that a flush, which waits for
every position before its own, waits for them too.
"""


@dataclass(slots=True)
class Spilled:
    """A stored batch read back, with its place in this run's event sequence."""

    stored: StoredBatch
    start: int
    end: int
    recovered: bool
    missing: int = 0
    """Events between the read position and the stored batch that are gone from disk."""


class SpillCursor:
    """A lane's read position and spilled events in the spool.

    Args:
        spool: The streamer's spool.
        sink: The lane's sink name.

    Attributes:
        recovered: Events left by an earlier run for this sink.
        spilled: Events of this lane held only on disk, not yet read back.
    """

    def __init__(self, spool: Spool, sink: str) -> None:
        self.spool = spool
        self.sink = sink
        start = spool.start(sink)
        self._known_end = spool.next_seq
        self._recovered_until = self._known_end
        self.recovered = self._known_end - start
        self.spilled = self.recovered
        self.next_read: int | None = start if self.recovered else None
        # (first seq, end seq, first position, end position) of batches spilled in this run
        self._positions: deque[tuple[int, int, int, int]] = deque()

    @property
    def spilling(self) -> bool:
        """True while batches are kept on disk only."""
        return self.next_read is not None

    def spill(self, first_seq: int, end_seq: int, start: int, end: int) -> None:
        """Keep a batch offered to the lane on disk only."""
        if self.next_read is None:
            self.next_read = first_seq
        self._positions.append((first_seq, end_seq, start, end))
        self.spilled += end_seq - first_seq
        self._known_end = end_seq

    def offered(self, end_seq: int) -> None:
        """Note a batch taken into memory (the cursor is not spilling)."""
        self._known_end = end_seq

    def due(self) -> int | None:
        """The sequence number to read next, or None when caught up (then spilling ends)."""
        if self.next_read is not None and self.next_read >= self._known_end:
            self.next_read = None
        return self.next_read

    def take(self, stored: StoredBatch) -> Spilled:
        """Account for a stored batch read back at the current position; advance past it."""
        position = self.next_read if self.next_read is not None else stored.first_seq
        missing = max(0, stored.first_seq - position)
        self.next_read = stored.end_seq
        self.spilled -= stored.end_seq - min(position, stored.first_seq)
        if stored.first_seq < self._recovered_until:
            return Spilled(stored, RECOVERED, RECOVERED, recovered=True, missing=missing)
        start = end = None
        while self._positions and self._positions[0][0] < stored.end_seq:
            _, _, first_position, end_position = self._positions.popleft()
            start = first_position if start is None else start
            end = end_position
        return Spilled(stored, start or 0, end or 0, recovered=False, missing=missing)

    def oldest_position(self) -> int | None:
        """The event position of the oldest batch still to read back, or None."""
        if self.next_read is None:
            return None
        if self.next_read < self._recovered_until:
            return RECOVERED
        return self._positions[0][2] if self._positions else None

    def drop_through(self, end_seq: int) -> int:
        """Forget spilled events below `end_seq` (the spool deleted them); return how many."""
        if self.next_read is None or self.next_read >= end_seq:
            return 0
        lost = min(end_seq, self._known_end) - self.next_read
        while self._positions and self._positions[0][1] <= end_seq:
            self._positions.popleft()
        self.next_read = end_seq
        self.spilled -= lost
        return lost

    def discard_rest(self) -> int:
        """Forget every spilled event (they are gone from disk); return how many."""
        return self.drop_through(self._known_end)

    def give_up(self) -> int:
        """Shutdown: stop reading; return the spilled events left on disk."""
        left, self.spilled = self.spilled, 0
        self.next_read = None
        self._positions.clear()
        return left
