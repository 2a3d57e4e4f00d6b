"""send_batch: all or nothing, one batch with its id, receipts telling durable and delivered."""

from __future__ import annotations

import os
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import redis

import metricstream as ms
from metricstream.sinks import RedisCounterSink
from metricstream.spool import segments
from metricstream.testing import FaultySink, InMemorySink

from . import servers
from .support import NO_REASONS, assert_balanced, sample, values, wait_until
from .test_fork import run_child

Make = Callable[..., ms.EventStreamer]


class BatchLog(InMemorySink):
    """Keeps each written batch as (id, values); its writes wait while `gate` is clear."""

    def __init__(self, name: str = "log") -> None:
        super().__init__(name)
        self.batches: list[tuple[str, list[object]]] = []
        self.gate = threading.Event()
        self.gate.set()

    def write(self, payload: ms.EventBatch) -> None:
        self.gate.wait()
        self.batches.append((payload.batch_id, values(payload.events)))
        super().write(payload)

    def release(self) -> None:
        self.gate.set()


def events(first: int, count: int) -> list[ms.MetricEvent]:
    return [sample(i) for i in range(first, first + count)]


def random_payload(first: int, count: int) -> list[ms.MetricEvent]:
    """Events of about 3 KB each that zstd cannot shrink much (to fill a spool)."""
    return [
        ms.MetricEvent("blob", fields={"value": first + i, "noise": os.urandom(1500).hex()})
        for i in range(count)
    ]


def accepted(streamer: ms.EventStreamer) -> tuple[int, dict[str, int]]:
    health = streamer.health()
    sink = next(iter(health.sinks.values()))
    return health.events_accepted, dict(sink.dropped_by_reason)


class TestAllOrNothing:
    """A batch is accepted whole or refused whole, and a refusal counts nothing."""

    @pytest.mark.parametrize("overflow", ["drop_oldest", "drop_newest", "block"])
    def test_a_batch_too_big_for_the_room_left_is_refused_whole(
        self, make_streamer: Make, overflow: str
    ) -> None:
        stuck = FaultySink(["hang"], name="stuck")
        streamer = make_streamer(
            [stuck],
            batch_size=10,
            max_buffer=30,
            flush_interval=60,
            overflow=overflow,
            block_timeout=0.05,
        )
        first = streamer.send_batch(events(0, 10), batch_id="first")
        assert wait_until(lambda: len(stuck.attempts) == 1)  # in flight, hanging
        second = streamer.send_batch(events(10, 20), batch_id="second")  # exactly the room left
        before = accepted(streamer)
        assert before == (30, NO_REASONS)
        with pytest.raises(ms.BackpressureError) as refused:
            streamer.send_batch(events(30, 1), batch_id="third")
        assert (refused.value.retry_after, refused.value.events) == (60, 1)
        assert accepted(streamer) == before
        assert_balanced(streamer.health(), sent=30)
        stuck.release()
        assert (first.wait_delivered(30), second.wait_delivered(30)) == (True, True)
        assert values(stuck.events) == list(range(30))
        assert [batch_id for batch_id, _ in stuck.attempts] == ["first", "second"]
        assert streamer.health().sinks["stuck"].events_written == 30

    def test_under_block_room_that_comes_in_time_takes_the_batch(self, make_streamer: Make) -> None:
        log = BatchLog()
        streamer = make_streamer(
            [log], batch_size=10, max_buffer=10, overflow="block", block_timeout=30
        )
        log.gate.clear()
        streamer.send_batch(events(0, 10), batch_id="a")
        release = threading.Timer(0.05, log.release)
        release.start()
        receipt = streamer.send_batch(events(10, 10), batch_id="b")  # waits for room
        assert receipt.wait_delivered(30) is True
        assert log.batches == [("a", list(range(10))), ("b", list(range(10, 20)))]
        release.join()

    def test_a_batch_larger_than_max_buffer_can_never_be_taken(self, make_streamer: Make) -> None:
        streamer = make_streamer([InMemorySink()], batch_size=5, max_buffer=10)
        with pytest.raises(ms.ConfigError, match="max_buffer"):
            streamer.send_batch(events(0, 11))
        assert accepted(streamer) == (0, NO_REASONS)

    def test_one_bad_event_refuses_the_whole_batch(self, make_streamer: Make) -> None:
        memory = InMemorySink()
        streamer = make_streamer([memory])
        batch = events(0, 5)
        batch[3] = ms.MetricEvent("empty")
        with pytest.raises(ms.InvalidEventError):
            streamer.send_batch(batch)
        with pytest.raises(TypeError, match="item 2 is a str"):
            streamer.send_batch([sample(0), sample(1), "sample(2)"])  # type: ignore[list-item]
        bad_tags = sample(9)
        bad_tags.tags = {"bad key\n": "x"}  # assigned directly: never validated
        tagged = make_streamer([InMemorySink("tagged")], default_tags={"region": "eu"})
        with pytest.raises(ms.InvalidEventError, match="event 1"):
            tagged.send_batch([sample(8), bad_tags])
        assert streamer.flush(10)
        assert tagged.flush(10)
        assert (accepted(streamer), accepted(tagged)) == ((0, NO_REASONS), (0, NO_REASONS))
        assert memory.events == []

    @pytest.mark.parametrize("overflow", ["drop_oldest", "drop_newest", "block"])
    def test_a_full_spool_refuses_the_whole_batch(
        self, make_streamer: Make, tmp_path: Path, overflow: str
    ) -> None:
        dead = FaultySink(then="transient", name="dead")
        streamer = make_streamer(
            [dead],
            batch_size=100,
            max_buffer=100,
            overflow=overflow,
            block_timeout=0.05,
            spool_dir=tmp_path,
            spool_max_bytes=1 << 20,
            spool_fsync="never",
            probe_interval=60,
        )
        spool = streamer._pipeline.spool
        assert spool is not None
        taken = 0
        while not spool.is_full():
            streamer.send_batch(random_payload(taken, 100))
            taken += 100
        before = accepted(streamer)
        assert before == (taken, NO_REASONS)
        with pytest.raises(ms.BackpressureError, match="spool is full") as refused:
            streamer.send_batch(random_payload(taken, 100))
        assert refused.value.events == 100
        assert accepted(streamer) == before
        assert_balanced(streamer.health(), sent=taken)


class TestOneBatch:
    """The events travel as exactly one EventBatch with the given id, in their place."""

    def test_what_send_queued_before_is_cut_first_and_the_batch_stays_whole(
        self, make_streamer: Make
    ) -> None:
        log = BatchLog()
        streamer = make_streamer([log], batch_size=4, flush_interval=60)
        streamer.send_many(events(0, 6))
        receipt = streamer.send_batch(events(6, 7), batch_id="orders-3-18230")
        streamer.send_many(events(13, 2))
        assert streamer.flush(10) is True
        assert receipt.delivered() is True
        assert [v for _, v in log.batches] == [[0, 1, 2, 3], [4, 5], list(range(6, 13)), [13, 14]]
        assert log.batches[2][0] == receipt.batch_id == "orders-3-18230"
        assert values(log.events) == list(range(15))
        assert_balanced(streamer.health(), sent=15)

    def test_default_tags_and_the_correlation_scope_apply_as_for_send(
        self, make_streamer: Make
    ) -> None:
        memory = InMemorySink()
        streamer = make_streamer([memory], default_tags={"region": "eu"})
        own = sample(1).with_correlation_id("mine")
        with streamer.correlation("req-7"):
            streamer.send_batch([sample(0, region="us"), own]).wait_delivered(10)
        assert [(e.tags, e.correlation_id) for e in memory.events] == [
            ({"region": "us"}, "req-7"),
            ({"region": "eu"}, "mine"),
        ]

    def test_an_empty_batch_is_delivered_at_once_and_sends_nothing(
        self, make_streamer: Make
    ) -> None:
        memory = InMemorySink()
        streamer = make_streamer([memory])
        receipt = streamer.send_batch([], batch_id="nothing")
        assert (receipt.events, receipt.delivered()) == (0, True)
        assert streamer.flush(10) is True
        assert memory.batch_ids == []

    @pytest.mark.parametrize("batch_id", ["", "x" * 257, "tab\there", 42])
    def test_an_invalid_batch_id_is_refused(self, make_streamer: Make, batch_id: Any) -> None:
        streamer = make_streamer([InMemorySink()])
        with pytest.raises(ms.ConfigError, match="batch_id"):
            streamer.send_batch(events(0, 1), batch_id=batch_id)

    def test_ids_of_any_form_survive_the_spool_and_a_restart(self, tmp_path: Path) -> None:
        ids = ["orders-3-18230", "événement/7", uuid.uuid4().hex]
        dead = FaultySink(then="transient", name="db")
        first = ms.EventStreamer(
            [dead], spool_dir=tmp_path, spool_fsync="never", register_atexit=False
        )
        for n, batch_id in enumerate(ids):
            first.send_batch(events(n * 3, 3), batch_id=batch_id)
        assert first.shutdown(0.2) is False
        revived = BatchLog("db")
        later = ms.EventStreamer([revived], spool_dir=tmp_path, register_atexit=False)
        assert later.flush(30) is True
        later.shutdown(5)
        assert revived.batches == [
            (batch_id, [n * 3, n * 3 + 1, n * 3 + 2]) for n, batch_id in enumerate(ids)
        ]


@pytest.fixture
def redis_prefix() -> Iterator[str]:
    servers.require_url("Redis", servers.REDIS_URL)
    prefix = f"msb:{uuid.uuid4().hex[:10]}:"
    yield prefix
    client = redis.Redis.from_url(servers.REDIS_URL)
    for key in client.scan_iter(match=f"{prefix}*", count=1000):
        client.unlink(key)
    client.close()


class TestIdempotentSinks:
    """A sink that keeps batch ids applies a batch sent twice once."""

    @pytest.mark.servers
    def test_redis_counters_count_the_same_batch_id_once(self, redis_prefix: str) -> None:
        sink = RedisCounterSink(
            servers.REDIS_URL, mapping={"count": ["measurement"]}, prefix=redis_prefix
        )
        streamer = ms.EventStreamer([sink], register_atexit=False)
        batch = [
            ms.MetricEvent("orders", fields={"n": i}, timestamp_ns=1_700_000_000 * 10**9)
            for i in range(7)
        ]
        receipts = [streamer.send_batch(batch, batch_id="offset-42") for _ in range(2)]
        receipts.append(streamer.send_batch(batch, batch_id="offset-43"))
        assert all(receipt.wait_delivered(30) for receipt in receipts)
        streamer.shutdown(10)
        client = redis.Redis.from_url(servers.REDIS_URL)
        counts = [
            int(client.get(key))
            for key in client.scan_iter(match=f"{redis_prefix}add:*", count=1000)
        ]
        client.close()
        assert len(counts) >= 1
        assert set(counts) == {14}  # offset-42 once, offset-43 once
        assert sink.calls_applied == 2 * sink.calls_repeated > 0


class TestReceipts:
    """durable once synced per spool_fsync; delivered once every sink wrote or dropped it."""

    def test_delivered_only_after_every_sink(self, make_streamer: Make) -> None:
        slow, fast = BatchLog("slow"), BatchLog("fast")
        refusing = FaultySink(then=FaultySink.permanent(), name="refusing")
        streamer = make_streamer([slow, fast, refusing])
        slow.gate.clear()
        receipt = streamer.send_batch(events(0, 5), batch_id="b")
        assert wait_until(lambda: len(fast.batches) == 1 and len(refusing.attempts) == 1)
        assert receipt.delivered() is False
        assert receipt.wait_delivered(0.05) is False
        slow.release()
        assert receipt.wait_delivered(30) is True
        health = streamer.health().sinks
        assert health["slow"].events_written == health["fast"].events_written == 5
        assert health["refusing"].dropped_by_reason == {**NO_REASONS, "rejected": 5}

    def test_durable_needs_a_spool(self, make_streamer: Make) -> None:
        streamer = make_streamer([InMemorySink()])
        receipt = streamer.send_batch(events(0, 3))
        for ask in (receipt.durable, lambda: receipt.wait_durable(1)):
            with pytest.raises(ms.ConfigError, match="spool_dir"):
                ask()

    def test_under_fsync_batch_it_is_durable_only_once_fsync_returned(
        self, make_streamer: Make, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        streamer = make_streamer([InMemorySink()], spool_dir=tmp_path, spool_fsync="batch")
        entered, gate = threading.Event(), threading.Event()
        real_fsync = os.fsync

        def held_fsync(fd: int) -> None:
            entered.set()
            gate.wait()
            real_fsync(fd)

        monkeypatch.setattr(segments.os, "fsync", held_fsync)
        got: list[ms.BatchReceipt] = []
        sender = threading.Thread(target=lambda: got.append(streamer.send_batch(events(0, 3))))
        sender.start()
        assert entered.wait(30)
        spool = streamer._pipeline.spool
        assert spool is not None
        assert (got, spool.synced_seq) == ([], 0)  # appended, not yet synced: no receipt
        gate.set()
        sender.join(30)
        assert got[0].durable() is True

    def test_under_fsync_interval_it_is_durable_at_the_next_sync(
        self, make_streamer: Make, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        synced = threading.Event()
        gate = threading.Event()
        real_fsync = os.fsync

        def held_fsync(fd: int) -> None:
            gate.wait()
            real_fsync(fd)
            synced.set()

        monkeypatch.setattr(segments.os, "fsync", held_fsync)
        streamer = make_streamer([InMemorySink()], spool_dir=tmp_path, spool_fsync="interval")
        spool = streamer._pipeline.spool
        assert spool is not None
        spool.log._last_sync = time.monotonic()  # the append comes within its second: no sync
        receipt = streamer.send_batch(events(0, 3))
        assert receipt.durable() is False
        assert receipt.wait_durable(0.05) is False
        gate.set()
        assert receipt.wait_durable(30) is True
        assert synced.is_set()

    def test_under_fsync_never_it_is_durable_once_appended(
        self, make_streamer: Make, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        calls: list[int] = []
        monkeypatch.setattr(segments.os, "fsync", calls.append)
        streamer = make_streamer([InMemorySink()], spool_dir=tmp_path, spool_fsync="never")
        receipt = streamer.send_batch(events(0, 3))
        assert (receipt.durable(), calls) == (True, [])

    def test_a_batch_the_spool_could_not_write_is_never_durable_but_delivered(
        self, make_streamer: Make, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        memory = InMemorySink()
        streamer = make_streamer([memory], spool_dir=tmp_path, spool_fsync="batch")
        spool = streamer._pipeline.spool
        assert spool is not None

        def broken(batch: ms.EventBatch) -> tuple[int, int]:
            raise OSError(28, "No space left on device")

        monkeypatch.setattr(spool, "append", broken)
        receipt = streamer.send_batch(events(0, 3))
        assert (receipt.durable(), receipt.wait_durable(30)) == (False, False)
        assert receipt.wait_delivered(30) is True
        assert values(memory.events) == [0, 1, 2]

    @pytest.mark.parametrize("spooled", [False, True])
    def test_waits_end_at_shutdown(
        self, make_streamer: Make, tmp_path: Path, spooled: bool
    ) -> None:
        dead = FaultySink(then="hang", name="dead")
        options: dict[str, Any] = {}
        if spooled:
            options.update(spool_dir=tmp_path, spool_fsync="never")
        streamer = make_streamer([dead], **options)
        receipt = streamer.send_batch(events(0, 4))
        answers: list[bool] = []
        waiter = threading.Thread(target=lambda: answers.append(receipt.wait_delivered(None)))
        waiter.start()
        assert streamer.shutdown(0.2) is False
        waiter.join(30)
        health = streamer.health().sinks["dead"]
        if spooled:  # left in the spool for the next streamer: not delivered
            assert (answers, health.spooled, health.events_dropped) == ([False], 4, 0)
        else:  # dropped at the deadline (unconfirmed until the sink's close ends the write)
            writer = next(t for t in streamer._pipeline.lanes[0]._threads if "write" in t.name)
            writer.join(30)
            health = streamer.health().sinks["dead"]
            assert (answers, health.dropped_by_reason["shutdown"]) == ([True], 4)
        with pytest.raises(ms.StreamerClosedError):
            streamer.send_batch(events(4, 1))

    def test_a_forked_child_never_waits_on_its_parents_receipt(self, make_streamer: Make) -> None:
        log = BatchLog()
        streamer = make_streamer([log])
        log.gate.clear()
        parents = streamer.send_batch(events(0, 2), batch_id="parent")

        def child() -> dict[str, object]:
            log.release()  # the parent's write waiting on it stayed in the parent
            mine = streamer.send_batch(events(10, 2), batch_id="child")
            return {
                "parent": [parents.delivered(), parents.wait_delivered(None)],
                "child": mine.wait_delivered(30),
                "written": log.batches,
            }

        _, report = run_child(child)
        assert report == {"parent": [False, False], "child": True, "written": [["child", [10, 11]]]}
        log.release()
        assert parents.wait_delivered(30) is True
        assert log.batches == [("parent", [0, 1])]
