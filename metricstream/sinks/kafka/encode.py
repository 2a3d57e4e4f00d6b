"""The topic contract: what one Kafka message holds, and how batches become messages.

Value
    ``json``: the event's JSON object (`metricstream.codecs.json`, schema
    version 1). ``line``: the event's InfluxDB line protocol entry,
    nanosecond timestamp. In ``batch`` mode a message holds several events,
    newline-joined, no trailing newline.
Key
    None, the measurement, a tag's value, or what a function returns, UTF-8.
    Events with the same key go to the same partition, in order. In
    ``batch`` mode the events of a batch are grouped by key (each group in
    its order) and each group becomes its own messages.
Headers (values are UTF-8 bytes)
    ``content-type``: ``application/json`` or
    ``text/plain; format=influx-line-protocol``; ``schema_version``: ``1``;
    ``correlation_id``: the event's, when it has one (``batch`` mode: when
    every event of the message has the same one); ``batch_id``: the batch's
    id, in ``batch`` mode only.

A message never exceeds the producer's ``message.max.bytes``: ``batch``
mode cuts a group into several messages (same ``batch_id``) when it would,
and an event larger than that alone is refused by the producer.
`metricstream.sinks.kafka.reader` reads messages back.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from itertools import repeat
from typing import Union

from metricstream.codecs.lineprotocol import encode_event
from metricstream.contract import EventBatch
from metricstream.event import SCHEMA_VERSION, MetricEvent
from metricstream.exceptions import InvalidEventError

__all__ = [
    "CONTENT_TYPES",
    "FORMATS",
    "HEADER_BATCH_ID",
    "HEADER_CONTENT_TYPE",
    "HEADER_CORRELATION_ID",
    "HEADER_SCHEMA_VERSION",
    "MESSAGE_MODES",
    "Headers",
    "KeyFunction",
    "Message",
    "MessageEncoder",
    "Messages",
]

FORMATS = ("json", "line")
"""The value formats: the event's JSON, or its line protocol entry."""

MESSAGE_MODES = ("event", "batch")
"""One message per event, or one per batch (and key)."""

HEADER_CONTENT_TYPE = "content-type"
"""The header naming the value's format (see `CONTENT_TYPES`)."""

HEADER_SCHEMA_VERSION = "schema_version"
"""The header holding the wire schema version, ``1``."""

HEADER_CORRELATION_ID = "correlation_id"
"""The header holding the events' correlation id."""

HEADER_BATCH_ID = "batch_id"
"""The header holding the batch id (``batch`` mode)."""

CONTENT_TYPES = {"json": "application/json", "line": "text/plain; format=influx-line-protocol"}
"""The ``content-type`` header of each format."""

Headers = list[tuple[str, bytes]]
"""Kafka headers as the producer takes them: (name, value) pairs."""

Message = tuple[bytes, Union[bytes, None], Headers]
"""One Kafka message: (value, key, headers)."""

KeyFunction = Callable[[MetricEvent], Union[bytes, str, None]]
"""Computes an event's key: bytes, str (sent as UTF-8) or None (no key)."""

_HEADROOM = 1024
"""Bytes kept free under ``message.max.bytes`` for headers and framing."""


@dataclass(slots=True)
class Messages:
    """Messages to produce, stored by column (no object per message in the common case).

    Attributes:
        values: The values, one per message.
        keys: The keys, one per message; None when no message has a key.
        headers: The headers, one list per message; None when every
            message has `shared` headers.
        shared: The headers of every message when `headers` is None.
    """

    values: list[bytes]
    keys: list[bytes | None] | None
    headers: list[Headers] | None
    shared: Headers

    def __len__(self) -> int:
        return len(self.values)

    def __iter__(self) -> Iterator[Message]:
        keys = repeat(None) if self.keys is None else self.keys
        headers = repeat(self.shared) if self.headers is None else self.headers
        return zip(self.values, keys, headers, strict=False)  # repeat() is endless

    def tail(self, start: int) -> Messages:
        """The messages from position `start` on."""
        return Messages(
            self.values[start:],
            None if self.keys is None else self.keys[start:],
            None if self.headers is None else self.headers[start:],
            self.shared,
        )

    @classmethod
    def of(cls, messages: Iterable[Message]) -> Messages:
        """Messages from (value, key, headers) tuples."""
        values: list[bytes] = []
        keys: list[bytes | None] = []
        headers: list[Headers] = []
        for value, key, message_headers in messages:
            values.append(value)
            keys.append(key)
            headers.append(message_headers)
        return cls(values, keys, headers, [])


class MessageEncoder:
    """Turns batches into Kafka messages (CPU only; see the module documentation).

    Args:
        format: ``"json"`` or ``"line"``.
        message: ``"event"`` or ``"batch"``.
        key: None, ``"measurement"``, a tag name, or a `KeyFunction`.
        max_message_bytes: The producer's ``message.max.bytes``.
    """

    def __init__(
        self, format: str, message: str, key: str | KeyFunction | None, max_message_bytes: int
    ) -> None:
        self.format = format
        self.batch_mode = message == "batch"
        self.key = key
        self.max_message_bytes = max_message_bytes
        self._base: Headers = [
            (HEADER_CONTENT_TYPE, CONTENT_TYPES[format].encode()),
            (HEADER_SCHEMA_VERSION, str(SCHEMA_VERSION).encode()),
        ]

    def encode(self, batch: EventBatch) -> tuple[Messages, dict[bytes, int] | None]:
        """Return the batch's messages, and in ``batch`` mode the event count of each value.

        Raises:
            InvalidEventError: If an event has no fields, or the key function
                fails for some events (their positions are in ``indexes``).
        """
        if not len(batch):
            return Messages([], None, None, self._base), None
        keys = self._keys(batch)
        if self.batch_mode:
            return self._batch_messages(batch, keys)
        return Messages(self._values(batch), keys, self._headers(batch), self._base), None

    # --- values, keys and headers ------------------------------------------------

    def _values(self, batch: EventBatch) -> list[bytes]:
        """One encoded value per event, cut from the batch's shared encoding when possible."""
        if self.format == "json":
            # JSON escapes every newline inside strings: one line per event.
            return batch.json_lines_bytes().split(b"\n")
        values = batch.influx_bytes("ns").split(b"\n")
        if len(values) != len(batch):
            # A string field holds a raw newline: encode the events one by one.
            values = [encode_event(event).encode() for event in batch.events]
        return values

    def _keys(self, batch: EventBatch) -> list[bytes | None] | None:
        """Each event's message key, read from the batch's columns unless a function computes it."""
        key = self.key
        if key is None:
            return None
        if not isinstance(key, str):
            return _call_key_function(key, batch.events)
        columns = batch.columns()
        if key == "measurement":
            return [measurement.encode() for measurement in columns.measurements]
        found = [tags.get(key) for tags in columns.tags]
        return [None if value is None else value.encode() for value in found]

    def _headers(self, batch: EventBatch) -> list[Headers] | None:
        """Per-event headers when some event has a correlation id, else None (all shared)."""
        ids = batch.correlation_ids()
        if ids.count(None) == len(ids):
            return None
        base = self._base
        return [
            base if cid is None else [*base, (HEADER_CORRELATION_ID, cid.encode())] for cid in ids
        ]

    def _batch_messages(
        self, batch: EventBatch, keys: list[bytes | None] | None
    ) -> tuple[Messages, dict[bytes, int]]:
        ids = batch.correlation_ids()
        base = [*self._base, (HEADER_BATCH_ID, batch.batch_id.encode())]
        limit = self.max_message_bytes - _HEADROOM
        if keys is None:
            whole = batch.json_lines_bytes() if self.format == "json" else batch.influx_bytes("ns")
            if len(whole) <= limit:
                headers = _with_common_correlation(base, ids)
                return Messages([whole], None, [headers], base), {whole: len(ids)}
            groups: dict[bytes | None, list[int]] = {None: list(range(len(ids)))}
        else:
            groups = {}
            for index, key in enumerate(keys):
                groups.setdefault(key, []).append(index)
        values = self._values(batch)
        messages: list[Message] = []
        counts: dict[bytes, int] = {}
        for key, indexes in groups.items():
            for chunk in _chunks(indexes, values, limit - (len(key) if key else 0)):
                value = b"\n".join([values[i] for i in chunk])
                headers = _with_common_correlation(base, [ids[i] for i in chunk])
                messages.append((value, key, headers))
                counts[value] = len(chunk)
        return Messages.of(messages), counts


def _call_key_function(key: KeyFunction, events: Sequence[MetricEvent]) -> list[bytes | None]:
    keys: list[bytes | None] = []
    bad: list[int] = []
    problem = ""
    for index, event in enumerate(events):
        try:
            found = key(event)
        except Exception as exc:
            found = None
            bad.append(index)
            problem = f"the key function raised {type(exc).__name__}: {exc}"
        else:
            if isinstance(found, str):
                found = found.encode()
            elif found is not None and not isinstance(found, bytes):
                bad.append(index)
                problem = f"the key function returned {type(found).__name__}, not bytes/str/None"
                found = None
        keys.append(found)
    if bad:
        raise InvalidEventError(None, problem, indexes=tuple(bad))
    return keys


def _chunks(indexes: list[int], values: list[bytes], limit: int) -> Iterable[list[int]]:
    """Cut `indexes` into runs whose newline-joined values stay within `limit` bytes."""
    chunk: list[int] = []
    size = -1
    for index in indexes:
        grown = size + 1 + len(values[index])
        if chunk and grown > limit:
            yield chunk
            chunk, grown = [], len(values[index])
        chunk.append(index)
        size = grown
    if chunk:
        yield chunk


def _with_common_correlation(base: Headers, ids: Sequence[str | None]) -> Headers:
    """`base`, plus the correlation id header when every event has the same one."""
    first = ids[0]
    if first is None or ids.count(first) != len(ids):
        return base
    return [*base, (HEADER_CORRELATION_ID, first.encode())]
