"""Hostile use of the streamer: each case once lost events, hung or lied in health."""

from __future__ import annotations

import gc
import logging
import subprocess
import sys
import threading
import time
import weakref

import pytest

import metricstream as ms
from metricstream.codecs import lineprotocol
from metricstream.columns import EventColumns
from metricstream.contract import EventBatch
from metricstream.event import _shared_tags_cache
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


class TestTheBatcherSurvives:
    """One bad event costs itself; a dead batcher is reported, never hidden."""

    def test_an_event_with_invalid_assigned_tags_is_dropped_alone(self, make_streamer) -> None:
        sink = InMemorySink()
        streamer = make_streamer([sink], batch_size=10, default_tags={"region": "eu"})
        events = [sample(i) for i in range(30)]
        events[13].tags = {"bad key\n": "x"}  # assigned directly: never validated
        streamer.send_many(events)
        assert streamer.flush(30) is True
        assert values(sink.events) == [i for i in range(30) if i != 13]
        assert all(e.tags == {"region": "eu"} for e in sink.events)
        health = streamer.health()
        assert health.sinks["memory"].dropped_by_reason == {**NO_REASONS, "invalid": 1}
        assert (health.healthy, health.error) == (True, None)
        assert_balanced(health, sent=30)

    def test_a_dead_batcher_makes_health_unhealthy_and_flush_return(
        self, make_streamer, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        streamer = make_streamer([InMemorySink()], batch_size=5)

        def explode() -> bool:
            raise RuntimeError("simulated bug")

        monkeypatch.setattr(streamer._pipeline.batcher, "_cut_and_distribute", explode)
        streamer.send_many(sample(i) for i in range(5))
        assert streamer.flush(30) is False
        health = streamer.health()
        assert (health.healthy, health.error) == (
            False,
            "batcher died: RuntimeError: simulated bug",
        )
        assert streamer.is_healthy() is False


class TestSendAnswersTheSame:
    """send() refuses what is not an event the same way before and after shutdown."""

    @pytest.mark.parametrize("thing", [None, "text", 42])
    def test_type_errors_before_and_after_shutdown(self, make_streamer, thing: object) -> None:
        streamer = make_streamer([InMemorySink()])
        with pytest.raises(TypeError, match="send\\(\\) takes a MetricEvent"):
            streamer.send(thing)  # type: ignore[arg-type]
        streamer.shutdown(5)
        with pytest.raises(TypeError, match="send\\(\\) takes a MetricEvent"):
            streamer.send(thing)  # type: ignore[arg-type]
        assert streamer.health().events_accepted == 0


class TestCorrelationIds:
    """Correlation ids are validated like names, in scopes too."""

    @pytest.mark.parametrize("cid", ["a\x00b", "esc\x1b[31m", "lone\ud800", ""])
    def test_unusable_ids_are_refused_in_a_scope(self, make_streamer, cid: str) -> None:
        streamer = make_streamer([InMemorySink()])
        with pytest.raises(ms.InvalidEventError), streamer.correlation(cid):
            pass


class TestBoundedCaches:
    """Every cache stays within its limit, whatever the workload."""

    def test_a_flood_of_distinct_names_keeps_every_cache_bounded(self) -> None:
        limit = lineprotocol._HEADS_PER_TAGS
        tags = {"host": "a"}
        events = [ms.event_from_sample(f"m{i}", 1.0, tags) for i in range(limit + 1000)]
        lineprotocol.encode_batch(EventColumns.of_events(events))
        for event in events[::100]:
            event.to_influx_line()
        assert 0 < len(events[0].tags.encoded) <= limit  # type: ignore[attr-defined]
        for cache in (
            lineprotocol._measurement_cache,
            lineprotocol._head_cache,
            lineprotocol._field_prefix_cache,
            _shared_tags_cache,
        ):
            assert len(cache) <= cache.limit
        from metricstream import _validate

        for names in (_validate.valid_measurements, _validate.valid_keys):
            assert len(names) <= names.limit


class HangingCloseSink(InMemorySink):
    """A sink whose close() never returns by itself."""

    def __init__(self, name: str) -> None:
        super().__init__(name)
        self.gate = threading.Event()
        self.close_returned = threading.Event()

    def close(self) -> None:
        self.gate.wait()
        self.close_returned.set()

    def release(self) -> None:
        self.gate.set()


class TestDeadlines:
    """A shutdown deadline holds for every caller, whatever the sinks do."""

    def test_a_second_shutdown_returns_by_its_own_deadline(self, make_streamer) -> None:
        hanging = FaultySink(then="hang", name="hanging")
        streamer = make_streamer([hanging], batch_size=1)
        streamer.send(sample(1))
        assert wait_until(lambda: len(hanging.attempts) == 1, timeout=DEADLINE_MARGIN)
        first_deadline = 3 * DEADLINE_MARGIN
        first = threading.Thread(target=streamer.shutdown, kwargs={"timeout": first_deadline})
        first.start()
        assert wait_until(lambda: not streamer.health().running, timeout=DEADLINE_MARGIN)
        started = time.monotonic()
        assert streamer.shutdown(1) is False
        elapsed = time.monotonic() - started
        # Waiting for the first shutdown would last until its deadline, or the release below.
        assert first.is_alive()
        assert elapsed < 1 + DEADLINE_MARGIN
        hanging.release()
        first.join(first_deadline)
        assert not first.is_alive()

    def test_sinks_whose_close_hangs_do_not_stretch_the_deadline(self, make_streamer) -> None:
        sinks = [HangingCloseSink(f"s{i}") for i in range(40)]
        streamer = make_streamer(sinks)
        streamer.send(sample(1))
        started = time.monotonic()
        streamer.shutdown(2)
        elapsed = time.monotonic() - started
        # Waiting for the closes would never end; a deadline of its own for each
        # close would take 40 x 2 s.
        assert [sink.close_returned.is_set() for sink in sinks] == [False] * 40
        assert elapsed < 2 + DEADLINE_MARGIN
        for sink in sinks:
            sink.release()
        assert all(sink.close_returned.wait(DEADLINE_MARGIN) for sink in sinks)


class TestShutdownDeadline:
    """``shutdown(timeout)`` hands its deadline down whole and spends it on delivery."""

    def test_the_pipeline_gets_now_plus_the_timeout(self, monkeypatch: pytest.MonkeyPatch) -> None:
        # Clock readings around the call, not a duration: an hour is far beyond the call.
        streamer = ms.EventStreamer([InMemorySink()], register_atexit=False)
        streamer.send(sample(1))
        seen: list[float] = []
        real_stop = streamer._pipeline.stop

        def stop(deadline: float) -> bool:
            seen.append(deadline)
            return real_stop(deadline)

        monkeypatch.setattr(streamer._pipeline, "stop", stop)
        before = time.monotonic()
        assert streamer.shutdown(3600) is True
        after = time.monotonic()
        [deadline] = seen
        assert before + 3600 <= deadline <= after + 3600

    def test_a_sink_waiting_an_hour_to_retry_is_retried_at_once(self) -> None:
        hour = 3_600_000
        sink = FaultySink(["transient"], then="ok", name="flaky")
        streamer = ms.EventStreamer(
            [sink],
            batch_size=5,
            flush_interval=60,
            register_atexit=False,
            retry=ms.RetryConfig(
                max_retries=5, initial_delay_ms=hour, max_delay_ms=hour, jitter=False
            ),
        )
        streamer.send_many(ms.event_from_sample("m", i) for i in range(5))
        assert wait_until(lambda: bool(sink.attempts), timeout=DEADLINE_MARGIN)
        assert streamer.shutdown(timeout=30) is True
        assert [e.fields["value"] for e in sink.events] == list(range(5))


class TestConsistentHealth:
    """Every health snapshot satisfies the accounting identity, even mid-handover."""

    def test_identity_holds_in_every_snapshot_under_constant_switching(self, make_streamer) -> None:
        switch = sys.getswitchinterval()
        sys.setswitchinterval(1e-6)
        try:
            slow = FaultySink([FaultySink.delay(0.001)] * 50, name="slow")
            streamer = make_streamer([slow, InMemorySink()], batch_size=7, flush_interval=0.001)
            done = threading.Event()

            def send() -> None:
                for i in range(5000):
                    streamer.send(sample(i))
                done.set()

            sender = threading.Thread(target=send)
            sender.start()
            snapshots = 0
            while not done.is_set() or snapshots < 2000:
                assert_identity(streamer.health())
                snapshots += 1
            sender.join()
            assert streamer.flush(30) is True
            assert_balanced(streamer.health(), sent=5000)
        finally:
            sys.setswitchinterval(switch)


class TestBlockPolicyStaysQuiet:
    """Under overflow="block", send() never logs: logging is I/O."""

    def test_no_log_line_comes_from_the_sending_thread(
        self, make_streamer, caplog: pytest.LogCaptureFixture
    ) -> None:
        stuck = FaultySink(then="hang", name="stuck")
        streamer = make_streamer(
            [stuck], batch_size=10, max_buffer=20, overflow="block", block_timeout=0.0
        )
        with caplog.at_level(logging.DEBUG, logger="metricstream"):
            results = [streamer.send(sample(i)) for i in range(20_000)]
        assert results.count(False) > 19_000
        sender = threading.current_thread().name
        assert [r.getMessage() for r in caplog.records if r.threadName == sender] == []
        health = streamer.health().sinks["stuck"]
        assert health.dropped_by_reason["overflow"] == results.count(False)
        stuck.release()


class TestCollectedStreamers:
    """An unreferenced streamer is collected; what it accepted is still delivered."""

    def test_a_collected_streamer_delivers_what_it_held(self) -> None:
        sink = InMemorySink()
        streamer = ms.EventStreamer([sink], flush_interval=60, register_atexit=False)
        streamer.send_many(sample(i) for i in range(10))
        ref = weakref.ref(streamer)
        del streamer
        gc.collect()
        assert ref() is None
        assert sink.wait_for(10, timeout=30)
        assert values(sink.events) == list(range(10))
        assert wait_until(lambda: sink.closed, timeout=30)

    def test_exit_shuts_every_streamer_down_under_one_deadline(self) -> None:
        streamers = 20
        script = (
            "import atexit, logging, time; logging.basicConfig()\n"
            "import metricstream as ms\n"
            "from metricstream.testing import FaultySink\n"
            "keep = []\n"
            f"for n in range({streamers}):\n"
            "    sink = FaultySink(then='transient', name=f'dead{n}')\n"
            "    s = ms.EventStreamer([sink],\n"
            "                         retry=ms.RetryConfig(max_retries=1000, max_elapsed_ms=1e9))\n"
            "    s.send(ms.event_from_sample('m', 1.0))\n"
            "    keep.append((s, sink))\n"
            "while not all(sink.attempts for _, sink in keep):  # every lane is retrying\n"
            "    time.sleep(0.01)\n"
            "# Registered after metricstream's hook, so it runs first: the exit begins.\n"
            "atexit.register(lambda: print('exiting at', time.monotonic(), flush=True))\n"
        )
        result = subprocess.run(
            [sys.executable, "-c", script], capture_output=True, text=True, timeout=120, check=False
        )
        ended = time.monotonic()  # CLOCK_MONOTONIC is the same clock in every process
        assert result.returncode == 0, result.stderr
        words = result.stdout.split()
        assert words[:2] == ["exiting", "at"], result.stdout
        elapsed = ended - float(words[2])
        # One deadline per streamer, one after the other, would take 20 x EXIT_DEADLINE.
        assert elapsed < lifecycle.EXIT_DEADLINE + 0.5 + DEADLINE_MARGIN, (
            f"exit took {elapsed:.1f} s for {streamers} streamers"
        )
        assert streamers * lifecycle.EXIT_DEADLINE > lifecycle.EXIT_DEADLINE + 0.5 + DEADLINE_MARGIN
        assert result.stderr.count("were not delivered") == streamers


class TestBatchesAreNotReused:
    """A batch given to a sink is a fresh object: lanes never share mutable state."""

    def test_batches_reach_each_sink_with_their_events(self, make_streamer) -> None:
        seen: list[EventBatch] = []

        class Keeping(InMemorySink):
            def prepare(self, batch: EventBatch) -> EventBatch:
                seen.append(batch)
                return batch

        streamer = make_streamer([Keeping("a"), Keeping("b")], batch_size=5)
        streamer.send_many(sample(i) for i in range(10))
        assert streamer.flush(10) is True
        assert sorted(len(b) for b in seen) == [5, 5, 5, 5]
