"""Client-side aggregation: a batch of events becomes the Redis operations of a mapping.

Within a batch, identical keys are merged before anything is sent: one
``INCRBY n`` per count key, one ``INCRBY``/``INCRBYFLOAT`` per sum key (ints
and floats summed apart), one ``PFADD`` with all the members of a unique key,
one ``SADD`` per value index. The operations grow with the distinct keys of a
batch, not with its events. The batch is read column by column (one list of
values per property), so that most of the work runs in the interpreter's C
loops (`collections.Counter`, `set`, `zip`).

An operation is a key and its arguments, the first being a one-letter code
the Lua script dispatches on (`metricstream.sinks.redis_counters.script`):

- ``i N``: ``INCRBY key N`` (``INCRBYFLOAT`` when the key already holds a float);
- ``f X``: ``INCRBYFLOAT key X``;
- ``p MEMBER...``: ``PFADD key MEMBER...``;
- ``s MEMBER...``: ``SADD key MEMBER...`` (the value index);
- ``x UNIX``: ``EXPIREAT key UNIX`` (retention).
"""

from __future__ import annotations

import math
import re
from collections import Counter
from typing import Any

from metricstream.columns import EventColumns
from metricstream.event import FieldValue, UInt
from metricstream.exceptions import ConfigError, InvalidEventError
from metricstream.properties import property_columns
from metricstream.sinks.redis_counters.buckets import TimeBuckets
from metricstream.sinks.redis_counters.keys import KeyLayout, escape
from metricstream.sinks.redis_counters.mapping import CounterLimits, CounterMapping, Metric

__all__ = ["COMMANDS", "MAX_MEMBERS", "Op", "Planner", "value_text"]

Op = tuple[str, tuple[str, ...]]
"""One operation: (key, (code, argument...))."""

COMMANDS = {"i": "INCRBY", "f": "INCRBYFLOAT", "p": "PFADD", "s": "SADD", "x": "EXPIREAT"}
"""The Redis command of each operation code."""

MAX_MEMBERS = 1000
"""The most members one PFADD or SADD operation carries (Lua's unpack has a limit)."""

_INTEGER = re.compile(r"[+-]?\d+")
_MINUTE_NS = 60_000_000_000
_TEXT_TYPES = frozenset({str, type(None)})
_NUMBER_TYPES = frozenset({int, float, type(None)})
_Starts = tuple[int, int | None]
_Table = dict[_Starts, dict[Any, Any]]
"""(day start, hour start) -> {values: total or members}; values is a str for a
key of one name, a tuple of str for a compound one (for a unique key, the
values of its group; () when it has none)."""


def value_text(value: FieldValue) -> str:
    """The text of a property value in a key: bools as ``true``/``false``, floats by repr."""
    cls = value.__class__
    if cls is str:
        return value  # type: ignore[return-value]
    if cls is bool:
        return "true" if value else "false"
    if cls is float:
        return repr(value)
    return str(int(value))  # int, UInt


def _number(value: FieldValue | None) -> int | float | None:
    """The number a sum adds for a value field, or None when it is not a number."""
    cls = value.__class__
    if cls is int or cls is float or cls is UInt:
        return value if cls is not UInt else int(value)  # type: ignore[arg-type,return-value]
    if isinstance(value, str):
        text = value.strip()
        if _INTEGER.fullmatch(text):
            return int(text)
        try:
            number = float(text)
        except ValueError:
            return None
        return number if math.isfinite(number) else None
    return None


class _Aggregate:
    """The merged contributions of one batch, per metric, before they become keys."""

    __slots__ = ("counts", "floats", "ints", "uniques")

    def __init__(self) -> None:
        self.counts: dict[int, _Table] = {}
        self.ints: dict[int, _Table] = {}
        self.floats: dict[int, _Table] = {}
        self.uniques: dict[int, _Table] = {}


class Planner:
    """Turns batches of events into operations, for one mapping, bucketing and prefix.

    Args:
        mapping: The counters to feed.
        buckets: The time buckets.
        limits: The limits an event must respect.
        layout: The key layout (prefix).
        ttl_daily: Keep daily keys this many seconds after their bucket starts.
        ttl_hourly: Keep hourly keys this many seconds after their bucket starts.

    Raises:
        ConfigError: If the mapping is empty or names a property longer than
            the limits allow.
    """

    def __init__(
        self,
        mapping: CounterMapping,
        buckets: TimeBuckets,
        limits: CounterLimits,
        layout: KeyLayout,
        *,
        ttl_daily: int | None = None,
        ttl_hourly: int | None = None,
    ) -> None:
        if not mapping.metrics:
            raise ConfigError("mapping", "has no unique, count or sum keys")
        limits.check_mapping(mapping)
        self.mapping, self.buckets, self.limits, self.layout = mapping, buckets, limits, layout
        self._ttl = {"d": ttl_daily, "h": ttl_hourly}
        self._names = tuple(dict.fromkeys(n for metric in mapping.metrics for n in metric.names))
        per_bucket = 2 if buckets.hourly else 1
        compounds = sum(len(metric.names) > 1 for metric in mapping.metrics)
        self._count_keys = (
            len(mapping.metrics) * per_bucket > limits.max_metrics_per_event
            or compounds * per_bucket > limits.max_combinations
        )

    # --- events -> aggregate -----------------------------------------------------

    def _starts(self, events: EventColumns) -> tuple[list[_Starts], _Starts | None]:
        """The buckets of each event, or (``[]``, the buckets) when all share one day and hour."""
        stamps = events.timestamps
        if not stamps:
            return [], None
        starts_ns = self.buckets.starts_ns
        first = starts_ns(min(stamps))
        if starts_ns(max(stamps)) == first:  # buckets grow with time: all in between share them
            return [], first
        minutes = [stamp // _MINUTE_NS for stamp in stamps]
        found = {minute: self.buckets.minute_starts(minute) for minute in set(minutes)}
        starts: list[Any] = list(map(found.__getitem__, minutes))
        if None in found.values():  # a bucket boundary inside a minute: look each one up
            starts = [
                starts_ns(stamp) if start is None else start
                for start, stamp in zip(starts, stamps, strict=True)
            ]
        return starts, None

    def _columns(self, events: EventColumns) -> tuple[dict[str, list[Any]], set[str]]:
        """The text of each property of each event, and the names some event lacks."""
        columns: dict[str, list[Any]] = property_columns(events, self._names)
        holes: set[str] = set()
        for name, column in columns.items():
            # Tags and measurements are str: only a column that reached for a
            # field (it had a None) may hold other types.
            if None in column:
                if not set(map(type, column)) <= _TEXT_TYPES:
                    columns[name] = [
                        v if v is None or v.__class__ is str else value_text(v) for v in column
                    ]
                if None in columns[name]:
                    holes.add(name)
        return columns, holes

    def aggregate(self, events: EventColumns) -> _Aggregate:
        """Merge the contributions of `events`.

        Raises:
            InvalidEventError: With ``reason="limits"`` and the ``indexes`` of
                the events over the limits (the streamer drops those and
                prepares the others again).
        """
        starts, only = self._starts(events)
        columns, holes = self._columns(events)
        self._check_limits(events, columns)
        agg = _Aggregate()
        for number, metric in enumerate(self.mapping.metrics):
            keys = [columns[name] for name in metric.names]
            partial = not holes.isdisjoint(metric.names)
            if metric.kind == "add":
                agg.counts[number] = _counts(starts, keys, only, partial)
            elif metric.kind == "adv":
                values = self._numbers(events, metric.value_field or "")
                sums = _sums(starts, keys, values, only, partial)
                agg.ints[number], agg.floats[number] = sums
            else:
                agg.uniques[number] = _members(starts, keys, only, partial)
        return agg

    @staticmethod
    def _numbers(events: EventColumns, field: str) -> list[Any]:
        values: list[Any] = property_columns(events, (field,))[field]
        if not set(map(type, values)) <= _NUMBER_TYPES:
            values = [_number(value) for value in values]
        return values

    def _check_limits(self, events: EventColumns, columns: dict[str, list[Any]]) -> None:
        limit = self.limits.max_value_length
        over: dict[int, str] = {}
        for name, column in columns.items():
            if max(map(len, filter(None, column)), default=0) > limit:
                for position, value in enumerate(column):
                    if value is not None and len(value) > limit and position not in over:
                        over[position] = (
                            f"the value of {name!r} is {len(value)} characters; "
                            f"max_value_length={limit}"
                        )
        if self._count_keys:
            for position in range(len(events.timestamps)):
                problem = position not in over and self._too_many_keys(events, columns, position)
                if problem:
                    over[position] = problem
        if over:
            first = min(over)
            raise InvalidEventError(
                None,
                f"{len(over)} event(s) over the counter limits; the first (#{first}): "
                f"{over[first]}",
                indexes=tuple(sorted(over)),
                reason="limits",
            )

    def _too_many_keys(
        self, events: EventColumns, columns: dict[str, list[Any]], position: int
    ) -> str | None:
        per_bucket = 2 if self.buckets.hourly else 1
        fed = [m for m in self.mapping.metrics if self._feeds(m, events, columns, position)]
        keys = len(fed) * per_bucket
        compounds = sum(len(metric.names) > 1 for metric in fed) * per_bucket
        if keys > self.limits.max_metrics_per_event:
            limit = self.limits.max_metrics_per_event
            return f"it would feed {keys} keys; max_metrics_per_event={limit}"
        if compounds > self.limits.max_combinations:
            limit = self.limits.max_combinations
            return f"it would feed {compounds} compound keys; max_combinations={limit}"
        return None

    @staticmethod
    def _feeds(
        metric: Metric, events: EventColumns, columns: dict[str, list[Any]], position: int
    ) -> bool:
        if any(columns[name][position] is None for name in metric.names):
            return False
        if metric.kind != "adv":
            return True
        field = metric.value_field or ""
        row = events.subset(position, position + 1)
        return _number(property_columns(row, (field,))[field][0]) is not None

    # --- aggregate -> operations ---------------------------------------------------

    def operations(self, agg: _Aggregate) -> list[Op]:
        """Return the operations of an aggregate: counters, then value indexes."""
        metrics = self.mapping.metrics
        ops: list[Op] = []
        index: dict[tuple[Metric, str, int], list[str]] = {}
        for tables, code in ((agg.counts, "i"), (agg.ints, "i"), (agg.floats, "f")):
            for number, table in tables.items():
                metric = metrics[number]
                for (letter, start), totals in _per_bucket(table).items():
                    head = self.layout.counter(metric.kind, letter, start, metric.pattern, "")
                    expire_at = self._expire_at(letter, start)
                    for text, total in totals.items():
                        key = head + text
                        ops.append((key, (code, repr(total) if code == "f" else str(total))))
                        if expire_at is not None:
                            ops.append((key, ("x", expire_at)))
                    index.setdefault((metric, letter, start), []).extend(totals)
        for number, table in agg.uniques.items():
            metric = metrics[number]
            grouped = len(metric.names) > 1
            for (letter, start), sets in _per_bucket(table, union=True).items():
                head = self.layout.counter(metric.kind, letter, start, metric.pattern, "")
                expire_at = self._expire_at(letter, start)
                for text, members in sets.items():
                    key = head + text if grouped else head[:-1]
                    _add_members(ops, key, "p", members, expire_at)
                if grouped:
                    index.setdefault((metric, letter, start), []).extend(sets)
        for (metric, letter, start), texts in index.items():
            key = self.layout.index(metric.kind, letter, start, metric.pattern)
            _add_members(ops, key, "s", set(texts), self._expire_at(letter, start))
        return ops

    def _expire_at(self, letter: str, start: int) -> str | None:
        ttl = self._ttl[letter]
        return None if ttl is None else str(start + ttl)

    def plan(self, events: EventColumns) -> list[Op]:
        """`aggregate` then `operations`.

        Raises:
            InvalidEventError: For events over the limits (see `aggregate`).
        """
        return self.operations(self.aggregate(events))


def _by_starts(table: dict[Any, Any], only: _Starts | None, width: int, partial: bool) -> _Table:
    """Group a table by bucket, dropping the entries of events that lack a property.

    Its keys are the values when all events share the buckets `only`, else
    (starts, values...).
    """
    if only is not None:
        if partial:
            if width == 1:
                table.pop(None, None)
            else:
                table = {values: total for values, total in table.items() if None not in values}
        return {only: table} if table else {}
    grouped: _Table = {}
    for entry, amount in table.items():
        values = entry[1] if width == 1 else entry[1:]
        if partial and (values is None if width == 1 else None in values):
            continue
        found = grouped.get(entry[0])
        if found is None:
            grouped[entry[0]] = {values: amount}
        else:
            found[values] = amount
    return grouped


def _counts(
    starts: list[_Starts], columns: list[list[Any]], only: _Starts | None, partial: bool
) -> _Table:
    """How many events have each combination of values, per bucket."""
    if only is None:
        counted = Counter(zip(starts, *columns, strict=True))
    else:  # the usual case: count the values alone, cheaper keys
        counted = Counter(columns[0] if len(columns) == 1 else zip(*columns, strict=True))
    return _by_starts(counted, only, len(columns), partial)


def _sums(
    starts: list[_Starts],
    columns: list[list[Any]],
    values: list[Any],
    only: _Starts | None,
    partial: bool,
) -> tuple[_Table, _Table]:
    """The int total and the float total of the value field, per combination and bucket."""
    keys: Any
    if only is None:
        keys = zip(starts, *columns, strict=True)
    else:
        keys = columns[0] if len(columns) == 1 else zip(*columns, strict=True)
    ints: dict[Any, Any] = {}
    floats: dict[Any, Any] = {}
    kinds = set(map(type, values))
    if kinds <= _NUMBER_TYPES and (int not in kinds or float not in kinds):
        # One kind of number (the usual case): one table, a tighter loop.
        table = floats if float in kinds else ints
        get = table.get
        for key, value in zip(keys, values, strict=True):
            if value is not None:
                table[key] = get(key, 0) + value
    else:
        for key, value in zip(keys, values, strict=True):
            if value is None:
                continue
            table = floats if value.__class__ is float else ints
            table[key] = table.get(key, 0) + value
    width = len(columns)
    return _by_starts(ints, only, width, partial), _by_starts(floats, only, width, partial)


def _members(
    starts: list[_Starts], columns: list[list[Any]], only: _Starts | None, partial: bool
) -> _Table:
    """The distinct values of the last column, per group (the other columns) and bucket."""
    width = len(columns) - 1
    if only is not None and width == 0:
        members = set(columns[0])
        members.discard(None)
        return {only: {(): members}} if members else {}
    if only is None:
        groups: list[Any] = list(zip(starts, *columns[:-1], strict=True))
    else:
        groups = columns[0] if width == 1 else list(zip(*columns[:-1], strict=True))
    table: dict[Any, set[str]] = {}
    for group, member in zip(groups, columns[-1], strict=True):
        if member is None:
            continue
        found = table.get(group)
        if found is None:
            table[group] = {member}
        else:
            found.add(member)
    return _by_starts(table, only, width, partial)


def _text(values: Any) -> str:
    """The values part of a key: each value escaped, joined by ``~``."""
    if values.__class__ is str:
        if ":" in values or "\\" in values or "~" in values:
            return escape(values)
        return values
    raw = "~".join(values)
    if ":" in raw or "\\" in raw or raw.count("~") != len(values) - 1:
        return "~".join([escape(value) for value in values])
    return raw  # nothing to escape: the common case, checked in one pass


def _per_bucket(tables: _Table, union: bool = False) -> dict[tuple[str, int], dict[str, Any]]:
    """Spread per-bucket tables over their daily and hourly keys.

    Args:
        tables: (day, hour) -> {values: totals, or sets of members when `union`}.
        union: Merge entries that meet in one key by set union, not addition.

    Returns:
        (bucket letter, bucket start) -> {escaped values joined by ``~``: merged amount}.
    """
    merged: dict[tuple[str, int], dict[str, Any]] = {}
    for (day, hour), table in tables.items():
        texts = {_text(values): amount for values, amount in table.items()}
        if hour is not None:
            merged["h", hour] = texts  # an hour lies in one day: no other table has it
        daily = merged.get(("d", day))
        if daily is None:
            merged["d", day] = dict(texts) if hour is not None else texts
            continue
        for text, amount in texts.items():  # several hours of one day
            if text not in daily:
                daily[text] = amount
            else:
                daily[text] = (daily[text] | amount) if union else (daily[text] + amount)
    return merged


def _add_members(
    ops: list[Op], key: str, code: str, members: set[str], expire_at: str | None
) -> None:
    if len(members) <= MAX_MEMBERS:
        ops.append((key, (code, *members)))
    else:
        ordered = list(members)
        for first in range(0, len(ordered), MAX_MEMBERS):
            chunk = ordered[first : first + MAX_MEMBERS]
            ops.append((key, (code, *chunk)))
    if expire_at is not None:
        ops.append((key, ("x", expire_at)))
