"""The sink contract: what a destination may rely on, and what it must provide.

- `EventBatch`: the unit the streamer hands to sinks: its events as columns
  (`metricstream.columns.EventColumns`) with an id, and its encodings,
  computed at most once per format: every sink that wants line protocol (at
  the same precision) or JSON Lines gets the same bytes.
- `Sink`: the protocol a destination follows, generic in its payload
  (``Sink[bytes]``: ``prepare`` returns bytes, ``write`` takes them). It
  needs no base class::

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

Optional members the streamer calls when a sink has them, each declared by
a protocol of its own (a sink need not name it; `isinstance` finds it):

- `CompressionAware`: ``inherit_compression(compression)`` is called once
  with the streamer's own ``compression`` option; a sink whose user did not
  choose a codec adopts it.
- `ForkAware`: ``after_fork()`` is called in a child process after
  ``os.fork()``, before the child's streamer starts; a sink holding a lock,
  a file or a network client replaces it there (the parent's may be held
  by a thread that does not exist in the child).
"""

from __future__ import annotations

import os
import random
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

from metricstream.codecs import json, lineprotocol
from metricstream.codecs.compression import Compression, zstd_frame
from metricstream.columns import EventColumns
from metricstream.event import MetricEvent

if TYPE_CHECKING:
    from typing_extensions import TypeVar

    # A bare `Sink` is a sink of any payload (PEP 696); at run time the
    # TypeVar of Python 3.10 to 3.12 takes no default.
    P = TypeVar("P", default=Any)
else:
    from typing import TypeVar

    P = TypeVar("P")

__all__ = ["CompressionAware", "EventBatch", "ForkAware", "Sink"]

# Batch ids are 128 random bits, drawn without a system call: os.urandom (and
# so uuid4) lets go of the interpreter lock, which costs the batcher its turn.
# The generator is seeded from the system once, and again in a forked child.
_ids = random.Random()
if hasattr(os, "register_at_fork"):  # POSIX only; elsewhere no process forks
    os.register_at_fork(after_in_child=_ids.seed)


def _new_batch_id() -> str:
    return f"{_ids.getrandbits(128):032x}"


class EventBatch:
    """Events with a unique id, held as columns, with their encodings cached.

    The streamer cuts its batches from the parts `send()` appended
    (`from_parts`), as columns; the events exist as objects only for a sink
    that reads `events`, and the encodings shared between sinks are computed
    from the columns directly.

    Args:
        events: The events, in order. A list is kept as given (it is what
            `events` returns), not copied: do not change it (or its events)
            once the batch exists, since the encodings are computed once and
            cached.
        batch_id: An id for the batch; a random one (128 bits as 32 hex
            digits) when None.
        created_ns: When the batch was cut (nanoseconds since the epoch);
            now when None.

    Attributes:
        batch_id: The batch's id (unique per batch).
        created_ns: When the batch was cut, in nanoseconds since the epoch.
    """

    __slots__ = ("_cache", "_columns", "_events", "_lock", "batch_id", "created_ns")

    def __init__(
        self,
        events: Iterable[MetricEvent],
        batch_id: str | None = None,
        created_ns: int | None = None,
    ) -> None:
        found = events if isinstance(events, list) else list(events)
        self._start(EventColumns.of_events(found), found, batch_id, created_ns)

    def _start(
        self,
        columns: EventColumns,
        events: list[MetricEvent] | None,
        batch_id: str | None,
        created_ns: int | None,
    ) -> None:
        self._columns = columns
        self._events = events
        self.batch_id: str = _new_batch_id() if batch_id is None else batch_id
        self.created_ns: int = time.time_ns() if created_ns is None else created_ns
        self._cache: dict[str, bytes] = {}
        self._lock = threading.Lock()

    @classmethod
    def from_columns(
        cls,
        columns: EventColumns,
        batch_id: str | None = None,
        created_ns: int | None = None,
    ) -> EventBatch:
        """Build a batch of events given as columns.

        Args:
            columns: The events; kept as given.
            batch_id: As for `EventBatch`.
            created_ns: As for `EventBatch`.

        Returns:
            The batch; its `events` are built the first time they are read.
        """
        batch: EventBatch = object.__new__(cls)
        batch._start(columns, None, batch_id, created_ns)
        return batch

    @classmethod
    def from_parts(
        cls,
        parts: list[Any],
        batch_id: str | None = None,
        created_ns: int | None = None,
    ) -> EventBatch:
        """Build a batch from the flat parts `send()` appends (the streamer's cut).

        Args:
            parts: Measurement, tags, fields, timestamp_ns and correlation id
                of each event (`metricstream.event.PARTS_PER_EVENT`), in
                order, already validated.
            batch_id: As for `EventBatch`.
            created_ns: As for `EventBatch`.

        Returns:
            The batch, holding the parts as columns (see
            `metricstream.columns.EventColumns.of_parts`).
        """
        return cls.from_columns(EventColumns.of_parts(parts), batch_id, created_ns)

    def columns(self) -> EventColumns:
        """The events as columns: measurements, tags, fields, timestamps, correlation ids."""
        return self._columns

    @property
    def events(self) -> list[MetricEvent]:
        """The events, in order (built from the columns on first use)."""
        events = self._events
        if events is None:
            with self._lock:
                events = self._events
                if events is None:
                    events = self._events = self._columns.events()
        return events

    def correlation_ids(self) -> list[str | None]:
        """Each event's correlation id (None where it has none), in order."""
        return self._columns.correlation_ids

    def subset(self, start: int, stop: int) -> EventBatch:
        """Return a new batch (with a new id) of the events from `start` up to `stop`."""
        return EventBatch.from_columns(
            self._columns.subset(start, stop), created_ns=self.created_ns
        )

    def select(self, indexes: Sequence[int]) -> EventBatch:
        """Return the events at `indexes` as a batch with this batch's id and time.

        For a sink's preparation that leaves some events out: what it
        prepares is still this batch.
        """
        return EventBatch.from_columns(
            self._columns.select(indexes), self.batch_id, self.created_ns
        )

    def __len__(self) -> int:
        return len(self._columns)

    def __repr__(self) -> str:
        return f"EventBatch(batch_id={self.batch_id!r}, events={len(self)})"

    def _encoded(self, key: str, encode: Callable[[EventColumns], bytes]) -> bytes:
        cached = self._cache.get(key)
        if cached is None:
            with self._lock:
                cached = self._cache.get(key)
                if cached is None:
                    cached = self._cache[key] = encode(self._columns)
        return cached

    def influx_bytes(self, precision: str = "ns") -> bytes:
        """Return the line protocol encoding as UTF-8 bytes (computed once per precision).

        Raises:
            InvalidEventError: If an event has no fields.
            ConfigError: If the precision is unknown.
        """
        return self._encoded(
            f"lp:{precision}", lambda columns: lineprotocol.encode_batch(columns, precision)
        )

    def json_lines_bytes(self) -> bytes:
        """Return the JSON Lines encoding as UTF-8 bytes (computed once).

        Raises:
            InvalidEventError: If an event has no fields.
        """
        return self._encoded("json", json.encode_batch)

    def json_lines_zstd(self) -> bytes:
        """Return the JSON Lines, newline-terminated, as one zstd frame (computed once).

        The frame is `metricstream.codecs.compression.zstd_frame`'s: what the
        JSON Lines files and the spool write.

        Raises:
            InvalidEventError: If an event has no fields.
        """
        lines = self.json_lines_bytes()
        return self._encoded("json.zst", lambda _: zstd_frame(lines + b"\n" if lines else b""))

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
class Sink(Protocol[P]):
    """A destination for batches of events, generic in its payload `P`.

    Attributes:
        name: A name unique among the streamer's sinks; it keys health reports.
    """

    name: str

    def prepare(self, batch: EventBatch) -> P:
        """Turn a batch into this sink's payload. CPU only: no I/O, no sleeping.

        What a sink may read from the batch:

        - ``batch.batch_id``, ``batch.created_ns`` and ``len(batch)``;
        - its shared encodings, computed once per batch whichever sink asks
          first: ``batch.influx_bytes(precision)`` and
          ``batch.json_lines_bytes()`` (bytes), ``batch.to_influx_batch()``
          and ``batch.to_json_lines()`` (text);
        - ``batch.columns()``, the events as columns without building them
          (`metricstream.columns.EventColumns`): ``measurements``,
          ``tags``, ``fields``, ``timestamps`` and ``correlation_ids`` (one
          list each, one item per event), ``field_values(key)`` (one
          field's value in each event) and ``field_columns()`` (every
          field as a column, when all events have the same keys);
          ``batch.correlation_ids()`` is the same as
          ``batch.columns().correlation_ids``;
        - ``batch.events``, the events as `MetricEvent` objects, built on
          first use;
        - ``batch.subset(start, stop)`` and ``batch.select(indexes)``, part
          of the batch as a batch.

        Raise `InvalidEventError` for events the sink cannot encode; with
        ``indexes`` naming them, the streamer drops only those.
        """
        ...

    def write(self, payload: P) -> None:
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


@runtime_checkable
class ForkAware(Protocol):
    """A sink that replaces its locks, files or clients in a forked child."""

    def after_fork(self) -> None:
        """Called in a child after ``os.fork()``, before the child's streamer starts."""
        ...


@runtime_checkable
class CompressionAware(Protocol):
    """A sink that compresses, and adopts the streamer's codec when its user chose none."""

    def inherit_compression(self, compression: Compression) -> None:
        """Called once with the streamer's ``compression`` option (when it has one)."""
        ...
