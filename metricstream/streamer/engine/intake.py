"""`Intake`: the events accepted and not yet handed to the lanes, and their counters.

`send` appends each event's parts (`PARTS_PER_EVENT` of them) to `buffer`
with one ``extend``, which no other thread can interleave; only holders of
the intake's lock take from the left. Each event leaving the buffer, and
each event of a batch given to `EventStreamer.send_batch`, gets a position
in one sequence (``taken``): the order in which the lanes receive them. A
lane knows the positions of what it holds, which is how a flush, or a
`BatchReceipt`, knows when everything before a position is done.

For every sink at every moment::

    accepted == buffered + popped + upstream_dropped

where ``popped`` counts the events taken into batches (the lanes account for
them from there: see `metricstream.streamer.engine.lane`) and
``upstream_dropped`` the events dropped before any lane, by reason.

What a `send` from a signal handler put aside (`Reentry`) is in no term
until `admit_deferred` appends it to the buffer or counts it as dropped.
The events the streamer makes itself (an aggregator's, once per interval)
enter through `admit`, which never waits either.

Each drop before the lanes gives `Drops` its first event, when one is known.
"""

from __future__ import annotations

import threading
from collections import deque
from itertools import islice, repeat
from typing import Any

from metricstream.event import PARTS_PER_EVENT
from metricstream.streamer.engine.drops import EVERY_SINK, Drops
from metricstream.streamer.engine.reentry import Reentry

__all__ = ["Intake"]

_popleft = deque.popleft


class Intake:
    """The shared buffer and the counters upstream of the lanes, under one lock.

    Args:
        part_limit: Parts the buffer may hold (``max_buffer`` events) under
            a drop policy.
        overflow: The overflow policy.
        drops: Where the first event of each kind of drop is noted.

    Attributes:
        buffer: The parts of the events waiting for the batcher.
        lock: Held to take from `buffer` and to change any counter.
        popped: Events taken into batches.
        taken: Positions given so far (events popped, evicted, or given
            to `send_batch`).
        dropped: Events dropped before any lane, by reason.
        closed: True once a shutdown began: nothing more is accepted.
        aborted: True once a shutdown gave up what was left.
        reentry: Which threads are inside the pipeline, and what a signal
            handler's `send` put aside meanwhile.
    """

    def __init__(self, part_limit: int, overflow: str, drops: Drops | None = None) -> None:
        self._part_limit = part_limit
        self._overflow = overflow
        self._drops = drops or Drops(first_events=False, dead_letters=False, max_events=0)
        self.reentry = Reentry()
        self.buffer: deque[Any] = deque()
        self.lock = threading.Lock()
        self.popped = 0
        self.taken = 0
        self.dropped: dict[str, int] = {}
        self.closed = False
        self.aborted = False
        # The position of the batch being handed to the lanes, and whether it is in the spool.
        self._in_hand: int | None = None
        self._in_hand_durable = False
        self._left_from: int | None = None  # the batch an abort left in the spool

    def drop(self, reason: str, count: int = 1, row: Any = None) -> bool:
        """Count `count` events dropped before any lane; return False (`send`'s answer).

        Args:
            reason: Why.
            count: How many.
            row: The parts of the first of them, when known.
        """
        with self.lock:
            self.dropped[reason] = self.dropped.get(reason, 0) + count
        self._drops.note(EVERY_SINK, reason, row)
        return False

    def admit_deferred(self) -> None:
        """Append what a signal handler's `send` put aside, or count it as dropped.

        Call it outside any lock of the intake. Under ``"block"`` an event put
        aside is appended whatever the buffer holds: it never waits.
        """
        if self.reentry.deferred.empty():
            return
        take = self.reentry.take
        while (item := take()) is not None:
            if isinstance(item, str):
                self.drop(item)
            else:
                self.admit((item,))

    def admit(self, rows: Any) -> None:
        """Append events given as rows of parts without ever waiting, or count them as dropped.

        Under ``"block"`` they are appended whatever the buffer holds (the
        callers, a signal handler's `send` put aside and the aggregators'
        emissions, are bounded); under a drop policy it applies.
        """
        buffer = self.buffer
        part_limit, overflow = self._part_limit, self._overflow
        for row in rows:
            if self.closed:
                self.drop("shutdown", row=row)
            elif len(buffer) >= part_limit and overflow == "drop_newest":
                self.drop("overflow", row=row)
            else:
                if overflow == "drop_oldest":
                    self.evict_oldest(part_limit)
                buffer.extend(row)

    def buffered(self) -> int:
        """Events waiting for the batcher."""
        return len(self.buffer) // PARTS_PER_EVENT

    def evict_oldest(self, part_limit: int) -> None:
        """Drop the oldest waiting event if `part_limit` parts wait (``drop_oldest``)."""
        buffer = self.buffer
        with self.lock:
            if len(buffer) < part_limit:
                return
            row = [buffer.popleft() for _ in range(PARTS_PER_EVENT)]
            self.taken += 1
            self.dropped["overflow"] = self.dropped.get("overflow", 0) + 1
        self._drops.note(EVERY_SINK, "overflow", row)

    def take(self, most: int) -> tuple[list[Any], int] | None:
        """Take up to `most` waiting events into a batch, now in hand.

        Returns:
            Their parts and the position of the first; None once aborted.
        """
        buffer = self.buffer
        with self.lock:
            if self.aborted:
                return None
            count = min(len(buffer) // PARTS_PER_EVENT, most)
            parts = list(map(_popleft, repeat(buffer, count * PARTS_PER_EVENT)))
            start = self._give_positions(count)
        return parts, start

    def take_given(self, count: int) -> int | None:
        """Give positions to `count` events handed over whole (`send_batch`), now in hand.

        Returns:
            The position of the first; None once aborted.
        """
        with self.lock:
            return None if self.aborted else self._give_positions(count)

    def _give_positions(self, count: int) -> int:
        start = self.taken
        self.taken += count
        self.popped += count
        self._in_hand = start
        return start

    def refuse(self, count: int, reason: str, row: Any = None) -> None:
        """Events taken into the batch in hand are dropped before any lane (`row`: the first)."""
        with self.lock:
            self.popped -= count
            self.dropped[reason] = self.dropped.get(reason, 0) + count
        self._drops.note(EVERY_SINK, reason, row)

    def durable_in_hand(self) -> None:
        """The batch in hand is in the spool now."""
        with self.lock:
            self._in_hand_durable = True

    def handed(self) -> None:
        """The batch in hand is with every lane."""
        with self.lock:
            self._in_hand = None
            self._in_hand_durable = False

    def marker(self) -> int:
        """The position after every event accepted so far."""
        with self.lock:
            return self.taken + len(self.buffer) // PARTS_PER_EVENT

    def taken_through(self, marker: int) -> bool:
        """Every event before position `marker` has reached the lanes (or was dropped)."""
        with self.lock:
            if self.taken < marker:
                return False
            in_hand = self._in_hand if not self.aborted else self._left_from
            return in_hand is None or in_hand >= marker

    def counts(self) -> tuple[int, int, dict[str, int]]:
        """(buffered, popped, dropped by reason), consistent with each other."""
        with self.lock:
            return len(self.buffer) // PARTS_PER_EVENT, self.popped, dict(self.dropped)

    def abort(self) -> tuple[int, int, bool]:
        """Give up the waiting events (dropped, reason ``shutdown``); refuse every later take.

        Returns:
            (events dropped, events popped so far, whether the batch in hand
            is in the spool).
        """
        with self.lock:
            self.aborted = True
            stranded = len(self.buffer) // PARTS_PER_EVENT
            if stranded:
                self._drops.note(EVERY_SINK, "shutdown", list(islice(self.buffer, PARTS_PER_EVENT)))
            self.buffer.clear()
            if stranded:
                self.taken += stranded
                self.dropped["shutdown"] = self.dropped.get("shutdown", 0) + stranded
            if self._in_hand_durable:
                self._left_from = self._in_hand
            return stranded, self.popped, self._in_hand_durable
