"""Self-telemetry: metricstream_internal events describe every sink and are never counted."""

from __future__ import annotations

import metricstream as ms
from metricstream._log import RateLimitedLog
from metricstream.contract import EventBatch
from metricstream.streamer.engine.lane.ledger import LaneLedger
from metricstream.streamer.engine.lane.work import STOP, PreparedTelemetry, SelfTelemetry
from metricstream.streamer.engine.lane.writer import SinkWriter
from metricstream.streamer.operations.self_metrics import (
    INTERNAL_MEASUREMENT,
    SelfMetrics,
    internal_events,
)
from metricstream.testing import FaultySink, InMemorySink

from .support import NO_REASONS, assert_balanced, sample, wait_until


def internal(events: list[ms.MetricEvent]) -> list[ms.MetricEvent]:
    return [e for e in events if e.measurement == INTERNAL_MEASUREMENT]


def user(events: list[ms.MetricEvent]) -> list[ms.MetricEvent]:
    return [e for e in events if e.measurement != INTERNAL_MEASUREMENT]


def latest(events: list[ms.MetricEvent], sink: str) -> ms.MetricEvent | None:
    found = [e for e in internal(events) if e.tags["sink"] == sink]
    return found[-1] if found else None


class TestInternalEvents:
    """One event per sink, carrying that sink's counters."""

    def test_each_sink_becomes_one_event_with_its_counters(self) -> None:
        sink = ms.SinkHealth(
            name="influx",
            connected=False,
            healthy=False,
            last_write_ns=None,
            events_accepted=10,
            events_written=4,
            events_dropped=5,
            dropped_by_reason={**NO_REASONS, "rejected": 2, "retries_exhausted": 3},
            write_errors=7,
            retries=6,
            pending=1,
            consecutive_failures=3,
            last_error="boom",
            last_write_latency_ms=12.5,
            spooled=0,
        )
        health = ms.StreamerHealth(
            healthy=False, running=True, events_accepted=10, sinks={"influx": sink}
        )
        when = 1_700_000_000_000_000_001
        [event] = internal_events(health, {"host": "a"}, timestamp_ns=when)
        assert (event.measurement, dict(event.tags), event.timestamp_ns) == (
            "metricstream_internal",
            {"host": "a", "sink": "influx"},
            when,
        )
        assert dict(event.fields) == {
            "events_accepted": 10,
            "events_written": 4,
            "events_dropped": 5,
            "dropped_overflow": 0,
            "dropped_invalid": 0,
            "dropped_rejected": 2,
            "dropped_retries_exhausted": 3,
            "dropped_shutdown": 0,
            "dropped_corrupt": 0,
            "dropped_collapsed": 0,
            "dropped_unconfirmed": 0,
            "dropped_cardinality": 0,
            "retries": 6,
            "write_errors": 7,
            "pending": 1,
            "spooled": 0,
            "last_write_latency_ms": 12.5,
            "connected": False,
            "healthy": False,
        }

    def test_nothing_is_sent_before_it_is_due(self) -> None:
        sent: list[EventBatch] = []
        metrics = SelfMetrics(
            10.0, lambda: ms.StreamerHealth(True, True, 0), sent.append, clock=lambda: 100.0
        )
        assert (metrics.due, metrics.emitted, sent) == (110.0, 0, [])
        metrics.run(110.0)  # no sink: no event, nothing sent
        assert (metrics.due, metrics.emitted, sent) == (120.0, 0, [])


class TestSelfTelemetry:
    """EventStreamer(self_metrics_interval=...) writes the accounting into its own sinks."""

    def test_off_by_default(self, make_streamer) -> None:
        sink = InMemorySink()
        streamer = make_streamer([sink], flush_interval=0.01)
        streamer.send_many(sample(i) for i in range(5))
        assert streamer.flush(10)
        assert streamer.config.self_metrics_interval is None
        assert internal(sink.events) == []

    def test_every_sink_learns_every_sinks_counters_which_never_count_them(
        self, make_streamer
    ) -> None:
        archive = InMemorySink("archive")
        warehouse = FaultySink(then=FaultySink.permanent(), name="warehouse")
        streamer = make_streamer(
            [archive, warehouse],
            batch_size=10,
            self_metrics_interval=0.02,
            default_tags={"service": "checkout"},
        )
        streamer.send_many(sample(i) for i in range(40))
        assert streamer.flush(10)

        def reported() -> bool:
            mine, theirs = latest(archive.events, "archive"), latest(archive.events, "warehouse")
            return (
                mine is not None
                and theirs is not None
                and mine.fields["events_written"] == 40
                and theirs.fields["dropped_rejected"] == 40
            )

        assert wait_until(reported, 10)
        health = streamer.health()
        assert_balanced(health, sent=40)
        # The internal events are in the sink, but in no counter.
        assert len(user(archive.events)) == 40
        assert len(internal(archive.events)) >= 2
        assert (health.events_accepted, health.sinks["archive"].events_written) == (40, 40)
        assert health.sinks["warehouse"].dropped_by_reason == {**NO_REASONS, "rejected": 40}
        theirs = latest(archive.events, "warehouse")
        assert theirs is not None
        assert theirs.tags == {"service": "checkout", "sink": "warehouse"}
        snapshot = health.sinks["warehouse"]
        assert (
            theirs.fields["events_accepted"],
            theirs.fields["events_written"],
            theirs.fields["events_dropped"],
            theirs.fields["pending"],
            theirs.fields["healthy"],
        ) == (40, 0, 40, 0, snapshot.healthy)

    def test_failed_internal_writes_change_no_counter(self, make_streamer) -> None:
        sink = FaultySink(then="transient")
        streamer = make_streamer([sink], batch_size=10, self_metrics_interval=0.01)
        streamer.send_many(sample(i) for i in range(10))
        assert streamer.flush(10)
        # One user batch: 1 attempt + 3 retries (FAST_RETRY). Then internal writes fail too.
        assert wait_until(lambda: len(sink.attempts) >= 10, 10)
        health = streamer.health().sinks["faulty"]
        assert (health.retries, health.write_errors) == (3, 4)
        assert health.dropped_by_reason == {**NO_REASONS, "retries_exhausted": 10}
        assert health.pending == 0

    def test_a_hung_sink_holds_one_internal_batch_and_flush_ignores_it(self, make_streamer) -> None:
        hung = FaultySink([FaultySink.hang()], name="hung")
        streamer = make_streamer([hung, InMemorySink()], batch_size=5, self_metrics_interval=0.005)
        streamer.send_many(sample(i) for i in range(5))
        lane = streamer._pipeline.lanes[0]
        metrics = next(
            t for t in streamer._pipeline.batcher._periodic if isinstance(t, SelfMetrics)
        )
        assert wait_until(lambda: metrics.emitted >= 30, 10)
        assert lane.backlog() == 5  # the user batch in flight; no internal batch counted
        assert wait_until(lambda: lane.ledger._telemetry_ready is not None, 10)
        hung.release()
        assert streamer.flush(10)
        assert_balanced(streamer.health(), sent=5)
        assert len(user(hung.events)) == 5


class TestTheSelfTelemetrySlot:
    """A lane holds at most one self-telemetry batch: the newest."""

    def test_a_newer_batch_replaces_an_older_one(self) -> None:
        ledger = LaneLedger(max_buffer=10)
        batches = [EventBatch([sample(i)]) for i in range(100)]
        for batch in batches:
            ledger.offer_telemetry(batch)
        work = ledger.next_for_preparer()
        assert isinstance(work, SelfTelemetry)
        assert work.batch is batches[-1]
        sink = InMemorySink()
        ledger.telemetry_prepared(PreparedTelemetry(sink.prepare(work.batch), work.batch.batch_id))
        item = ledger.next_for_writer(None)
        assert isinstance(item, PreparedTelemetry)
        assert item.batch_id == batches[-1].batch_id
        SinkWriter(sink, "memory", retry=ms.RetryConfig(), warnings=RateLimitedLog()).write_once(
            item
        )
        assert [e.fields["value"] for e in sink.events] == [99]
        ledger.close_input()
        assert (ledger.next_for_preparer(), ledger.next_for_writer(None)) == (STOP, STOP)
        assert ledger.backlog() == 0

    def test_a_closing_lane_discards_it(self) -> None:
        ledger = LaneLedger(max_buffer=10)
        ledger.telemetry_prepared(PreparedTelemetry("payload", "b"))
        ledger.close_input()
        assert ledger.next_for_preparer() is STOP
        assert ledger.next_for_writer(None) is STOP
