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

from collections.abc import Iterable, Sequence
from typing import Any, NoReturn

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
from metricstream.codecs._columns import Samples, TextsBefore, sample_lines, samples
from metricstream.event import (
    PARTS_PER_EVENT,
    SCHEMA_VERSION,
    MetricEvent,
    event_parts,
    event_rows,
    trusted_event,
)
from metricstream.exceptions import InvalidEventError, SchemaVersionError

__all__ = ["decode_event", "encode_event", "encode_events", "encode_parts", "encode_samples"]

# Between two top-level objects of a dumped list, and nowhere else: inside a
# string every quote is escaped, and no object or array member of an event
# is followed by another object.
_BOUNDARY = b'},{"measurement":'
_LINE_BREAK = b'}\n{"measurement":'
_CHUNK_PARTS = 256 * PARTS_PER_EVENT


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


def encode_events(events: Iterable[MetricEvent]) -> bytes:
    """Return JSON Lines for many events: newline-joined, no trailing newline.

    Args:
        events: The events.

    Returns:
        One object per event and line.

    Raises:
        InvalidEventError: If an event has no fields.
    """
    return encode_parts(event_parts(events))


def encode_parts(parts: Sequence[Any]) -> bytes:
    """Return JSON Lines for events given as flat parts (see `metricstream.event.EventRow`).

    The events are dumped a few hundred at a time as lists of objects, which
    is several times faster than one dump per event, and the separators
    between the objects become newlines while a chunk's output is still in
    the CPU cache. A chunk's objects are freed before the next chunk is
    built, so the garbage collector never finds more than a chunk of them.

    Args:
        parts: `PARTS_PER_EVENT` parts per event, in order.

    Returns:
        One object per event and line, no trailing newline.

    Raises:
        InvalidEventError: If an event has no fields.
    """
    batch = samples(parts)
    if batch is not None:
        return encode_samples(batch)
    if UInt.created:
        # Unsigned values need their own form; only then is each value looked at.
        return _encode_checked(parts)
    dumps = orjson.dumps
    version = SCHEMA_VERSION
    dumped = []
    for start in range(0, len(parts), _CHUNK_PARTS):
        chunk = parts[start : start + _CHUNK_PARTS]
        objects = [
            {
                "measurement": measurement,
                "tags": tags,
                "fields": fields,
                "timestamp_ns": timestamp,
                "schema_version": version,
            }
            if cid is None
            else {
                "measurement": measurement,
                "tags": tags,
                "fields": fields,
                "timestamp_ns": timestamp,
                "schema_version": version,
                "correlation_id": cid,
            }
            for measurement, tags, fields, timestamp, cid in event_rows(chunk)
            if fields
        ]
        if len(objects) * PARTS_PER_EVENT != len(chunk):
            _refuse_empty(chunk)
        dumped.append(memoryview(dumps(objects).replace(_BOUNDARY, _LINE_BREAK))[1:-1])
    return b"\n".join(dumped)


def _head(measurement: str, key: str, tags: dict[str, str]) -> bytes:
    """The JSON of an event up to its value: ``{"measurement":...,"fields":{"key":``."""
    return orjson.dumps({"measurement": measurement, "tags": tags, "fields": {key: 0}})[:-3]


_heads = TextsBefore(_head, 16_384)


def encode_samples(batch: Samples) -> bytes:
    """Return JSON Lines for a batch of samples (see `metricstream.codecs._columns`).

    Each piece of each line is orjson's own output, so the lines are those
    `encode_event` writes.

    Args:
        batch: The samples.

    Returns:
        One object per event and line, no trailing newline.
    """
    return sample_lines(
        _heads.texts(batch.measurement, batch.key, batch.tags),
        orjson.dumps(batch.values),
        between=b'},"timestamp_ns":',
        timestamps=batch.timestamps,
        after=b',"schema_version":%d}' % SCHEMA_VERSION,
    )


def _encode_checked(parts: Sequence[Any]) -> bytes:
    """`encode_parts`, looking at every value (some may be `UInt`)."""
    dumps = orjson.dumps
    dumped = []
    for start in range(0, len(parts), _CHUNK_PARTS):
        objects = [
            _as_object(trusted_event(*row))
            for row in event_rows(parts[start : start + _CHUNK_PARTS])
        ]
        dumped.append(memoryview(dumps(objects).replace(_BOUNDARY, _LINE_BREAK))[1:-1])
    return b"\n".join(dumped)


def _refuse_empty(chunk: Sequence[Any]) -> NoReturn:
    for measurement, _, fields, _, _ in event_rows(chunk):
        if not fields:
            raise no_fields_error(measurement)
    raise AssertionError("no event without fields")  # pragma: no cover


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
