"""Cutting one partition's messages into batches that a replay cuts the same way.

The Redis counter sink applies a batch id once, so a batch read again after
a crash or a rebalance is harmless *if it is read again as the same batch*:
the same first and last offset, the same id. The relay resumes a partition
at its committed offset, which is always the start of a batch, and cuts
from there by rules that depend on the messages only, never on when they
arrived:

- a *grid*: a batch never spans a multiple of ``grid`` offsets;
- *size*: a batch ends before the message that would take it past
  ``max_events`` events (a single message with more is split into parts,
  its events in order);
- a *mark*: where the last cut that depended on time (below) was made.

The one cut that depends on time is the tail of a partition that is not
growing: once a batch has waited ``linger`` seconds for the rest of its
grid cell and the relay has read everything the partition holds (its
position is the end of the log), it is cut after its last message. At the
end of the log no earlier reader can have sent a batch reaching further,
so the cut splits nothing sent before. Its offset is first written down
(the relay keeps it as a committed offset of a companion group:
`metricstream.relay.marks`), and only one such cut may be ahead of the
committed offset at a time, so a replay knows the one it must repeat.

`PartitionBatches` holds a partition's batches from the first message read
to the acknowledgement: ``open`` (being filled), ``ready`` (cut, not yet
accepted by the streamer: it pushed back) and ``in_flight`` (accepted,
waiting until every sink has written or dropped them and every dead letter
of theirs is delivered). `PartitionBatches.commit_offset` is where a replay
must start: the start of the oldest batch not yet done.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable, Sequence

from metricstream.event import MetricEvent
from metricstream.streamer.engine.receipts import BatchReceipt

__all__ = ["Batch", "DeadLetter", "PartitionBatches"]


class DeadLetter:
    """A message sent to the dead-letter topic, until the broker has it (or refused it)."""

    __slots__ = ("error", "finished", "offset")

    def __init__(self, offset: int) -> None:
        self.offset = offset
        self.finished = False
        self.error: str | None = None

    def settle(self, error: str | None) -> None:
        """The producer's delivery report arrived: `error` is None when delivered."""
        self.error = error
        self.finished = True


class Batch:
    """The events of one range of offsets ``[start, end)`` of one partition.

    Attributes:
        start: The first offset of the range.
        end: The offset after the range (set when the batch is cut).
        part: For a message split into parts, the part's number (else None).
        events: The decoded events, in order, until the streamer takes them.
        count: How many events it holds (kept once `events` is let go).
        dead: The dead letters of its messages that could not be decoded.
        receipt: The streamer's receipt, once it accepted the batch.
        opened: When its first message arrived (monotonic seconds).
    """

    __slots__ = ("count", "dead", "end", "events", "opened", "part", "receipt", "start")

    def __init__(self, start: int, opened: float, part: int | None = None) -> None:
        self.start = start
        self.end = start
        self.part = part
        self.events: list[MetricEvent] = []
        self.count = 0
        self.dead: list[DeadLetter] = []
        self.receipt: BatchReceipt | None = None
        self.opened = opened

    def __repr__(self) -> str:
        part = "" if self.part is None else f"#{self.part}"
        return f"Batch([{self.start}, {self.end}){part}, {len(self.events)} events)"

    def taken(self, receipt: BatchReceipt | None) -> None:
        """The streamer took the events (None: there were none): keep the receipt, not them."""
        self.receipt = receipt
        self.count = len(self.events)
        self.events = []

    def done(self) -> bool:
        """Every sink has written or dropped its events, and its dead letters are settled."""
        receipt = self.receipt
        if receipt is not None and not receipt.delivered():
            return False
        return all(letter.finished for letter in self.dead)


class PartitionBatches:
    """The batches of one partition, cut by rules a replay repeats (see the module doc).

    Args:
        start: Where reading starts: the committed offset (a batch start).
        grid: No batch spans a multiple of this many offsets.
        max_events: A batch ends before the message that would take it past this.
        mark: A time-dependent cut made ahead of `start` by an earlier reader
            (None, or an offset <= `start`, when there is none).
        clock: Monotonic seconds.
    """

    def __init__(
        self,
        start: int,
        grid: int,
        max_events: int,
        mark: int | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.grid = grid
        self.max_events = max_events
        self.cut_at = start
        self.committed = start
        self.mark = mark if mark is not None and mark > start else None
        self.clock = clock
        self.open: Batch | None = None
        self._bound = 0
        self.ready: deque[Batch] = deque()
        self.in_flight: deque[Batch] = deque()
        self.next_offset = start

    # --- cutting ---------------------------------------------------------------------

    def _end_of(self, start: int) -> int:
        """Where a batch starting at `start` must end at the latest (grid or mark)."""
        end = (start // self.grid + 1) * self.grid
        mark = self.mark
        if mark is not None and start < mark < end:
            return mark
        return end

    def add(self, offset: int, events: Sequence[MetricEvent], dead: DeadLetter | None) -> None:
        """Add the message at `offset` (its events, or its dead letter), in offset order."""
        if offset < self.next_offset:
            return  # read before (a fetch that repeated itself): its batch has it
        self.next_offset = offset + 1
        batch = self.open
        if batch is not None:
            if offset >= self._bound:
                self._cut(self._bound)
            elif batch.events and len(batch.events) + len(events) > self.max_events:
                self._cut(offset)
        self._skip_to(offset)
        if len(events) > self.max_events:
            self._add_parts(offset, events, dead)
            return
        batch = self.open
        if batch is None:
            batch = self.open = Batch(self.cut_at, self.clock())
            self._bound = self._end_of(self.cut_at)
        batch.events.extend(events)
        if dead is not None:
            batch.dead.append(dead)
        if offset + 1 >= self._bound:
            self._cut(self._bound)

    def _skip_to(self, offset: int) -> None:
        """Move the next batch's start over empty ranges to the one that holds `offset`."""
        if self.open is not None:
            return
        while offset >= (end := self._end_of(self.cut_at)):
            aligned = offset - offset % self.grid
            mark = self.mark
            skips_mark = mark is not None and self.cut_at < mark <= aligned
            self.cut_at = end if skips_mark else max(end, aligned)

    def _add_parts(
        self, offset: int, events: Sequence[MetricEvent], dead: DeadLetter | None
    ) -> None:
        """A message with more than `max_events` events: one batch per part, in order."""
        if self.open is not None:
            self._cut(offset)
        now = self.clock()
        size = self.max_events
        for part, first in enumerate(range(0, len(events), size)):
            batch = Batch(offset, now, part)
            batch.end = offset + 1
            batch.events.extend(events[first : first + size])
            self.ready.append(batch)
        if dead is not None:
            self.ready[-1].dead.append(dead)
        self.cut_at = offset + 1

    def _cut(self, end: int) -> None:
        batch = self.open
        if batch is None:
            return
        batch.end = end
        self.ready.append(batch)
        self.open = None
        self.cut_at = end

    def tail_due(self, linger: float, log_end: int | None) -> int | None:
        """The offset to cut the open batch at now, because it waited `linger` seconds.

        Args:
            linger: Seconds the open batch must have waited.
            log_end: The partition's end of the log (the offset its next
                message will get), as the broker last said; None if unknown.

        Returns:
            None when nothing waits that long, when the relay has not read
            the partition to `log_end`, or when an earlier time-dependent
            cut is not committed yet (a replay could repeat only one).
        """
        batch = self.open
        if batch is None or self.clock() - batch.opened < linger:
            return None
        if log_end is None or self.next_offset < log_end:
            return None
        if self.mark is not None and self.mark > self.committed:
            return None
        return self.next_offset

    def cut_tail(self, mark: int) -> None:
        """Cut the open batch at `mark`, now written down where a replay finds it."""
        self.mark = mark
        self._cut(mark)

    # --- acknowledgement ---------------------------------------------------------------

    def collect(self) -> list[Batch]:
        """Remove and return the batches at the head that are done, oldest first."""
        done = []
        in_flight = self.in_flight
        while in_flight and in_flight[0].done():
            done.append(in_flight.popleft())
        return done

    def commit_offset(self) -> int:
        """Where a replay must start: the start of the oldest batch not yet done."""
        for queue in (self.in_flight, self.ready):
            if queue:
                return queue[0].start
        if self.open is not None:
            return self.open.start
        return self.cut_at

    def in_flight_events(self) -> int:
        """Events accepted by the streamer and not yet delivered."""
        return sum(batch.count for batch in self.in_flight)

    def unsent_events(self) -> int:
        """Events read and not yet accepted by the streamer (open and ready batches)."""
        held = sum(len(batch.events) for batch in self.ready)
        return held + (len(self.open.events) if self.open is not None else 0)
