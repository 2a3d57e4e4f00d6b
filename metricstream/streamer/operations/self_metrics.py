"""Self-telemetry: the streamer's own accounting, as events in its own sinks.

With ``EventStreamer(..., self_metrics_interval=10.0)`` the batcher thread
takes a health snapshot every 10 s and sends every sink one
``metricstream_internal`` event per sink (tag ``sink``, plus the default
tags) with that sink's cumulative counters: events accepted, written and
dropped (in total and ``dropped_<reason>``), retries, write errors, pending
events, the last write latency and whether it is connected and healthy. So
the JSON Lines archive records that the InfluxDB sink was dropping, and a
dashboard over InfluxDB shows the archive's backlog.

The events are never counted in themselves: they bypass the accounting of
user events altogether (see `metricstream.streamer.engine.uncounted`). They are
never accepted, pending, written or dropped; they do not occupy
``max_buffer``; a lane holds at most one such batch, the newest; a failed
write of one is not retried.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterable, Mapping
from typing import Protocol

from metricstream._log import RateLimitedLog, logger
from metricstream.contract import EventBatch
from metricstream.event import MetricEvent
from metricstream.exceptions import InvalidEventError
from metricstream.streamer.health import SinkHealth, StreamerHealth

__all__ = ["INTERNAL_MEASUREMENT", "SelfMetrics", "internal_events"]

INTERNAL_MEASUREMENT = "metricstream_internal"
"""The measurement of self-telemetry events."""

_warnings = RateLimitedLog(logger)


class UncountedReceiver(Protocol):
    """What `SelfMetrics` hands batches to: a lane's `UncountedSlot`."""

    def offer(self, batch: EventBatch) -> None:
        """Take a batch for the sink, outside the accounting."""
        ...


def _fields(sink: SinkHealth) -> dict[str, object]:
    fields: dict[str, object] = {
        "events_accepted": sink.events_accepted,
        "events_written": sink.events_written,
        "events_dropped": sink.events_dropped,
    }
    for reason, count in sink.dropped_by_reason.items():
        fields[f"dropped_{reason}"] = count
    fields["retries"] = sink.retries
    fields["write_errors"] = sink.write_errors
    fields["pending"] = sink.pending
    fields["spooled"] = sink.spooled
    if sink.last_write_latency_ms is not None:
        fields["last_write_latency_ms"] = float(sink.last_write_latency_ms)
    fields["connected"] = sink.connected
    fields["healthy"] = sink.healthy
    return fields


def internal_events(
    health: StreamerHealth,
    default_tags: Mapping[str, str] | None = None,
    timestamp_ns: int | None = None,
) -> list[MetricEvent]:
    """Return one ``metricstream_internal`` event per sink of a health snapshot.

    Args:
        health: The snapshot.
        default_tags: Tags every event carries besides ``sink``.
        timestamp_ns: The events' time; now when None.

    Returns:
        The events, in the order of the sinks. A sink whose name cannot be a
        tag value is left out (and logged).
    """
    now = time.time_ns() if timestamp_ns is None else timestamp_ns
    events = []
    for name, sink in health.sinks.items():
        try:
            event = MetricEvent(
                INTERNAL_MEASUREMENT,
                tags={**(default_tags or {}), "sink": name},
                fields=_fields(sink),
                timestamp_ns=now,
            )
        except InvalidEventError as exc:
            _warnings.warning(
                (name, "self-metrics-tags"),
                "metricstream: no self-telemetry for sink %r: %s",
                name,
                exc,
            )
            continue
        events.append(event)
    return events


class SelfMetrics:
    """When self-telemetry is due, and sending it (called by the batcher thread).

    Args:
        interval: Seconds between two emissions; None disables them.
        default_tags: Tags every event carries besides ``sink``.
        receivers: Where batches go: each lane's `UncountedSlot`.
        clock: Monotonic seconds (injectable for tests).
    """

    def __init__(
        self,
        interval: float | None,
        default_tags: Mapping[str, str] | None = None,
        receivers: Iterable[UncountedReceiver] = (),
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.interval = interval
        self._default_tags = dict(default_tags or {})
        self._receivers = list(receivers)
        self.due = math.inf if interval is None else clock() + interval
        self.emitted = 0

    def emit_if_due(self, now: float, health: Callable[[], StreamerHealth]) -> bool:
        """Send a batch of internal events to every receiver if one is due.

        Args:
            now: The monotonic time.
            health: Takes the snapshot the events describe.

        Returns:
            True if a batch was sent.
        """
        if self.interval is None or now < self.due:
            return False
        self.due = now + self.interval
        events = internal_events(health(), self._default_tags)
        if not events:
            return False
        batch = EventBatch(events)
        for receiver in self._receivers:
            receiver.offer(batch)
        self.emitted += 1
        return True
