"""Self-telemetry: the streamer's own accounting, as events in its own sinks.

With ``EventStreamer(..., self_metrics_interval=10.0)`` the engine's batcher
thread runs `SelfMetrics` as periodic work (`metricstream.streamer.engine.batcher.PeriodicTask`):
it takes a health snapshot every 10 s and sends every sink one
``metricstream_internal`` event per sink (tag ``sink``, plus the default
tags) with that sink's cumulative counters: events accepted, written and
dropped (in total and ``dropped_<reason>``), retries, write errors, pending
events, the last write latency and whether it is connected and healthy. So
the JSON Lines archive records that the InfluxDB sink was dropping, and a
dashboard over InfluxDB shows the archive's backlog.

The events are never counted in themselves: they bypass the accounting of
user events altogether (see `metricstream.streamer.engine.lane.ledger`). They are
never accepted, pending, written or dropped; they do not occupy
``max_buffer``; a lane holds at most one such batch, the newest; a failed
write of one is not retried.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping

from metricstream._log import RateLimitedLog, logger
from metricstream.contract import EventBatch
from metricstream.event import MetricEvent
from metricstream.exceptions import InvalidEventError
from metricstream.streamer.health import SinkHealth, StreamerHealth

__all__ = ["INTERNAL_MEASUREMENT", "SelfMetrics", "internal_events"]

INTERNAL_MEASUREMENT = "metricstream_internal"
"""The measurement of self-telemetry events."""

_warnings = RateLimitedLog(logger)


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
    default_tags: Mapping[str, object] | None = None,
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
                "no self-telemetry for sink %r: %s",
                name,
                exc,
            )
            continue
        events.append(event)
    return events


class SelfMetrics:
    """Self-telemetry as periodic work of the engine's batcher thread.

    Args:
        interval: Seconds between two emissions.
        health: Takes the snapshot the events describe.
        send: Hands a batch to every sink outside the accounting
            (`Pipeline.send_uncounted`).
        default_tags: Tags every event carries besides ``sink``.
        clock: Monotonic seconds (injectable for tests).

    Attributes:
        due: When (monotonic) the next emission is due.
        emitted: Batches sent so far.
    """

    def __init__(
        self,
        interval: float,
        health: Callable[[], StreamerHealth],
        send: Callable[[EventBatch], None],
        default_tags: Mapping[str, object] | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.interval = interval
        self._health = health
        self._send = send
        self._default_tags = dict(default_tags or {})
        self.due = clock() + interval
        self.emitted = 0

    def run(self, now: float) -> None:
        """Send every sink one batch of internal events; the next is due `interval` later."""
        self.due = now + self.interval
        events = internal_events(self._health(), self._default_tags)
        if events:
            self._send(EventBatch(events))
            self.emitted += 1
