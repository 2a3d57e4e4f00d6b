"""`RedisCounterReader`: read the counters a `RedisCounterSink` wrote, over a time range.

A query counts every bucket that overlaps ``[start, end]``, enumerated in
the reader's time zone (`TimeBuckets.overlapping`): a range that starts
inside a bucket counts that bucket whole, since a bucket is the finest
grain the counters keep. ``start`` and ``end`` are datetimes (naive ones
are local time in that zone) or unix seconds. Results list every bucket
counted, with its start and end (`CounterResult.buckets`), zero where
nothing was counted; `RedisCounterReader.buckets` says which buckets a
range covers (for `top`, whose answer is a list).
"""

from __future__ import annotations

import datetime as _dt
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from types import TracebackType
from typing import Any

from metricstream._options import require_choice, require_int, takes_options
from metricstream.exceptions import ConfigError
from metricstream.sinks.redis_counters import client as _client
from metricstream.sinks.redis_counters.config import CounterStoreOptions
from metricstream.sinks.redis_counters.encode import value_text
from metricstream.sinks.redis_counters.keys import (
    KINDS,
    KeyLayout,
    join_escaped,
    split_escaped,
)

__all__ = ["CounterResult", "RedisCounterReader"]

Moment = float | _dt.datetime
Number = int | float
_CHUNK = 1000


@dataclass(frozen=True)
class CounterResult:
    """A counter over a range of buckets.

    Attributes:
        total: The sum over the buckets counted (for a unique count: the
            size of their union, a HyperLogLog estimate).
        series: ``(bucket start, value)`` for every bucket counted, oldest first.
        buckets: ``(start, end)`` of every bucket counted, oldest first, in
            unix seconds (the end exclusive): the time the total covers,
            which may begin before the range asked for and end after it.
    """

    total: Number
    series: tuple[tuple[int, Number], ...]
    buckets: tuple[tuple[int, int], ...] = ()

    @property
    def covered(self) -> tuple[int, int] | None:
        """The start of the first bucket counted and the end of the last; None when none."""
        return (self.buckets[0][0], self.buckets[-1][1]) if self.buckets else None


def _number(raw: bytes | str | None) -> Number:
    if raw is None:
        return 0
    text = raw.decode() if isinstance(raw, bytes) else raw
    try:
        return int(text)
    except ValueError:
        return float(text)


class RedisCounterReader:
    """Read counts, sums, unique counts and top lists written by `RedisCounterSink`.

    Takes the options of `CounterStoreOptions` (each documented there) as its
    parameters: ``RedisCounterReader(url, *, prefix="ms:",
    buckets=TimeBuckets(), cluster=False)``, which must be the sink's.

    Raises:
        ConfigError: For an invalid URL or option.
    """

    @takes_options(CounterStoreOptions)
    def __init__(self, options: CounterStoreOptions) -> None:
        self.options = options
        self.layout = KeyLayout(options.prefix)
        self._redis: Any = None

    def __repr__(self) -> str:
        return (
            f"RedisCounterReader(url={_client.describe(self.options.url)!r}, "
            f"cluster={self.options.cluster}, "
            f"prefix={self.layout.prefix!r}, buckets={self.options.buckets!r})"
        )

    def __enter__(self) -> RedisCounterReader:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        """Close the connections. Idempotent."""
        redis_client, self._redis = self._redis, None
        if redis_client is not None:
            redis_client.close()

    @property
    def redis(self) -> Any:
        """The redis-py client (made on first use)."""
        if self._redis is None:
            self._redis = _client.connect(self.options.url, cluster=self.options.cluster)
        return self._redis

    # --- helpers -----------------------------------------------------------------

    def buckets(self, start: Moment, end: Moment, bucket: str = "d") -> list[tuple[int, int]]:
        """The (start, end) of every bucket a query over ``[start, end]`` counts, oldest first.

        Args:
            start: The start of the range (datetime or unix seconds).
            end: Its end, included.
            bucket: ``"d"`` or ``"h"``.

        Raises:
            ConfigError: If the bucket is unknown.
        """
        require_choice("bucket", bucket, ("d", "h"))
        return self.options.buckets.overlapping(
            self.options.buckets.to_seconds(start), self.options.buckets.to_seconds(end), bucket
        )

    def _range(self, start: Moment, end: Moment, bucket: str) -> list[int]:
        return [first for first, _ in self.buckets(start, end, bucket)]

    @staticmethod
    def _pattern(pattern: str) -> tuple[tuple[str, ...], str]:
        if not isinstance(pattern, str) or not pattern:
            raise ConfigError(
                "pattern", f"must be a non-empty key such as 'event', not {pattern!r}"
            )
        names = split_escaped(pattern)
        return names, join_escaped(names)

    @staticmethod
    def _values(values: Sequence[object], expected: int, pattern: str) -> str:
        if isinstance(values, (str, bytes)):
            values = (values,) if isinstance(values, str) else (values.decode(),)
        texts = [value_text(value) if not isinstance(value, str) else value for value in values]  # type: ignore[arg-type]
        if len(texts) != expected:
            raise ConfigError(
                "values", f"{pattern!r} takes {expected} value(s) in its order, not {len(texts)}"
            )
        return join_escaped(texts)

    def _get_many(self, keys: Sequence[str]) -> list[Any]:
        if self.options.cluster:
            return list(self.redis.mget_nonatomic(list(keys))) if keys else []
        found: list[Any] = []
        for first in range(0, len(keys), _CHUNK):
            found.extend(self.redis.mget(list(keys[first : first + _CHUNK])))
        return found

    # --- queries -------------------------------------------------------------------

    def count(
        self, pattern: str, values: Sequence[object], start: Moment, end: Moment, bucket: str = "d"
    ) -> CounterResult:
        """Count of one value combination of a count key over a range.

        Args:
            pattern: The key, as in the mapping (``"measurement~utm_source"``).
            values: The values, in the pattern's order (``("purchase", "google")``).
            start: The start of the range (datetime or unix seconds); the
                bucket holding it is counted whole.
            end: The end of the range, included.
            bucket: ``"d"`` or ``"h"``.

        Raises:
            ConfigError: If the values do not fit the pattern, or the bucket is unknown.
        """
        return self._counter("add", pattern, values, self.buckets(start, end, bucket), bucket)

    def sum(
        self, pattern: str, values: Sequence[object], start: Moment, end: Moment, bucket: str = "d"
    ) -> CounterResult:
        """Sum of one value combination of a sum key over a range (see `count`).

        Raises:
            ConfigError: If the values do not fit the pattern, or the bucket is unknown.
        """
        return self._counter("adv", pattern, values, self.buckets(start, end, bucket), bucket)

    def _counter(
        self,
        kind: str,
        pattern: str,
        values: Sequence[object],
        spans: list[tuple[int, int]],
        bucket: str,
    ) -> CounterResult:
        names, text = self._pattern(pattern)
        joined = self._values(values, len(names), pattern)
        starts = [start for start, _ in spans]
        keys = [self.layout.counter(kind, bucket, start, text, joined) for start in starts]
        numbers = [_number(raw) for raw in self._get_many(keys)]
        return CounterResult(sum(numbers), tuple(zip(starts, numbers, strict=True)), tuple(spans))

    def unique(
        self,
        field: str,
        start: Moment,
        end: Moment,
        bucket: str = "d",
        *,
        values: Sequence[object] = (),
    ) -> CounterResult:
        """Unique count over a range: the HyperLogLog union of its buckets.

        Args:
            field: The unique key, as in the mapping (``"ip"``, ``"org~user"``).
            start: The start of the range; the bucket holding it is counted whole.
            end: The end of the range, included.
            bucket: ``"d"`` or ``"h"``.
            values: For a compound key, the values of all its names but the
                last (``("org-001",)`` for ``"org~user"``).

        Returns:
            ``total`` is the estimated size of the union (0.81% standard
            error); ``series`` the estimate of each bucket.

        Raises:
            ConfigError: If the values do not fit the key, or the bucket is unknown.
        """
        names, text = self._pattern(field)
        joined = self._values(values, len(names) - 1, field) if len(names) > 1 else None
        spans = self.buckets(start, end, bucket)
        starts = [first for first, _ in spans]
        keys = [self.layout.counter("bmp", bucket, moment, text, joined) for moment in starts]
        return CounterResult(
            self._union(keys), tuple(zip(starts, self._each_count(keys), strict=True)), tuple(spans)
        )

    def _each(self, command: str, calls: Sequence[tuple[Any, ...]]) -> list[Any]:
        """Run one command per argument tuple.

        Pipelined on a single node; one by one on a cluster, whose pipelines
        refuse most commands.
        """
        if self.options.cluster:
            return [getattr(self.redis, command)(*args) for args in calls]
        pipe = self.redis.pipeline(transaction=False)
        for args in calls:
            getattr(pipe, command)(*args)
        return list(pipe.execute())

    def _each_count(self, keys: list[str]) -> list[int]:
        return [int(count) for count in self._each("pfcount", [(key,) for key in keys])]

    def _union(self, keys: list[str]) -> int:
        if not keys:
            return 0
        if not self.options.cluster:
            return int(self.redis.pfcount(*keys))
        # Keys of several slots cannot be counted together on a cluster: copy
        # the HyperLogLogs (plain strings) under one hash tag, count, delete.
        raw = self._get_many(keys)
        tag = uuid.uuid4().hex
        copies = [f"{self.layout.prefix}tmp:{{{tag}}}:{n}" for n, value in enumerate(raw) if value]
        if not copies:
            return 0
        values = [value for value in raw if value]
        self._each(
            "set", [(key, value, None, 60_000) for key, value in zip(copies, values, strict=True)]
        )
        try:
            return int(self.redis.pfcount(*copies))
        finally:
            self.redis.delete(*copies)

    def combinations(
        self, pattern: str, start: Moment, end: Moment, bucket: str = "d", *, kind: str = "count"
    ) -> set[tuple[str, ...]]:
        """The value combinations a key saw in a range, from the value index (no ``SCAN``).

        Args:
            pattern: The key, as in the mapping.
            start: The start of the range; the bucket holding it is counted whole.
            end: The end of the range, included.
            bucket: ``"d"`` or ``"h"``.
            kind: ``"count"``, ``"sum"`` or ``"unique"`` (the groups of a compound unique key).

        Raises:
            ConfigError: If the kind or bucket is unknown.
        """
        code = KINDS[require_choice("kind", kind, tuple(KINDS))]
        _, text = self._pattern(pattern)
        keys = [
            self.layout.index(code, bucket, moment, text)
            for moment in self._range(start, end, bucket)
        ]
        members: set[bytes] = set()
        if keys and not self.options.cluster:
            members = set(self.redis.sunion(keys))
        elif keys:
            for found in self._each("smembers", [(key,) for key in keys]):
                members |= set(found)
        return {split_escaped(member.decode()) for member in members}

    def top(
        self,
        pattern: str,
        start: Moment,
        end: Moment,
        n: int = 10,
        bucket: str = "d",
        *,
        kind: str = "count",
    ) -> list[tuple[tuple[str, ...], Number]]:
        """The value combinations of a key with the largest totals over a range.

        Args:
            pattern: The key, as in the mapping (``"measurement~org"``).
            start: The start of the range; the bucket holding it is counted
                whole (`buckets` says which buckets are counted).
            end: The end of the range, included.
            n: How many to list.
            bucket: ``"d"`` or ``"h"``.
            kind: ``"count"``, ``"sum"`` or ``"unique"`` (groups of a compound
                unique key, by the size of their union).

        Returns:
            ``(values, total)`` pairs, largest total first (ties by values).

        Raises:
            ConfigError: If `n` is not a positive int, or the kind or bucket is unknown.
        """
        require_int("n", n, minimum=1)
        combos = sorted(self.combinations(pattern, start, end, bucket, kind=kind))
        starts = self._range(start, end, bucket)
        _, text = self._pattern(pattern)
        totals: list[tuple[tuple[str, ...], Number]]
        if kind == "unique":
            totals = [
                (combo, self._union(self._keys("bmp", bucket, starts, text, [combo])))
                for combo in combos
            ]
        else:
            keys = self._keys(KINDS[kind], bucket, starts, text, combos)
            numbers = [_number(raw) for raw in self._get_many(keys)]
            per = len(starts)
            totals = [
                (combo, sum(numbers[i * per : (i + 1) * per])) for i, combo in enumerate(combos)
            ]
        totals.sort(key=lambda item: (-item[1], item[0]))
        return totals[:n]

    def _keys(
        self,
        kind: str,
        bucket: str,
        starts: list[int],
        pattern: str,
        combos: Iterable[tuple[str, ...]],
    ) -> list[str]:
        return [
            self.layout.counter(kind, bucket, moment, pattern, join_escaped(combo))
            for combo in combos
            for moment in starts
        ]
