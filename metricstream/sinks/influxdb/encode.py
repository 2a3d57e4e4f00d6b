"""`InfluxDBPayload`: one batch encoded for InfluxDB, and how much of it is done.

Exactly once across splits: a payload records which event ranges are still
to be written. When the first half of a split batch is written and the
second fails transiently, the lane retries ``write`` with the same payload
and only what is left is sent again. (A request that timed out after the
server stored it is sent again in full; InfluxDB keeps one point per series
and timestamp, so the second copy overwrites the first instead of adding to
it.)

Memory: a payload holds only its request body (gzip-compressed when on) and
counters, never the events or, when compressed, their line protocol: a dead
server with a million events queued behind it costs their compressed size. A
split, which is rare, decodes the events back from the body
(`metricstream.parse_lines` reads exactly what the encoder wrote) and keeps
them until the payload is done.
"""

from __future__ import annotations

import gzip

from metricstream.codecs.compression import Compression, compress
from metricstream.codecs.lineprotocol import encode_batch, parse_lines
from metricstream.columns import EventColumns
from metricstream.event import MetricEvent
from metricstream.exceptions import PermanentSinkError, SinkError

__all__ = ["InfluxDBPayload"]

_HOUR_NS = 3_600_000_000_000
_MAX_REASONS_SHOWN = 3


class InfluxDBPayload:
    """One batch encoded for InfluxDB, and how much of it has been written.

    Built by `InfluxDBSink.prepare`; `InfluxDBSink.write` consumes it. It
    keeps the request body and counters only; when a 413 or a partial write
    splits the batch, the payload decodes the events from the body once and
    remembers which event ranges are done, so a retry of the same payload
    resends only the rest.

    The writer works on the front range (`front`): it sends `front_body`,
    then records the outcome with `front_written`, `split_front`,
    `reject_front` or `partial_front`, until `done`; `finish` ends the write.

    Args:
        body: The request body for all the events.
        count: How many events (lines) the body holds.
        gzipped: Whether ``body`` is gzip-compressed.

    Attributes:
        body: The request body for the whole batch: its line protocol,
            gzip-compressed when ``gzipped``.
        gzipped: Whether ``body`` (and any split halves) are gzip-compressed.
        count: How many events the body holds.
        events_written: How many events the server has stored so far.
        events_rejected: How many events were refused for good (400, a
            partial write, or a single event over the size limit).
    """

    __slots__ = (
        "_events",
        "_pending",
        "_rejections",
        "body",
        "count",
        "events_rejected",
        "events_written",
        "gzipped",
    )

    def __init__(self, body: bytes, count: int, *, gzipped: bool) -> None:
        self.body = body
        self.count = count
        self.gzipped = gzipped
        self.events_written = 0
        self.events_rejected = 0
        # Half-open event index ranges still to be written, front first.
        self._pending: list[tuple[int, int]] = [(0, count)] if count else []
        self._rejections: list[str] = []
        # The events decoded from the body, while a split payload is in progress.
        self._events: list[MetricEvent] | None = None

    def __len__(self) -> int:
        return self.count

    def __repr__(self) -> str:
        return (
            f"InfluxDBPayload(events={self.count}, bytes={len(self.body)}, "
            f"gzipped={self.gzipped}, written={self.events_written}, "
            f"rejected={self.events_rejected}, pending_ranges={len(self._pending)})"
        )

    @property
    def done(self) -> bool:
        """True when every event has been written or rejected."""
        return not self._pending

    @property
    def front(self) -> tuple[int, int] | None:
        """The event range to send next (start, stop), or None when done."""
        return self._pending[0] if self._pending else None

    def lines(self) -> bytes:
        """Return the line protocol of the whole batch (the body, decompressed)."""
        return gzip.decompress(self.body) if self.gzipped else self.body

    def front_body(self, precision: str) -> bytes:
        """Return the request body for the front range (the whole body when unsplit).

        Args:
            precision: The precision the body was encoded at.

        Raises:
            LookupError: If the payload is done.
        """
        start, stop = self._front()
        if stop - start == self.count:
            return self.body
        front = EventColumns.of_events(self._decoded(precision)[start:stop])
        lines = encode_batch(front, precision)
        return compress(lines, Compression.GZIP, 1) if self.gzipped else lines

    def front_written(self) -> None:
        """Record that the server stored every event of the front range."""
        start, stop = self._pending.pop(0)
        self.events_written += stop - start

    def split_front(self) -> bool:
        """Replace the front range by its two halves, to be sent one after the other.

        Returns:
            False (and nothing changes) when the front range holds one event.
        """
        start, stop = self._front()
        if stop - start < 2:
            return False
        middle = (start + stop) // 2
        self._pending[0:1] = [(start, middle), (middle, stop)]
        return True

    def reject_front(self, reason: str, *, refused: int | None = None) -> None:
        """Record that the server refused `refused` events of the front range for good.

        Args:
            reason: Why, for the error `finish` raises.
            refused: How many were refused (the whole range when None); the
                server stored the others.
        """
        start, stop = self._pending.pop(0)
        size = stop - start
        dropped = size if refused is None else min(refused, size)
        self.events_written += size - dropped
        self.events_rejected += dropped
        self._rejections.append(reason)

    def front_in_one_hour(self, precision: str) -> bool:
        """Tell whether every event of the front range lies in one hour of UTC time.

        InfluxDB 1.x shard groups last whole hours (in every default) and are
        aligned to them, so such events share one shard group.
        """
        start, stop = self._front()
        events = self._decoded(precision)
        first_hour = events[start].timestamp_ns // _HOUR_NS
        return all(event.timestamp_ns // _HOUR_NS == first_hour for event in events[start:stop])

    def account(self, error: SinkError) -> SinkError:
        """Set ``written`` and ``rejected`` on `error` from this payload's counts; return it."""
        error.written = self.events_written
        error.rejected = self.events_rejected
        return error

    def finish(self, sink: str) -> None:
        """End a write that left nothing pending: free the decoded events, report rejections.

        Args:
            sink: The sink's name, for the error.

        Raises:
            PermanentSinkError: If events were rejected; it names up to three
                reasons and carries the payload's ``written`` and ``rejected``.
        """
        self._events = None
        if not self._rejections:
            return
        shown = self._rejections[:_MAX_REASONS_SHOWN]
        summary = "; ".join(shown)
        if len(self._rejections) > len(shown):
            summary += f"; and {len(self._rejections) - len(shown)} more"
        raise PermanentSinkError(
            summary, written=self.events_written, rejected=self.events_rejected, sink=sink
        )

    def _front(self) -> tuple[int, int]:
        if not self._pending:
            raise LookupError("the payload is done: no range is pending")
        return self._pending[0]

    def _decoded(self, precision: str) -> list[MetricEvent]:
        """The batch's events, decoded from the body on first use (splits only)."""
        if self._events is None:
            self._events = parse_lines(self.lines(), precision)
        return self._events
