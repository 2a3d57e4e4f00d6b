"""The console's text formats: ``pretty`` (aligned, for people), ``json`` and ``line``.

``pretty`` is one aligned line per event::

      2026-11-25T10:00:00.123456Z  http_requests  route=/api  latency_ms=12.5 count=1i  [req-42]

Columns are the UTC timestamp (microseconds), the measurement, the tags
(sorted by key), the fields (in the order they were added) and the
correlation id in brackets. Within one batch every column starts at the same
position; the tags column is left out when no event of the batch has tags.
Field values are typed as in line protocol (``1i`` signed, ``1u`` unsigned,
``12.5`` float, ``true`` bool, ``"text"`` string, JSON-escaped); a tag key or
value containing a space, ``=``, a quote or a control character is quoted
the same way. ``json`` is the JSON Lines encoding of the batch and ``line``
InfluxDB line protocol, both with the full nanosecond timestamp.
"""

from __future__ import annotations

import datetime as _dt
import json

from metricstream._validate import no_fields_error
from metricstream.event import FieldValue, MetricEvent, UInt

__all__ = ["format_pretty", "format_timestamp"]

_EPOCH = _dt.datetime(1970, 1, 1)
_NEEDS_QUOTES = frozenset(' ="\\') | frozenset(chr(c) for c in range(32)) | {"\x7f"}


def format_timestamp(timestamp_ns: int) -> str:
    """Return `timestamp_ns` as an ISO 8601 UTC time with microseconds.

    Example: ``1_700_000_000_123_456_789`` -> ``"2023-11-14T22:13:20.123456Z"``
    (truncated, never rounded up).
    """
    seconds, nanoseconds = divmod(timestamp_ns, 1_000_000_000)
    moment = _EPOCH + _dt.timedelta(seconds=seconds)
    return f"{moment:%Y-%m-%dT%H:%M:%S}.{nanoseconds // 1000:06d}Z"


def _quote(text: str) -> str:
    if _NEEDS_QUOTES.isdisjoint(text):
        return text
    return json.dumps(text, ensure_ascii=False)


def _format_field(value: FieldValue) -> str:
    cls = value.__class__
    if cls is float:
        return repr(value)
    if cls is bool:
        return "true" if value else "false"
    if cls is str:
        return json.dumps(value, ensure_ascii=False)
    if isinstance(value, UInt):
        return f"{int(value)}u"
    return f"{value}i"


def format_pretty(events: list[MetricEvent]) -> str:
    """Render events as aligned lines (the ``pretty`` format).

    Returns:
        One line per event, each ending with a newline.

    Raises:
        InvalidEventError: If an event has no fields.
    """
    rows: list[tuple[str, str, str, str, str]] = []
    for event in events:
        if not event.fields:
            raise no_fields_error(event.measurement)
        tags = " ".join(f"{_quote(k)}={_quote(v)}" for k, v in sorted(event.tags.items()))
        fields = " ".join(f"{_quote(k)}={_format_field(v)}" for k, v in event.fields.items())
        cid = "" if event.correlation_id is None else f"[{event.correlation_id}]"
        rows.append((format_timestamp(event.timestamp_ns), event.measurement, tags, fields, cid))
    measurement_width = max(len(row[1]) for row in rows)
    tags_width = max(len(row[2]) for row in rows)
    fields_width = max(len(row[3]) for row in rows) if any(row[4] for row in rows) else 0
    lines = []
    for timestamp, measurement, tags, fields, cid in rows:
        columns = [timestamp, measurement.ljust(measurement_width)]
        if tags_width:
            columns.append(tags.ljust(tags_width))
        columns.append(fields.ljust(fields_width))
        columns.append(cid)
        lines.append("  ".join(columns).rstrip() + "\n")
    return "".join(lines)


