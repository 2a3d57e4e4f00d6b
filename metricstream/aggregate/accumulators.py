"""Accumulators: what one series keeps for one window, mergeable and rebuildable.

The same classes serve the in-process recorder (`Aggregator`) and the
event-time windows of the relay (`EventTimeWindows`):

- `Total`: an exact integer count (counters; ``count`` of events);
- `Stats`: count, sum, min, max and last of numbers (gauges; ``sum``,
  ``min``, ``max``, ``mean``, ``last`` of a property);
- `Buckets`: a histogram's counts per bucket and sum, reported as
  cumulative ``le_<bound>`` counts (values <= bound), exact;
- `Quantiles`: p50, p90, p99 and p999 from a DDSketch, each within 1% of
  the value of its rank (see `metricstream.aggregate._sketches`), plus the
  exact min, max, sum and count;
- `Unique`: the number of distinct members, exact up to a limit, then a
  HyperLogLog estimate (relative standard error about 1.6%).

Every accumulator merges with another of its kind (``a.merge(b)`` leaves in
``a`` what adding both streams would have), so windows rebuilt from parts, or
sessions joined by an event, give the same figures. Sums of floats may differ
in the last bits with the order of additions; everything else is exact.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from metricstream._validate import FLOAT_MAX, INT64_MIN
from metricstream.aggregate._sketches import hll_sketch, hll_union, quantile_sketch
from metricstream.exceptions import ConfigError

__all__ = [
    "DEFAULT_BUCKETS",
    "DEFAULT_EXACT_UNIQUE",
    "Buckets",
    "Quantiles",
    "Stats",
    "Total",
    "Unique",
    "bucket_bounds",
    "member_text",
]


class Total:
    """An exact integer count."""

    __slots__ = ("count",)

    def __init__(self) -> None:
        self.count = 0

    def add(self, n: int) -> None:
        """Add `n` (an int)."""
        self.count += n

    def merge(self, other: Total) -> None:
        """Add the count of `other`."""
        self.count += other.count


class Stats:
    """Count, sum, min, max and the last value (the one with the latest time) of numbers.

    Attributes:
        count: How many values were added.
        sum: Their sum (a float).
        min: The smallest (``inf`` while empty).
        max: The largest (``-inf`` while empty).
        last: The value added with the latest time; among values of equal
            time, the one added last.
        last_time: That time.
    """

    __slots__ = ("count", "last", "last_time", "max", "min", "sum")

    def __init__(self) -> None:
        self.count = 0
        self.sum = 0.0
        self.min = math.inf
        self.max = -math.inf
        self.last = 0.0
        self.last_time = INT64_MIN

    def add(self, value: float, time: int = 0) -> None:
        """Add one number (`time` orders the values for `last`; equal times keep the later)."""
        self.count += 1
        self.sum += value
        self.min = min(self.min, value)
        self.max = max(self.max, value)
        if time >= self.last_time:
            self.last = value
            self.last_time = time

    def merge(self, other: Stats) -> None:
        """Add the values of `other` (its last wins a tie of times)."""
        self.count += other.count
        self.sum += other.sum
        self.min = min(self.min, other.min)
        self.max = max(self.max, other.max)
        if other.count and other.last_time >= self.last_time:
            self.last = other.last
            self.last_time = other.last_time

    @property
    def mean(self) -> float:
        """The sum divided by the count (0.0 while empty)."""
        return self.sum / self.count if self.count else 0.0


DEFAULT_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0)
"""The bucket bounds of a histogram when none are given (prometheus_client's)."""


def _bound_text(bound: float) -> str:
    """The exact, shortest text of a bound: ``1000000``, ``1000001``, ``0.005``, ``1e+16``."""
    if bound.is_integer() and abs(bound) < 1e16:
        return str(int(bound))
    return repr(bound)


def bucket_bounds(buckets: object) -> tuple[tuple[float, ...], tuple[str, ...]]:
    """Check a histogram's bucket bounds; return them as floats and their field names.

    A bound's field is ``le_<bound>`` with the bound written exactly
    (``le_1000000`` and ``le_1000001`` stay apart); the last field is
    ``le_inf``.

    Args:
        buckets: Finite numbers, strictly increasing.

    Raises:
        ConfigError: (option ``buckets``) if there are none, or one is not a
            finite number, or they are unsorted or repeated, or two would
            get the same field name.
    """
    if isinstance(buckets, (str, bytes)) or not isinstance(buckets, Sequence) or not buckets:
        raise ConfigError("buckets", f"must be a non-empty list of numbers, not {buckets!r}")
    bounds: list[float] = []
    for bound in buckets:
        if isinstance(bound, bool) or not isinstance(bound, (int, float)):
            raise ConfigError("buckets", f"bound {bound!r} is not a number")
        value = float(bound)
        if not -FLOAT_MAX <= value <= FLOAT_MAX:
            raise ConfigError("buckets", f"bound {bound!r} is not finite; le_inf is always there")
        if bounds and value <= bounds[-1]:
            problem = "repeated" if value == bounds[-1] else "not sorted"
            raise ConfigError("buckets", f"bounds must increase strictly; {bound!r} is {problem}")
        bounds.append(value)
    names = (*(f"le_{_bound_text(bound)}" for bound in bounds), "le_inf")
    if len(set(names)) != len(names):
        raise ConfigError("buckets", f"two bounds would share a field name: {names}")
    return tuple(bounds), names


class Buckets:
    """A histogram: how many values fell in each bucket, and their sum.

    ``counts[i]`` counts the values ``v`` with ``bounds[i-1] < v <= bounds[i]``
    (``bisect_left(bounds, v)`` is ``i``); the last item counts the values
    above every bound.
    """

    __slots__ = ("counts", "sum")

    def __init__(self, size: int) -> None:
        self.counts = [0] * size
        self.sum = 0.0

    def add(self, index: int, value: float) -> None:
        """Count `value` in bucket `index` (``bisect_left(bounds, value)``)."""
        self.counts[index] += 1
        self.sum += value

    def merge(self, other: Buckets) -> None:
        """Add the counts and sum of `other` (same bounds)."""
        self.counts = [a + b for a, b in zip(self.counts, other.counts, strict=True)]
        self.sum += other.sum

    def fields(self, names: Sequence[str]) -> dict[str, Any]:
        """The cumulative ``le_`` counts under `names`, then ``sum`` and ``count``."""
        fields: dict[str, Any] = {}
        running = 0
        for name, count in zip(names, self.counts, strict=True):
            running += count
            fields[name] = running
        fields["sum"] = self.sum
        fields["count"] = running
        return fields


_PENDING_LIMIT = 512


class Quantiles:
    """Quantiles of numbers from a DDSketch, with their exact count, sum, min and max.

    Values wait in a short list and join the sketch in groups (the sketch is
    pure Python), so adding one costs an append.

    Args:
        option: What needs the sketch, for the error when ddsketch is missing.

    Raises:
        ConfigError: If ddsketch is not installed, naming the extra.
    """

    __slots__ = ("_pending", "_sketch", "stats")

    def __init__(self, option: str = "distribution") -> None:
        self._sketch = quantile_sketch(option)
        self._pending: list[float] = []
        self.stats = Stats()

    def add(self, value: float) -> None:
        """Add one finite number."""
        self.stats.add(value)
        pending = self._pending
        pending.append(value)
        if len(pending) >= _PENDING_LIMIT:
            self._fold()

    def _fold(self) -> None:
        add = self._sketch.add
        for value in self._pending:
            add(value)
        self._pending.clear()

    def merge(self, other: Quantiles) -> None:
        """Add the values of `other`."""
        self._fold()
        other._fold()
        self._sketch.merge(other._sketch)
        self.stats.merge(other.stats)

    def quantile(self, q: float) -> float:
        """The estimate of quantile `q` (0..1), within 1% of the value of rank ``floor(q*(n-1))``.

        Raises:
            ValueError: If no value was added.
        """
        self._fold()
        estimate = self._sketch.get_quantile_value(q)
        if estimate is None:
            raise ValueError("no values")
        # Clamping to the exact extremes only moves an estimate towards the truth.
        return float(min(max(estimate, self.stats.min), self.stats.max))


DEFAULT_EXACT_UNIQUE = 1000
"""Distinct members a set counts exactly before it turns into a HyperLogLog sketch."""


def member_text(member: object) -> str:
    """A set member as text: a str as it is, an int or float as its ``repr``.

    Raises:
        TypeError: For any other type (bools included).
    """
    if member.__class__ is str:
        return member
    if isinstance(member, (int, float)) and not isinstance(member, bool):
        return repr(member)
    if isinstance(member, str):
        return str.__str__(member)
    raise TypeError(f"a set member must be a str, int or float, not {type(member).__name__}")


class Unique:
    """How many distinct members: exact up to `limit`, then a HyperLogLog estimate.

    Args:
        limit: Distinct members kept exactly; one more turns the set into a
            sketch (relative standard error `HLL_RELATIVE_ERROR`, about 1.6%).
        option: What needs the sketch, for the error when datasketches is missing.
    """

    __slots__ = ("limit", "members", "option", "sketch")

    def __init__(self, limit: int = DEFAULT_EXACT_UNIQUE, option: str = "set") -> None:
        self.limit = limit
        self.option = option
        self.members: set[str] | None = set()
        self.sketch: Any = None

    def add(self, member: str) -> None:
        """Add one member (text: see `member_text`).

        Raises:
            ConfigError: When the set outgrows its limit and datasketches is
                missing (the member is not added then).
        """
        members = self.members
        if members is None:
            self.sketch.update(member)
        elif len(members) < self.limit or member in members:
            members.add(member)
        else:
            self._to_sketch()
            self.sketch.update(member)

    def _to_sketch(self) -> None:
        sketch = hll_sketch(self.option)
        for member in self.members or ():
            sketch.update(member)
        self.sketch = sketch
        self.members = None

    def merge(self, other: Unique) -> None:
        """Add the members of `other`."""
        if self.members is not None and other.members is not None:
            for member in other.members:
                self.add(member)
            return
        if self.members is not None:
            self._to_sketch()
        if other.members is not None:
            for member in other.members:
                self.sketch.update(member)
        else:
            self.sketch = hll_union(self.option, self.sketch, other.sketch)

    def estimate(self) -> int:
        """The number of distinct members: exact below the limit, else the sketch's estimate."""
        if self.members is not None:
            return len(self.members)
        estimate: float = self.sketch.get_estimate()
        return round(estimate)
