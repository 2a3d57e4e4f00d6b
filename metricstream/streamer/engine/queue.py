"""The queue seam: where a lane keeps prepared payloads until its writer takes them.

A lane talks to its pending storage only through `PendingQueue`, so storage
that outlives the process (the disk spool) can take the place of the
in-memory `MemoryQueue` without changing the lane or its accounting. Every
method is called with the lane's lock held: an implementation needs no lock
of its own, and must not block.

The lane's accounting identity (see `metricstream.streamer.engine.lane`) counts
what the queue holds as ``queued``. With the disk spool, the lane keeps
batches that do not fit in memory out of the queue altogether and reads
them back from the spool when there is room (`metricstream.streamer.engine.spill`),
so the queue itself stays in memory.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from typing import Any, Protocol

__all__ = ["Item", "MemoryQueue", "PendingQueue"]


@dataclass(slots=True, eq=False)
class Item:
    """A prepared payload waiting in a lane.

    ``start``/``end`` locate its events in the streamer's sequence of events
    taken from the shared buffer, which is how `flush` knows what is done.

    Attributes:
        payload: What the sink's ``prepare`` returned.
        count: Events in the payload.
        start: Sequence number of the batch's first event.
        end: Sequence number after the batch's last event.
        batch_id: The batch's id.
        written: Events the sink reported stored so far (a batch written in parts).
        rejected: Events the sink reported refused for good so far.
        seq_end: The spool sequence number after its last event, when the
            batch is in the spool (acknowledged there once it is done).
    """

    payload: Any
    count: int
    start: int
    end: int
    batch_id: str
    written: int = 0
    rejected: int = 0
    seq_end: int | None = None


class PendingQueue(Protocol):
    """Pending storage of one lane: prepared payloads, oldest first.

    Attributes:
        events: Events held.
    """

    events: int

    def push(self, item: Item) -> None:
        """Append a payload (the lane has made room for it)."""
        ...

    def pop(self) -> Item | None:
        """Remove and return the oldest payload, or None when empty."""
        ...

    def push_front(self, item: Item) -> None:
        """Put back a payload taken by `pop` (to be written again first)."""
        ...

    def evict_oldest(self, needed: int) -> list[Item]:
        """Remove whole payloads, oldest first, until `needed` events are freed.

        Returns:
            The payloads removed; the lane counts their events as dropped
            (``overflow``). A queue that can keep them elsewhere returns
            fewer, or none.
        """
        ...

    def drain(self) -> list[Item]:
        """Remove and return every payload, oldest first (shutdown gave up)."""
        ...

    def oldest_start(self) -> int | None:
        """The sequence start of the oldest payload, or None when empty."""
        ...


class MemoryQueue:
    """A `PendingQueue` in memory: a deque of prepared payloads."""

    def __init__(self) -> None:
        self._items: deque[Item] = deque()
        self.events = 0

    def __len__(self) -> int:
        return len(self._items)

    def push(self, item: Item) -> None:
        """Append a payload."""
        self._items.append(item)
        self.events += item.count

    def pop(self) -> Item | None:
        """Remove and return the oldest payload, or None."""
        if not self._items:
            return None
        item = self._items.popleft()
        self.events -= item.count
        return item

    def push_front(self, item: Item) -> None:
        """Put back a payload taken by `pop`."""
        self._items.appendleft(item)
        self.events += item.count

    def evict_oldest(self, needed: int) -> list[Item]:
        """Remove whole payloads, oldest first, until `needed` events are freed."""
        evicted: list[Item] = []
        freed = 0
        while freed < needed and self._items:
            item = self._items.popleft()
            self.events -= item.count
            freed += item.count
            evicted.append(item)
        return evicted

    def drain(self) -> list[Item]:
        """Remove and return every payload, oldest first."""
        items = list(self._items)
        self._items.clear()
        self.events = 0
        return items

    def oldest_start(self) -> int | None:
        """The sequence start of the oldest payload, or None."""
        return self._items[0].start if self._items else None
