"""The sink contract: what a destination may rely on, and what it must provide.

- `EventBatch`: the unit the streamer hands to sinks. A batch encodes itself
  at most once per format: every sink that wants line protocol (at the same
  precision) or JSON Lines gets the same bytes.
- `Sink`: the protocol a destination follows. It needs no base class::

      class PrintSink:
          name = "print"
          def prepare(self, batch): return batch.to_json_lines()
          def write(self, payload): print(payload)
          def check(self): pass
          def close(self): pass

Division of labour: the streamer batches, runs the threads, retries and
counts; a sink only encodes (`prepare`, CPU only) and performs I/O (`write`).
Sinks never batch, sleep or start threads.

`write` reports failure by raising `TransientSinkError` (the lane retries,
honouring ``retry_after``) or `PermanentSinkError` (the events are dropped
with its ``reason``); the error tree is in `metricstream.exceptions`. Any
other exception is treated as transient.

Optional members the streamer uses when a sink has them:

- ``inherit_compression(compression)``: called once with the streamer's own
  ``compression`` option; a sink whose user did not choose a codec adopts it.
- ``after_fork()``: called in a child process after ``os.fork()``, before the
  child's streamer starts; a sink holding a lock, a file or a network client
  replaces it there (the parent's may be held by a thread that does not
  exist in the child).
"""

from __future__ import annotations

import os
import random
import threading
import time
from collections.abc import Iterable
from typing import Any, Protocol, runtime_checkable

from metricstream.codecs._columns import Samples, samples
from metricstream.codecs.json import encode_events, encode_parts
from metricstream.codecs.json import encode_samples as encode_json_samples
from metricstream.codecs.lineprotocol import encode_lines
from metricstream.codecs.lineprotocol import encode_parts as encode_line_parts
from metricstream.codecs.lineprotocol import encode_samples as encode_line_samples
from metricstream.event import (
    PARTS_PER_EVENT,
    MetricEvent,
    event_parts,
    events_from_parts,
)
from metricstream.properties import EventColumns

__all__ = ["EventBatch", "Sink"]

# Batch ids are 128 random bits, drawn without a system call: os.urandom (and
# so uuid4) lets go of the interpreter lock, which costs the batcher its turn.
# The generator is seeded from the system once, and again in a forked child.
_ids = random.Random()
os.register_at_fork(after_in_child=_ids.seed)


def _new_batch_id() -> str:
    return f"{_ids.getrandbits(128):032x}"


class EventBatch:
    """A list of events with a unique id and cached encodings.

    The streamer builds its batches from the events' parts (`from_parts`),
    so the events of a batch exist as objects only for a sink that reads
    `events`; the encodings shared between sinks are computed from the
    parts directly.

    Args:
        events: The events, in order. A list is kept as given, not copied: do
            not change it (or its events) once the batch exists, since the
            encodings are computed once and cached.
        batch_id: An id for the batch; a random one (128 bits as 32 hex
            digits) when None.
        created_ns: When the batch was cut (nanoseconds since the epoch);
            now when None.

    Attributes:
        batch_id: The batch's id (unique per batch).
        created_ns: When the batch was cut, in nanoseconds since the epoch.
    """

    __slots__ = (
        "_cache",
        "_events",
        "_lock",
        "_parts",
        "_samples",
        "batch_id",
        "created_ns",
    )

    def __init__(
        self,
        events: Iterable[MetricEvent],
        batch_id: str | None = None,
        created_ns: int | None = None,
    ) -> None:
        self._events: list[MetricEvent] | None = (
            events if isinstance(events, list) else list(events)
        )
        self._parts: list[Any] | None = None
        self._samples: Samples | None = None
        self.batch_id: str = _new_batch_id() if batch_id is None else batch_id
        self.created_ns: int = time.time_ns() if created_ns is None else created_ns
        self._cache: dict[str, bytes] = {}
        self._lock = threading.Lock()

    @classmethod
    def from_parts(
        cls,
        parts: list[Any],
        batch_id: str | None = None,
        created_ns: int | None = None,
    ) -> EventBatch:
        """Build a batch from its events' flat parts (see `metricstream.event.PARTS_PER_EVENT`).

        Args:
            parts: Measurement, tags, fields, timestamp_ns and correlation id
                of each event, in order, already validated. Kept as given.
            batch_id: As for `EventBatch`.
            created_ns: As for `EventBatch`.

        Returns:
            The batch; its `events` are built the first time they are read. A
            batch of samples keeps their columns instead of the parts (see
            `metricstream.codecs._columns`), without the events' field dicts.
        """
        batch = cls((), batch_id, created_ns)
        batch._events = None
        batch._samples = samples(parts)
        if batch._samples is None:
            batch._parts = parts
        return batch

    @property
    def events(self) -> list[MetricEvent]:
        """The events, in order (built from their parts on first use)."""
        events = self._events
        if events is None:
            with self._lock:
                events = self._events
                if events is None:
                    found = self._samples
                    parts = self._parts if found is None else found.parts()
                    events = self._events = events_from_parts(parts or ())
        return events

    def parts(self) -> list[Any]:
        """The events' flat parts, `PARTS_PER_EVENT` per event (computed once)."""
        parts = self._parts
        if parts is None:
            with self._lock:
                parts = self._parts
                if parts is None:
                    found = self._samples
                    parts = self._parts = (
                        event_parts(self._events or ()) if found is None else found.parts()
                    )
        return parts

    def columns(self) -> EventColumns:
        """The events as columns (measurements, tags, fields, timestamps), never built."""
        return EventColumns.of_parts(self.parts())

    def correlation_ids(self) -> list[str | None]:
        """Each event's correlation id (None where it has none), in order."""
        if self._samples is not None:
            return [None] * self._samples.size()
        if self._parts is not None:
            return self._parts[PARTS_PER_EVENT - 1 :: PARTS_PER_EVENT]
        return [event.correlation_id for event in self._events or ()]

    def subset(self, start: int, stop: int) -> EventBatch:
        """Return a new batch (with a new id) of the events from `start` up to `stop`."""
        if self._samples is not None:
            part = EventBatch((), created_ns=self.created_ns)
            part._events = None
            part._samples = self._samples.subset(start, stop)
            return part
        if self._parts is not None:
            return EventBatch.from_parts(
                self._parts[start * PARTS_PER_EVENT : stop * PARTS_PER_EVENT],
                created_ns=self.created_ns,
            )
        return EventBatch(self.events[start:stop], created_ns=self.created_ns)

    def __len__(self) -> int:
        if self._events is not None:
            return len(self._events)
        if self._samples is not None:
            return self._samples.size()
        return len(self._parts or ()) // PARTS_PER_EVENT

    def __repr__(self) -> str:
        return f"EventBatch(batch_id={self.batch_id!r}, events={len(self)})"

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
                    if self._samples is not None:
                        cached = encode_line_samples(self._samples, precision)
                    elif self._parts is not None:
                        cached = encode_line_parts(self._parts, precision)
                    else:
                        cached = encode_lines(self._events or (), precision).encode()
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
                    if self._samples is not None:
                        cached = encode_json_samples(self._samples)
                    elif self._parts is not None:
                        cached = encode_parts(self._parts)
                    else:
                        cached = encode_events(self._events or ())
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


@runtime_checkable
class Sink(Protocol):
    """A destination for batches of events.

    Attributes:
        name: A name unique among the streamer's sinks; it keys health reports.
    """

    name: str

    def prepare(self, batch: EventBatch) -> Any:
        """Turn a batch into this sink's payload. CPU only: no I/O, no sleeping.

        ``batch.events`` is the list of events and ``batch.batch_id`` its id;
        ``batch.influx_bytes()`` and ``batch.json_lines_bytes()`` are encoded
        once per batch and shared between sinks.
        """
        ...

    def write(self, payload: Any) -> None:
        """Deliver one payload.

        Raises:
            TransientSinkError: The write may succeed if retried.
            PermanentSinkError: The write can never succeed.
        """
        ...

    def check(self) -> None:
        """Probe the destination; raise (any exception) when it is unhealthy."""
        ...

    def close(self) -> None:
        """Release connections and files. Called once, at shutdown."""
        ...
