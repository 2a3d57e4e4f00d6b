"""`Windowed`: a relay that aggregates events into event-time windows before the sinks.

Events go into an `EventTimeWindows` (the aggregation core), each with its
partition and offset; the windows the watermark completes are emitted, one
batch per window and set of source partitions, with an id made of the
group, the window's measurement, kind, start and end and those partitions
(so the same window rebuilt after a crash carries the same id). Late events
go, raw, to the late sinks if there are any (at least once), and are
counted either way.

Exactly once, with what Kafka keeps (`metricstream.relay.marks`):

- a partition's committed offset is the earliest offset of an event still
  needed: in an open window, in an emitted window not yet delivered (or
  delivered after one that is not), in a late batch or a dead letter not yet
  delivered; a relay that takes the partition over reads it again from
  there and rebuilds the windows;
- the ``watermark`` mark is the watermark of the last close whose windows,
  and every earlier one's, are delivered: the events a replay reads again
  for windows ending by then were counted in them, so the replay treats
  them as late for that partition (`WatermarkTracker.resume`), and a
  session it rebuilds that closes by then is not emitted again;
- the ``read`` mark is the offset below which every event was accounted
  for: a late event below it was delivered as late before, and is skipped
  on replay (counted as ``replayed``) rather than delivered again.

Windows are exact per group when a group's events all come from one
partition (produce with ``KafkaSink(key=...)`` set to the grouping tag, the
way Kafka Streams co-partitions): then every relay that ever rebuilds a
window rebuilds all of it, with the same id. A group spread over partitions
held by several relays gets one result per relay (each with its partitions
in its id), which the Redis counter sink adds up.
"""

from __future__ import annotations

import hashlib
import time
from collections import deque
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from metricstream._validate import INT64_MIN
from metricstream.aggregate.event_time import EventTimeWindows
from metricstream.event import MetricEvent
from metricstream.relay.batches import Batch
from metricstream.relay.delivery import Outlet, batch_id
from metricstream.relay.marks import PartitionKey
from metricstream.relay.passthrough import Decoded
from metricstream.relay.stats import RelayCounters
from metricstream.streamer.engine.receipts import BatchReceipt

__all__ = ["Emission", "Windowed"]


class Emission:
    """The results of one window whose events came from one set of partitions: one batch.

    Attributes:
        batch_id: Group, measurement, kind, start, end and partitions, hashed.
        events: The result events, one per group (let go once the streamer took them).
        count: How many there are.
        sources: The earliest offset of each source partition.
        receipt: The streamer's receipt once it took the batch.
    """

    __slots__ = ("batch_id", "count", "events", "receipt", "sources")

    def __init__(self, batch_id: str, sources: dict[PartitionKey, int]) -> None:
        self.batch_id = batch_id
        self.events: list[MetricEvent] = []
        self.count = 0
        self.sources = sources
        self.receipt: BatchReceipt | None = None

    def done(self) -> bool:
        """Every sink has written or dropped its events."""
        return self.receipt is not None and self.receipt.delivered()


class _Close:
    """The emissions of one close of the windows, and the watermark it closed at."""

    __slots__ = ("emissions", "watermark")

    def __init__(self, watermark: int, emissions: list[Emission]) -> None:
        self.watermark = watermark
        self.emissions = emissions


class _Partition:
    """What the window mode keeps of one partition."""

    __slots__ = ("floor", "next_offset", "replay_until", "side")

    def __init__(self, start: int | None, read: int | None, floor: int) -> None:
        self.next_offset = start
        self.replay_until = read
        self.floor = floor
        self.side: deque[Batch] = deque()  # late events and dead letters, in offset order


class Windowed:
    """The relay's state with windows (see the module doc).

    Args:
        windows: The windows (their tracker is the relay's watermark).
        outlet: Where window results go.
        late_outlet: Where late events go raw, or None to only count them.
        group: The consumer group (part of every batch id).
        counters: The relay's counters.
        clock: Monotonic seconds.
    """

    marks: tuple[str, ...] = ("read", "watermark")

    def __init__(
        self,
        windows: EventTimeWindows,
        outlet: Outlet,
        late_outlet: Outlet | None,
        group: str,
        *,
        counters: RelayCounters,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.windows = windows
        self._outlet = outlet
        self._late = late_outlet
        self._group = group
        self._counters = counters
        self._clock = clock
        self.partitions: dict[PartitionKey, _Partition] = {}
        self._closes: deque[_Close] = deque()
        self._unsent: deque[Emission] = deque()
        self.emitted_through = INT64_MIN

    # --- partitions ------------------------------------------------------------------

    def assign(self, key: PartitionKey, start: int | None, marks: Mapping[str, int]) -> None:
        """Read partition `key` from `start`, resuming from its marks."""
        floor = marks.get("watermark", INT64_MIN)
        self.partitions[key] = _Partition(start, marks.get("read"), floor)
        if floor > INT64_MIN:
            self.windows.watermark.resume(key, floor)
        else:
            self.windows.watermark.assign((key,))

    def revoke(self, keys: Iterable[PartitionKey]) -> None:
        """Partitions move: forget every window and partition; the next owners rebuild them."""
        del keys  # eager rebalancing revokes every partition at once
        self.windows.discard()
        self.partitions.clear()
        self._closes.clear()
        self._unsent.clear()
        self.emitted_through = INT64_MIN

    # --- reading -----------------------------------------------------------------------

    def take(self, key: PartitionKey, messages: list[Decoded]) -> None:
        """Add one partition's messages, in offset order, to the windows."""
        partition = self.partitions.get(key)
        if partition is None:
            return
        events: list[MetricEvent] = []
        offsets: list[int] = []
        for offset, decoded, dead in messages:
            if partition.next_offset is not None and offset < partition.next_offset:
                continue
            partition.next_offset = offset + 1
            if dead is not None:
                side = Batch(offset, self._clock())
                side.end = offset + 1
                side.dead.append(dead)
                partition.side.append(side)
            events.extend(decoded)
            offsets.extend([offset] * len(decoded))
        if not events:
            return
        late = self.windows.add(events, key, offsets)
        if late:
            self._late_events(key, partition, late, events, offsets)

    def _late_events(
        self,
        key: PartitionKey,
        partition: _Partition,
        late: list[MetricEvent],
        events: list[MetricEvent],
        offsets: list[int],
    ) -> None:
        position = {id(event): offset for event, offset in zip(events, offsets, strict=True)}
        replay_until = partition.replay_until
        fresh = []
        for event in late:
            offset = position[id(event)]
            if replay_until is not None and offset < replay_until:
                self._counters.add("replayed_events")
            else:
                fresh.append((offset, event))
        self._counters.add("late_events", len(fresh))
        if not fresh or self._late is None:
            return
        side = Batch(fresh[0][0], self._clock())
        side.end = fresh[-1][0] + 1
        side.events.extend(event for _, event in fresh)
        partition.side.append(side)

    # --- emitting ------------------------------------------------------------------------

    def close_windows(self) -> None:
        """Emit the windows the watermark has completed (one batch per window and sources)."""
        windows = self.windows
        before, replayed = windows.closed_through, windows.replayed_events
        results = windows.close()
        if windows.replayed_events > replayed:
            self._counters.add("replayed_events", windows.replayed_events - replayed)
        self._counters.open_windows = windows.open_windows
        self._counters.watermark_ns = windows.closed_through
        if windows.closed_through == before and not results:
            return
        emissions: dict[tuple[Any, ...], Emission] = {}
        for result in results:
            sources: dict[PartitionKey, int] = dict(sorted(result.sources))  # type: ignore[arg-type]
            identity = (*result.identity[:2], result.window.start, result.window.end)
            found = (*identity, tuple(sources))
            emission = emissions.get(found)
            if emission is None:
                emission = emissions[found] = Emission(self._window_id(identity, sources), sources)
            else:  # the groups of one window hold the same partitions, from other offsets
                for key, offset in sources.items():
                    emission.sources[key] = min(emission.sources[key], offset)
            emission.events.append(result.event)
            emission.count += 1
        close = _Close(windows.closed_through, list(emissions.values()))
        self._closes.append(close)
        self._unsent.extend(close.emissions)
        self._counters.add("windows_emitted", len(results))

    def _window_id(self, identity: tuple[Any, ...], sources: Mapping[PartitionKey, int]) -> str:
        text = repr((self._group, identity, tuple(sources)))
        digest = hashlib.blake2b(text.encode(), digest_size=16).hexdigest()
        return f"w:{self._group}:{digest}" if len(self._group) < 200 else f"w:{digest}"

    def pump(self) -> None:
        """Hand emitted windows, then late events, to their sinks until they push back."""
        unsent = self._unsent
        while unsent:
            emission = unsent[0]
            receipt = self._outlet.send(emission.events, emission.batch_id)
            if receipt is None:
                break
            emission.receipt = receipt
            emission.events = []
            unsent.popleft()
        if self._late is None:
            return
        for key, partition in self.partitions.items():
            for side in partition.side:
                if side.receipt is None and side.events:
                    topic, number = key
                    span = f"{side.start}-{side.end}"
                    name = batch_id("late", self._group, topic, number, span)
                    receipt = self._late.send(side.events, name)
                    if receipt is None:
                        return
                    side.taken(receipt)

    def collect(self) -> None:
        """Acknowledge delivered closes (in order) and late batches."""
        closes = self._closes
        while closes and all(emission.done() for emission in closes[0].emissions):
            self.emitted_through = closes.popleft().watermark
        for partition in self.partitions.values():
            side = partition.side
            while side and (side[0].receipt is not None or not side[0].events) and side[0].done():
                side.popleft()

    # --- offsets and marks -------------------------------------------------------------

    def positions(self) -> dict[PartitionKey, int]:
        """The offset to commit for each partition: the earliest offset of an event still needed."""
        needed = self.windows.open_positions()
        for close in self._closes:
            for emission in close.emissions:
                for key, offset in emission.sources.items():
                    if offset < needed.get(key, offset + 1):
                        needed[key] = offset
        found = {}
        for key, partition in self.partitions.items():
            if partition.next_offset is None:
                continue
            candidates = [partition.next_offset]
            if key in needed:
                candidates.append(needed[key])
            candidates.extend(side.start for side in partition.side)
            found[key] = min(candidates)
        return found

    def mark_values(self) -> dict[str, dict[PartitionKey, int]]:
        """The ``read`` and ``watermark`` marks that the committed offsets rely on."""
        read: dict[PartitionKey, int] = {}
        watermark: dict[PartitionKey, int] = {}
        for key, partition in self.partitions.items():
            if partition.next_offset is None:
                continue
            late = [side.start for side in partition.side if side.events or side.count]
            read[key] = min([partition.next_offset, *late])
            through = max(self.emitted_through, partition.floor)
            if through >= 0:
                watermark[key] = through
        return {"read": read, "watermark": watermark}

    def committed(self, offsets: Mapping[PartitionKey, int]) -> None:
        """The broker has these offsets now (nothing to do: marks are written each time)."""

    def blocked(self) -> set[PartitionKey]:
        """Every partition while windows wait for room; else those whose late events wait."""
        if self._unsent:
            return set(self.partitions)
        return {
            key
            for key, partition in self.partitions.items()
            if any(side.receipt is None and side.events for side in partition.side)
        }

    def held_events(self) -> int:
        """Result and late events waiting for the sinks."""
        waiting = sum(e.count for close in self._closes for e in close.emissions)
        for partition in self.partitions.values():
            waiting += sum(side.count + len(side.events) for side in partition.side)
        return waiting

    def settled(self, keys: Iterable[PartitionKey]) -> bool:
        """Every window and late batch the sinks took is delivered."""
        del keys  # windows mix partitions: all of them settle together
        taken = (e for close in self._closes for e in close.emissions if e.receipt is not None)
        if not all(emission.done() for emission in taken):
            return False
        return all(
            side.done() for partition in self.partitions.values() for side in partition.side
            if side.receipt is not None or not side.events
        )

    def waiting_tails(self) -> list[PartitionKey]:
        """None: windows are emitted when complete, never cut by time (nor when a relay stops)."""
        return []

    def tails_due(
        self, log_ends: Mapping[PartitionKey, int | None], linger: float | None = None
    ) -> dict[PartitionKey, int]:
        """Nothing (see `waiting_tails`)."""
        return {}

    def cut_tails(self, cuts: Mapping[PartitionKey, int]) -> None:
        """Nothing to cut (see `waiting_tails`)."""

    def read_positions(self) -> dict[PartitionKey, int]:
        """The next offset each partition will read (where known)."""
        return {
            key: partition.next_offset
            for key, partition in self.partitions.items()
            if partition.next_offset is not None
        }
