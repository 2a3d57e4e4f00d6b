"""EventStreamer: batching, lanes, overflow, retry, accounting, shutdown, fork, correlation."""

from __future__ import annotations

import asyncio
import contextvars
import logging
import os
import re
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

import orjson
import pytest

import metricstream as ms
from metricstream.contract import EventBatch
from metricstream.sinks.jsonl import read_events
from metricstream.streamer.correlation import default_prefix
from metricstream.streamer.engine.lane.retry import Retrier, RetryInterruptedError
from metricstream.streamer.operations import lifecycle
from metricstream.testing import FaultySink, InMemorySink

from .support import (
    DEADLINE_MARGIN,
    NO_REASONS,
    assert_balanced,
    assert_identity,
    sample,
    values,
    wait_until,
)


class RecordingSink(InMemorySink):
    """An InMemorySink that also records each batch's size and payload object."""

    def __init__(self, name: str = "recording") -> None:
        super().__init__(name)
        self.sizes: list[int] = []
        self.payloads: list[bytes] = []

    def prepare(self, batch: EventBatch) -> EventBatch:
        self.sizes.append(len(batch))
        self.payloads.append(batch.influx_bytes())
        return batch


class TestSend:
    """send() and send_many() accept, stamp and count events."""

    def test_sent_events_arrive_in_order_and_unchanged(self, make_streamer) -> None:
        sink = InMemorySink()
        streamer = make_streamer([sink], batch_size=7)
        sent = [sample(i, host="a") for i in range(20)]
        assert [streamer.send(e) for e in sent] == [True] * 20
        assert streamer.flush(5) is True
        assert sink.events == sent
        health = streamer.health().sinks["memory"]
        assert (health.events_accepted, health.events_written, health.pending) == (20, 20, 0)

    def test_event_without_fields_is_rejected_and_counted_invalid(self, make_streamer) -> None:
        sink = InMemorySink()
        streamer = make_streamer([sink])
        with pytest.raises(ms.InvalidEventError, match="'empty' has no fields") as info:
            streamer.send(ms.MetricEvent("empty"))
        assert info.value.key == "empty"
        health = streamer.health().sinks["memory"]
        assert health.dropped_by_reason["invalid"] == 1
        assert health.events_accepted == 1

    def test_non_event_is_a_type_error(self, make_streamer) -> None:
        streamer = make_streamer([InMemorySink()])
        with pytest.raises(TypeError, match="send\\(\\) takes a MetricEvent, not str"):
            streamer.send("cpu value=1")  # type: ignore[arg-type]

    def test_send_after_shutdown_returns_false_and_counts_shutdown(self, make_streamer) -> None:
        sink = InMemorySink()
        streamer = make_streamer([sink])
        streamer.send(sample(1))
        assert streamer.shutdown(timeout=5) is True
        assert streamer.send(sample(2)) is False
        assert streamer.send_many([sample(3), sample(4)]) == 0
        health = streamer.health().sinks["memory"]
        assert health.events_written == 1
        assert health.dropped_by_reason == {**NO_REASONS, "shutdown": 3}
        assert health.events_accepted == 4

    def test_default_tags_are_added_and_event_tags_win(self, make_streamer) -> None:
        sink = InMemorySink()
        streamer = make_streamer([sink], default_tags={"env": "prod", "host": "default"})
        streamer.send(sample(1, host="web-1"))
        streamer.send(sample(2))
        streamer.flush(5)
        assert [e.tags for e in sink.events] == [
            {"env": "prod", "host": "web-1"},
            {"env": "prod", "host": "default"},
        ]

    def test_send_many_returns_how_many_were_queued(self, make_streamer) -> None:
        sink = InMemorySink()
        streamer = make_streamer([sink])
        assert streamer.send_many(sample(i) for i in range(12)) == 12
        streamer.flush(5)
        assert values(sink.events) == list(range(12))


class TestBatching:
    """Batches are cut by size or by time, and encodings are shared between sinks."""

    def test_batches_are_cut_at_batch_size_and_the_rest_waits_for_the_interval(
        self, make_streamer
    ) -> None:
        sink = RecordingSink()
        streamer = make_streamer([sink], batch_size=10, flush_interval=60)
        streamer.send_many(sample(i) for i in range(25))
        assert sink.wait_for(20) is True
        assert streamer.health().sinks["recording"].pending == 5
        assert streamer.flush(5) is True
        assert sink.sizes == [10, 10, 5]
        assert values(sink.events) == list(range(25))

    def test_a_partial_batch_is_sent_after_flush_interval(self, make_streamer) -> None:
        sink = InMemorySink()
        streamer = make_streamer([sink], batch_size=1000, flush_interval=0.05)
        streamer.send_many(sample(i) for i in range(3))
        assert sink.wait_for(3, timeout=5) is True
        assert values(sink.events) == [0, 1, 2]

    def test_each_sink_prepares_each_batch_once_from_one_shared_encoding(
        self, make_streamer
    ) -> None:
        first, second = RecordingSink("a"), RecordingSink("b")
        streamer = make_streamer([first, second], batch_size=5, flush_interval=60)
        streamer.send_many(sample(i) for i in range(10))
        streamer.flush(5)
        assert first.sizes == second.sizes == [5, 5]
        assert all(a is b for a, b in zip(first.payloads, second.payloads, strict=True))
        assert first.batch_ids == second.batch_ids
        assert len(set(first.batch_ids)) == 2

    def test_the_streamer_compression_is_offered_to_sinks_that_inherit(self, make_streamer) -> None:
        class Inheriting(InMemorySink):
            inherited: list[ms.Compression]

            def inherit_compression(self, compression: ms.Compression) -> None:
                self.inherited = [compression]

        sink = Inheriting()
        make_streamer([sink], compression="zstd")
        assert sink.inherited == [ms.Compression.ZSTD]


def send_in_chunks(
    streamer: ms.EventStreamer, total: int, chunk: int, memory: InMemorySink, first: int = 0
) -> None:
    """Send events `first` to `total` `chunk` at a time, letting the batcher hand each chunk out."""
    for start in range(first, total, chunk):
        streamer.send_many(sample(i) for i in range(start, start + chunk))
        assert memory.wait_for(start + chunk) is True


class TestOverflow:
    """Each overflow policy, with exact counts, behind a sink whose first write hangs."""

    def test_drop_newest_keeps_the_first_max_buffer_events(self, make_streamer) -> None:
        stuck, memory = FaultySink(["hang"], name="stuck"), InMemorySink()
        streamer = make_streamer(
            [stuck, memory], batch_size=10, max_buffer=30, flush_interval=60, overflow="drop_newest"
        )
        send_in_chunks(streamer, 100, 10, memory)
        health = streamer.health()
        assert_balanced(health, sent=100)
        assert health.sinks["stuck"].pending == 30
        assert health.sinks["stuck"].dropped_by_reason == {**NO_REASONS, "overflow": 70}
        assert health.sinks["memory"].events_written == 100
        stuck.release()
        assert streamer.flush(5) is True
        assert values(stuck.events) == list(range(30))

    def test_drop_oldest_keeps_the_batch_in_flight_and_the_newest(self, make_streamer) -> None:
        stuck, memory = FaultySink(["hang"], name="stuck"), InMemorySink()
        streamer = make_streamer(
            [stuck, memory], batch_size=10, max_buffer=30, flush_interval=60, overflow="drop_oldest"
        )
        send_in_chunks(streamer, 10, 10, memory)
        assert wait_until(lambda: len(stuck.attempts) == 1)  # the first batch is in flight
        send_in_chunks(streamer, 100, 10, memory, first=10)
        health = streamer.health()
        assert_balanced(health, sent=100)
        assert health.sinks["stuck"].pending == 30
        assert health.sinks["stuck"].dropped_by_reason == {**NO_REASONS, "overflow": 70}
        stuck.release()
        assert streamer.flush(5) is True
        assert values(stuck.events) == list(range(10)) + list(range(80, 100))
        assert streamer.health().sinks["stuck"].events_written == 30

    def test_block_waits_for_room_then_drops_newest_after_block_timeout(
        self, make_streamer
    ) -> None:
        stuck = FaultySink(["hang"], name="stuck")
        streamer = make_streamer(
            [stuck],
            batch_size=10,
            max_buffer=30,
            flush_interval=60,
            overflow="block",
            block_timeout=0.01,
        )
        for start in range(0, 30, 10):
            assert streamer.send_many(sample(i) for i in range(start, start + 10)) == 10
            expected = start + 10
            assert wait_until(lambda n=expected: streamer.health().sinks["stuck"].pending == n)
        assert wait_until(lambda: streamer._pipeline.limit == 0)
        assert streamer.send_many(sample(i) for i in range(30, 35)) == 0
        health = streamer.health().sinks["stuck"]
        assert health.dropped_by_reason == {**NO_REASONS, "overflow": 5}
        assert health.pending == 30
        stuck.release()
        assert streamer.flush(5) is True
        assert values(stuck.events) == list(range(30))

    def test_block_lets_send_continue_once_the_sink_catches_up(self, make_streamer) -> None:
        slow = FaultySink([FaultySink.delay(0.05)] * 3, name="slow")
        streamer = make_streamer(
            [slow], batch_size=10, max_buffer=20, flush_interval=0.01, overflow="block"
        )
        assert streamer.send_many(sample(i) for i in range(60)) == 60
        assert streamer.flush(10) is True
        assert values(slow.events) == list(range(60))
        assert streamer.health().sinks["slow"].events_dropped == 0


class TestIsolation:
    """A hanging or failing sink never delays the application or another sink."""

    def test_a_hanging_sink_does_not_delay_another_sink(self, make_streamer) -> None:
        stuck, memory = FaultySink(["hang"], name="stuck"), InMemorySink()
        streamer = make_streamer([stuck, memory], batch_size=10, flush_interval=0.01)
        assert streamer.send_many(sample(i) for i in range(50)) == 50
        assert memory.wait_for(50) is True
        assert wait_until(lambda: len(stuck.attempts) == 1)
        assert values(memory.events) == list(range(50))
        assert stuck.events == []
        assert [kind for _, kind in stuck.attempts] == ["hang"]

    def test_a_sink_that_keeps_failing_does_not_stop_another(self, make_streamer) -> None:
        broken, memory = FaultySink(then="transient", name="broken"), InMemorySink()
        streamer = make_streamer([broken, memory], batch_size=10)
        streamer.send_many(sample(i) for i in range(40))
        assert streamer.flush(10) is True
        assert values(memory.events) == list(range(40))
        broken_health = streamer.health().sinks["broken"]
        assert broken_health.dropped_by_reason == {**NO_REASONS, "retries_exhausted": 40}
        assert broken_health.retries == 4 * 3


class TestRetrySchedule:
    """Retrier: exponential backoff, full jitter, Retry-After, limits; on a fake clock."""

    class FakeClock:
        def __init__(self) -> None:
            self.now = 0.0
            self.sleeps: list[float] = []

        def sleep(self, seconds: float) -> None:
            self.sleeps.append(round(seconds, 9))
            self.now += seconds

        def monotonic(self) -> float:
            return self.now

    def failing(self, failures: list[Exception]) -> Callable[[], str]:
        def fn() -> str:
            if failures:
                raise failures.pop(0)
            return "done"

        return fn

    def test_delay_for_attempt_grows_by_the_multiplier_up_to_the_cap(self) -> None:
        config = ms.RetryConfig(initial_delay_ms=100, multiplier=3, max_delay_ms=1000)
        assert [config.delay_for_attempt(n) for n in range(5)] == [100, 300, 900, 1000, 1000]
        assert config.delay_for_attempt(10_000) == 1000

    def test_full_jitter_scales_each_delay_by_the_random_draw(self) -> None:
        clock = self.FakeClock()
        config = ms.RetryConfig(
            max_retries=4, initial_delay_ms=100, multiplier=3, max_delay_ms=1000
        )
        retrier = Retrier(
            config, sleep=clock.sleep, clock=clock.monotonic, random_source=lambda: 0.5
        )
        fn = self.failing([ms.TransientSinkError("x")] * 4)
        assert retrier.call(fn) == "done"
        assert clock.sleeps == [0.05, 0.15, 0.45, 0.5]

    def test_without_jitter_the_delays_are_exact(self) -> None:
        clock = self.FakeClock()
        config = ms.RetryConfig(max_retries=3, initial_delay_ms=100, jitter=False)
        retrier = Retrier(config, sleep=clock.sleep, clock=clock.monotonic)
        assert retrier.call(self.failing([ms.TransientSinkError("x")] * 3)) == "done"
        assert clock.sleeps == [0.1, 0.2, 0.4]

    def test_retry_after_is_honoured_and_capped_at_max_delay(self) -> None:
        clock = self.FakeClock()
        config = ms.RetryConfig(max_retries=3, initial_delay_ms=100, max_delay_ms=2000)
        retrier = Retrier(
            config, sleep=clock.sleep, clock=clock.monotonic, random_source=lambda: 0.0
        )
        failures: list[Exception] = [
            ms.TransientSinkError("slow down", retry_after=0.75),
            ms.TransientSinkError("slow down more", retry_after=30),
        ]
        assert retrier.call(self.failing(failures)) == "done"
        assert clock.sleeps == [0.75, 2.0]

    def test_retries_stop_after_max_retries_with_the_last_error(self) -> None:
        clock = self.FakeClock()
        config = ms.RetryConfig(max_retries=2, initial_delay_ms=10, jitter=False)
        calls: list[int] = []

        def always_fails() -> None:
            calls.append(1)
            raise ms.TransientSinkError(f"failure {len(calls)}")

        retrier = Retrier(config, sleep=clock.sleep, clock=clock.monotonic)
        with pytest.raises(ms.TransientSinkError, match="failure 3"):
            retrier.call(always_fails)
        assert len(calls) == 3
        assert clock.sleeps == [0.01, 0.02]

    def test_retries_stop_once_max_elapsed_has_passed(self) -> None:
        clock = self.FakeClock()
        config = ms.RetryConfig(
            max_retries=50, initial_delay_ms=100, jitter=False, max_elapsed_ms=650
        )
        retrier = Retrier(config, sleep=clock.sleep, clock=clock.monotonic)
        with pytest.raises(ms.TransientSinkError):
            retrier.call(self.failing([ms.TransientSinkError("x")] * 50))
        assert clock.sleeps == [0.1, 0.2, 0.4]

    def test_the_default_policy_retries_without_limit_with_waits_capped_at_10_s(self) -> None:
        clock = self.FakeClock()
        retrier = Retrier(
            ms.RetryConfig(), sleep=clock.sleep, clock=clock.monotonic, random_source=lambda: 1.0
        )
        assert retrier.call(self.failing([ms.TransientSinkError("down")] * 1000)) == "done"
        expected = [min(0.1 * 2**n, 10.0) for n in range(1000)]
        assert clock.sleeps == pytest.approx(expected)
        assert clock.now == pytest.approx(sum(expected))  # about 2.8 hours: no time limit either

    @pytest.mark.parametrize(
        ("options", "sleeps"),
        [({"max_retries": 2}, [0.1, 0.2]), ({"max_elapsed_ms": 650}, [0.1, 0.2, 0.4])],
    )
    def test_a_limit_given_alone_is_the_only_limit(
        self, options: dict[str, float], sleeps: list[float]
    ) -> None:
        clock = self.FakeClock()
        config = ms.RetryConfig(jitter=False, **options)  # type: ignore[arg-type]
        retrier = Retrier(config, sleep=clock.sleep, clock=clock.monotonic)
        with pytest.raises(ms.TransientSinkError):
            retrier.call(self.failing([ms.TransientSinkError("x")] * 50))
        assert clock.sleeps == pytest.approx(sleeps)

    def test_a_permanent_error_is_not_retried(self) -> None:
        clock = self.FakeClock()
        retrier = Retrier(ms.RetryConfig(), sleep=clock.sleep, clock=clock.monotonic)
        with pytest.raises(ms.PermanentSinkError):
            retrier.call(self.failing([ms.PermanentSinkError("bad data")]))
        assert clock.sleeps == []

    def test_an_unexpected_error_is_retried_like_a_transient_one(self) -> None:
        clock = self.FakeClock()
        config = ms.RetryConfig(initial_delay_ms=10, jitter=False)
        retrier = Retrier(config, sleep=clock.sleep, clock=clock.monotonic)
        assert retrier.call(self.failing([RuntimeError("bug")])) == "done"
        assert clock.sleeps == [0.01]

    def test_an_interrupting_sleep_ends_the_loop_at_once(self) -> None:
        def interrupt(_seconds: float) -> None:
            raise RetryInterruptedError

        retrier = Retrier(ms.RetryConfig(), sleep=interrupt)
        with pytest.raises(RetryInterruptedError):
            retrier.call(self.failing([ms.TransientSinkError("x")] * 3))

    @pytest.mark.parametrize(
        ("option", "value"),
        [
            ("max_retries", -1),
            ("initial_delay_ms", -5),
            ("max_delay_ms", float("inf")),
            ("multiplier", 0.5),
            ("max_elapsed_ms", float("nan")),
            ("jitter", "yes"),
        ],
    )
    def test_invalid_options_name_the_option(self, option: str, value: object) -> None:
        with pytest.raises(ms.ConfigError) as info:
            ms.RetryConfig(**{option: value})  # type: ignore[arg-type]
        assert info.value.option == option


class TestRetryInTheStreamer:
    """Lanes retry transient failures, drop permanent ones, and survive surprises."""

    def test_transient_failures_are_retried_until_written(self, make_streamer) -> None:
        sink = FaultySink(["transient", FaultySink.transient(retry_after=0.001), "ok"])
        streamer = make_streamer([sink], batch_size=10)
        streamer.send_many(sample(i) for i in range(10))
        assert streamer.flush(5) is True
        health = streamer.health().sinks["faulty"]
        assert (health.events_written, health.retries, health.write_errors) == (10, 2, 2)
        assert health.consecutive_failures == 0
        assert health.connected is True
        assert values(sink.events) == list(range(10))

    def test_a_permanent_failure_drops_the_batch_as_rejected(self, make_streamer) -> None:
        sink = FaultySink(["permanent", "ok"])
        streamer = make_streamer([sink], batch_size=10, flush_interval=60)
        streamer.send_many(sample(i) for i in range(20))
        assert streamer.flush(5) is True
        health = streamer.health().sinks["faulty"]
        assert health.dropped_by_reason == {**NO_REASONS, "rejected": 10}
        assert health.events_written == 10
        assert health.retries == 0
        assert values(sink.events) == list(range(10, 20))

    def test_an_unexpected_exception_is_logged_once_with_traceback_and_retried(
        self, make_streamer, caplog: pytest.LogCaptureFixture
    ) -> None:
        sink = FaultySink(["raise", "raise", "raise", "ok"])
        streamer = make_streamer([sink], batch_size=5)
        with caplog.at_level(logging.WARNING, logger="metricstream"):
            streamer.send_many(sample(i) for i in range(5))
            assert streamer.flush(5) is True
        tracebacks = [r for r in caplog.records if "Traceback" in r.getMessage()]
        assert len(tracebacks) == 1
        assert "RuntimeError: scripted unexpected failure of faulty" in tracebacks[0].getMessage()
        assert values(sink.events) == list(range(5))
        assert streamer.health().sinks["faulty"].retries == 3


class TestAccounting:
    """accepted == written + dropped + pending for every sink, at every moment."""

    def test_the_identity_holds_while_events_flow(self, make_streamer) -> None:
        slow = FaultySink([FaultySink.delay(0.002)] * 20 + ["transient", "permanent"], name="slow")
        memory = InMemorySink()
        streamer = make_streamer(
            [slow, memory],
            batch_size=50,
            max_buffer=400,
            flush_interval=0.01,
            overflow="drop_oldest",
        )
        stop = threading.Event()
        sent = [0]

        def produce() -> None:
            while not stop.is_set() and sent[0] < 20_000:
                streamer.send(sample(sent[0]))
                sent[0] += 1

        producer = threading.Thread(target=produce)
        producer.start()
        snapshots = 0
        while producer.is_alive() and snapshots < 300:
            assert_identity(streamer.health())
            snapshots += 1
        stop.set()
        producer.join()
        streamer.flush(10)
        final = streamer.health()
        assert_balanced(final, sent=sent[0])
        assert final.sinks["memory"].pending == 0

    def test_eight_threads_sending_concurrently_are_all_counted(self, make_streamer) -> None:
        sink = InMemorySink()
        streamer = make_streamer([sink], batch_size=500, max_buffer=100_000)
        per_thread = 5_000

        def produce(thread: int) -> None:
            for i in range(per_thread):
                streamer.send(sample(i, thread=str(thread)))

        threads = [threading.Thread(target=produce, args=(t,)) for t in range(8)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert streamer.flush(30) is True
        health = streamer.health().sinks["memory"]
        assert (health.events_accepted, health.events_written, health.events_dropped) == (
            40_000,
            40_000,
            0,
        )
        for thread in range(8):
            mine = [e.fields["value"] for e in sink.events if e.tags["thread"] == str(thread)]
            assert mine == list(range(per_thread))


class TestHealth:
    """Health reports connection state, failures and errors without secrets."""

    def test_a_sink_whose_probe_fails_is_reported_disconnected(self, make_streamer) -> None:
        sick, memory = FaultySink(healthy=False, name="sick"), InMemorySink()
        streamer = make_streamer([sick, memory])
        assert wait_until(lambda: not streamer.health().sinks["sick"].connected)
        health = streamer.health()
        assert health.healthy is False
        assert health.sinks["memory"].healthy is True
        assert (
            health.sinks["sick"].last_error
            == "TransientSinkError: sick is scripted to be unhealthy"
        )
        assert streamer.is_healthy() is False

    def test_consecutive_failures_past_the_threshold_make_a_sink_unhealthy(
        self, make_streamer
    ) -> None:
        sink = FaultySink(["transient"] * 2 + ["hang"])
        streamer = make_streamer([sink], batch_size=1, unhealthy_after=2)
        streamer.send(sample(1))
        assert wait_until(lambda: streamer.health().sinks["faulty"].consecutive_failures == 2)
        assert streamer.is_healthy() is False

    def test_last_error_never_contains_credentials(self, make_streamer) -> None:
        class Leaky(InMemorySink):
            def write(self, payload: EventBatch) -> None:
                raise ms.PermanentSinkError(
                    "POST http://admin:hunter2@db:8086/write?token=s3cr3t&db=x failed; "
                    "Authorization: Token abc123"
                )

        streamer = make_streamer([Leaky("leaky")])
        streamer.send(sample(1))
        streamer.flush(5)
        error = streamer.health().sinks["leaky"].last_error
        assert error == (
            "PermanentSinkError: POST http://admin:***@db:8086/write?token=***&db=x failed; "
            "Authorization: Token ***"
        )

    def test_health_serialises_to_json_with_every_drop_reason(self, make_streamer) -> None:
        streamer = make_streamer([InMemorySink()])
        streamer.send(sample(1))
        streamer.flush(5)
        data = orjson.loads(streamer.health().to_json())
        assert data["events_accepted"] == 1
        assert data["sinks"]["memory"]["dropped_by_reason"] == NO_REASONS
        assert data["sinks"]["memory"]["events_written"] == 1
        assert streamer.pending_count() == 0


class TestShutdown:
    """shutdown() flushes, closes, honours its deadline and is idempotent."""

    def test_shutdown_delivers_everything_and_closes_the_sinks(self, make_streamer) -> None:
        sink = InMemorySink()
        streamer = make_streamer([sink], flush_interval=60)
        streamer.send_many(sample(i) for i in range(10))
        assert streamer.shutdown(timeout=5) is True
        assert values(sink.events) == list(range(10))
        assert sink.closed is True
        assert streamer.health().running is False

    def test_shutdown_returns_by_its_deadline_when_a_sink_is_down(self, make_streamer) -> None:
        hour = 3_600_000
        slow_retry = ms.RetryConfig(
            max_retries=10,
            initial_delay_ms=hour,
            max_delay_ms=hour,
            max_elapsed_ms=10 * hour,
            jitter=False,
        )
        dead = FaultySink(then="transient", name="dead")
        streamer = make_streamer([dead], retry=slow_retry, batch_size=5, flush_interval=60)
        streamer.send_many(sample(i) for i in range(12))
        assert wait_until(lambda: dead.attempts != [], timeout=DEADLINE_MARGIN)
        started = time.monotonic()
        assert streamer.shutdown(timeout=0.3) is False
        # Not interrupted, the retry wait would last an hour, and the sink's
        # writer thread with it.
        assert time.monotonic() - started < 0.3 + DEADLINE_MARGIN

        def writer_alive() -> bool:
            return any(t.name == "metricstream-write-dead" for t in threading.enumerate())

        assert wait_until(lambda: not writer_alive(), timeout=DEADLINE_MARGIN)
        health = streamer.health().sinks["dead"]
        assert health.dropped_by_reason == {**NO_REASONS, "shutdown": 12}
        assert (health.events_written, health.pending) == (0, 0)
        assert dead.closed is True

    def test_shutdown_abandons_a_hanging_write_at_the_deadline(self, make_streamer) -> None:
        stuck, memory = FaultySink(["hang"], name="stuck"), InMemorySink()
        streamer = make_streamer([stuck, memory], batch_size=4, flush_interval=60)
        streamer.send_many(sample(i) for i in range(10))
        assert streamer.shutdown(timeout=0.3) is False
        health = streamer.health()
        reasons = health.sinks["stuck"].dropped_by_reason
        # The write in flight is unconfirmed until it ends: its sink's close ends it.
        assert (reasons["shutdown"] + reasons["unconfirmed"], reasons["unconfirmed"] in (0, 4)) == (
            10,
            True,
        )
        assert health.sinks["memory"].events_written == 10
        assert_balanced(health, sent=10)
        writer = next(t for t in streamer._pipeline.lanes[0]._threads if "write" in t.name)
        writer.join(30)
        health = streamer.health()
        assert health.sinks["stuck"].dropped_by_reason == {**NO_REASONS, "shutdown": 10}
        assert_balanced(health, sent=10)

    def test_a_write_waiting_to_retry_at_the_deadline_is_dropped_as_shutdown(
        self, make_streamer
    ) -> None:
        failing = FaultySink(then="transient", name="failing")
        slow_retry = ms.RetryConfig(
            max_retries=50, initial_delay_ms=5000, max_delay_ms=5000, jitter=False
        )
        streamer = make_streamer([failing], batch_size=4, flush_interval=60, retry=slow_retry)
        streamer.send_many(sample(i) for i in range(10))
        assert wait_until(lambda: bool(failing.attempts))
        assert streamer.shutdown(timeout=0.3) is False
        health = streamer.health().sinks["failing"]
        assert health.dropped_by_reason == {**NO_REASONS, "shutdown": 10}
        assert_balanced(streamer.health(), sent=10)

    def test_a_write_that_ends_after_the_deadline_is_counted_written(self, make_streamer) -> None:
        release = threading.Event()

        class Late(InMemorySink):
            def write(self, payload: ms.EventBatch) -> None:
                release.wait(30)
                super().write(payload)

        late = Late("late")
        streamer = make_streamer([late], batch_size=4, flush_interval=60)
        streamer.send_many(sample(i) for i in range(10))
        assert streamer.shutdown(timeout=0.3) is False
        reasons = streamer.health().sinks["late"].dropped_by_reason
        assert (reasons["unconfirmed"], reasons["shutdown"]) == (4, 6)
        release.set()
        writer = next(t for t in streamer._pipeline.lanes[0]._threads if "write" in t.name)
        writer.join(30)
        health = streamer.health().sinks["late"]
        assert values(late.events) == [0, 1, 2, 3]
        assert (health.events_written, health.dropped_by_reason) == (
            4,
            {**NO_REASONS, "shutdown": 6},
        )
        assert_balanced(streamer.health(), sent=10)

    def test_shutdown_is_idempotent_and_close_and_with_call_it(self, make_streamer) -> None:
        sink = InMemorySink()
        streamer = make_streamer([sink])
        with streamer as entered:
            assert entered is streamer
            streamer.send(sample(1))
        assert sink.closed is True
        assert streamer.shutdown() is True
        streamer.close()
        assert values(sink.events) == [1]

    def test_the_atexit_hook_is_registered_and_removed_by_shutdown(self) -> None:
        streamer = ms.EventStreamer([InMemorySink()])
        assert streamer in lifecycle._at_exit
        streamer.shutdown()
        assert streamer not in lifecycle._at_exit


class TestConfiguration:
    """Invalid options raise ConfigError naming the option."""

    @pytest.mark.parametrize(
        ("option", "value"),
        [
            ("batch_size", 0),
            ("batch_size", 2.5),
            ("max_buffer", 0),
            ("flush_interval", 0),
            ("flush_interval", float("nan")),
            ("flush_jitter", -1),
            ("overflow", "drop_random"),
            ("block_timeout", -0.5),
            ("retry", {"max_retries": 3}),
            ("compression", "lz4"),
            ("default_tags", {"time": "x"}),
            ("correlation_prefix", ""),
            ("unhealthy_after", 0),
        ],
    )
    def test_invalid_option(self, option: str, value: object) -> None:
        with pytest.raises(ms.ConfigError) as info:
            ms.EventStreamer([InMemorySink()], register_atexit=False, **{option: value})  # type: ignore[arg-type]
        assert info.value.option == option

    def test_batch_size_may_not_exceed_max_buffer(self) -> None:
        with pytest.raises(ms.ConfigError, match="batch_size: 20 exceeds max_buffer=10"):
            ms.EventStreamer([InMemorySink()], batch_size=20, max_buffer=10, register_atexit=False)

    def test_sink_names_must_be_unique(self) -> None:
        with pytest.raises(ms.ConfigError, match="two sinks are named 'memory'"):
            ms.EventStreamer([InMemorySink(), InMemorySink()], register_atexit=False)

    def test_something_that_is_not_a_sink_is_refused(self) -> None:
        with pytest.raises(
            ms.ConfigError, match=r"lacks prepare\(\), write\(\), check\(\), close\(\)"
        ):
            ms.EventStreamer([object()], register_atexit=False)  # type: ignore[list-item]

    def test_no_sinks_is_refused(self) -> None:
        with pytest.raises(ms.ConfigError, match="at least one sink"):
            ms.EventStreamer([], register_atexit=False)


class TestCorrelation:
    """Correlation ids: generated, scoped, carried across threads and tasks."""

    def test_events_sent_in_a_scope_get_its_id_unless_they_have_their_own(
        self, make_streamer
    ) -> None:
        sink = InMemorySink()
        streamer = make_streamer([sink])
        with streamer.correlation("req-42") as cid:
            assert cid == "req-42"
            streamer.send(sample(1))
            streamer.send(sample(2).with_correlation_id("own"))
            with streamer.correlation("inner"):
                streamer.send(sample(3))
            streamer.send(sample(4))
        streamer.send(sample(5))
        streamer.flush(5)
        assert [e.correlation_id for e in sink.events] == ["req-42", "own", "inner", "req-42", None]

    def test_the_streamer_generates_ids_with_its_prefix(self, make_streamer) -> None:
        streamer = make_streamer([InMemorySink()], correlation_prefix="billing")
        first, second = streamer.generate_correlation_id(), streamer.generate_correlation_id()
        prefix, pid, first_n = first.split("-")
        assert (prefix, pid) == ("billing", str(os.getpid()))
        assert second == f"billing-{pid}-{int(first_n) + 1}"

    def test_generated_ids_are_prefix_pid_counter(self, make_streamer) -> None:
        streamer = make_streamer([InMemorySink()], correlation_prefix="checkout")
        with streamer.correlation() as first, streamer.correlation() as second:
            pass
        pattern = re.compile(rf"checkout-{os.getpid()}-(\d+)")
        first_match, second_match = pattern.fullmatch(first), pattern.fullmatch(second)
        assert first_match is not None
        assert second_match is not None
        assert int(second_match.group(1)) == int(first_match.group(1)) + 1

    def test_the_default_prefix_is_the_program_name(self) -> None:
        cid = ms.generate_correlation_id()
        prefix = default_prefix()
        assert cid.startswith(f"{prefix}-{os.getpid()}-")

    def test_the_id_follows_threads_that_copy_the_context_only(self) -> None:
        seen: dict[str, str | None] = {}

        def record(label: str) -> None:
            seen[label] = ms.current_correlation_id()

        with ms.correlation("req-7"):
            copied = threading.Thread(
                target=contextvars.copy_context().run, args=(record, "copied")
            )
            plain = threading.Thread(target=record, args=("plain",))
            copied.start()
            plain.start()
            copied.join()
            plain.join()
        assert seen == {"copied": "req-7", "plain": None}

    def test_concurrent_asyncio_tasks_keep_their_own_ids(self) -> None:
        async def handle(cid: str) -> list[str | None]:
            seen = []
            with ms.correlation(cid):
                for _ in range(3):
                    await asyncio.sleep(0)
                    seen.append(ms.current_correlation_id())
            return seen

        async def main() -> list[list[str | None]]:
            return list(await asyncio.gather(handle("a"), handle("b")))

        assert asyncio.run(main()) == [["a", "a", "a"], ["b", "b", "b"]]
        assert ms.current_correlation_id() is None

    def test_an_invalid_correlation_id_is_refused(self) -> None:
        with (
            pytest.raises(ms.InvalidEventError, match="must be a non-empty one-line str"),
            ms.correlation("a\nb"),
        ):
            pass


@pytest.mark.skipif(not hasattr(os, "fork"), reason="os.fork is POSIX-only")
class TestFork:
    """After os.fork() the child gets fresh, empty, working lanes."""

    def run_in_child(self, body: Callable[[], dict[str, object]]) -> dict[str, object]:
        read_end, write_end = os.pipe()
        pid = os.fork()
        if pid == 0:  # the child
            os.close(read_end)
            try:
                result = body()
            except BaseException as exc:
                result = {"error": repr(exc)}
            os.write(write_end, orjson.dumps(result))
            os._exit(0)
        os.close(write_end)
        chunks = []
        while chunk := os.read(read_end, 65536):
            chunks.append(chunk)
        os.close(read_end)
        os.waitpid(pid, 0)
        return orjson.loads(b"".join(chunks))  # type: ignore[no-any-return]

    def test_the_child_starts_empty_and_delivers_its_own_events(self, make_streamer) -> None:
        sink = InMemorySink()
        streamer = make_streamer([sink], flush_interval=60)
        streamer.send_many(sample(i) for i in range(10))

        def child() -> dict[str, object]:
            before = streamer.health().sinks["memory"]
            already = len(sink.events)
            streamer.send_many(sample(i) for i in range(100, 105))
            flushed = streamer.flush(5)
            after = streamer.health().sinks["memory"]
            return {
                "before": [before.events_accepted, before.pending],
                "flushed": flushed,
                "after": [after.events_accepted, after.events_written],
                "new_values": values(sink.events[already:]),
                "cid_pid": ms.generate_correlation_id("x").split("-")[1],
            }

        result = self.run_in_child(child)
        assert result == {
            "before": [0, 0],
            "flushed": True,
            "after": [5, 5],
            "new_values": [100, 101, 102, 103, 104],
            "cid_pid": result["cid_pid"],
        }
        assert result["cid_pid"] != str(os.getpid())
        assert streamer.flush(5) is True
        assert values(sink.events) == list(range(10))
        assert streamer.health().sinks["memory"].events_accepted == 10


class TestInterpreterExit:
    """The atexit hook delivers pending events when a program ends without shutdown()."""

    def test_events_pending_at_exit_are_written(self, tmp_path: Path) -> None:
        target = tmp_path / "exit.jsonl"
        script = (
            "import metricstream as ms\n"
            f"sink = ms.sinks.JsonLinesSink({str(target)!r})\n"
            "streamer = ms.EventStreamer([sink], flush_interval=60)\n"
            "for i in range(250):\n"
            "    streamer.send(ms.event_from_sample('m', i, timestamp_ns=i, before_2001=True))\n"
            "print('exiting')\n"
        )
        result = subprocess.run(
            [sys.executable, "-c", script], capture_output=True, text=True, timeout=60, check=False
        )
        assert (result.returncode, result.stdout) == (0, "exiting\n")
        assert values(list(read_events(target))) == list(range(250))

    def test_opting_out_leaves_them_undelivered(self, tmp_path: Path) -> None:
        target = tmp_path / "exit.jsonl"
        script = (
            "import metricstream as ms\n"
            f"sink = ms.sinks.JsonLinesSink({str(target)!r})\n"
            "streamer = ms.EventStreamer([sink], flush_interval=60, register_atexit=False)\n"
            "streamer.send(ms.event_from_sample('m', 1))\n"
        )
        result = subprocess.run(
            [sys.executable, "-c", script], capture_output=True, text=True, timeout=60, check=False
        )
        assert result.returncode == 0
        assert not target.exists()


class PickySink(InMemorySink):
    """Refuses events whose value is negative, naming them or not."""

    def __init__(self, *, name_them: bool) -> None:
        super().__init__("picky")
        self.name_them = name_them
        self.prepared_sizes: list[int] = []

    def prepare(self, batch: EventBatch) -> EventBatch:
        self.prepared_sizes.append(len(batch))
        bad = tuple(i for i, e in enumerate(batch.events) if e.fields["value"] < 0)  # type: ignore[operator]
        if bad:
            raise ms.InvalidEventError(None, "negative", indexes=bad if self.name_them else None)
        return batch


class TestInvalidEvents:
    """Events a sink cannot encode are dropped as invalid, for that sink only."""

    @pytest.mark.parametrize("name_them", [True, False])
    def test_only_the_offending_events_are_dropped(self, make_streamer, name_them: bool) -> None:
        picky, memory = PickySink(name_them=name_them), InMemorySink()
        streamer = make_streamer([picky, memory], batch_size=10, flush_interval=60)
        streamer.send_many(sample(-i if i in (3, 7) else i) for i in range(10))
        assert streamer.flush(5) is True
        assert values(picky.events) == [0, 1, 2, 4, 5, 6, 8, 9]
        assert values(memory.events) == [0, 1, 2, -3, 4, 5, 6, -7, 8, 9]
        assert streamer.health().sinks["picky"].dropped_by_reason == {**NO_REASONS, "invalid": 2}
        expected_sizes = [10, 8] if name_them else [10, *[1] * 10, 8]
        assert picky.prepared_sizes == expected_sizes


class PartlyWritingSink(InMemorySink):
    """Stores the first `stored` events of each batch, then fails with `error`."""

    def __init__(self, stored: int, error: ms.SinkError) -> None:
        super().__init__("partly")
        self.stored = stored
        self.error = error

    def write(self, payload: EventBatch) -> None:
        self.events.extend(payload.events[: self.stored])
        self.error.written = self.stored
        raise self.error


class TestPartialWrites:
    """Events a sink reports stored before failing are counted as written."""

    @pytest.mark.parametrize(
        ("error", "reason"),
        [
            (ms.PermanentSinkError("refused the rest"), "rejected"),
            (ms.TransientSinkError("went away"), "retries_exhausted"),
        ],
    )
    def test_the_stored_part_is_written_and_the_rest_dropped(
        self, make_streamer, error: ms.SinkError, reason: str
    ) -> None:
        sink = PartlyWritingSink(4, error)
        streamer = make_streamer([sink], batch_size=10, flush_interval=60)
        streamer.send_many(sample(i) for i in range(10))
        assert streamer.flush(5) is True
        health = streamer.health().sinks["partly"]
        assert health.events_written == 4
        assert health.dropped_by_reason == {**NO_REASONS, reason: 6}
