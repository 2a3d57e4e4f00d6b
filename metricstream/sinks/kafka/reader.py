"""The reference reader of the topic contract: `decode_message`.

It reads every message `KafkaSink` writes, in either format and mode (the
contract is drawn in `metricstream.sinks.kafka.encode`), and refuses a
``schema_version`` newer than this library reads.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from metricstream.codecs.json import decode_event
from metricstream.codecs.lineprotocol import parse_lines
from metricstream.event import SCHEMA_VERSION, MetricEvent
from metricstream.exceptions import InvalidEventError, SchemaVersionError
from metricstream.sinks.kafka.encode import (
    CONTENT_TYPES,
    HEADER_CONTENT_TYPE,
    HEADER_CORRELATION_ID,
    HEADER_SCHEMA_VERSION,
)

__all__ = ["decode_message"]


def _header_map(
    headers: Mapping[str, bytes | str | None] | Iterable[tuple[str, bytes | str | None]] | None,
) -> dict[str, str]:
    if headers is None:
        return {}
    pairs = headers.items() if isinstance(headers, Mapping) else headers
    found: dict[str, str] = {}
    for name, value in pairs:
        if value is None:
            continue
        text = value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)
        found.setdefault(name.lower(), text)
    return found


def decode_message(
    value: bytes | str | None,
    headers: Mapping[str, bytes | str | None] | Iterable[tuple[str, bytes | str | None]] | None,
) -> list[MetricEvent]:
    """Return the events of one message written by `KafkaSink`, in either format and mode.

    The ``content-type`` header chooses the format; without one, a value
    starting with ``{`` is read as JSON and anything else as line protocol.
    A line protocol message with a ``correlation_id`` header gives that id
    to its events (JSON values carry their own).

    Args:
        value: The message value (``Message.value()``); None or empty gives no events.
        headers: The message headers (``Message.headers()``): (name, value)
            pairs or a mapping; None when there are none.

    Returns:
        The events, in the order they were sent.

    Raises:
        SchemaVersionError: If ``schema_version`` (header or JSON) is newer
            than this library reads.
        InvalidEventError: If the content type is unknown or the JSON invalid.
        LineProtocolError: If line protocol text is malformed.
    """
    found = _header_map(headers)
    version = found.get(HEADER_SCHEMA_VERSION)
    if version is not None:
        if not version.isdigit():
            raise InvalidEventError(None, f"invalid schema_version header {version!r}")
        if int(version) > SCHEMA_VERSION:
            raise SchemaVersionError(int(version), SCHEMA_VERSION)
    if not value:
        return []
    data = value.encode() if isinstance(value, str) else value
    content_type = found.get(HEADER_CONTENT_TYPE)
    if content_type is None:
        content_type = CONTENT_TYPES["json" if data.lstrip()[:1] == b"{" else "line"]
    kind = content_type.split(";", 1)[0].strip().lower()
    if kind == "application/json":
        return [decode_event(line) for line in data.split(b"\n") if line.strip()]
    if kind == "text/plain" and "influx-line-protocol" in content_type.lower():
        events = parse_lines(data)
        correlation_id = found.get(HEADER_CORRELATION_ID)
        if correlation_id is not None:
            for event in events:
                if event.correlation_id is None:
                    event.with_correlation_id(correlation_id)
        return events
    raise InvalidEventError(None, f"unknown content-type {content_type!r} of a Kafka message")
