"""`PassThrough`: a relay without windows: every event to every sink, in batches a replay repeats.

Each partition's messages are cut into batches by `PartitionBatches`, and
each batch is handed to the sinks as one `EventBatch` whose id names the
group, the partition and the batch's offsets
(``GROUP:TOPIC:PARTITION:START-END``), so that a batch read again after a
crash or a rebalance is applied once by the Redis counter sink. A
partition's offset is committed up to the start of its oldest batch not yet
delivered to every sink.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Mapping

from metricstream.event import MetricEvent
from metricstream.relay.batches import Batch, DeadLetter, PartitionBatches
from metricstream.relay.delivery import Outlet, batch_id
from metricstream.relay.marks import PartitionKey
from metricstream.relay.stats import RelayCounters

__all__ = ["Decoded", "PassThrough"]

Decoded = tuple[int, list[MetricEvent], DeadLetter | None]
"""One message as the relay read it: its offset, its events, its dead letter if undecodable."""


class PassThrough:
    """The relay's state without windows (see the module doc).

    Args:
        outlet: Where batches go.
        group: The consumer group (part of every batch id).
        grid: No batch spans a multiple of this many offsets.
        max_events: The most events in a batch.
        linger: Seconds a partition's last batch waits for more messages
            before it is cut where it is.
        counters: The relay's counters.
        clock: Monotonic seconds.
    """

    marks: tuple[str, ...] = ("cut",)

    def __init__(
        self,
        outlet: Outlet,
        group: str,
        *,
        grid: int,
        max_events: int,
        linger: float,
        counters: RelayCounters,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._outlet = outlet
        self._group = group
        self._grid = grid
        self._max_events = max_events
        self._linger = linger
        self._counters = counters
        self._clock = clock
        self.partitions: dict[PartitionKey, PartitionBatches] = {}
        self._unstarted: dict[PartitionKey, int | None] = {}

    def assign(self, key: PartitionKey, start: int | None, marks: Mapping[str, int]) -> None:
        """Read partition `key` from `start` (its committed offset; None: its first message)."""
        cut = marks.get("cut")
        if start is None:
            self._unstarted[key] = cut
            return
        self.partitions[key] = PartitionBatches(
            start, self._grid, self._max_events, cut, self._clock
        )

    def revoke(self, keys: Iterable[PartitionKey]) -> None:
        """Forget partitions no longer read here."""
        for key in keys:
            self.partitions.pop(key, None)
            self._unstarted.pop(key, None)

    def take(self, key: PartitionKey, messages: list[Decoded]) -> None:
        """Add one partition's messages, in offset order."""
        batches = self.partitions.get(key)
        if batches is None:
            if key not in self._unstarted or not messages:
                return
            cut = self._unstarted.pop(key)
            batches = PartitionBatches(
                messages[0][0], self._grid, self._max_events, cut, self._clock
            )
            batches.committed = -1  # nothing committed yet: commit where reading started
            self.partitions[key] = batches
        add = batches.add
        for offset, events, dead in messages:
            add(offset, events, dead)

    def pump(self) -> None:
        """Hand every cut batch to the sinks, oldest first, until they push back."""
        for key, batches in self.partitions.items():
            ready = batches.ready
            while ready:
                batch = ready[0]
                receipt = None
                if batch.events:
                    receipt = self._outlet.send(batch.events, self._id(key, batch))
                    if receipt is None:
                        break
                batch.taken(receipt)
                batches.in_flight.append(ready.popleft())

    def _id(self, key: PartitionKey, batch: Batch) -> str:
        topic, number = key
        span = f"{batch.start}-{batch.end}"
        if batch.part is not None:
            span += f"#{batch.part}"
        return batch_id(self._group, topic, number, span)

    def collect(self) -> None:
        """Acknowledge the batches every sink has written or dropped."""
        for batches in self.partitions.values():
            batches.collect()

    def tails_due(
        self, log_ends: Mapping[PartitionKey, int | None], linger: float | None = None
    ) -> dict[PartitionKey, int]:
        """Where to cut each partition's last batch that waited `linger` (default: the option).

        Only a partition read to its end of the log (`log_ends`) is cut.
        """
        wait = self._linger if linger is None else linger
        due = {}
        for key, batches in self.partitions.items():
            offset = batches.tail_due(wait, log_ends.get(key))
            if offset is not None:
                due[key] = offset
        return due

    def waiting_tails(self) -> list[PartitionKey]:
        """Partitions with a batch being filled (whose end of the log the reader looks up)."""
        return [key for key, batches in self.partitions.items() if batches.open is not None]

    def cut_tails(self, cuts: Mapping[PartitionKey, int]) -> None:
        """Cut the batches of `cuts`, whose offsets are now written down as marks."""
        for key, offset in cuts.items():
            batches = self.partitions.get(key)
            if batches is not None and batches.open is not None:
                batches.cut_tail(offset)


    def positions(self) -> dict[PartitionKey, int]:
        """The offset to commit for each partition (the start of its oldest undone batch)."""
        return {key: batches.commit_offset() for key, batches in self.partitions.items()}

    def mark_values(self) -> dict[str, dict[PartitionKey, int]]:
        """The marks the committed offsets rely on (none: cuts are written when made)."""
        return {}

    def committed(self, offsets: Mapping[PartitionKey, int]) -> None:
        """The broker has these offsets now."""
        for key, offset in offsets.items():
            batches = self.partitions.get(key)
            if batches is not None:
                batches.committed = offset

    def blocked(self) -> set[PartitionKey]:
        """Partitions with batches the sinks did not take yet."""
        return {key for key, batches in self.partitions.items() if batches.ready}

    def held_events(self) -> int:
        """Events read and not yet delivered to every sink."""
        return sum(
            batches.in_flight_events() + batches.unsent_events()
            for batches in self.partitions.values()
        )

    def settled(self, keys: Iterable[PartitionKey]) -> bool:
        """Every batch of these partitions that the sinks took is delivered."""
        for key in keys:
            batches = self.partitions.get(key)
            if batches is not None and batches.in_flight:
                return False
        return True

    def close_windows(self) -> None:
        """Nothing: there are no windows."""

    def read_positions(self) -> dict[PartitionKey, int]:
        """The next offset each partition will read."""
        return {key: batches.next_offset for key, batches in self.partitions.items()}
