"""The event store's answers, computed in plain Python from the events as they were posted.

Nothing here uses metricstream: each posted event is read as the seed
describes it (``ts`` in unix milliseconds or ISO 8601, ``samplerate``,
``data``), ordered by its timestamp and then by the order the server
received it (the counter in its id, `order_of`), and each query document is
answered one event at a time.
"""

from __future__ import annotations

import datetime as dt
import re
import statistics
from collections import defaultdict
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

MISSING = object()


@dataclass(frozen=True)
class Posted:
    """One event as the reference sees it."""

    data: dict[str, Any]
    ts_ns: int
    weight: int
    order: tuple[int, int, int]


def ts_ns(value: Any) -> int:
    if isinstance(value, str) and not re.fullmatch(r"\s*[+-]?[\d.]+\s*", value):
        moment = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=dt.timezone.utc)
        delta = moment - dt.datetime(1970, 1, 1, tzinfo=dt.timezone.utc)
        return (delta.days * 86_400 + delta.seconds) * 10**9 + delta.microseconds * 1000
    return int(Decimal(str(value)) * 1_000_000)


def order_of(first_event_id: str, index: int, timestamp: int) -> tuple[int, int, int]:
    """(timestamp, generation, counter) of the request's event `index` (the id's parts)."""
    generation = int(first_event_id[16:22], 16)
    counter = int(first_event_id[22:], 16) + index
    return (timestamp, generation, counter)


def posted(events: list[dict[str, Any]], first_event_id: str) -> list[Posted]:
    found = []
    for index, event in enumerate(events):
        stamp = ts_ns(event["ts"])
        rate = int(event.get("samplerate", 1))
        found.append(
            Posted(event.get("data", {}), stamp, rate, order_of(first_event_id, index, stamp))
        )
    return found


def prop(event: Posted, key: str) -> Any:
    if key in ("measurement", "event"):
        return event.data.get("event", event.data.get("measurement", "event"))
    return event.data.get(key, MISSING)


def typed(value: Any) -> tuple[str, Any]:
    if isinstance(value, bool):
        return ("b", value)
    if isinstance(value, str):
        return ("s", value)
    if isinstance(value, int):
        return ("i", value)
    return ("f", float(value))


def text(value: Any) -> str | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, str):
        return value
    return repr(value) if isinstance(value, float) else str(value)


def passes(event: Posted, item: dict[str, Any]) -> bool:
    found = prop(event, item["key"])
    kind, value = item["type"], item.get("value")
    if kind == "all":
        return found is not MISSING
    if found is MISSING:
        return kind == "neq"
    if kind in ("eq", "neq"):
        same = typed(found) == typed(value) if not _numbers(found, value) else found == value
        return same if kind == "eq" else not same
    if kind == "in":
        return any(passes(event, {"type": "eq", "key": item["key"], "value": v}) for v in value)
    if kind == "regex":
        shown = text(found)
        return shown is not None and re.search(value, shown) is not None
    if not _numbers(found, value):
        return False
    return {"gt": found > value, "gte": found >= value, "lt": found < value, "lte": found <= value}[
        kind
    ]


def _numbers(a: Any, b: Any) -> bool:
    return all(isinstance(x, int | float) and not isinstance(x, bool) for x in (a, b))


def chosen(events: list[Posted], spec: dict[str, Any], start: Any, end: Any) -> list[Posted]:
    filters = [{"type": "all", "key": k} for k in spec.get("keys", [])] + spec.get("filters", [])
    return [
        e for e in events
        if (start is None or e.ts_ns >= ts_ns(start))
        and (end is None or e.ts_ns < ts_ns(end))
        and ("measurement" not in spec or prop(e, "measurement") == spec["measurement"])
        and all(passes(e, item) for item in filters)
    ]  # fmt: skip


def unique(events: list[Posted], key: str) -> int:
    return len({typed(prop(e, key)) for e in events if prop(e, key) is not MISSING})


def answer_sets(events: list[Posted], document: dict[str, Any]) -> dict[str, Any]:
    found = {}
    for spec in document["data"]:
        members = chosen(events, spec, document.get("start"), document.get("end"))
        keys = list(spec.get("unique", []))
        keys += [op["key"] for op in spec.get("operations", []) if op["key"] not in keys]
        found[spec["name"]] = {
            "count": len(members),
            "weighted_count": sum(e.weight for e in members),
            "unique": {key: unique(members, key) for key in keys},
        }
    return found


def answer_funnel(events: list[Posted], document: dict[str, Any]) -> list[dict[str, Any]]:
    """An exact-order funnel: steps in order of (timestamp, arrival), each at its earliest."""
    spec = document["funnel"]
    names = spec.get("order", spec.get("data"))
    sets = {s["name"]: s for s in document["data"]}
    members = [
        {id(e) for e in chosen(events, sets[name], document.get("start"), document.get("end"))}
        for name in names
    ]
    people: dict[tuple[Any, ...], list[Posted]] = defaultdict(list)
    for e in sorted(events, key=lambda e: e.order):
        values = [prop(e, key) for key in spec["match"]]
        if MISSING not in values:
            people[tuple(typed(v) for v in values)].append(e)
    counts = [0] * len(names)
    gaps: list[list[int]] = [[] for _ in names]
    for path in people.values():
        earliest: list[Posted] = []
        for step in range(len(names)):
            after = earliest[-1].order if earliest else None
            candidates = [
                e for e in path if id(e) in members[step] and (after is None or e.order > after)
            ]
            if not candidates:
                break
            earliest.append(candidates[0])
            counts[step] += 1
            if step:
                floor = earliest[step - 2].order if step > 1 else None
                reached = candidates[0].order
                previous = [
                    e for e in path
                    if id(e) in members[step - 1] and e.order < reached
                    and (floor is None or e.order > floor)
                ]  # fmt: skip
                gaps[step].append(candidates[0].ts_ns - previous[-1].ts_ns)
    before = [counts[k - 1] if k else counts[0] for k in range(len(names))]
    return [
        {
            "step": name,
            "count": counts[k],
            "conversion": counts[k] / counts[0] if counts[0] else 0.0,
            "from_previous": counts[k] / before[k] if before[k] else 0.0,
            "median_seconds": statistics.median(gaps[k]) / 1e9 if k and gaps[k] else None,
        }
        for k, name in enumerate(names)
    ]  # fmt: skip
