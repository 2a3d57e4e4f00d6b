"""`EventSet`: the events of one name that pass filters in a time range, and what to ask of them.

Counting rules:

- ``unique(key)`` counts the distinct values of a property among the set's
  events that have it; ``unique([k1, k2])`` counts distinct combinations
  among the events that have all of them.
- ``sum(field)`` adds the numeric values of a property (integers exactly);
  events where it is absent, a string or a bool add nothing.
- ``breakdown(keys, n)`` groups the events that have every key by their
  values: the `n` largest groups by count, ties ordered by value (bools,
  then floats, integers, strings; each ascending).
- ``series(bucket, timezone)`` counts events per wall-clock hour or day in
  the timezone; buckets without events are left out.
- ``weighted_count()``, and the ``weighted_count`` of breakdown rows and
  series points, add up how many events each stands for: its
  ``samplerate`` when that is an integer of at least 1, else 1.
"""

from __future__ import annotations

import zoneinfo
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any, Protocol

from metricstream.exceptions import ConfigError
from metricstream.query._filters import Filter, parse_time
from metricstream.query._results import BreakdownRow, Result, SeriesPoint, Skipped
from metricstream.query._sql import (
    Params,
    Properties,
    decode_value_key,
    order_terms,
)

__all__ = ["BUCKETS", "Builder", "EventSet", "Runner", "as_filter", "as_keys"]

Builder = Callable[[Properties, Params], str]
"""Writes one statement over the ``ev`` relation, adding its values to the params."""

BUCKETS = ("hour", "day")
"""The bucket sizes of `EventSet.series`."""


class Runner(Protocol):
    """What an event set runs on (an `Archive`)."""

    def _rows(
        self, keys: Iterable[str], builders: Sequence[Builder], prefilter: Builder | None = None
    ) -> tuple[list[list[tuple[Any, ...]]], tuple[Skipped, ...]]: ...

    def _probe(self, sql: str, values: Mapping[str, object], option: str) -> None: ...


def as_filter(item: Filter | Mapping[str, object], where: str) -> Filter:
    """Return `item` as a `Filter` (a mapping has ``type``, ``key`` and ``value``).

    Raises:
        ConfigError: Naming `where` and the offending part.
    """
    if isinstance(item, Filter):
        return item
    if not isinstance(item, Mapping):
        raise ConfigError(where, f"expected a filter, not {item!r}")
    unknown = set(item) - {"type", "key", "value"}
    if unknown:
        raise ConfigError(where, f"unknown filter member(s) {', '.join(sorted(unknown))}")
    try:
        return Filter(str(item.get("type")), item.get("key"), item.get("value"))  # type: ignore[arg-type]
    except ConfigError as exc:
        raise ConfigError(f"{where}.{exc.option}", str(exc).split(": ", 1)[1]) from None


def as_keys(keys: str | Sequence[str], what: str) -> tuple[str, ...]:
    """Return one key or several as a tuple of non-empty strings.

    Raises:
        ConfigError: If a key is not a non-empty string, or none is given.
    """
    found = (keys,) if isinstance(keys, str) else tuple(keys)
    if not found:
        raise ConfigError(what, "name at least one property")
    for key in found:
        if not isinstance(key, str) or not key:
            raise ConfigError(what, f"expected property names, not {key!r}")
    return found


class EventSet:
    """The events of one measurement that pass every filter, in a time range.

    Made by `Archive.events`; each method runs one query over the archive.

    Args:
        runner: The archive.
        name: The measurement (event name); None means every event.
        filters: `Filter` objects or ``{"type", "key", "value"}`` mappings.
        start: Only events at or after this time (see `parse_time`).
        end: Only events before this time.
        label: What results call the set (default: the name, or ``*``).

    Raises:
        ConfigError: Naming the filter or time that is wrong.
    """

    def __init__(
        self,
        runner: Runner,
        name: str | None = None,
        filters: Iterable[Filter | Mapping[str, object]] = (),
        start: object = None,
        end: object = None,
        *,
        label: str | None = None,
    ) -> None:
        if name is not None and (not isinstance(name, str) or not name):
            raise ConfigError("name", f"expected an event name or None, not {name!r}")
        self.name = name
        self.filters = tuple(as_filter(item, f"filters[{i}]") for i, item in enumerate(filters))
        self.start = parse_time(start, "start")
        self.end = parse_time(end, "end")
        self.label = label or name or "*"
        self._runner = runner

    def __repr__(self) -> str:
        return f"EventSet({self.label!r}, filters={list(self.filters)!r})"

    def keys(self) -> set[str]:
        """The properties the set's filters read."""
        return {item.key for item in self.filters}

    def condition(self, properties: Properties, params: Params) -> str:
        """The SQL condition an ``ev`` row meets when its event is in the set."""
        parts = []
        if self.name is not None:
            parts.append(f"m = {params.add(self.name)}")
        if self.start is not None:
            parts.append(f"ts >= {params.add(self.start)}")
        if self.end is not None:
            parts.append(f"ts < {params.add(self.end)}")
        parts.extend(item.sql(properties, params) for item in self.filters)
        return "(" + " AND ".join(parts) + ")" if parts else "true"

    def check_patterns(self) -> None:
        """Let DuckDB compile each regex filter's pattern now.

        Raises:
            ConfigError: Naming the filter whose pattern RE2 refuses.
        """
        for index, item in enumerate(self.filters):
            if item.type == "regex":
                self._runner._probe(
                    "SELECT regexp_matches('', $pattern)",
                    {"pattern": item.value},
                    f"filters[{index}].value",
                )

    def _one(
        self, keys: Iterable[str], builder: Builder
    ) -> tuple[list[tuple[Any, ...]], tuple[Skipped, ...]]:
        self.check_patterns()
        results, skipped = self._runner._rows(self.keys() | set(keys), [builder])
        return results[0], skipped

    def count(self) -> Result[int]:
        """How many events are in the set."""
        rows, skipped = self._one((), self.count_sql)
        return Result(int(rows[0][0]), skipped)

    def count_sql(self, properties: Properties, params: Params) -> str:
        """The statement `count` runs."""
        return f"SELECT count(*) FROM ev WHERE {self.condition(properties, params)}"

    def unique(self, keys: str | Sequence[str]) -> Result[int]:
        """How many distinct values (or combinations of values) the keys take in the set.

        Raises:
            ConfigError: If no key is given.
        """
        found = as_keys(keys, "keys")

        def build(properties: Properties, params: Params) -> str:
            values = ", ".join(
                f"{properties.value_key(key)} AS u{i}" for i, key in enumerate(found)
            )
            present = " AND ".join(f"u{i} IS NOT NULL" for i in range(len(found)))
            return (
                f"SELECT count(*) FROM (SELECT DISTINCT * FROM (SELECT {values} FROM ev "
                f"WHERE {self.condition(properties, params)}) WHERE {present})"
            )

        rows, skipped = self._one(found, build)
        return Result(int(rows[0][0]), skipped)

    def weighted_count(self) -> Result[int]:
        """How many events the set's events stand for (the sum of their sample rates)."""
        rows, skipped = self._one((), self.summary_sql(()))
        return Result(int(rows[0][1] or 0), skipped)

    def summary_sql(self, unique: Sequence[str]) -> Builder:
        """A statement answering the count, weighted count and each key's unique count."""

        def build(properties: Properties, params: Params) -> str:
            columns = ["count(*)", "sum(w)"] + [f"count(DISTINCT u{i})" for i in range(len(unique))]
            values = "".join(
                f", {properties.value_key(key)} AS u{i}" for i, key in enumerate(unique)
            )
            return (
                f"SELECT {', '.join(columns)} FROM (SELECT {properties.weight()} AS w{values} "
                f"FROM ev WHERE {self.condition(properties, params)})"
            )

        return build

    def sum(self, field: str) -> Result[int | float]:
        """The sum of a property's numeric values (an int unless a float was added).

        Raises:
            ConfigError: If the field name is empty.
        """
        (key,) = as_keys(field, "field")

        def build(properties: Properties, params: Params) -> str:
            return (
                f"SELECT sum(i), fsum(r), count(r) FROM (SELECT {properties.integer(key)} AS i, "
                f"{properties.real(key)} AS r FROM ev WHERE {self.condition(properties, params)})"
            )

        rows, skipped = self._one((key,), build)
        integers, reals, real_count = rows[0]
        total = int(integers or 0)
        return Result(total + float(reals) if real_count else total, skipped)

    def breakdown(
        self, keys: str | Sequence[str], n: int = 10, unique: Sequence[str] = ()
    ) -> Result[list[BreakdownRow]]:
        """The `n` largest groups of events by the values of `keys`, with their uniques.

        Raises:
            ConfigError: If no key is given or `n` is not a positive int.
        """
        found = as_keys(keys, "keys")
        counted = as_keys(unique, "unique") if unique else ()
        if isinstance(n, bool) or not isinstance(n, int) or n < 1:
            raise ConfigError("n", f"expected a positive number of rows, not {n!r}")
        rows, skipped = self._one((*found, *counted), self.breakdown_sql(found, n, counted))
        width = len(found)
        return Result(
            [
                BreakdownRow(
                    tuple(decode_value_key(value) for value in row[:width]),
                    int(row[width]),
                    {key: int(row[width + 2 + i]) for i, key in enumerate(counted)},
                    int(row[width + 1]),
                )
                for row in rows
            ],
            skipped,
        )

    def breakdown_sql(self, keys: Sequence[str], n: int, unique: Sequence[str]) -> Builder:
        """The statement `breakdown` runs."""

        def build(properties: Properties, params: Params) -> str:
            groups = [f"b{i}" for i in range(len(keys))]
            values = ", ".join(
                [f"{properties.value_key(key)} AS b{i}" for i, key in enumerate(keys)]
                + [f"{properties.value_key(key)} AS u{i}" for i, key in enumerate(unique)]
            )
            counts = "".join(f", count(DISTINCT u{i}) AS d{i}" for i in range(len(unique)))
            grouped = (
                f"SELECT {', '.join(groups)}, count(*) AS c, sum(w) AS cw{counts} FROM "
                f"(SELECT {values}, {properties.weight()} AS w FROM ev "
                f"WHERE {self.condition(properties, params)}) "
                f"WHERE {' AND '.join(f'{g} IS NOT NULL' for g in groups)} "
                f"GROUP BY {', '.join(groups)}"
            )
            decoded = ", ".join(
                f"{properties.decode(key, f'b{i}')} AS v{i}" for i, key in enumerate(keys)
            )
            order = ", ".join(term for i in range(len(keys)) for term in order_terms(f"v{i}"))
            distinct = "".join(f", d{i}" for i in range(len(unique)))
            return (
                f"SELECT * FROM (SELECT {decoded}, c, cw{distinct} FROM ({grouped})) "
                f"ORDER BY c DESC, {order} LIMIT {params.add(n)}"
            )

        return build

    def series(
        self, bucket: str = "day", timezone: str = "UTC", unique: Sequence[str] = ()
    ) -> Result[list[SeriesPoint]]:
        """Events per wall-clock hour or day in `timezone`, with uniques per bucket.

        Raises:
            ConfigError: If the bucket is not ``hour`` or ``day``, or the
                timezone is unknown.
        """
        counted = as_keys(unique, "unique") if unique else ()
        zone = self.check_series(bucket, timezone)
        statement = self.series_sql(bucket, timezone, counted)
        rows, skipped = self._one(counted, statement)
        return Result(
            [
                SeriesPoint(
                    row[0].replace(tzinfo=zone),
                    int(row[1]),
                    {key: int(row[3 + i]) for i, key in enumerate(counted)},
                    int(row[2]),
                )
                for row in rows
            ],
            skipped,
        )

    def check_series(self, bucket: str, timezone: str) -> zoneinfo.ZoneInfo:
        """Check a bucket size and timezone; return the timezone.

        Raises:
            ConfigError: If either is unknown (to Python or to DuckDB).
        """
        if bucket not in BUCKETS:
            raise ConfigError("bucket", f"expected one of {', '.join(BUCKETS)}, not {bucket!r}")
        try:
            zone = zoneinfo.ZoneInfo(timezone)
        except (zoneinfo.ZoneInfoNotFoundError, ValueError, TypeError):
            raise ConfigError("timezone", f"unknown timezone {timezone!r}") from None
        self._runner._probe(
            "SELECT timezone($zone, TIMESTAMPTZ '2000-01-01 00:00:00+00')",
            {"zone": timezone},
            "timezone",
        )
        return zone

    def series_sql(self, bucket: str, timezone: str, unique: Sequence[str]) -> Builder:
        """The statement `series` runs."""

        def build(properties: Properties, params: Params) -> str:
            counts = "".join(f", count(DISTINCT u{i})" for i in range(len(unique)))
            values = "".join(
                f", {properties.value_key(key)} AS u{i}" for i, key in enumerate(unique)
            )
            micros = "(ts // 1000 - CASE WHEN ts % 1000 < 0 THEN 1 ELSE 0 END)"
            local = (
                f"timezone({params.add(timezone)}, CAST(make_timestamp({micros}) AS TIMESTAMPTZ))"
            )
            # Before DuckDB 1.5 a day is truncated to a DATE: the cast keeps one type.
            return (
                f"SELECT CAST(date_trunc({params.add(bucket)}, {local}) AS TIMESTAMP) AS bucket, "
                f"count(*), sum(w)"
                f"{counts} FROM (SELECT ts, {properties.weight()} AS w{values} FROM ev "
                f"WHERE {self.condition(properties, params)} "
                f"AND ts IS NOT NULL) GROUP BY bucket ORDER BY bucket"
            )

        return build
