"""`WatermarkTracker`: how far event time has certainly advanced, over source partitions.

Each partition (a Kafka partition, say) reports the event times it delivers.
A partition's watermark is the largest event time it has shown minus
``allowed_lateness``: events up to that much older than the newest may still
arrive and count. The tracker's watermark is the smallest over the
partitions, so a slow partition holds every window open until its events
have arrived, except that a partition that delivered nothing for
``idle_timeout`` (by the processing-time clock, injectable) stops holding it
back; when every partition is idle, the largest of their watermarks counts.
Partitions known in advance (``partitions=``, `WatermarkTracker.assign`: a
Kafka consumer's assignment) hold it back from the start, until their first
event or until they have been idle that long. The watermark never goes
back. A window closes when the watermark reaches its end; an event for a
window already closed is late.

A reader that resumes a partition from a checkpoint (a relay restarting
from its committed offsets) knows how far that partition's windows were
already emitted: `WatermarkTracker.resume` gives the partition that
watermark as a *floor*, which `EventTimeWindows` reads: a window ending at
or before it was emitted for that partition already. The partition holds
the watermark as any assigned one does, until its events arrive: the
watermark is rebuilt from the events read again.
"""

from __future__ import annotations

import copy
import time
from collections.abc import Callable, Hashable, Iterable

from metricstream._validate import INT64_MIN
from metricstream.aggregate._parse import parse_duration

__all__ = ["WatermarkTracker"]


class WatermarkTracker:
    """The event-time watermark over several source partitions.

    Args:
        allowed_lateness: How much older than the newest event an event may
            be and still count (seconds or text such as ``"10s"``; default 10 s).
        idle_timeout: After how long without events a partition stops
            holding the watermark back (default 60 s).
        clock: Processing time in ns for idleness (default `time.monotonic_ns`).
        partitions: Partitions to wait for before they deliver anything.

    Raises:
        ConfigError: If a duration is invalid, naming the option.
    """

    def __init__(
        self,
        allowed_lateness: float | str = 10.0,
        idle_timeout: float | str = 60.0,
        *,
        clock: Callable[[], int] | None = None,
        partitions: Iterable[Hashable] = (),
    ) -> None:
        self.allowed_lateness_ns = parse_duration(
            "allowed_lateness", allowed_lateness, allow_zero=True
        )
        self.idle_timeout_ns = parse_duration("idle_timeout", idle_timeout)
        self._clock = clock if clock is not None else time.monotonic_ns
        self._newest: dict[Hashable, int] = {}
        self._seen: dict[Hashable, int] = {}
        self._floors: dict[Hashable, int] = {}
        self._watermark = INT64_MIN
        self.assign(partitions)

    def assign(self, partitions: Iterable[Hashable]) -> None:
        """Wait for `partitions` too: each holds the watermark until its first event or idleness."""
        now = self._clock()
        for partition in partitions:
            if partition not in self._newest:
                self._newest[partition] = INT64_MIN
                self._seen[partition] = now

    def fresh(self) -> WatermarkTracker:
        """A new tracker with the same options and clock that has seen nothing."""
        tracker = copy.copy(self)
        tracker._newest, tracker._seen, tracker._floors = {}, {}, {}
        tracker._watermark = INT64_MIN
        return tracker

    def resume(self, partition: Hashable, watermark_ns: int) -> None:
        """Resume `partition` from a checkpoint whose windows ended by `watermark_ns` were emitted.

        `watermark_ns` becomes the partition's `floor`; until its first
        event the partition holds the watermark back, as `assign` says.
        """
        self.assign((partition,))
        if watermark_ns > self._floors.get(partition, INT64_MIN):
            self._floors[partition] = watermark_ns

    def floor(self, partition: Hashable) -> int:
        """The watermark `partition` resumed from (`resume`), or `INT64_MIN`."""
        return self._floors.get(partition, INT64_MIN)

    def forget(self, partitions: Iterable[Hashable]) -> None:
        """Stop waiting for `partitions` (no longer read here); the watermark never goes back."""
        for partition in partitions:
            self._newest.pop(partition, None)
            self._seen.pop(partition, None)
            self._floors.pop(partition, None)

    def observe(self, partition: Hashable, event_time_ns: int) -> None:
        """Note that `partition` delivered an event of time `event_time_ns`."""
        if event_time_ns > self._newest.get(partition, INT64_MIN):
            self._newest[partition] = event_time_ns
        self._seen[partition] = self._clock()

    def observer(self, partition: Hashable) -> Callable[[int], int]:
        """A function that observes one event time of `partition` and returns the watermark.

        For a run of events read at one moment: the other partitions'
        idleness is judged once, by the clock now. Calling it for each
        event is the same as `observe` then `watermark`, faster.
        """
        now = self._clock()
        self.assign((partition,))
        self._seen[partition] = now
        others = [
            newest
            for other, newest in self._newest.items()
            if other != partition and now - self._seen[other] < self.idle_timeout_ns
        ]
        others_low = min(others) if others else None
        lateness = self.allowed_lateness_ns
        newest = self._newest

        def observe(event_time_ns: int) -> int:
            mine = newest[partition] = max(newest[partition], event_time_ns)
            candidate = mine if others_low is None or mine < others_low else others_low
            if candidate > INT64_MIN and candidate - lateness > self._watermark:
                self._watermark = candidate - lateness
            return self._watermark

        return observe

    def observe_many(self, partition: Hashable, event_times_ns: list[int]) -> None:
        """Note a batch of event times from `partition` (as `observe`, once per batch)."""
        if event_times_ns:
            self.observe(partition, max(event_times_ns))

    def watermark(self) -> int:
        """The current watermark in ns (`INT64_MIN` before any event)."""
        if not self._newest:
            return self._watermark
        now = self._clock()
        active = [
            newest
            for partition, newest in self._newest.items()
            if now - self._seen[partition] < self.idle_timeout_ns
        ]
        candidate = min(active) if active else max(self._newest.values())
        if candidate > INT64_MIN:
            self._watermark = max(self._watermark, candidate - self.allowed_lateness_ns)
        return self._watermark

    def partitions(self) -> dict[Hashable, int]:
        """Each partition's newest event time in ns (`INT64_MIN` before its first event)."""
        return dict(self._newest)

    def merge(self, other: WatermarkTracker) -> None:
        """Take in what `other` has seen (newest times, last activity, its watermark)."""
        for partition, newest in other._newest.items():
            if newest > self._newest.get(partition, INT64_MIN):
                self._newest[partition] = newest
            seen = other._seen[partition]
            self._seen[partition] = max(self._seen.get(partition, INT64_MIN), seen)
        for partition, floor in other._floors.items():
            self._floors[partition] = max(self._floors.get(partition, INT64_MIN), floor)
        self._watermark = max(self._watermark, other._watermark)
