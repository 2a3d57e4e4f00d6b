"""`Aggregator`: counters, gauges, histograms, distributions and sets, per interval.

Values are recorded on the application's threads and aggregated in the
process; `Aggregator.collect` returns one event per series and window
instead of one event per call. Windows are aligned to the interval in
wall-clock time: with ``interval=10.0`` a window is ``[10k s, 10(k+1) s)``,
and its events carry its start as their timestamp. A value counts in the
window that is current when it is recorded (the clock is read once per call
and is injectable). A window in which nothing was recorded emits nothing, and
neither does a series that received nothing in a window.

What each kind emits (measurement = the metric name, the series' tags):

- counter (`Aggregator.count`): ``count``, an exact int (the sum of `n`);
- gauge (`Aggregator.gauge`): ``last``, ``min``, ``max``, ``sum`` and
  ``count``, all floats (a gauge given ints and floats never changes type);
- histogram (`Aggregator.histogram`): cumulative counts ``le_<bound>`` (values
  <= bound, as Prometheus means them) and ``le_inf``, ``sum``, ``count``;
- distribution (`Aggregator.distribution`): ``p50``, ``p90``, ``p99`` and
  ``p999``, each within 1% of the exact value of rank ``floor(q*(n-1))``
  among the window's sorted values (DDSketch, relative accuracy 0.01), and
  the exact ``min``, ``max``, ``sum``, ``count``;
- set (`Aggregator.set`): ``unique``, the number of distinct members, exact
  up to ``exact_unique`` members, then a HyperLogLog estimate with a
  relative standard error of about 1.6% (within 4.9% for 99.7% of sets).

Distributions, and sets beyond their exact limit, need the ``aggregate``
extra (ddsketch, datasketches). Thread-safe: every update happens under one
lock, held for a few operations. Across ``os.fork()``, `before_fork` and
`after_fork` keep the locks usable in the child, which starts empty.
"""

from __future__ import annotations

import threading
import time
from bisect import bisect_left
from collections.abc import Callable, Sequence
from typing import Any, Protocol

from metricstream._options import require_int
from metricstream._validate import FLOAT_MAX, INT64_MAX, INT64_MIN, TagsLike
from metricstream.aggregate._parse import QUANTILES, parse_duration
from metricstream.aggregate.accumulators import (
    DEFAULT_BUCKETS,
    DEFAULT_EXACT_UNIQUE,
    Buckets,
    Quantiles,
    Stats,
    Total,
    Unique,
    bucket_bounds,
    member_text,
)
from metricstream.aggregate.series import Metric, Series, SeriesIndex
from metricstream.event import FieldValue, MetricEvent, trusted_event
from metricstream.exceptions import InvalidEventError

__all__ = ["Aggregator", "CountRecorder", "HistogramRecorder"]

_NO_TAGS: dict[str, str] = {}
_DEFAULT_HISTOGRAM = bucket_bounds(DEFAULT_BUCKETS)


def _new_state(kind: str, config: Any) -> Callable[[], Any]:
    if kind == "counter":
        return Total
    if kind == "gauge":
        return Stats
    if kind == "histogram":
        size = len(config[0]) + 1
        return lambda: Buckets(size)
    if kind == "distribution":
        return Quantiles
    return lambda: Unique(config)


def _number(name: str, value: object) -> float:
    """`value` as a finite float, or an error naming the metric."""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        try:
            number = float(value)
        except OverflowError:
            number = float("inf")
        if -FLOAT_MAX <= number <= FLOAT_MAX:
            return number
    raise InvalidEventError(name, f"metric {name!r}: {value!r} is not a finite number")


def _integer(name: str, n: object) -> int:
    if isinstance(n, int) and not isinstance(n, bool) and INT64_MIN <= n <= INT64_MAX:
        return int(n)
    raise InvalidEventError(name, f"counter {name!r}: n must be an int64, not {n!r}")


class Aggregator:
    """Counters, gauges, histograms, distributions and sets aggregated per interval.

    Args:
        interval: The window length: seconds, or text such as ``"10s"``.
        max_series: The most series; a new series beyond it is folded into
            its name's ``overflow=true`` series (`series_folded` counts them).
        clock: Returns the wall-clock time in ns (default `time.time_ns`).
        exact_unique: Distinct members a set counts exactly before it turns
            into a HyperLogLog sketch.

    Raises:
        ConfigError: If an option is invalid, naming it.
    """

    def __init__(
        self,
        interval: float | str = 10.0,
        max_series: int = 10_000,
        *,
        clock: Callable[[], int] | None = None,
        exact_unique: int = DEFAULT_EXACT_UNIQUE,
    ) -> None:
        self.interval_ns = parse_duration("interval", interval)
        self.max_series = require_int("max_series", max_series, minimum=1)
        self._exact_unique = require_int("exact_unique", exact_unique, minimum=0)
        self._clock = clock if clock is not None else time.time_ns
        self._index = SeriesIndex(self.max_series, _new_state)
        self._counters = self._index.lookups["counter"]
        self._histograms = self._index.lookups["histogram"]
        self._lock = threading.Lock()
        self._acquire = self._lock.acquire
        self._release = self._lock.release
        self._start = 0
        self._end = INT64_MIN  # the first call opens the first window
        self._token = object()
        self._touched: list[Any] = []  # series, state, series, state...
        self._ended: list[tuple[int, list[Any]]] = []
        self.count = _count_recorder(self)
        self.histogram = _histogram_recorder(self)

    @property
    def series_count(self) -> int:
        """How many series exist (the ``overflow`` ones not included)."""
        return len(self._index)

    @property
    def series_folded(self) -> int:
        """How many distinct series were folded into ``overflow=true`` series."""
        return self._index.folded

    count: CountRecorder
    """Add to a counter: ``count(name, n=1, tags=None)`` (see `CountRecorder`)."""

    histogram: HistogramRecorder
    """Count a value in a histogram: ``histogram(name, value, tags=None, buckets=...)``
    (see `HistogramRecorder`)."""

    def _find_histogram(
        self, name: str, tags: TagsLike | None, buckets: Sequence[float]
    ) -> Series:
        config = _DEFAULT_HISTOGRAM if buckets is DEFAULT_BUCKETS else bucket_bounds(buckets)
        return self._index.find("histogram", name, tags, config)

    def gauge(self, name: str, value: float, tags: TagsLike | None = None) -> None:
        """Set the gauge `name` with `tags` to `value` (min, max, sum and count follow it).

        Raises:
            InvalidEventError: If the name, a tag or the value is invalid.
            ConfigError: If `name` is recorded as another kind.
        """
        if value.__class__ is not float or not -FLOAT_MAX <= value <= FLOAT_MAX:
            value = _number(name, value)
        self._add(self._index.find("gauge", name, tags), value)

    def distribution(self, name: str, value: float, tags: TagsLike | None = None) -> None:
        """Add `value` to the distribution `name` with `tags` (quantiles per window).

        Raises:
            InvalidEventError: If the name, a tag or the value is invalid.
            ConfigError: If ddsketch is missing (the ``aggregate`` extra), or
                `name` is recorded as another kind.
        """
        if value.__class__ is not float or not -FLOAT_MAX <= value <= FLOAT_MAX:
            value = _number(name, value)
        self._add(self._index.find("distribution", name, tags), value)

    def set(self, name: str, member: str | int | float, tags: TagsLike | None = None) -> None:
        """Add `member` to the set `name` with `tags` (distinct members per window).

        Args:
            name: The metric name.
            member: A str, int or float; members are told apart by their
                text (``1`` and ``"1"`` are one member).
            tags: Tag keys to values.

        Raises:
            InvalidEventError: If the name, a tag or the member is invalid.
            ConfigError: If the set outgrows its exact limit and datasketches
                is missing (the ``aggregate`` extra), or `name` is recorded
                as another kind.
        """
        try:
            text = member_text(member)
        except TypeError as exc:
            raise InvalidEventError(name, f"set {name!r}: {exc}") from None
        self._add(self._index.find("set", name, tags, self._exact_unique), text)

    def _add(self, series: Series, value: object) -> None:
        now = self._clock()
        with self._lock:
            if now >= self._end:
                self._roll(now)
            state = series.state if series.window is self._token else self._fresh(series)
            state.add(value)

    # --- windows ------------------------------------------------------------------

    def _roll(self, now: int) -> None:
        """Close the current window and open the one holding `now` (under the lock)."""
        if self._touched:
            self._ended.append((self._start, self._touched))
            self._touched = []
        self._start = now - now % self.interval_ns
        self._end = self._start + self.interval_ns
        self._token = object()

    def _fresh(self, series: Series) -> Any:
        """Give `series` an empty accumulator in the current window (under the lock)."""
        state = series.metric.new_state()
        series.state = state
        series.window = self._token
        self._touched += (series, state)
        return state

    def collect(self, now_ns: int | None = None) -> list[MetricEvent]:
        """Return the events of every window that has ended by `now_ns`, oldest first.

        Args:
            now_ns: The time in ns (default: the clock's).

        Returns:
            One event per series per window, timestamped at the window's
            start; a window is returned once.
        """
        now = self._clock() if now_ns is None else now_ns
        with self._lock:
            if now >= self._end:
                self._roll(now)
            ended, self._ended = self._ended, []
        return _events(ended)

    def before_fork(self) -> None:
        """Hold the recorder's locks while the process forks (then call `after_fork`).

        A fork copies a lock in the state it is in: one held by another
        thread at that moment would stay held in the child, whose recorders
        would wait for it forever.
        """
        self._index.lock.acquire()
        self._lock.acquire()

    def after_fork(self, *, child: bool) -> None:
        """Release what `before_fork` held; in the child, forget every series and window.

        The recorders users hold (``count = aggregator.count``) keep working,
        on the empty aggregator.
        """
        if child:
            self._index.clear()
            self._touched = []
            self._ended = []
            self._end = INT64_MIN
            self._token = object()
        self._lock.release()
        self._index.lock.release()

    def collect_all(self) -> list[MetricEvent]:
        """Return the events of every window, the current one included (at shutdown).

        Values recorded afterwards in the same window start its figures again.
        """
        with self._lock:
            if self._touched:
                self._ended.append((self._start, self._touched))
                self._touched = []
                self._token = object()
            ended, self._ended = self._ended, []
        return _events(ended)


class CountRecorder(Protocol):
    """`Aggregator.count`: add `n` to the counter `name` with `tags`."""

    def __call__(self, name: str, n: int = 1, tags: TagsLike | None = None) -> None:
        """Add `n` to the counter `name` with `tags`.

        Args:
            name: The metric name.
            n: An int (negative to subtract).
            tags: Tag keys to values (a mapping or (key, value) pairs).

        Raises:
            InvalidEventError: If the name, a tag or `n` is invalid.
            ConfigError: If `name` is recorded as another kind.
        """


class HistogramRecorder(Protocol):
    """`Aggregator.histogram`: count `value` in the histogram `name` with `tags`."""

    def __call__(
        self,
        name: str,
        value: float,
        tags: TagsLike | None = None,
        buckets: Sequence[float] = DEFAULT_BUCKETS,
    ) -> None:
        """Count `value` in the histogram `name` with `tags`.

        Args:
            name: The metric name.
            value: A finite number.
            tags: Tag keys to values (a mapping or (key, value) pairs).
            buckets: The upper bounds, strictly increasing and finite, read
                when a series of `name` is made; every series of a name has
                the same buckets (default: prometheus_client's).

        Raises:
            InvalidEventError: If the name, a tag or the value is invalid.
            ConfigError: If the buckets are invalid or differ from the
                name's, or `name` is recorded as another kind.
        """


# The two hot paths are closures made once per aggregator: every name they use
# is a local or a cell, and the work that can be decided per series was.


def _count_recorder(aggregator: Aggregator) -> CountRecorder:
    lookups = aggregator._counters
    find = aggregator._index.find
    clock, acquire, release = aggregator._clock, aggregator._acquire, aggregator._release
    no_tags = _NO_TAGS
    one = 1

    def count(name: str, n: int = 1, tags: TagsLike | None = no_tags) -> None:
        """Add `n` to the counter `name` with `tags` (see `CountRecorder`)."""
        # An explicit None fails the first lookup (TypeError) and takes `find`.
        try:
            key, table, size = lookups[name]
            series = table[key(tags)]
        except (KeyError, TypeError):
            series = find("counter", name, tags)
        else:
            if len(tags) != size:  # type: ignore[arg-type]
                series = find("counter", name, tags)
        if n is not one and (n.__class__ is not int or not INT64_MIN <= n <= INT64_MAX):
            n = _integer(name, n)
        now = clock()
        acquire()
        try:
            if now >= aggregator._end:
                aggregator._roll(now)
            # Total.add, inlined.
            if series.window is aggregator._token:
                series.state.count += n
            else:
                aggregator._fresh(series).count += n
        finally:
            release()

    return count


def _histogram_recorder(aggregator: Aggregator) -> HistogramRecorder:
    lookups = aggregator._histograms
    find = aggregator._find_histogram
    clock, acquire, release = aggregator._clock, aggregator._acquire, aggregator._release
    no_tags = _NO_TAGS

    def histogram(
        name: str,
        value: float,
        tags: TagsLike | None = no_tags,
        buckets: Sequence[float] = DEFAULT_BUCKETS,
    ) -> None:
        """Count `value` in the histogram `name` with `tags` (see `HistogramRecorder`)."""
        # An explicit None fails the first lookup (TypeError) and takes `find`.
        try:
            key, table, size = lookups[name]
            series = table[key(tags)]
        except (KeyError, TypeError):
            series = find(name, tags, buckets)
        else:
            if len(tags) != size:  # type: ignore[arg-type]
                series = find(name, tags, buckets)
        if value.__class__ is not float or not -FLOAT_MAX <= value <= FLOAT_MAX:
            value = _number(name, value)
        index = bisect_left(series.bounds, value)
        now = clock()
        acquire()
        try:
            if now >= aggregator._end:
                aggregator._roll(now)
            # Buckets.add, inlined.
            if series.window is aggregator._token:
                state = series.state
            else:
                state = aggregator._fresh(series)
            state.counts[index] += 1
            state.sum += value
        finally:
            release()

    return histogram


def _events(ended: list[tuple[int, list[Any]]]) -> list[MetricEvent]:
    events = []
    for start, touched in ended:
        for series, state in zip(touched[::2], touched[1::2], strict=True):
            metric = series.metric
            fields = _FIELDS[metric.kind](metric, state)
            if fields:
                events.append(trusted_event(metric.name, series.tags(), fields, start, None))
    return events


def _gauge_fields(_metric: Metric, state: Stats) -> dict[str, FieldValue]:
    return {
        "last": state.last,
        "min": state.min,
        "max": state.max,
        "sum": state.sum,
        "count": float(state.count),
    }


def _distribution_fields(_metric: Metric, state: Quantiles) -> dict[str, FieldValue]:
    stats = state.stats
    if not stats.count:
        return {}
    fields: dict[str, FieldValue] = {prefix: state.quantile(q) for q, prefix in QUANTILES}
    fields.update(min=stats.min, max=stats.max, sum=stats.sum, count=stats.count)
    return fields


_FIELDS: dict[str, Callable[[Metric, Any], dict[str, FieldValue]]] = {
    "counter": lambda _metric, state: {"count": state.count},
    "gauge": _gauge_fields,
    "histogram": lambda metric, state: state.fields(metric.config[1]),
    "distribution": _distribution_fields,
    "set": lambda _metric, state: {"unique": state.estimate()} if state.estimate() else {},
}
