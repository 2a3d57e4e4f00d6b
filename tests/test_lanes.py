"""Lanes isolate sinks: a hanging, slow or failing prepare() touches only its own sink.

send() lets a pipeline thread that fell behind catch up, never one that hangs.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

import pytest

from metricstream._log import RateLimitedLog
from metricstream.codecs import json
from metricstream.columns import EventColumns
from metricstream.contract import EventBatch
from metricstream.streamer.engine import pipeline as _pipeline
from metricstream.testing import InMemorySink

from .support import NO_REASONS, assert_balanced, sample, values, wait_until


class GatedPrepareSink(InMemorySink):
    """An InMemorySink whose prepare() waits for a gate before it returns."""

    def __init__(self, name: str, gate: threading.Event, log: list[str] | None = None) -> None:
        super().__init__(name)
        self.gate = gate
        self.log = log
        self.prepared = 0

    def prepare(self, batch: EventBatch) -> EventBatch:
        self.gate.wait()
        self.prepared += 1
        if self.log is not None:
            self.log.append(f"{self.name} prepared {batch.events[0].fields['value']}")
        return batch

    def release(self) -> None:
        self.gate.set()


class LoggingSink(InMemorySink):
    """An InMemorySink that logs each write into a shared list."""

    def __init__(self, name: str, log: list[str]) -> None:
        super().__init__(name)
        self.log = log

    def write(self, payload: EventBatch) -> None:
        super().write(payload)
        self.log.append(f"{self.name} wrote {payload.events[0].fields['value']}")


class TestPrepareIsolation:
    """One sink's prepare() never delays another sink or send()."""

    def test_a_hanging_prepare_delays_neither_other_sinks_nor_send(self, make_streamer) -> None:
        gate = threading.Event()
        hanging, memory = GatedPrepareSink("hanging", gate), InMemorySink()
        streamer = make_streamer([hanging, memory], batch_size=10, flush_interval=0.01)
        accepted = streamer.send_many(sample(i) for i in range(500))
        assert accepted == 500
        assert memory.wait_for(500, timeout=30)
        assert values(memory.events) == list(range(500))
        assert not gate.is_set()
        assert hanging.prepared == 0
        health = streamer.health()
        assert health.sinks["memory"].events_written == 500
        assert health.sinks["hanging"].pending == 500
        assert_balanced(health, sent=500)
        gate.set()
        assert streamer.flush(30) is True
        assert values(hanging.events) == list(range(500))

    def test_a_slow_prepare_does_not_hold_back_another_sinks_writes(self, make_streamer) -> None:
        log: list[str] = []
        gate = threading.Event()
        slow, fast = GatedPrepareSink("slow", gate, log), LoggingSink("fast", log)
        streamer = make_streamer([slow, fast], batch_size=10, flush_interval=0.01)
        streamer.send_many(sample(i) for i in range(50))
        assert wait_until(lambda: len(fast.events) == 50, timeout=30)
        gate.set()
        assert streamer.flush(30) is True
        first_slow = log.index("slow prepared 0")
        assert log[:first_slow] == [f"fast wrote {n}" for n in range(0, 50, 10)]
        assert values(slow.events) == list(range(50))

    def test_an_exception_in_one_sinks_prepare_affects_that_sink_alone(self, make_streamer) -> None:
        class Broken(InMemorySink):
            def prepare(self, batch: EventBatch) -> EventBatch:
                raise RuntimeError("this sink cannot encode anything")

        broken, memory = Broken("broken"), InMemorySink()
        streamer = make_streamer([broken, memory], batch_size=10)
        streamer.send_many(sample(i) for i in range(30))
        assert streamer.flush(10) is True
        health = streamer.health()
        assert values(memory.events) == list(range(30))
        assert health.sinks["memory"].dropped_by_reason == NO_REASONS
        assert health.sinks["broken"].dropped_by_reason == {**NO_REASONS, "invalid": 30}
        assert health.sinks["broken"].events_written == 0
        assert_balanced(health, sent=30)

    def test_a_prepare_that_raises_base_exception_is_reported_not_hidden(
        self, make_streamer
    ) -> None:
        class Exiting(InMemorySink):
            def prepare(self, batch: EventBatch) -> EventBatch:
                raise SystemExit("a sink must not do this")

        exiting, memory = Exiting("exiting"), InMemorySink()
        streamer = make_streamer([exiting, memory], batch_size=5)
        streamer.send_many(sample(i) for i in range(5))
        assert memory.wait_for(5)
        assert wait_until(lambda: not streamer.health().sinks["exiting"].healthy)
        health = streamer.health().sinks["exiting"]
        assert health.last_error is not None
        assert health.last_error.startswith("lane thread died: SystemExit: a sink must not do this")
        assert streamer.is_healthy() is False


class TestSharedEncodings:
    """Encodings shared by several sinks are computed once per batch."""

    def test_json_lines_are_encoded_once_for_three_sinks(
        self, make_streamer, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        calls: list[int] = []
        encode: Callable[..., bytes] = json.encode_batch

        def counting(columns: EventColumns) -> bytes:
            calls.append(len(columns))
            return encode(columns)

        monkeypatch.setattr(json, "encode_batch", counting)

        class JsonPayloadSink(InMemorySink):
            def __init__(self, name: str) -> None:
                super().__init__(name)
                self.payloads: list[bytes] = []

            def prepare(self, batch: EventBatch) -> EventBatch:
                self.payloads.append(batch.json_lines_bytes())
                return batch

        sinks = [JsonPayloadSink(f"s{i}") for i in range(3)]
        streamer = make_streamer(sinks, batch_size=25)
        streamer.send_many(sample(i) for i in range(100))
        assert streamer.flush(10) is True
        assert calls == [25, 25, 25, 25]
        for first, second, third in zip(*(s.payloads for s in sinks), strict=True):
            assert first is second is third


class TestRateLimitedWarnings:
    """A repeated warning is logged once per interval, with the count since the last line."""

    def test_repeats_are_counted_into_the_next_line(self, caplog: pytest.LogCaptureFixture) -> None:
        now = [100.0]
        log = RateLimitedLog(
            logging.getLogger("metricstream.test"), interval=60, clock=lambda: now[0]
        )
        with caplog.at_level(logging.WARNING, logger="metricstream.test"):
            assert log.warning(("s", "overflow"), "dropped %d", 1) is True
            assert [log.warning(("s", "overflow"), "dropped %d", n) for n in (2, 3, 4)] == [
                False
            ] * 3
            assert log.warning(("other", "overflow"), "dropped %d", 9) is True
            now[0] += 61
            assert log.warning(("s", "overflow"), "dropped %d", 5) is True
        assert [r.getMessage() for r in caplog.records] == [
            "dropped 1",
            "dropped 9",
            "dropped 5 (and 3 more like it in the last 61 s)",
        ]

    def test_sustained_overflow_logs_one_line_not_one_per_batch(
        self, make_streamer, caplog: pytest.LogCaptureFixture
    ) -> None:
        gate = threading.Event()
        stuck = GatedPrepareSink("stuck", gate)
        streamer = make_streamer(
            [stuck], batch_size=10, max_buffer=20, overflow="drop_newest", flush_interval=0.01
        )
        with caplog.at_level(logging.WARNING, logger="metricstream"):
            for i in range(200):
                streamer.send(sample(i))
                if i % 10 == 9:
                    streamer.flush(0.05)
            assert wait_until(
                lambda: streamer.health().sinks["stuck"].dropped_by_reason["overflow"] >= 150
            )
        lane_lines = [r for r in caplog.records if "sink 'stuck' buffer full" in r.getMessage()]
        upstream_lines = [r for r in caplog.records if "send() found" in r.getMessage()]
        assert (len(lane_lines), len(upstream_lines) <= 1) == (1, True)
        gate.set()


class TestCatchUp:
    """send() lets a pipeline thread that fell behind finish a batch, never a hanging one."""

    @staticmethod
    def record_waits(event: threading.Event, monkeypatch: pytest.MonkeyPatch) -> list[float]:
        """Record the timeouts of `event.wait` calls (which then return at once)."""
        waits: list[float] = []

        def wait(timeout: float | None = None) -> bool:
            waits.append(timeout if timeout is not None else -1.0)
            return True

        monkeypatch.setattr(event, "wait", wait)
        return waits

    def test_send_never_waits_for_a_preparer_that_hangs(
        self, make_streamer, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        gate = threading.Event()
        hanging = GatedPrepareSink("hanging", gate)
        streamer = make_streamer([hanging], batch_size=10, flush_interval=0.01)
        lane = streamer._pipeline.lanes[0]
        waits = self.record_waits(lane.prepared, monkeypatch)
        assert streamer.send_many(sample(i) for i in range(500)) == 500
        assert wait_until(lambda: lane.ledger.raw >= 490, timeout=30)
        assert streamer.send_many(sample(i) for i in range(500, 600)) == 100
        assert waits == []
        gate.set()
        assert streamer.flush(30) is True
        assert values(hanging.events) == list(range(600))

    def test_send_lets_a_working_preparer_that_fell_behind_finish_a_batch(
        self, make_streamer, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        monkeypatch.setattr(_pipeline, "PROGRESS_WINDOW", 3600.0)
        gate = threading.Event()

        class SecondBatchWaits(InMemorySink):
            """Prepares the first batch at once, then waits for the gate."""

            def prepare(self, batch: EventBatch) -> EventBatch:
                if self.events or len(batch) != 10 or batch.events[0].fields["value"] != 0:
                    gate.wait()
                return super().prepare(batch)

        sink = SecondBatchWaits("behind")
        streamer = make_streamer([sink], batch_size=10, flush_interval=60)
        lane = streamer._pipeline.lanes[0]
        waits = self.record_waits(lane.prepared, monkeypatch)
        streamer.send_many(sample(i) for i in range(10))
        assert wait_until(lambda: lane.prepared_at > 0, timeout=30)
        streamer.send_many(sample(i) for i in range(10, 100))
        assert wait_until(lambda: lane.ledger.raw >= 60, timeout=30)
        streamer.send_many(sample(i) for i in range(100, 200))
        assert waits
        assert set(waits) == {_pipeline.CATCH_UP_SECONDS}
        gate.set()
        assert streamer.flush(30) is True
        assert values(sink.events) == list(range(200))
        assert_balanced(streamer.health(), sent=200)

    def test_send_lets_a_batcher_that_fell_behind_cut_a_batch(
        self, make_streamer, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        memory = InMemorySink()
        streamer = make_streamer([memory], batch_size=10, flush_interval=60)
        pipeline = streamer._pipeline
        gate = threading.Event()
        cut = pipeline.batcher._cut_and_distribute

        def stalled_cut() -> bool:
            gate.wait()
            return cut()

        monkeypatch.setattr(pipeline.batcher, "_cut_and_distribute", stalled_cut)
        waits = self.record_waits(pipeline.cut, monkeypatch)
        assert streamer.send_many(sample(i) for i in range(100)) == 100
        assert len(waits) == 100 // 10 - _pipeline.CATCH_UP_BATCHES + 1
        assert set(waits) == {_pipeline.CATCH_UP_SECONDS}
        gate.set()
        assert streamer.flush(30) is True
        assert values(memory.events) == list(range(100))
        assert_balanced(streamer.health(), sent=100)
