"""The write-ahead spool: its format, damage at open, and the streamer delivering through it."""

from __future__ import annotations

import os
import random
import re
import stat
import threading
import uuid
from pathlib import Path

import pytest

import metricstream as ms
from metricstream.spool import SegmentLog, Spool
from metricstream.spool.format import HEADER_SIZE, SEGMENT_MAGIC
from metricstream.testing import FaultySink, InMemorySink

from .support import NO_REASONS, assert_balanced, sample, spool_command, values, wait_until

QUICK = ms.RetryConfig(max_retries=1, initial_delay_ms=1, max_delay_ms=2, jitter=False)


def batch_of(first: int, count: int, **tags: str) -> ms.EventBatch:
    return ms.EventBatch([sample(first + i, **tags) for i in range(count)])


def fill(spool: Spool, batches: int, size: int = 10) -> list[ms.EventBatch]:
    made = [batch_of(n * size, size, batch=str(n)) for n in range(batches)]
    for batch in made:
        spool.append(batch)
    return made


def read_all(spool: Spool, start: int = 0) -> tuple[list[ms.MetricEvent], int]:
    """Every intact event from `start` on, and the number of events lost to damage."""
    events: list[ms.MetricEvent] = []
    lost = 0
    seq = start
    while (stored := spool.read(seq)) is not None:
        lost += stored.first_seq - seq
        if stored.batch is None:
            lost += stored.end_seq - stored.first_seq
        else:
            events.extend(stored.batch.events)
        seq = stored.end_seq
    return events, lost


def open_spool(directory: Path, **options: object) -> Spool:
    options.setdefault("sinks", ["a"])
    options.setdefault("max_bytes", 1 << 30)
    options.setdefault("fsync", "never")
    return Spool(directory, **options)  # type: ignore[arg-type]


class TestFormat:
    """Batches round-trip through the spool with their id, time and every field type."""

    def test_batches_read_back_as_written_after_reopening(self, tmp_path: Path) -> None:
        spool = open_spool(tmp_path)
        events = [
            ms.MetricEvent(
                "m",
                {"t": "ü"},
                {"u": ms.UInt(2**64 - 1), "s": "a\nb", "b": True},
                5,
                before_2001=True,
            ),
            ms.MetricEvent("m", fields={"f": -0.0, "i": -(2**63)}, correlation_id="req-1"),
        ]
        batch = ms.EventBatch(events, created_ns=1_700_000_000_000_000_000)
        assert spool.append(batch) == (0, 2)
        spool.close()
        reopened = open_spool(tmp_path)
        stored = reopened.read(0)
        assert stored is not None
        assert stored.batch is not None
        assert stored.batch.events == events
        assert (stored.batch.batch_id, stored.batch.created_ns) == (
            batch.batch_id,
            1_700_000_000_000_000_000,
        )
        assert (reopened.next_seq, reopened.damage) == (2, [])
        reopened.close()

    def test_batch_ids_of_any_form_read_back_as_written(self, tmp_path: Path) -> None:
        spool = open_spool(tmp_path)
        ids = ["orders-3-18230", "x" * 256, "événement", uuid.uuid4().hex]
        for n, batch_id in enumerate(ids):
            spool.append(ms.EventBatch([sample(n)], batch_id=batch_id, created_ns=n))
        spool.close()
        reopened = open_spool(tmp_path)
        stored = [reopened.read(seq) for seq in range(len(ids))]
        assert [(s.batch.batch_id, s.batch.created_ns) for s in stored if s and s.batch] == [
            (batch_id, n) for n, batch_id in enumerate(ids)
        ]
        assert reopened.damage == []
        reopened.close()

    def test_a_flipped_bit_in_a_named_record_costs_exactly_its_batch(self, tmp_path: Path) -> None:
        spool = open_spool(tmp_path)
        for n in range(3):
            spool.append(batch_of(n * 10, 10))
        first_size = os.path.getsize(next((tmp_path / "segments").iterdir()))
        spool.append(ms.EventBatch([sample(30 + i) for i in range(10)], batch_id="named-3"))
        spool.append(ms.EventBatch([sample(40 + i) for i in range(10)], batch_id="named-4"))
        spool.close()
        path = next((tmp_path / "segments").iterdir())
        data = bytearray(path.read_bytes())
        data[first_size + HEADER_SIZE + 5] ^= 0x10  # in the payload of "named-3"
        path.write_bytes(bytes(data))
        events, lost = read_all(open_spool(tmp_path))
        assert (values(events), lost) == ([*range(30), *range(40, 50)], 10)

    def test_segments_roll_and_are_named_by_their_first_event(self, tmp_path: Path) -> None:
        log = SegmentLog(tmp_path, segment_bytes=500, fsync="never")
        for n in range(20):
            log.append(batch_of(n * 10, 10))
        names = sorted(p.name for p in tmp_path.iterdir())
        firsts = [int(name.split(".")[0]) for name in names]
        assert len(names) > 2
        assert firsts[0] == 0
        assert firsts == sorted(firsts)
        assert all((tmp_path / name).read_bytes().startswith(SEGMENT_MAGIC) for name in names)
        events = []
        seq = 0
        while (stored := log.read(seq)) is not None:
            assert stored.batch is not None
            events.extend(stored.batch.events)
            seq = stored.end_seq
        assert values(events) == list(range(200))
        log.close()

    def test_files_are_private(self, tmp_path: Path) -> None:
        spool = open_spool(tmp_path / "spool")
        fill(spool, 2)
        spool.close()
        for path in (tmp_path / "spool").rglob("*"):
            mode = stat.S_IMODE(path.stat().st_mode)
            assert mode & 0o077 == 0, f"{path} is {oct(mode)}"

    def test_one_streamer_per_spool(self, tmp_path: Path) -> None:
        spool = open_spool(tmp_path)
        with pytest.raises(ms.ConfigError, match="in use by another streamer"):
            open_spool(tmp_path)
        spool.close()
        open_spool(tmp_path).close()


class TestDamageAtOpen:
    """A damaged spool always opens; what survives arrives and the damage is counted."""

    def segment(self, directory: Path) -> Path:
        (path,) = sorted((directory / "segments").iterdir())
        return path

    def test_a_torn_tail_is_truncated_at_every_offset(self, tmp_path: Path) -> None:
        spool = open_spool(tmp_path)
        fill(spool, 3)
        spool.close()
        path = self.segment(tmp_path)
        whole = path.read_bytes()
        record = (len(whole) - len(SEGMENT_MAGIC)) // 3
        intact = len(SEGMENT_MAGIC) + 2 * record
        for cut in range(intact + 1, len(whole)):
            path.write_bytes(whole[:cut])
            reopened = open_spool(tmp_path)
            events, lost = read_all(reopened)
            assert (values(events), lost) == (list(range(20)), 0), cut
            assert reopened.next_seq == 20
            assert [d.detail for d in reopened.damage] == [
                "torn record at the end of the newest segment"
            ]
            assert path.stat().st_size == intact
            reopened.close()

    def test_a_flipped_bit_in_a_payload_costs_exactly_its_batch(self, tmp_path: Path) -> None:
        spool = open_spool(tmp_path)
        fill(spool, 3)
        spool.close()
        path = self.segment(tmp_path)
        data = bytearray(path.read_bytes())
        record = (len(data) - len(SEGMENT_MAGIC)) // 3
        data[len(SEGMENT_MAGIC) + record + HEADER_SIZE + 5] ^= 0x10
        path.write_bytes(bytes(data))
        reopened = open_spool(tmp_path)
        events, lost = read_all(reopened)
        assert (values(events), lost) == ([*range(10), *range(20, 30)], 10)
        reopened.close()

    def test_a_flipped_bit_in_a_header_is_counted_from_the_sequence_gap(
        self, tmp_path: Path
    ) -> None:
        spool = open_spool(tmp_path)
        fill(spool, 4)
        spool.close()
        path = self.segment(tmp_path)
        data = bytearray(path.read_bytes())
        record = (len(data) - len(SEGMENT_MAGIC)) // 4
        data[len(SEGMENT_MAGIC) + record + 12] ^= 0x01  # the event count of batch 1
        path.write_bytes(bytes(data))
        reopened = open_spool(tmp_path)
        events, lost = read_all(reopened)
        assert (values(events), lost) == ([*range(10), *range(20, 40)], 10)
        reopened.close()

    @pytest.mark.parametrize("seed", range(40))
    def test_random_truncation_and_bit_flips_never_stop_the_spool(
        self, tmp_path: Path, seed: int
    ) -> None:
        rng = random.Random(seed)
        spool = open_spool(tmp_path)
        sizes = [rng.randint(1, 30) for _ in range(12)]
        first = 0
        for size in sizes:
            spool.append(batch_of(first, size))
            first += size
        spool.close()
        path = self.segment(tmp_path)
        data = bytearray(path.read_bytes())
        for _ in range(rng.randint(0, 4)):
            data[rng.randrange(len(data))] ^= 1 << rng.randrange(8)
        if rng.random() < 0.5:
            data = data[: rng.randrange(len(data))]
        path.write_bytes(bytes(data))
        reopened = open_spool(tmp_path)
        events, lost = read_all(reopened)
        got = values(events)
        assert got == sorted(set(got)), "events out of order or repeated"
        assert set(got) <= set(range(first))
        assert len(got) + lost <= first
        assert len(got) + lost == reopened.next_seq
        reopened.append(batch_of(1000, 3))
        more, _ = read_all(reopened, reopened.next_seq - 3)
        assert values(more) == [1000, 1001, 1002]
        reopened.close()

    def test_segments_already_acknowledged_by_every_sink_are_deleted_at_open(
        self, tmp_path: Path
    ) -> None:
        spool = open_spool(tmp_path, sinks=["a"], max_bytes=1 << 20)
        spool.log.segment_bytes = 300
        fill(spool, 10)
        spool.close()
        before = sorted((tmp_path / "segments").iterdir())
        assert len(before) > 2
        # As after a crash between recording a position and deleting what it frees:
        (tmp_path / "acks" / "a.ack").write_text("100\n")
        reopened = open_spool(tmp_path, sinks=["a"], max_bytes=1 << 20)
        after = sorted((tmp_path / "segments").iterdir())
        assert after == before[-1:]
        assert reopened.start("a") == 100
        reopened.close()


class TestStreamingThroughTheSpool:
    """With a spool, nothing a sink cannot take yet is dropped; a later streamer delivers it."""

    def make(self, sinks: list[object], directory: Path, **options: object) -> ms.EventStreamer:
        options.setdefault("register_atexit", False)
        options.setdefault("retry", QUICK)
        options.setdefault("spool_fsync", "never")
        return ms.EventStreamer(sinks, spool_dir=directory, **options)  # type: ignore[arg-type]

    def test_a_dead_sinks_events_stay_on_disk_and_arrive_after_a_restart(
        self, tmp_path: Path
    ) -> None:
        dead, memory = FaultySink(then="transient", name="db"), InMemorySink("copy")
        streamer = self.make(
            [dead, memory], tmp_path, batch_size=50, max_buffer=200, probe_interval=0.05
        )
        for i in range(2000):
            streamer.send(sample(i))
            if i % 100 == 99:  # within max_buffer: nothing is dropped before the spool
                assert wait_until(lambda: not streamer._pipeline.buffer, timeout=30)
        assert memory.wait_for(2000, timeout=30)
        assert wait_until(lambda: streamer.health().sinks["db"].spooled >= 1500, timeout=30)
        health = streamer.health().sinks["db"]
        assert health.pending <= 200
        assert (health.events_dropped, health.events_written) == (0, 0)
        assert_balanced(streamer.health(), sent=2000)
        assert streamer.shutdown(0.5) is False
        health = streamer.health().sinks["db"]
        assert (health.spooled, health.events_dropped, health.pending) == (2000, 0, 0)
        assert_balanced(streamer.health(), sent=2000)

        revived, copy = InMemorySink("db"), InMemorySink("copy")
        later = self.make([revived, copy], tmp_path, batch_size=50)
        later.send(sample(5000))
        assert later.flush(30) is True
        assert values(revived.events) == [*range(2000), 5000]
        assert values(copy.events) == [5000]
        health = later.health().sinks["db"]
        assert (health.events_accepted, health.events_written, health.spooled) == (2001, 2001, 0)
        assert_balanced(later.health(), sent={"db": 2000 + 1, "copy": 1})
        later.shutdown(5)
        assert len(list((tmp_path / "segments").iterdir())) == 1

    def test_exhausted_retries_keep_events_instead_of_dropping_them(self, tmp_path: Path) -> None:
        flaky = FaultySink(["transient"] * 12, then="ok", name="flaky")
        streamer = self.make([flaky], tmp_path, batch_size=10, probe_interval=0.01)
        streamer.send_many(sample(i) for i in range(30))
        assert streamer.flush(30) is True
        assert values(flaky.events) == list(range(30))
        health = streamer.health().sinks["flaky"]
        assert health.dropped_by_reason == NO_REASONS
        streamer.shutdown(5)

    def test_a_segment_is_deleted_only_when_every_sink_is_done_with_it(
        self, tmp_path: Path
    ) -> None:
        gate = threading.Event()

        class Gated(InMemorySink):
            def write(self, payload: ms.EventBatch) -> None:
                gate.wait()
                super().write(payload)

        slow, fast = Gated("slow"), InMemorySink("fast")
        streamer = self.make(
            [slow, fast], tmp_path, batch_size=100, spool_max_bytes=1 << 20, max_buffer=100
        )
        streamer._pipeline.spool.log.segment_bytes = 1024  # type: ignore[union-attr]
        for i in range(3000):
            streamer.send(sample(i))
            if i % 100 == 99:
                assert wait_until(lambda: not streamer._pipeline.buffer, timeout=30)
        assert fast.wait_for(3000, timeout=30)
        segments = tmp_path / "segments"
        assert len(list(segments.iterdir())) > 3
        gate.set()
        assert streamer.flush(30) is True
        assert values(slow.events) == list(range(3000))
        assert wait_until(lambda: len(list(segments.iterdir())) == 1, timeout=10)
        streamer.shutdown(5)

    @pytest.mark.parametrize("overflow", ["drop_oldest", "drop_newest"])
    def test_a_full_spool_applies_the_overflow_policy_and_counts_it(
        self, tmp_path: Path, overflow: str
    ) -> None:
        dead = FaultySink(then="transient", name="dead")
        streamer = self.make(
            [dead],
            tmp_path,
            batch_size=100,
            max_buffer=100,
            overflow=overflow,
            spool_max_bytes=1 << 20,
            probe_interval=0.05,
        )
        streamer._pipeline.spool.log.segment_bytes = 64 << 10  # type: ignore[union-attr]
        events = [
            ms.event_from_sample("m", float(i), {"pad": f"{random.random()}"})
            for i in range(40_000)
        ]
        for event in events:
            streamer.send(event)
            if streamer._pipeline.buffer and len(streamer._pipeline.buffer) > 5000:
                streamer.flush(0.01)
        assert wait_until(lambda: streamer.health().sinks["dead"].pending <= 100, timeout=60)
        health = streamer.health()
        assert health.sinks["dead"].dropped_by_reason["overflow"] > 0
        assert_balanced(health, sent=len(events))
        streamer.shutdown(0.2)
        assert_balanced(streamer.health(), sent=len(events))
        size = sum(p.stat().st_size for p in (tmp_path / "segments").iterdir())
        assert size <= (1 << 20) + (64 << 10)

    def test_a_new_sink_starts_with_new_data_and_a_removed_one_holds_nothing(
        self, tmp_path: Path
    ) -> None:
        first = self.make([InMemorySink("a")], tmp_path)
        first.send_many(sample(i) for i in range(10))
        assert first.flush(10) is True
        first.shutdown(5)
        added = InMemorySink("b")
        second = self.make([InMemorySink("a"), added], tmp_path)
        second.send(sample(99))
        assert second.flush(10) is True
        assert values(added.events) == [99]
        second.shutdown(5)

    def test_children_spool_apart_and_send_nothing_twice(self, tmp_path: Path) -> None:
        from .test_fork import run_child

        memory = InMemorySink()
        streamer = self.make([memory], tmp_path, batch_size=20, flush_interval=0.01)
        streamer.send_many(sample(i) for i in range(100))
        pids = []
        for n in range(50):

            def child(n: int = n) -> dict[str, object]:
                already = len(memory.events)
                streamer.send_many(sample(10_000 + n * 10 + i) for i in range(10))
                done = streamer.shutdown(20)
                return {"done": done, "got": values(memory.events[already:])}

            pid, report = run_child(child)
            pids.append(pid)
            assert report == {"done": True, "got": list(range(10_000 + n * 10, 10_010 + n * 10))}
            streamer.send(sample(200 + n))
        assert streamer.flush(30) is True
        assert values(memory.events) == [*range(100), *range(200, 250)]
        forks = tmp_path / "forks"
        assert not forks.exists() or list(forks.iterdir()) == []
        streamer.shutdown(5)
        assert os.path.isdir(tmp_path / "segments")


class TestSpoolCommand:
    """`metricstream spool inspect|replay` shows and delivers what a spool holds."""

    def test_inspect_then_replay_everything_to_a_file(self, tmp_path: Path) -> None:
        directory = tmp_path / "spool"
        streamer = ms.EventStreamer(
            [FaultySink(then="transient", name="lost")],
            spool_dir=directory,
            batch_size=100,
            retry=ms.RetryConfig(max_retries=0),
            register_atexit=False,
        )
        streamer.send_many(sample(i) for i in range(1000))
        assert streamer.flush(0.5) is False
        streamer.shutdown(0.2)

        shown = spool_command("inspect", str(directory))
        assert shown.returncode == 0
        assert "lost" in shown.stdout
        assert "1,000" in shown.stdout
        target = tmp_path / "recovered.jsonl"
        replayed = spool_command("replay", str(directory), "--sink", f"jsonl:{target}", "--all")
        assert replayed.returncode == 0, replayed.stderr
        assert re.search(r"^  jsonl\s+written\s+1,000\s+dropped\s+0 .* OK", replayed.stdout, re.M)
        assert values(list(ms.sinks.jsonl.read_events(target))) == list(range(1000))
        again = spool_command("inspect", str(directory), "--json")
        import orjson

        report = orjson.loads(again.stdout)
        assert report["sinks"]["jsonl"]["events"] == 0
        assert report["sinks"]["lost"]["events"] == 1000
