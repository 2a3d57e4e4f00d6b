"""The body of ``POST /events``, checked and turned into events (``events.schema.json``).

``{"events": [{"ts": ..., "samplerate": ..., "data": {...}}]}``, where each
event becomes an event of the batch (`metricstream.columns.EventColumns`):

- ``ts``: unix milliseconds (a number or numeric text, fractions kept to
  the nanosecond) or ISO 8601 text (UTC when it names no offset); absent or
  null, the time the request arrived;
- ``samplerate``: how many events this one stands for, an integer of at
  least 1 (a number or numeric text); absent, 1. Stored as the field
  ``samplerate``;
- ``data``: the event's dimensions, each a string, number or bool, stored
  as fields of those types. ``data.event`` or ``data.measurement``, a
  string, names the event's measurement instead (both are the measurement
  in queries); without them it is `ServerConfig.measurement`. ``event_id``
  and ``samplerate`` are the server's and cannot be dimensions.

Every event also gets the field ``event_id`` (`metricstream.query.format_event_id`).
The first problem found answers 400 with its path (``events[3].ts``) and
nothing of the request is stored.

How: the body is checked a column at a time (every ``ts``, every
``samplerate``, every ``data`` at once; the dimensions by
`metricstream._validate.fields_needing_checks`), and each parsed ``data``
object that needs no change becomes its event's fields as it is. The events
that need more (ISO 8601 times, numeric text, a measurement of their own,
keys not seen before, big integers, anything wrong) are each checked in
full, one after the other in order, so the first problem found is the
first in the body, as if each event were checked in turn.

The JSON Schema beside this module documents the same rules;
`tests/test_server_events.py` checks that both accept the same bodies.
"""

from __future__ import annotations

import datetime as _dt
import decimal
import functools
import importlib.resources
import math
import re
from collections.abc import Callable
from typing import Any

import orjson

from metricstream._validate import fields_needing_checks
from metricstream.columns import EventColumns, FieldColumns
from metricstream.event import MetricEvent, UInt, shared_tags
from metricstream.exceptions import InvalidEventError
from metricstream.query import EVENT_ID_KEY
from metricstream.server._errors import ApiError

__all__ = ["IdsFor", "event_list", "events_schema", "first_event_id", "member_path", "read_events"]

WEIGHT_KEY = "samplerate"
RESERVED = frozenset({EVENT_ID_KEY, WEIGHT_KEY})
MEASUREMENT_KEYS = ("event", "measurement")
_NS_PER_MS = 1_000_000
_INT64 = 1 << 63
_UINT64 = 1 << 64
_NUMBER = re.compile(r"\s*[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?\s*")
_INTEGER = re.compile(r"\s*\+?\d+\s*")
_PLAIN_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_EPOCH = _dt.datetime(1970, 1, 1, tzinfo=_dt.timezone.utc)


@functools.cache
def events_schema() -> dict[str, Any]:
    """The JSON Schema of the body of ``POST /events`` (shipped with the package)."""
    text = importlib.resources.files("metricstream.server").joinpath("events.schema.json")
    schema: dict[str, Any] = orjson.loads(text.read_bytes())
    return schema


def member_path(parent: str, key: str) -> str:
    """``parent.key``, or ``parent["key"]`` when the key is not a plain name."""
    if _PLAIN_NAME.fullmatch(key):
        return f"{parent}.{key}"
    return f"{parent}[{orjson.dumps(key).decode()}]"


def _ms_to_ns(value: float | str, where: str) -> int:
    """Milliseconds as nanoseconds, from the number's decimal text (so 0.5 ms is 500,000 ns)."""
    if isinstance(value, int):
        found = value * _NS_PER_MS
    elif isinstance(value, str) or math.isfinite(value):
        exact = decimal.Decimal(value if isinstance(value, str) else repr(value))
        if exact.adjusted() > 15:
            raise ApiError(400, f"{value!r} ms is outside the years 1677 to 2262", where)
        found = round(exact * _NS_PER_MS)
    else:
        raise ApiError(400, f"expected a finite number of milliseconds, not {value!r}", where)
    if not -_INT64 <= found < _INT64:
        raise ApiError(400, f"{value!r} ms is outside the years 1677 to 2262", where)
    return found


def _timestamp(value: object, arrival_ns: int, where: str) -> int:
    if value is None:
        return arrival_ns
    if value.__class__ is int and -_MS_LIMIT <= value < _MS_LIMIT:
        return value * _NS_PER_MS
    if isinstance(value, bool):
        raise ApiError(400, f"expected unix milliseconds or ISO 8601, not {value!r}", where)
    if isinstance(value, int | float):
        return _ms_to_ns(value, where)
    if not isinstance(value, str):
        raise ApiError(400, f"expected unix milliseconds or ISO 8601, not {value!r}", where)
    if _NUMBER.fullmatch(value):
        return _ms_to_ns(value.strip() if any(c in value for c in ".eE") else int(value), where)
    try:
        moment = _dt.datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
    except ValueError:
        raise ApiError(
            400, f"expected unix milliseconds or ISO 8601, not {value!r}", where
        ) from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=_dt.timezone.utc)
    delta = moment - _EPOCH
    return (delta.days * 86_400 + delta.seconds) * 1_000_000_000 + delta.microseconds * 1000


def _samplerate(value: object, where: str) -> int:
    if value is None:
        return 1
    found: object = value
    if (isinstance(value, str) and _INTEGER.fullmatch(value)) or (
        isinstance(value, float) and value.is_integer()
    ):
        found = int(value)
    if isinstance(found, bool) or not isinstance(found, int) or not 1 <= found < _INT64:
        raise ApiError(400, f"expected an integer of at least 1, not {value!r}", where)
    return found


def _odd_value(value: object, where: str) -> object:
    """A value that is not a plain string, float, bool or int64: a big int, or an error."""
    if isinstance(value, str | bool | float):
        return value
    if isinstance(value, int):
        if -_INT64 <= value < _INT64:
            return value
        if 0 <= value < _UINT64:
            return UInt(value)
        raise ApiError(400, f"the integer {value} does not fit in 64 bits", where)
    if value is None:
        raise ApiError(400, "null is not a value (leave the dimension out)", where)
    kind = "an object" if isinstance(value, dict) else "a list"
    raise ApiError(400, f"expected a string, number or bool, not {kind}", where)


def _special(key: str, value: object, named: str | None, measurement: str, where: str) -> str:
    """The measurement once `key` (a server's or a measurement's name) is read."""
    path = member_path(where, key)
    if key in RESERVED:
        raise ApiError(400, f"{key!r} is set by the server, not a dimension", path)
    if not isinstance(value, str):
        raise ApiError(400, f"{key!r} names the measurement: expected a string", path)
    if named is not None and value != measurement:
        raise ApiError(400, f"{key!r} and {named!r} name two measurements", path)
    return value


def _dimensions(data: object, default: str, where: str) -> tuple[str, dict[str, Any]]:
    if data.__class__ is not dict:
        raise ApiError(400, f"expected an object of dimensions, not {data!r}", where)
    measurement = default
    fields: dict[str, Any] = {}
    named: str | None = None
    for key, value in data.items():
        if key in _SPECIAL:
            measurement = _special(key, value, named, measurement, where)
            named = key
            continue
        kind = value.__class__
        if (
            kind is str
            or kind is float
            or kind is bool
            or (kind is int and -_INT64 <= value < _INT64)
        ):
            fields[key] = value
        else:
            fields[key] = _odd_value(value, member_path(where, key))
    return measurement, fields


_EVENT_MEMBERS = frozenset({"ts", "samplerate", "data"})
_ADDED = (WEIGHT_KEY, EVENT_ID_KEY)
_SPECIAL = RESERVED | frozenset(MEASUREMENT_KEYS)
_MS_LIMIT = _INT64 // _NS_PER_MS


IdsFor = Callable[[list[int]], list[str]]
"""Makes the ids of a request's events, in order, from their timestamps: ``(ts list) -> ids``."""


def _unknown_member(item: dict[str, Any], where: str) -> ApiError:
    key = next(key for key in item if key not in _EVENT_MEMBERS)
    return ApiError(400, "unknown member (expected ts, samplerate, data)", member_path(where, key))


def _event(
    item: object, index: int, arrival_ns: int, default: str
) -> tuple[str, dict[str, Any], int, int]:
    """One event checked in full: its measurement, fields, timestamp and sample rate."""
    if item.__class__ is not dict:
        raise ApiError(400, f"expected an event object, not {item!r}", f"events[{index}]")
    get = item.get
    if not item.keys() <= _EVENT_MEMBERS:
        raise _unknown_member(item, f"events[{index}]")
    timestamp = _timestamp(get("ts"), arrival_ns, f"events[{index}].ts")
    rate = _samplerate(get("samplerate"), f"events[{index}].samplerate")
    measurement, fields = _dimensions(get("data", _EMPTY), default, f"events[{index}].data")
    try:
        # ts is in milliseconds by the API's contract: any time it names is meant.
        event = MetricEvent(measurement, fields=fields, timestamp_ns=timestamp, before_2001=True)
    except InvalidEventError as exc:
        path = f"events[{index}].data"
        if exc.key is not None and exc.key in fields:
            path = member_path(path, exc.key)
        raise ApiError(400, exc.problem, path) from None
    return event.measurement, event.fields, event.timestamp_ns, rate


_EMPTY: dict[str, Any] = {}
_NO_TAGS = shared_tags({})
_DICTS = {dict}
_INTS = {int}


def _timestamps(stamps: list[Any]) -> tuple[list[int], list[int]]:
    """Each ``ts`` in ns where it is whole milliseconds in range; where it is anything else."""
    if set(map(type, stamps)) == _INTS and min(stamps) >= -_MS_LIMIT and max(stamps) < _MS_LIMIT:
        return list(map(_NS_PER_MS.__mul__, stamps)), []
    fast = [stamp.__class__ is int and -_MS_LIMIT <= stamp < _MS_LIMIT for stamp in stamps]
    found = [stamp * _NS_PER_MS if ok else 0 for stamp, ok in zip(stamps, fast, strict=True)]
    return found, [index for index, ok in enumerate(fast) if not ok]


def _rates(rates: list[Any]) -> tuple[list[int], list[int]]:
    """Each ``samplerate`` where it is absent (1) or an int in range; where it is anything else."""
    if rates.count(None) == len(rates):
        return [1] * len(rates), []
    if set(map(type, rates)) == _INTS and min(rates) >= 1 and max(rates) < _INT64:
        return rates, []
    fast = [rate is None or (rate.__class__ is int and 1 <= rate < _INT64) for rate in rates]
    found = [rate if ok and rate is not None else 1 for rate, ok in zip(rates, fast, strict=True)]
    return found, [index for index, ok in enumerate(fast) if not ok]


def read_events(
    body: object,
    arrival_ns: int,
    ids_for: IdsFor,
    *,
    default_measurement: str,
    max_events: int,
) -> EventColumns:
    """Check a ``POST /events`` body; return its events (see the module documentation).

    Args:
        body: The parsed JSON body; its ``data`` objects become the events'
            fields (they are read, not copied: do not change them afterwards).
        arrival_ns: When the request arrived (the time of events without ``ts``).
        ids_for: Gives the events their ids.
        default_measurement: The measurement of events that name none.
        max_events: The most events a request may carry.

    Returns:
        The events, as columns.

    Raises:
        ApiError: 400 naming the path of the first problem; 413 for too many events.
    """
    items: list[Any] = event_list(body, max_events)
    if not set(map(type, items)) <= _DICTS or not all(map(_EVENT_MEMBERS.issuperset, items)):
        for index, item in enumerate(items):  # refused: at the first problem, in order
            _event(item, index, arrival_ns, default_measurement)
    count = len(items)
    measurements = [default_measurement] * count
    timestamps, odd_times = _timestamps([item.get("ts") for item in items])
    rates, odd_rates = _rates([item.get("samplerate") for item in items])
    fields = [item.get("data") for item in items]
    for index in sorted({*odd_times, *odd_rates, *fields_needing_checks(fields, _SPECIAL)}):
        measurements[index], fields[index], timestamps[index], rates[index] = _event(
            items[index], index, arrival_ns, default_measurement
        )
    events = EventColumns(measurements, [_NO_TAGS] * count, fields, timestamps, [None] * count)
    added: tuple[list[Any], ...] = (rates, ids_for(timestamps))
    return events.with_fields(FieldColumns(_ADDED, added))


def first_event_id(events: EventColumns) -> str | None:
    """The id of the first event (None when there is none)."""
    if not len(events):
        return None
    found = events.subset(0, 1).field_values(EVENT_ID_KEY)[0]
    return found if isinstance(found, str) else None


def event_list(body: object, max_events: int) -> list[object]:
    """The list of events of a body, before each is checked.

    Raises:
        ApiError: 400 when the body is not ``{"events": [...]}``; 413 for too many events.
    """
    if not isinstance(body, dict):
        raise ApiError(400, 'expected an object: {"events": [...]}', "document")
    for key in body:
        if key != "events":
            raise ApiError(400, "unknown member (expected events)", member_path("document", key))
    events = body.get("events")
    if not isinstance(events, list):
        raise ApiError(400, f"expected a list of events, not {events!r}", "events")
    if len(events) > max_events:
        raise ApiError(413, f"{len(events)} events in one request; the limit is {max_events}")
    return events
