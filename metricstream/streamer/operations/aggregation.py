"""`Aggregations`: a streamer's aggregators, flushed through it once per interval.

``streamer.aggregator(interval=10.0, max_series=10_000)`` returns an
`metricstream.aggregate.Aggregator`, the object the application records
into (``count``, ``gauge``, ``histogram``, ``distribution``, ``set``): it is
the aggregation core's own, so recording costs what the core costs and
nothing more. The streamer flushes it:

- once per interval, on the engine's batcher thread, as periodic work
  (`metricstream.streamer.engine.batcher.PeriodicTask`): the windows are
  aligned to the interval in wall-clock time (``[10k s, 10(k+1) s)``), and
  each one that has ended is sent as one event per series, timestamped at
  its start; an empty window sends nothing;
- on `EventStreamer.flush`, the windows that have ended by then;
- at shutdown, before the lanes are flushed, every window, the one still
  open included (its partial figures).

Its events enter the streamer's buffer as `send` would put them there, and
are counted from then on (accepted, then written or dropped with a
reason); they never wait for room (a window's events are bounded by
``max_series``), so under ``overflow="block"`` they may pass ``max_buffer``
by that much.

Aggregators are named; the same name returns the same aggregator, so any
module can reach the application's aggregator with ``streamer.aggregator()``
(``"default"``, which ``timed(..., aggregate=True)`` and the instruments'
``aggregate=True`` record into). After ``os.fork()`` the child's aggregators
are the same objects, emptied (`Aggregations.after_fork`).
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from metricstream._options import require_int, require_name
from metricstream.exceptions import ConfigError
from metricstream.streamer.engine.current import CurrentPipeline
from metricstream.streamer.health import AggregatorHealth

if TYPE_CHECKING:
    from metricstream.aggregate import Aggregator

__all__ = ["DEFAULT_AGGREGATOR", "Aggregations"]

DEFAULT_AGGREGATOR = "default"
"""The name of ``streamer.aggregator()`` without one, which ``aggregate=True`` records into."""

_NS = 1_000_000_000
_SOONEST = 0.001  # seconds: a window the wall clock has not quite ended yet is tried again then


class _Entry:
    """One aggregator, its clock and when (monotonic) its current window ends."""

    __slots__ = ("aggregator", "clock", "due")

    def __init__(self, aggregator: Aggregator, clock: Callable[[], int]) -> None:
        self.aggregator = aggregator
        self.clock = clock
        self.due = 0.0


class Aggregations:
    """The aggregators of one streamer, and the periodic work that flushes them.

    Args:
        current: Where their events go (the streamer's pipeline in this process).
        monotonic: Monotonic seconds (injectable for tests).

    Attributes:
        due: When (monotonic) the next window of any aggregator ends.
    """

    def __init__(
        self, current: CurrentPipeline, monotonic: Callable[[], float] = time.monotonic
    ) -> None:
        self._current = current
        self._monotonic = monotonic
        self._lock = threading.Lock()
        self._entries: dict[str, _Entry] = {}
        self._held = False
        self.due = math.inf

    def aggregator(
        self,
        name: str,
        interval: float | str,
        max_series: int,
        clock: Callable[[], int] | None,
    ) -> Aggregator:
        """Return the aggregator `name`, making it with these options if it is new.

        Raises:
            ConfigError: If an option is invalid, or the aggregator `name`
                exists with another interval or limit.
        """
        # The aggregation core is imported when a streamer first aggregates.
        from metricstream.aggregate import Aggregator
        from metricstream.aggregate._parse import parse_duration

        name = require_name("name", name)
        interval_ns = parse_duration("interval", interval)
        max_series = require_int("max_series", max_series, minimum=1)
        with self._lock:
            entry = self._entries.get(name)
            if entry is not None:
                found = entry.aggregator
                if (found.interval_ns, found.max_series) != (interval_ns, max_series):
                    raise ConfigError(
                        "interval" if found.interval_ns != interval_ns else "max_series",
                        f"the aggregator {name!r} exists with interval={found.interval_ns / _NS:g}"
                        f" s and max_series={found.max_series}; give another name for other "
                        "options",
                    )
                return found
            wall = clock if clock is not None else time.time_ns
            entry = _Entry(Aggregator(interval_ns / _NS, max_series, clock=wall), wall)
            self._schedule(entry, self._monotonic())
            self._entries = {**self._entries, name: entry}
            self.due = min(self.due, entry.due)
        self._current.pipeline.wake.set()  # the batcher's next wait counts this window
        return entry.aggregator

    def get(self, name: str = DEFAULT_AGGREGATOR) -> Aggregator:
        """The aggregator `name`, made with the default options if it is new."""
        entry = self._entries.get(name)
        if entry is not None:
            return entry.aggregator
        return self.aggregator(name, 10.0, 10_000, None)

    def _schedule(self, entry: _Entry, now: float) -> None:
        """Set `entry.due` to the end of its current window, on the monotonic clock."""
        wall = entry.clock()
        interval = entry.aggregator.interval_ns
        left = interval - wall % interval
        entry.due = now + max(left / _NS, _SOONEST)

    # --- the periodic work (PeriodicTask), on the batcher thread ----------------------

    def run(self, now: float) -> None:
        """Send the windows that have ended, of every aggregator that is due."""
        for entry in list(self._entries.values()):
            if now >= entry.due:
                self._emit(entry.aggregator.collect())
                self._schedule(entry, now)
        self.due = min((entry.due for entry in self._entries.values()), default=math.inf)

    def flush_ended(self) -> None:
        """Send every window that has ended by now (`EventStreamer.flush`)."""
        for entry in list(self._entries.values()):
            self._emit(entry.aggregator.collect())

    def flush_all(self) -> None:
        """Send every window, the open ones included (at shutdown)."""
        for entry in list(self._entries.values()):
            self._emit(entry.aggregator.collect_all())

    def _emit(self, events: Sequence[Any]) -> None:
        if not events:
            return
        pipeline = self._current.pipeline
        rows = [
            (event.measurement, event.tags, event.fields, event.timestamp_ns, None)
            for event in events
        ]
        with pipeline.intake.reentry.section():
            pipeline.intake.admit(rows)
        if len(pipeline.buffer) >= pipeline.wake_every:
            pipeline.wake.set()

    # --- health and fork -------------------------------------------------------------

    def health(self) -> dict[str, AggregatorHealth]:
        """Each aggregator's series, by name."""
        return {
            name: AggregatorHealth(
                interval=entry.aggregator.interval_ns / _NS,
                max_series=entry.aggregator.max_series,
                series=entry.aggregator.series_count,
                series_folded=entry.aggregator.series_folded,
            )
            for name, entry in self._entries.items()
        }

    def before_fork(self) -> None:
        """Hold every aggregator's locks while the process forks (then `after_fork`)."""
        self._lock.acquire()
        for entry in self._entries.values():
            entry.aggregator.before_fork()
        self._held = True

    def after_fork(self, *, child: bool) -> None:
        """Release what `before_fork` held; in the child, empty every aggregator.

        In a child whose fork `before_fork` did not see (nothing is held),
        the aggregators are emptied all the same.
        """
        held, self._held = self._held, False
        if held:
            for entry in self._entries.values():
                entry.aggregator.after_fork(child=child)
            self._lock.release()
        elif child:
            self._lock = threading.Lock()
            for entry in self._entries.values():
                entry.aggregator.before_fork()
                entry.aggregator.after_fork(child=True)
        if child:
            now = self._monotonic()
            for entry in self._entries.values():
                self._schedule(entry, now)
            self.due = min((entry.due for entry in self._entries.values()), default=math.inf)
