"""Forking while application threads send: every child works, nothing is held by the parent.

A parent with 4 sending threads forks 20 times. Each child sends its own
events through the same streamer (whose sinks hold locks, files and
clients), flushes and shuts down; the test checks that each child finished
and that its events arrived, exactly.
"""

from __future__ import annotations

import os
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import orjson
import pytest

import metricstream as ms
from metricstream.sinks import ConsoleSink, JsonLinesSink
from metricstream.sinks.jsonl import read_events
from metricstream.testing import InMemorySink

from .support import assert_balanced

pytestmark = pytest.mark.skipif(not hasattr(os, "fork"), reason="os.fork is POSIX-only")

FORKS = 20
SENDERS = 4
CHILD_EVENTS = 300
CHILD_DEADLINE = 60.0


def run_child(body: Callable[[], dict[str, object]]) -> tuple[int, dict[str, object]]:
    """Fork; run `body` in the child; return (child pid, its report). Fails if the child hangs."""
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child
        os.close(read_end)
        try:
            result = body()
        except BaseException as exc:  # reported to the parent, which fails the test
            result = {"error": repr(exc)}
        os.write(write_end, orjson.dumps(result))
        os._exit(0)
    os.close(write_end)
    deadline = time.monotonic() + CHILD_DEADLINE
    while True:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            break
        if time.monotonic() > deadline:
            os.kill(pid, 9)
            os.waitpid(pid, 0)
            os.close(read_end)
            pytest.fail(f"child {pid} hung for {CHILD_DEADLINE} s")
        time.sleep(0.01)
    data = b""
    while chunk := os.read(read_end, 65536):
        data += chunk
    os.close(read_end)
    assert os.waitstatus_to_exitcode(status) == 0
    return pid, orjson.loads(data)


class TestForkUnderLoad:
    """20 forks while 4 threads send, through sinks holding locks, files and clients."""

    def test_every_child_delivers_its_events_and_the_parent_keeps_working(
        self, tmp_path: Path
    ) -> None:
        console_file = (tmp_path / "console.txt").open("w", encoding="utf-8")
        jsonl_path = tmp_path / "events.jsonl.zst"
        memory = InMemorySink()
        sinks: list[ms.Sink] = [
            ConsoleSink(console_file, format="json"),
            JsonLinesSink(jsonl_path),
            memory,
        ]
        streamer = ms.EventStreamer(
            sinks, batch_size=50, flush_interval=0.005, register_atexit=False
        )
        stop = threading.Event()
        sent = [0] * SENDERS

        def sender(n: int) -> None:
            while not stop.is_set():
                for _ in range(100):
                    streamer.send(ms.event_from_sample("parent", n, {"thread": str(n)}))
                sent[n] += 100
                time.sleep(0.001)

        threads = [threading.Thread(target=sender, args=(n,), daemon=True) for n in range(SENDERS)]
        for thread in threads:
            thread.start()

        def child() -> dict[str, object]:
            already = len(memory.events)
            marker = f"child{os.getpid()}"
            streamer.send_many(
                ms.event_from_sample(marker, i, timestamp_ns=i, before_2001=True)
                for i in range(CHILD_EVENTS)
            )
            flushed = streamer.flush(30)
            delivered = streamer.shutdown(30)
            health = {name: sink.events_written for name, sink in streamer.health().sinks.items()}
            return {
                "flushed": flushed,
                "delivered": delivered,
                "written": health,
                "memory": sum(1 for e in memory.events[already:] if e.measurement == marker),
            }

        try:
            reports = [run_child(child) for _ in range(FORKS)]
        finally:
            stop.set()
            for thread in threads:
                thread.join()
        assert streamer.flush(30) is True
        streamer.shutdown(30)
        console_file.close()

        every_sink = {"console": CHILD_EVENTS, "jsonl": CHILD_EVENTS, "memory": CHILD_EVENTS}
        console_lines = (tmp_path / "console.txt").read_text(encoding="utf-8").splitlines()
        for pid, report in reports:
            assert report == {
                "flushed": True,
                "delivered": True,
                "written": every_sink,
                "memory": CHILD_EVENTS,
            }, pid
            own_file = tmp_path / f"events.pid{pid}.jsonl.zst"
            values = [e.fields["value"] for e in read_events(own_file)]
            assert values == list(range(CHILD_EVENTS)), pid
            marker = f'"measurement":"child{pid}"'
            assert sum(marker in line for line in console_lines) == CHILD_EVENTS, pid

        total = sum(sent)
        health = streamer.health()
        assert health.events_accepted == total
        for name in ("console", "jsonl", "memory"):
            assert (health.sinks[name].events_written, health.sinks[name].pending) == (total, 0)
        assert len(list(read_events(jsonl_path))) == total
        assert sum(1 for e in memory.events if e.measurement == "parent") == total


def _send_from_worker(count: int) -> int:
    """Run in a multiprocessing worker: send `count` events and return without flushing."""
    streamer = _WORKER_STREAMER[0]
    streamer.send_many(
        ms.event_from_sample("worker", i, timestamp_ns=i, before_2001=True) for i in range(count)
    )
    return os.getpid()


_WORKER_STREAMER: list[ms.EventStreamer] = []


class TestMultiprocessingWorkers:
    """Forked multiprocessing workers deliver what they sent, though they leave by os._exit."""

    @staticmethod
    def worker_events(directory: Path) -> dict[int, list[object]]:
        found = {}
        for path in directory.glob("events.*.jsonl.zst"):
            pid = int(path.name.split(".")[1].removeprefix("pid"))
            found[pid] = [e.fields["value"] for e in read_events(path)]
        return found

    def test_a_process_delivers_everything_without_calling_flush(self, tmp_path: Path) -> None:
        import multiprocessing

        streamer = ms.EventStreamer(
            [JsonLinesSink(tmp_path / "events.jsonl.zst")], flush_interval=60
        )
        _WORKER_STREAMER[:] = [streamer]
        try:
            context = multiprocessing.get_context("fork")
            process = context.Process(target=_send_from_worker, args=(1500,))
            process.start()
            process.join(60)
            assert process.exitcode == 0
            assert self.worker_events(tmp_path) == {process.pid: list(range(1500))}
        finally:
            streamer.shutdown(10)

    def test_pool_workers_deliver_everything_when_the_pool_closes(self, tmp_path: Path) -> None:
        import multiprocessing

        streamer = ms.EventStreamer(
            [JsonLinesSink(tmp_path / "events.jsonl.zst")], flush_interval=60, batch_size=10_000
        )
        _WORKER_STREAMER[:] = [streamer]
        try:
            context = multiprocessing.get_context("fork")
            with context.Pool(3) as pool:
                pids = pool.map(_send_from_worker, [500] * 6, chunksize=1)
                pool.close()
                pool.join()
            found = self.worker_events(tmp_path)
            assert sorted(found) == sorted(set(pids))
            assert sum(len(values) for values in found.values()) == 3000
            for values in found.values():
                assert sorted(values) == sorted(list(range(500)) * (len(values) // 500))
        finally:
            streamer.shutdown(10)


class TestPoolsEndedByTerminate:
    """``with Pool() as pool:`` terminates its workers on leaving: they still deliver everything."""

    @staticmethod
    def delivered(directory: Path) -> dict[int, list[object]]:
        return TestMultiprocessingWorkers.worker_events(directory)

    def test_forked_workers_deliver_when_the_with_block_terminates_them(
        self, tmp_path: Path
    ) -> None:
        import multiprocessing

        streamer = ms.EventStreamer(
            [JsonLinesSink(tmp_path / "events.jsonl.zst")], flush_interval=60, batch_size=10_000
        )
        _WORKER_STREAMER[:] = [streamer]
        try:
            with multiprocessing.get_context("fork").Pool(3) as pool:
                pids = pool.map(_send_from_worker, [200] * 5, chunksize=1)
            found = self.delivered(tmp_path)
            assert sorted(found) == sorted(set(pids))
            assert sum(len(values) for values in found.values()) == 1000
            assert sorted(v for values in found.values() for v in values) == sorted(
                list(range(200)) * 5
            )
        finally:
            streamer.shutdown(10)

    def test_spawned_workers_with_a_streamer_of_their_own_deliver_too(self, tmp_path: Path) -> None:
        import multiprocessing

        from . import mp_workers

        context = multiprocessing.get_context("spawn")
        with context.Pool(
            2, initializer=mp_workers.start_streamer, initargs=(str(tmp_path),)
        ) as pool:
            pids = pool.map(mp_workers.send, [250] * 4, chunksize=1)
        found = self.delivered(tmp_path)
        assert sorted(found) == sorted(set(pids))
        assert sorted(v for values in found.values() for v in values) == sorted(
            list(range(250)) * 4
        )

    def test_a_handler_of_the_application_for_sigterm_is_left_alone(self) -> None:
        def child() -> dict[str, object]:
            import signal

            from metricstream.streamer.operations import lifecycle

            mine = lambda signum, frame: None  # noqa: E731
            signal.signal(signal.SIGTERM, mine)
            lifecycle._terminate_hooked = False
            return {
                "installed": lifecycle.deliver_on_terminate(),
                "kept": signal.getsignal(signal.SIGTERM) is mine,
            }

        _, report = run_child(child)
        assert report == {"installed": False, "kept": True}


@pytest.mark.servers
class TestForkThroughNetworkSinks:
    """The same 20 forks under load, through InfluxDB, Kafka and Redis counters: clients renewed."""

    def test_every_child_writes_to_every_server(self) -> None:
        from metricstream.sinks import (
            CounterMapping,
            InfluxDBSink,
            KafkaSink,
            RedisCounterSink,
            TimeBuckets,
        )

        from .influx_readback import influx_query, quote_identifier
        from .kafka_helpers import read_events as kafka_events
        from .kafka_helpers import unique_topic
        from .servers import (
            INFLUXDB_V1_URL,
            KAFKA_BOOTSTRAP,
            REDIS_URL,
            host_port,
            require,
            require_url,
        )

        require_url("influxdb", INFLUXDB_V1_URL)
        require_url("redis", REDIS_URL)
        require("kafka", *host_port(f"kafka://{KAFKA_BOOTSTRAP}"))
        run = uuid.uuid4().hex[:8]
        database, topic, prefix = f"fork_{run}", unique_topic("fork"), f"fork:{run}:"
        influx_query(INFLUXDB_V1_URL, f"CREATE DATABASE {quote_identifier(database)}")
        buckets = TimeBuckets()
        sinks: list[ms.Sink] = [
            InfluxDBSink(INFLUXDB_V1_URL, api="v1", database=database),
            KafkaSink(KAFKA_BOOTSTRAP, topic, message="batch"),
            RedisCounterSink(
                REDIS_URL,
                mapping=CounterMapping(count=["measurement"]),
                buckets=buckets,
                prefix=prefix,
                ttl_daily=3 * 86_400,
            ),
        ]
        streamer = ms.EventStreamer(
            sinks, batch_size=50, flush_interval=0.005, register_atexit=False
        )
        stop = threading.Event()
        sent = [0] * SENDERS

        def sender(n: int) -> None:
            while not stop.is_set():
                streamer.send_many(
                    ms.event_from_sample("parent", n, {"thread": str(n)}) for _ in range(50)
                )
                sent[n] += 50
                time.sleep(0.01)

        threads = [threading.Thread(target=sender, args=(n,), daemon=True) for n in range(SENDERS)]
        for thread in threads:
            thread.start()

        def child() -> dict[str, object]:
            base = time.time_ns()
            marker = f"child{os.getpid()}"
            streamer.send_many(
                ms.event_from_sample(marker, i, timestamp_ns=base + i) for i in range(CHILD_EVENTS)
            )
            delivered = streamer.shutdown(30)
            health = streamer.health()
            return {
                "delivered": delivered,
                "written": {name: sink.events_written for name, sink in health.sinks.items()},
            }

        try:
            reports = [run_child(child) for _ in range(FORKS)]
        finally:
            stop.set()
            for thread in threads:
                thread.join()
        assert streamer.flush(60) is True
        health = streamer.health()
        streamer.shutdown(30)

        every_sink = dict.fromkeys(("influxdb", "kafka", "redis-counters"), CHILD_EVENTS)
        stream = Counter(e.measurement for e in kafka_events(KAFKA_BOOTSTRAP, topic, 0))
        today = buckets.day_start(int(time.time()))
        reader = sinks[2].reader()  # type: ignore[attr-defined]
        try:
            for pid, report in reports:
                marker = f"child{pid}"
                assert report == {"delivered": True, "written": every_sink}, pid
                stored = influx_query(
                    INFLUXDB_V1_URL, f'SELECT count("value") FROM "{marker}"', db=database
                )
                assert stored["results"][0]["series"][0]["values"][0][1] == CHILD_EVENTS, pid
                assert stream[marker] == CHILD_EVENTS, pid
                counted = reader.count("measurement", (marker,), today - 86_400, time.time())
                assert counted.total == CHILD_EVENTS, pid
        finally:
            reader.close()
        assert_balanced(health, sent=sum(sent))
        for name in every_sink:
            assert health.sinks[name].pending == 0, name
        assert stream["parent"] == health.sinks["kafka"].events_written
