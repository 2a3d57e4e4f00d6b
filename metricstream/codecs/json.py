"""The JSON form of an event (one object per event, orjson underneath).

Schema (version 1)::

    {"measurement": "cpu",
     "tags": {"host": "a"},
     "fields": {"usage": 0.5, "count": 3, "ok": true, "note": "x",
                "bytes": {"uint": 18446744073709551615}},
     "timestamp_ns": 1700000000000000000,
     "schema_version": 1,
     "correlation_id": "req-42"}          # only when set

A float is always written with a decimal point or exponent (``1.0``), an int
never is, so the two kinds survive the round trip. An unsigned integer is the
one-key object ``{"uint": N}``.
"""

from __future__ import annotations

from typing import Any

import orjson

from metricstream._timestamps import check_timestamp
from metricstream._validate import (
    UINT64_MAX,
    FieldValue,
    UInt,
    check_correlation_id,
    check_fields,
    check_measurement,
    check_tags,
    no_fields_error,
)
from metricstream.codecs._lines import Column, TextsBefore, join_lines
from metricstream.columns import EventColumns
from metricstream.event import SCHEMA_VERSION, MetricEvent, trusted_event
from metricstream.exceptions import InvalidEventError, SchemaVersionError

__all__ = ["decode_event", "encode_batch", "encode_event"]

_NUMBERS = frozenset({bool, int, float})
# Between two field objects of a dumped list, and nowhere else: inside a
# string every quote is escaped, and a field value is never an object
# followed by another object.
_FIELDS_BOUNDARY = b'},{"'
_BEFORE_TIMESTAMP = b'},"timestamp_ns":'
_AFTER = b',"schema_version":%d}' % SCHEMA_VERSION
_AFTER_WITH_ID = b',"schema_version":%d,"correlation_id":' % SCHEMA_VERSION


def _uint_fields(fields: dict[str, FieldValue]) -> dict[str, object]:
    return {k: {"uint": int(v)} if v.__class__ is UInt else v for k, v in fields.items()}


def _as_object(event: MetricEvent) -> dict[str, object]:
    fields: dict[str, object] = event.fields  # type: ignore[assignment]
    if not fields:
        raise no_fields_error(event.measurement)
    for value in fields.values():
        if value.__class__ is UInt:
            fields = _uint_fields(event.fields)
            break
    obj: dict[str, object] = {
        "measurement": event.measurement,
        "tags": event.tags,
        "fields": fields,
        "timestamp_ns": event.timestamp_ns,
        "schema_version": SCHEMA_VERSION,
    }
    if event.correlation_id is not None:
        obj["correlation_id"] = event.correlation_id
    return obj


def encode_event(event: MetricEvent) -> bytes:
    """Return the UTF-8 JSON object for one event.

    Args:
        event: The event.

    Returns:
        The object, without a newline.

    Raises:
        InvalidEventError: If the event has no fields.
    """
    return orjson.dumps(_as_object(event))


def _value_default(value: Any) -> Any:
    """The JSON of a field value orjson passes through: a `UInt`, or a subclass of a plain type."""
    if value.__class__ is UInt:
        return {"uint": int(value)}
    if isinstance(value, int):
        return int(value)
    if isinstance(value, str):
        return str(value)
    if isinstance(value, dict):
        return dict(value)
    if isinstance(value, list):
        return list(value)
    raise TypeError(f"Type is not JSON serializable: {type(value).__name__}")


def _dumps_values(values: object) -> bytes:
    """Field values (or dicts of them) as JSON, a `UInt` as ``{"uint": N}``."""
    return orjson.dumps(values, default=_value_default, option=orjson.OPT_PASSTHROUGH_SUBCLASS)


def _head(measurement: str, key: str | None, tags: dict[str, str]) -> bytes:
    """The JSON of an event up to its first value: ``{"measurement":...,"fields":{"key":``.

    Without a key, up to the first key's opening quote: ``...,"fields":{"``.
    """
    if key is None:
        return orjson.dumps({"measurement": measurement, "tags": tags, "fields": 0})[:-2] + b'{"'
    return orjson.dumps({"measurement": measurement, "tags": tags, "fields": {key: 0}})[:-3]


_heads = TextsBefore(_head, 16_384)


def encode_batch(events: EventColumns) -> bytes:
    """Return JSON Lines for a batch: one object per event, newline-joined, no trailing newline.

    Each piece of each line is orjson's own output, so the lines are those
    `encode_event` writes. The text before the values is made once per
    measurement and tag dict; the field values are dumped by one
    ``orjson.dumps`` per column when every event has the same keys (see
    `metricstream.columns.EventColumns.field_columns`), else by one for all
    the field dicts; the lines are joined in one pass
    (`metricstream.codecs._lines.join_lines`).

    Args:
        events: The events, as columns.

    Returns:
        The lines.

    Raises:
        InvalidEventError: If an event has no fields.
    """
    if not len(events):
        return b""
    ids = events.correlation_ids
    afters: bytes | list[bytes] = _AFTER
    if ids.count(None) != len(ids):
        afters = [_AFTER if cid is None else _after_with(cid) for cid in ids]
    found = events.field_columns()
    if found is not None:
        keys = found.keys
        columns: list[Column] = [
            orjson.dumps(values) if set(map(type, values)) <= _NUMBERS else _texts(values)
            for values in found.values
        ]
        separators = [b"," + orjson.dumps(key) + b":" for key in keys[1:]]
        return join_lines(
            _heads.texts(events.measurements, keys[0], events.tags),
            columns,
            [*separators, _BEFORE_TIMESTAMP],
            events.timestamps,
            afters,
        )
    fields = events.fields
    if not all(fields) or set(map(type, fields)) != {dict}:
        return b"\n".join(map(encode_event, events.events()))
    return join_lines(
        _heads.texts(events.measurements, None, events.tags),
        [_dumps_values(fields)[3:-2].split(_FIELDS_BOUNDARY)],
        [_BEFORE_TIMESTAMP],
        events.timestamps,
        afters,
    )


def _after_with(correlation_id: str) -> bytes:
    return _AFTER_WITH_ID + orjson.dumps(correlation_id) + b"}"


def _texts(values: list[FieldValue]) -> list[bytes]:
    return [_dumps_values(value) for value in values]


def _decode_fields(raw: object) -> dict[str, FieldValue]:
    if not isinstance(raw, dict):
        raise InvalidEventError(None, f"JSON event 'fields' must be an object, not {raw!r}")
    fields: dict[str, object] = {}
    for key, value in raw.items():
        if value.__class__ is dict:
            number = value.get("uint")
            if (
                value.keys() != {"uint"}
                or number.__class__ is not int
                or not 0 <= number <= UINT64_MAX
            ):
                raise InvalidEventError(
                    key,
                    f"JSON field {key!r} must be a bool, number, string or "
                    f'{{"uint": N}} with 0 <= N < 2**64, not {value!r}',
                )
            fields[key] = UInt(number)
        else:
            fields[key] = value
    return check_fields(fields)


def decode_event(text: str | bytes) -> MetricEvent:
    """Decode one JSON object into an event.

    Args:
        text: The object, as text or UTF-8 bytes.

    Returns:
        The event. A missing ``schema_version`` is read as version 1, missing
        ``tags`` as none.

    Raises:
        SchemaVersionError: If ``schema_version`` is newer than this library's.
        InvalidEventError: If the JSON is malformed or describes an invalid event.
    """
    try:
        obj = orjson.loads(text)
    except orjson.JSONDecodeError as exc:
        raise InvalidEventError(None, f"invalid JSON event: {exc}") from None
    if not isinstance(obj, dict):
        raise InvalidEventError(None, f"a JSON event must be an object, not {type(obj).__name__}")
    version = obj.get("schema_version", SCHEMA_VERSION)
    if not isinstance(version, int) or isinstance(version, bool) or version < 1:
        raise InvalidEventError(None, f"invalid schema_version {version!r}")
    if version > SCHEMA_VERSION:
        raise SchemaVersionError(version, SCHEMA_VERSION)
    for required in ("measurement", "fields", "timestamp_ns"):
        if required not in obj:
            raise InvalidEventError(None, f"JSON event is missing {required!r}")
    tags = obj.get("tags", {})
    if not isinstance(tags, dict):
        raise InvalidEventError(None, f"JSON event 'tags' must be an object, not {tags!r}")
    for key, value in tags.items():
        if not isinstance(value, str):
            raise InvalidEventError(key, f"JSON tag {key!r} must be a string, not {value!r}")
    measurement = check_measurement(obj["measurement"])
    checked_tags = check_tags(tags)
    fields = _decode_fields(obj["fields"])
    if not fields:
        raise InvalidEventError(measurement, "JSON event has no fields")
    return trusted_event(
        measurement,
        checked_tags,
        fields,
        check_timestamp(obj["timestamp_ns"]),
        check_correlation_id(obj.get("correlation_id")),
    )
