"""The spool's positions: what a damaged or missing one means, how often they are written,
the events held for sinks a streamer does not have, and flushing what a spool recovered."""

from __future__ import annotations

import logging
import os
import shutil
import threading
import time
from pathlib import Path

import orjson
import pytest

import metricstream as ms
from metricstream.spool import Spool
from metricstream.testing import FaultySink, InMemorySink

from .support import NO_REASONS, assert_balanced, sample, spool_command, values, wait_until

STORED = 3000
"""Events a prepared spool holds: 30 batches of 100, one segment."""
ACKED = 1000
"""Where sink ``a`` of a prepared spool stands: the start of its eleventh batch."""


def prepared_spool(directory: Path) -> None:
    """A spool of `STORED` events whose sink ``a`` acknowledged the first `ACKED`."""
    spool = Spool(directory, sinks=["a"], max_bytes=1 << 30, fsync="never")
    for n in range(STORED // 100):
        spool.append(ms.EventBatch([sample(n * 100 + i) for i in range(100)]))
    spool.acknowledge("a", ACKED)
    spool.close()
    assert (directory / "acks" / "a.ack").read_bytes() == b"%d\n" % ACKED


def recover(directory: Path) -> tuple[InMemorySink, ms.EventStreamer]:
    """Open a streamer with sink ``a`` on `directory` and flush what it recovers."""
    sink = InMemorySink("a")
    streamer = ms.EventStreamer(
        [sink], spool_dir=directory, spool_fsync="never", register_atexit=False
    )
    assert streamer.flush(30) is True
    return sink, streamer


def damage_ack(directory: Path, how: str) -> None:
    ack = directory / "acks" / "a.ack"
    if how == "deleted file":
        ack.unlink()
    elif how == "deleted acks/":
        shutil.rmtree(directory / "acks")
    else:
        ack.write_bytes(how.encode())


def spool_for_dead_sink(directory: Path, name: str, count: int, batch_size: int = 100) -> None:
    """Leave `count` events in a spool for a sink `name` that never took one."""
    streamer = ms.EventStreamer(
        [FaultySink(then="transient", name=name)],
        spool_dir=directory,
        batch_size=batch_size,
        retry=ms.RetryConfig(max_retries=0),
        register_atexit=False,
    )
    streamer.send_many(sample(i) for i in range(count))
    streamer.shutdown(0.5)
    assert streamer.health().sinks[name].spooled == count


class TestUntrustedPositions:
    """A position that cannot be trusted resumes at the oldest stored record: nothing is skipped."""

    @pytest.mark.parametrize(
        "how",
        ["", "abc", "-5", "0x10", "deleted file", "deleted acks/", "99999999999", "12 ", "12\n"],
        ids=repr,
    )
    def test_a_damaged_or_missing_position_delivers_everything_stored(
        self, tmp_path: Path, how: str, caplog: pytest.LogCaptureFixture
    ) -> None:
        prepared_spool(tmp_path)
        damage_ack(tmp_path, how)
        with caplog.at_level(logging.WARNING, logger="metricstream"):
            sink, streamer = recover(tmp_path)
        health = streamer.health()
        assert values(sink.events) == list(range(STORED))
        assert (health.sinks["a"].events_accepted, health.sinks["a"].events_written) == (
            STORED,
            STORED,
        )
        assert health.sinks["a"].dropped_by_reason == NO_REASONS
        assert health.spool is not None
        assert dict(health.spool.untrusted) == {"a": STORED}
        assert "cannot be trusted" in caplog.text
        assert_balanced(health, sent=STORED)
        streamer.shutdown(5)
        assert (tmp_path / "acks" / "a.ack").read_bytes() == b"%d\n" % STORED

    @pytest.mark.parametrize("text", ["1000\n", "1000", "0\n"], ids=repr)
    def test_a_valid_position_is_trusted(self, tmp_path: Path, text: str) -> None:
        prepared_spool(tmp_path)
        (tmp_path / "acks" / "a.ack").write_text(text)
        sink, streamer = recover(tmp_path)
        first = int(text)
        health = streamer.health()
        assert values(sink.events) == list(range(first, STORED))
        assert health.sinks["a"].events_accepted == STORED - first
        assert health.spool is not None
        assert dict(health.spool.untrusted) == {}
        streamer.shutdown(5)

    def test_a_sink_new_to_a_registered_spool_starts_with_new_data(self, tmp_path: Path) -> None:
        prepared_spool(tmp_path)
        fresh = InMemorySink("b")
        streamer = ms.EventStreamer(
            [InMemorySink("a"), fresh], spool_dir=tmp_path, register_atexit=False
        )
        streamer.send(sample(99_999))
        assert streamer.flush(30) is True
        assert values(fresh.events) == [99_999]
        health = streamer.health()
        assert health.spool is not None
        assert dict(health.spool.untrusted) == {}
        streamer.shutdown(5)

    def test_positions_are_forced_to_disk_with_their_directory(
        self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        spool = Spool(tmp_path, sinks=["a"], max_bytes=1 << 30, fsync="batch")
        spool.append(ms.EventBatch([sample(i) for i in range(10)]))
        synced: list[str] = []
        real_fsync = os.fsync

        def fsync(fd: int) -> None:
            synced.append(os.readlink(f"/proc/self/fd/{fd}"))
            real_fsync(fd)

        monkeypatch.setattr(os, "fsync", fsync)
        spool.acknowledge("a", 10)
        monkeypatch.undo()
        acks = str(tmp_path / "acks")
        assert synced == [f"{acks}/a.ack.tmp", acks]
        spool.close()


class FrozenClock:
    """A monotonic clock that moves only when told."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class TestPositionWrites:
    """Positions are written at most every 0.1 s, and the last one soon after, without a close."""

    def count_writes(self, monkeypatch: pytest.MonkeyPatch, directory: Path) -> list[str]:
        written: list[str] = []
        real_replace = os.replace

        def replace(source: str | os.PathLike[str], target: str | os.PathLike[str]) -> None:
            if Path(target).parent == directory / "acks":
                written.append(str(target))
            real_replace(source, target)

        monkeypatch.setattr(os, "replace", replace)
        return written

    def test_acknowledgements_within_the_interval_write_once(
        self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        clock = FrozenClock()
        spool = Spool(tmp_path, sinks=["a"], max_bytes=1 << 30, fsync="never", clock=clock)
        for n in range(200):
            spool.append(ms.EventBatch([sample(n)]))
        written = self.count_writes(monkeypatch, tmp_path)
        for seq in range(1, 101):
            spool.acknowledge("a", seq)
        assert len(written) == 1
        clock.now += 0.05
        for seq in range(101, 151):
            spool.acknowledge("a", seq)
        assert len(written) == 1
        clock.now += 0.06
        spool.acknowledge("a", 151)
        assert len(written) == 2
        assert (tmp_path / "acks" / "a.ack").read_text() == "151\n"
        spool.acknowledge("a", 152)
        clock.now += 0.1
        assert spool.persist_due() is True
        assert (tmp_path / "acks" / "a.ack").read_text() == "152\n"
        assert spool.persist_due() is False
        assert len(written) == 3
        spool.close()
        assert len(written) == 3

    def test_a_streamer_writes_positions_at_most_every_tenth_of_a_second(
        self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        written = self.count_writes(monkeypatch, tmp_path)
        sink = InMemorySink("a")
        streamer = ms.EventStreamer(
            [sink],
            spool_dir=tmp_path,
            spool_fsync="never",
            batch_size=10,
            flush_interval=0.01,
            register_atexit=False,
        )
        started = time.monotonic()
        for n in range(2000):
            streamer.send_many(sample(n * 10 + i) for i in range(10))
            if n % 100 == 99:
                assert streamer.flush(30) is True
        assert streamer.flush(30) is True
        elapsed = time.monotonic() - started
        assert values(sink.events) == list(range(20_000))
        assert len(written) <= elapsed / 0.1 + 2, (len(written), elapsed)
        # The last position is written soon after, by the periodic upkeep.
        ack = tmp_path / "acks" / "a.ack"
        assert wait_until(lambda: ack.read_text() == "20000\n", timeout=30)
        streamer.shutdown(5)


class TestUnclaimedEvents:
    """Events spooled for a sink under another name are reported, and replayed by name."""

    def test_a_renamed_sink_is_warned_about_and_counted(
        self, tmp_path: Path, caplog: pytest.LogCaptureFixture
    ) -> None:
        spool_for_dead_sink(tmp_path, "influxdb", 5000)
        renamed = InMemorySink("influx-prod")
        with caplog.at_level(logging.WARNING, logger="metricstream"):
            streamer = ms.EventStreamer([renamed], spool_dir=tmp_path, register_atexit=False)
        health = streamer.health()
        assert health.spool is not None
        assert dict(health.spool.unclaimed) == {"influxdb": 5000}
        assert "5000 events for sink 'influxdb'" in caplog.text
        assert "name=influxdb" in caplog.text
        assert orjson.loads(health.to_json())["spool"]["unclaimed"] == {"influxdb": 5000}
        assert health.sinks["influx-prod"].events_accepted == 0
        streamer.shutdown(5)

    def test_a_replay_whose_name_matches_nothing_is_an_error(self, tmp_path: Path) -> None:
        spool = tmp_path / "spool"
        spool_for_dead_sink(spool, "influxdb", 5000)
        target = tmp_path / "out.jsonl"
        missed = spool_command("replay", str(spool), "--sink", f"jsonl:{target}")
        assert missed.returncode == 2
        lines = missed.stderr.strip().splitlines()
        assert len(lines) == 1, missed.stderr
        assert "'jsonl'" in lines[0]
        assert "influxdb (5,000 events)" in lines[0]
        assert not target.exists()
        matched = spool_command("replay", str(spool), "--sink", f"jsonl:{target}?name=influxdb")
        assert matched.returncode == 0, matched.stderr
        assert values(list(ms.sinks.jsonl.read_events(target))) == list(range(5000))


class TestFlushAfterRecovery:
    """A streamer that only recovered events from a spool flushes them before `flush` returns."""

    def test_flush_waits_for_recovered_events(self, tmp_path: Path) -> None:
        spool_for_dead_sink(tmp_path, "slow", 650, batch_size=50)
        release = threading.Event()

        class Slow(InMemorySink):
            def write(self, payload: ms.EventBatch) -> None:
                release.wait(0.05)
                super().write(payload)

        sink = Slow("slow")
        second = ms.EventStreamer([sink], spool_dir=tmp_path, register_atexit=False)
        assert second.flush(60) is True
        health = second.health().sinks["slow"]
        assert values(sink.events) == list(range(650))
        assert (health.events_written, health.pending, health.spooled) == (650, 0, 0)
        second.shutdown(5)
