"""A plain-Python reference for queries, and the property rule checked against DuckDB's.

The functions here answer every query of `metricstream.query` from a list of
`MetricEvent` objects, one event at a time, with no SQL: the tests compare
the archive's answers with them. `both_ways` runs a test module twice: with
the query cache (which must then answer every query) and reading the archive.
"""

from __future__ import annotations

import datetime as dt
import math
import re
import statistics
import zoneinfo
from collections import Counter, defaultdict
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import orjson
import pytest

from tests.servers import require_module

require_module("duckdb", "metricstream.query runs on DuckDB (the query extra)")

import metricstream as ms  # noqa: E402
from metricstream.contract import EventBatch  # noqa: E402
from metricstream.query import Archive, Filter, QueryCache  # noqa: E402
from metricstream.query._cache import CACHE_ENV  # noqa: E402
from metricstream.sinks.jsonl import JsonLinesSink  # noqa: E402

MISSING = object()
Event = ms.MetricEvent


def _no_bypass(cache: QueryCache, problem: str) -> None:
    raise AssertionError(f"the query cache {cache.path} was not used: {problem}")


@pytest.fixture(scope="module", params=["cache", "archive"], autouse=True)
def both_ways(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    """Archives made without a `cache` argument use the cache, then read the archive only.

    With the cache, a query that could not use it fails the test.
    """
    with pytest.MonkeyPatch.context() as patch:
        if request.param == "cache":
            patch.setenv(CACHE_ENV, str(tmp_path_factory.mktemp("query-cache")))
            patch.setattr(QueryCache, "bypassed", _no_bypass)
        else:
            patch.setenv(CACHE_ENV, "off")
        yield request.param


def resolve(event: Event, key: str) -> Any:
    """The property rule: measurement (or event), then tags, then fields."""
    if key in ("measurement", "event"):
        return event.measurement
    if key in event.tags:
        return event.tags[key]
    if key in event.fields:
        return event.fields[key]
    return MISSING


def typed(value: Any) -> tuple[str, Any]:
    """A value's identity: its type and value (1, 1.0 and "1" differ; -0.0 is 0.0)."""
    if isinstance(value, str):
        return ("s", value)
    if isinstance(value, bool):
        return ("b", value)
    if isinstance(value, int):
        return ("i", int(value))
    return ("f", value + 0.0)


def sort_key(value: tuple[str, Any]) -> tuple[Any, ...]:
    kind, item = value
    return (
        kind,
        item if kind == "i" else 0,
        item if kind == "f" else 0.0,
        item if kind == "s" else ("true" if item is True else "false" if kind == "b" else ""),
    )


def plain(value: tuple[str, Any]) -> Any:
    return value[1]


def number_text(value: Any) -> str:
    """The text a regex reads in a number: its JSON text, as the archive holds it."""
    return orjson.dumps(int(value) if isinstance(value, int) else value).decode()


def weight(event: Event) -> int:
    """How many events one stands for: its samplerate when an integer of at least 1, else 1."""
    found = resolve(event, "samplerate")
    if isinstance(found, int) and not isinstance(found, bool) and found >= 1:
        return int(found)
    return 1


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


_OPS: dict[str, Callable[[Any, Any], bool]] = {
    "eq": lambda a, b: a == b,
    "gt": lambda a, b: a > b,
    "gte": lambda a, b: a >= b,
    "lt": lambda a, b: a < b,
    "lte": lambda a, b: a <= b,
}


def _compare(found: Any, op: str, value: Any) -> bool:
    if not _is_number(found):
        return False
    if isinstance(found, int) and isinstance(value, int):
        return _OPS[op](int(found), value)
    return _OPS[op](float(found), float(value))


def _equals(found: Any, value: Any) -> bool:
    if isinstance(value, str):
        return isinstance(found, str) and found == value
    if isinstance(value, bool):
        return isinstance(found, bool) and found == value
    return _compare(found, "eq", value)


def passes(event: Event, item: Filter) -> bool:
    found = resolve(event, item.key)
    if item.type == "all":
        return found is not MISSING
    if item.type == "eq":
        return _equals(found, item.value)
    if item.type == "neq":
        return not _equals(found, item.value)
    if item.type == "in":
        return any(_equals(found, value) for value in item.value)  # type: ignore[attr-defined]
    if item.type == "regex":
        text = number_text(found) if _is_number(found) else found
        return isinstance(text, str) and re.search(item.value, text) is not None  # type: ignore[arg-type]
    return _compare(found, item.type, item.value)


def select(
    events: Sequence[Event],
    name: str | None = None,
    filters: Sequence[Filter] = (),
    start: int | None = None,
    end: int | None = None,
) -> list[Event]:
    return [
        e
        for e in events
        if (name is None or e.measurement == name)
        and (start is None or e.timestamp_ns >= start)
        and (end is None or e.timestamp_ns < end)
        and all(passes(e, item) for item in filters)
    ]


def values_of(event: Event, keys: Sequence[str]) -> tuple[tuple[str, Any], ...] | None:
    found = [resolve(event, key) for key in keys]
    if any(value is MISSING for value in found):
        return None
    return tuple(typed(value) for value in found)


def unique(events: Sequence[Event], keys: Sequence[str]) -> int:
    return len({v for e in events if (v := values_of(e, keys)) is not None})


def total(events: Sequence[Event], key: str) -> int | float:
    integers = 0
    reals = []
    for e in events:
        value = resolve(e, key)
        if _is_number(value):
            if isinstance(value, int):
                integers += int(value)
            else:
                reals.append(value)
    return integers + math.fsum(reals) if reals else integers


def breakdown(
    events: Sequence[Event], keys: Sequence[str], n: int, uniques: Sequence[str] = ()
) -> list[tuple[tuple[Any, ...], int, dict[str, int]]]:
    groups: dict[tuple[Any, ...], list[Event]] = defaultdict(list)
    for e in events:
        found = values_of(e, keys)
        if found is not None:
            groups[found].append(e)
    ordered = sorted(groups.items(), key=lambda kv: (-len(kv[1]), [sort_key(v) for v in kv[0]]))[:n]
    return [
        (tuple(plain(v) for v in group), len(members), {k: unique(members, [k]) for k in uniques})
        for group, members in ordered
    ]


def series(events: Sequence[Event], bucket: str, timezone: str) -> list[tuple[dt.datetime, int]]:
    zone = zoneinfo.ZoneInfo(timezone)
    epoch = dt.datetime(1970, 1, 1, tzinfo=dt.timezone.utc)
    counts: Counter[dt.datetime] = Counter()
    for e in events:
        moment = (epoch + dt.timedelta(microseconds=e.timestamp_ns // 1000)).astimezone(zone)
        local = moment.replace(tzinfo=None, minute=0, second=0, microsecond=0)
        if bucket == "day":
            local = local.replace(hour=0)
        counts[local] += 1
    return sorted((start.replace(tzinfo=zone), count) for start, count in counts.items())


def position(event: Event) -> tuple[int, int]:
    """Where an event stands in a funnel's order: its timestamp, then its event id.

    An id counts when it is 32 hex digits whose first 16 are the timestamp
    plus 2**63; events without one are tied at their timestamp, before those
    with one.
    """
    ident = resolve(event, "event_id")
    if (
        isinstance(ident, str)
        and re.fullmatch(r"[0-9a-f]{32}", ident)
        and int(ident[:16], 16) - 2**63 == event.timestamp_ns
    ):
        return (event.timestamp_ns, int(ident[16:], 16))
    return (event.timestamp_ns, 0)


def funnel(
    events: Sequence[Event],
    steps: Sequence[Callable[[Event], bool]],
    match: Sequence[str],
    order: str = "exact_order",
    window: int | None = None,
) -> list[tuple[int, float | None]]:
    """(combinations reached, median ns from the previous step) per step, by brute force.

    For every event and step, the set of start times of every valid path
    ending there is built from the definition, with no shortcut. Events are
    ordered by `position`; times are measured on timestamps.
    """
    combos: dict[tuple[Any, ...], list[tuple[tuple[int, int], frozenset[int]]]] = defaultdict(list)
    for e in events:
        which = frozenset(i for i, step in enumerate(steps) if step(e))
        key = values_of(e, match)
        if which and key is not None:
            combos[key].append((position(e), which))
    counts = [0] * len(steps)
    gaps: list[list[int]] = [[] for _ in steps]
    for rows in combos.values():
        stamps = sorted({at for at, _ in rows})
        starts: list[list[set[int]]] = [[set() for _ in rows] for _ in steps]
        for k in range(len(steps)):
            for i, (at, which) in enumerate(rows):
                if k not in which:
                    continue
                if k == 0:
                    starts[0][i] = {at[0]}
                    continue
                for j, (before, _) in enumerate(rows):
                    if not before < at or not _adjacent(order, stamps, before, at):
                        continue
                    starts[k][i] |= {
                        s for s in starts[k - 1][j] if window is None or at[0] - s <= window
                    }
        for k in range(len(steps)):
            reached = [i for i in range(len(rows)) if starts[k][i]]
            if not reached:
                continue
            counts[k] += 1
            if k:
                first = min(rows[i][0] for i in reached)
                previous = [
                    rows[j][0][0]
                    for j in range(len(rows))
                    if rows[j][0] < first
                    and _adjacent(order, stamps, rows[j][0], first)
                    and any(window is None or first[0] - s <= window for s in starts[k - 1][j])
                ]
                gaps[k].append(first[0] - max(previous))
    return [
        (count, statistics.median(gap) if gap and k else None)
        for k, (count, gap) in enumerate(zip(counts, gaps, strict=True))
    ]


def _adjacent(
    order: str, stamps: list[tuple[int, int]], before: tuple[int, int], after: tuple[int, int]
) -> bool:
    if order != "strict":
        return True
    return not any(before < at < after for at in stamps)


def write_archive(
    path: Path,
    batches: Sequence[Sequence[Event]],
    compression: str = "zstd",
    rotate_bytes: int | None = None,
) -> None:
    sink = JsonLinesSink(path, compression=compression, rotate_bytes=rotate_bytes)
    for batch in batches:
        if batch:
            sink.write(sink.prepare(EventBatch(list(batch))))
    sink.close()


def append_as_written_before(
    path: Path, batches: Sequence[Sequence[Event]], compression: str = "zstd"
) -> None:
    """Append the bytes a sink writes for `batches` without a sink opening `path`.

    A sink that opens a file moves a torn tail aside first; files written by
    earlier versions, or copied together, can hold damage in the middle,
    which readers must still skip: this makes such files.
    """
    other = path.with_name(f"written-before-{path.name}")
    write_archive(other, batches, compression=compression)
    with open(path, "ab") as handle:
        handle.write(other.read_bytes())
    other.unlink()


class TestPropertyRule:
    """The SQL that resolves a property agrees with the plain-Python rule."""

    def test_measurement_then_tags_then_fields(self, tmp_path: Path) -> None:
        events = [
            Event(
                "view",
                tags={"user": "t"},
                fields={"user": "f", "n": 1},
                timestamp_ns=1,
                before_2001=True,
            ),
            Event(
                "view", tags={"other": "x"}, fields={"user": "f"}, timestamp_ns=2, before_2001=True
            ),
            Event(
                "view", tags={"event": "tagged"}, fields={"n": 1}, timestamp_ns=3, before_2001=True
            ),
            Event("view", fields={"user": 7}, timestamp_ns=4, before_2001=True),
            Event("view", fields={"user": 7.0}, timestamp_ns=5, before_2001=True),
            Event("view", fields={"user": ms.UInt(7)}, timestamp_ns=6, before_2001=True),
            Event("view", fields={"user": True}, timestamp_ns=7, before_2001=True),
            Event("view", fields={"n": 1}, timestamp_ns=8, before_2001=True),
            Event("cart", tags={"User": "case"}, fields={"n": 1}, timestamp_ns=9, before_2001=True),
        ]
        write_archive(tmp_path / "a.jsonl", [events], compression="none")
        archive = Archive(tmp_path / "a.jsonl")
        for key in ("user", "event", "measurement", "User", "n", "other"):
            expected = breakdown(events, [key], 100)
            found = archive.events().breakdown(key, n=100).value
            assert [(row.values, row.count) for row in found] == [
                (values, count) for values, count, _ in expected
            ], key
        rows = archive.events().breakdown("user", n=100).value
        # The tag "t" wins over the field "f" of the same event; the int and the
        # unsigned int 7 are one value, the float 7.0 another; ties go by type.
        assert [(row.values, row.count) for row in rows] == [
            ((7,), 2),
            ((True,), 1),
            ((7.0,), 1),
            (("f",), 1),
            (("t",), 1),
        ]
