"""`EventBatch`: the unit the streamer hands to sinks, with shared encodings.

A batch encodes itself at most once per format: every sink that wants line
protocol (at the same precision) or JSON Lines gets the same bytes.
"""

from __future__ import annotations

import threading
import uuid
from collections.abc import Iterable

from metricstream._json import encode_events
from metricstream.event import MetricEvent
from metricstream.lineprotocol import encode_lines

__all__ = ["EventBatch"]


class EventBatch:
    """A list of events with a unique id and cached encodings.

    Args:
        events: The events, in order. A list is kept as given, not copied: do
            not change it (or its events) once the batch exists, since the
            encodings are computed once and cached.
        batch_id: An id for the batch; a random unique one (32 hex digits)
            when None.

    Attributes:
        events: The events, in order.
        batch_id: The batch's id (unique per batch).
    """

    __slots__ = ("_cache", "_lock", "batch_id", "events")

    def __init__(self, events: Iterable[MetricEvent], batch_id: str | None = None) -> None:
        self.events: list[MetricEvent] = events if isinstance(events, list) else list(events)
        self.batch_id: str = uuid.uuid4().hex if batch_id is None else batch_id
        self._cache: dict[str, bytes] = {}
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self.events)

    def __repr__(self) -> str:
        return f"EventBatch(batch_id={self.batch_id!r}, events={len(self.events)})"

    def influx_bytes(self, precision: str = "ns") -> bytes:
        """Return the line protocol encoding as UTF-8 bytes (computed once per precision).

        Raises:
            InvalidEventError: If an event has no fields.
            ConfigError: If the precision is unknown.
        """
        key = f"lp:{precision}"
        cached = self._cache.get(key)
        if cached is None:
            with self._lock:
                cached = self._cache.get(key)
                if cached is None:
                    cached = encode_lines(self.events, precision).encode()
                    self._cache[key] = cached
        return cached

    def json_lines_bytes(self) -> bytes:
        """Return the JSON Lines encoding as UTF-8 bytes (computed once).

        Raises:
            InvalidEventError: If an event has no fields.
        """
        cached = self._cache.get("json")
        if cached is None:
            with self._lock:
                cached = self._cache.get("json")
                if cached is None:
                    cached = encode_events(self.events)
                    self._cache["json"] = cached
        return cached

    def to_influx_batch(self, precision: str = "ns") -> str:
        """Return the events as line protocol: newline-joined, no trailing newline.

        Args:
            precision: Timestamp unit: ``ns``, ``us``, ``ms`` or ``s``.

        Raises:
            InvalidEventError: If an event has no fields.
            ConfigError: If the precision is unknown.
        """
        return self.influx_bytes(precision).decode()

    def to_json_lines(self) -> str:
        """Return the events as JSON Lines: newline-joined, no trailing newline.

        Raises:
            InvalidEventError: If an event has no fields.
        """
        return self.json_lines_bytes().decode()
