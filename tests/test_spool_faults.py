"""Fault injection with the spool on: servers that go away, producers killed, damaged files.

Each test runs a real server of its own (a private ``influxd``), never the
shared ones, and counts against that server what arrived.
"""

from __future__ import annotations

import json
import random
import signal
import struct
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest
import zstandard

import metricstream as ms
from metricstream.sinks import InfluxDBSink
from metricstream.testing import FaultySink, InMemorySink

from .influx_readback import influx_query
from .servers import InfluxdProcess, require_influxd
from .support import NO_REASONS, assert_balanced, wait_until

pytestmark = pytest.mark.faults

BASE_NS = 1_750_000_000_000_000_000


def stored_values(url: str, db: str, measurement: str) -> dict[str, list[int]]:
    """The ``i`` values stored per ``run`` tag (sorted, duplicates collapsed by the server)."""
    result = influx_query(url, f'SELECT "i" FROM "{measurement}" GROUP BY "run"', db=db)
    found: dict[str, list[int]] = {}
    for series in result["results"][0].get("series", []):
        found[series["tags"]["run"]] = sorted(int(value) for _, value in series["values"])
    return found


@pytest.fixture
def influxd() -> InfluxdProcess:
    require_influxd()
    with InfluxdProcess() as server:
        server.create_database("faults")
        yield server


@pytest.mark.servers
class TestServerOutage:
    """A server down for seconds: with a spool, every event still arrives."""

    def test_influxdb_stopped_and_restarted_mid_stream(
        self, influxd: InfluxdProcess, tmp_path: Path
    ) -> None:
        sink = InfluxDBSink(influxd.url, api="v1", database="faults", timeout=1.0)
        streamer = ms.EventStreamer(
            [sink],
            spool_dir=tmp_path / "spool",
            batch_size=100,
            flush_interval=0.05,
            max_buffer=1000,
            retry=ms.RetryConfig(max_retries=2, initial_delay_ms=10, max_delay_ms=50),
            probe_interval=0.2,
            register_atexit=False,
        )
        sent = 0
        started = time.monotonic()
        stopped = restarted = False
        while time.monotonic() - started < 8:
            streamer.send_many(
                ms.MetricEvent("outage", {"run": "0"}, {"i": sent + n}, BASE_NS + sent + n)
                for n in range(100)
            )
            sent += 100
            elapsed = time.monotonic() - started
            if elapsed > 1.5 and not stopped:
                influxd.stop()
                stopped = True
            if elapsed > 5.0 and not restarted:
                influxd.start()
                restarted = True
            time.sleep(0.02)
        assert streamer.flush(60) is True
        health = streamer.health().sinks["influxdb"]
        assert (health.events_written, health.events_dropped, health.spooled) == (sent, 0, 0)
        assert health.write_errors > 0
        assert_balanced(streamer.health(), sent=sent)
        streamer.shutdown(10)
        assert stored_values(influxd.url, "faults", "outage") == {"0": list(range(sent))}


PRODUCER = textwrap.dedent(
    """
    import os, sys
    import metricstream as ms
    from metricstream.sinks import InfluxDBSink

    run, url, spool, progress = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4]
    sink = InfluxDBSink(url, api="v1", database="faults", timeout=1.0)
    streamer = ms.EventStreamer(
        [sink], spool_dir=spool, batch_size=200, flush_interval=0.02, max_buffer=5000,
        retry=ms.RetryConfig(max_retries=1, initial_delay_ms=10, max_delay_ms=20),
        probe_interval=0.1, register_atexit=False,
    )
    base = {base} + int(run) * 10_000_000
    sent = 0
    with open(progress, "a") as out:
        print("ready", flush=True)
        while True:
            streamer.send_many(
                ms.MetricEvent("killed", {{"run": run}}, {{"i": sent + n}}, base + sent + n)
                for n in range(500)
            )
            sent += 500
            if streamer.flush(0.5):
                out.write(f"{{run}} {{sent}}\\n")
                out.flush()
                os.fsync(out.fileno())
    """
).format(base=BASE_NS)


@pytest.mark.servers
class TestKilledProducer:
    """A producer killed with SIGKILL and restarted on its spool loses nothing flushed."""

    def test_twenty_kills_at_random_moments(self, influxd: InfluxdProcess, tmp_path: Path) -> None:
        rng = random.Random(2026)
        spool, progress = tmp_path / "spool", tmp_path / "progress.txt"
        script = tmp_path / "producer.py"
        script.write_text(PRODUCER)
        down_runs = {6, 7, 8, 13}
        for run in range(20):
            if run in down_runs and influxd.running:
                influxd.stop()
            elif run not in down_runs and not influxd.running:
                influxd.start()
            process = subprocess.Popen(
                [sys.executable, str(script), str(run), influxd.url, str(spool), str(progress)],
                stdout=subprocess.PIPE,
                stderr=subprocess.DEVNULL,
            )
            assert process.stdout is not None
            assert process.stdout.readline() == b"ready\n"
            time.sleep(rng.uniform(0.1, 1.5))
            process.send_signal(signal.SIGKILL)
            process.wait(30)
        if not influxd.running:
            influxd.start()
        sink = InfluxDBSink(influxd.url, api="v1", database="faults", timeout=5.0)
        final = ms.EventStreamer([sink], spool_dir=spool, register_atexit=False)
        assert wait_until(lambda: final.health().sinks["influxdb"].spooled == 0, timeout=120)
        assert final.flush(60) is True
        final.shutdown(10)

        flushed: dict[str, int] = {}
        for line in progress.read_text().splitlines():
            run, count = line.split()
            flushed[run] = max(flushed.get(run, 0), int(count))
        stored = stored_values(influxd.url, "faults", "killed")
        for run, count in flushed.items():
            assert stored.get(run, [])[:count] == list(range(count)), f"run {run}"
        for run in down_runs:
            assert str(run) not in flushed
            assert stored.get(str(run)), (
                f"events of run {run}, sent while the server was down, are lost"
            )
        segments = list((spool / "segments").iterdir())
        assert len(segments) == 1


# The record layout of the spool's documented format (metricstream/spool/format.py),
# written out here so that the test reads segments without the spool's own code.
SEGMENT_MAGIC = b"MSSPOOL1"
RECORD_HEADER = struct.Struct("<4sIIIqq16s")  # magic, header CRC, length, count, first seq, ...
RECORD_CRC = 4


@dataclass(frozen=True)
class OnDisk:
    """One record of an undamaged segment, where it lies and which events it holds."""

    offset: int
    size: int
    header: int
    values: list[int]


def records_of(segment: bytes) -> list[OnDisk]:
    """The records of an undamaged segment, with the values of their events (zstd + JSON)."""
    assert segment.startswith(SEGMENT_MAGIC)
    found, pos = [], len(SEGMENT_MAGIC)
    while pos < len(segment):
        magic, _, length, count, first_seq, _, _ = RECORD_HEADER.unpack_from(segment, pos)
        assert magic == b"MSR1"
        payload = segment[pos + RECORD_HEADER.size : pos + RECORD_HEADER.size + length]
        lines = zstandard.ZstdDecompressor().decompress(payload).splitlines()
        values = [json.loads(line)["fields"]["value"] for line in lines]
        # Event i of the run has sequence number i: a record's values are its sequence range.
        assert values == list(range(first_seq, first_seq + count))
        found.append(
            OnDisk(pos, RECORD_HEADER.size + length + RECORD_CRC, RECORD_HEADER.size, values)
        )
        pos += found[-1].size
    assert pos == len(segment)
    return found


def what_survives(
    original: bytes, damaged: bytes, records: list[OnDisk]
) -> tuple[list[int], int, int]:
    """What the documented rules make of the damage: (values delivered, corrupt, torn).

    A record whose bytes are all there and unchanged is delivered. A damaged
    record is counted ``corrupt`` when the spool can still know its events:
    its own header is intact (and the record complete), or an intact header
    follows it (the gap in sequence numbers). Records after the last intact
    header are a torn tail, as a crash leaves one: truncated, and unknown to
    the next streamer, so neither delivered nor counted.
    """

    def unchanged(start: int, end: int) -> bool:
        return end <= len(damaged) and damaged[start:end] == original[start:end]

    whole = [unchanged(r.offset, r.offset + r.size) for r in records]
    anchored = [
        unchanged(r.offset, r.offset + r.header) and r.offset + r.size <= len(damaged)
        for r in records
    ]
    last = max((n for n, ok in enumerate(anchored) if ok), default=-1)
    delivered = [v for r, ok in zip(records, whole, strict=True) if ok for v in r.values]
    corrupt = sum(
        len(r.values) for r, ok in zip(records[: last + 1], whole, strict=False) if not ok
    )
    torn = sum(len(r.values) for r in records[last + 1 :])
    return delivered, corrupt, torn


def flip(data: bytearray, at: int, bit: int = 0) -> None:
    data[at] ^= 1 << bit


DAMAGE: dict[str, Callable[[bytearray, list[OnDisk], random.Random], bytearray]] = {
    "a payload bit in record 3": lambda d, r, _: (flip(d, r[3].offset + 60), d)[1],
    "a header bit in record 3": lambda d, r, _: (flip(d, r[3].offset + 20), d)[1],
    "the segment's magic": lambda d, r, _: (flip(d, 2), d)[1],
    "a payload bit in the last record": lambda d, r, _: (flip(d, r[-1].offset + 60), d)[1],
    "a header bit in the last record": lambda d, r, _: (flip(d, r[-1].offset + 20), d)[1],
    "cut inside record 10": lambda d, r, _: d[: r[10].offset + 30],
    "cut inside record 10's payload": lambda d, r, _: d[: r[10].offset + r[10].size - 10],
    "record 2 flipped and a cut in record 15": lambda d, r, _: (
        flip(d, r[2].offset + 100),
        d[: r[15].offset + 7],
    )[1],
}


def random_damage(seed: int) -> Callable[[bytearray, list[OnDisk], random.Random], bytearray]:
    def damage(data: bytearray, _records: list[OnDisk], rng: random.Random) -> bytearray:
        for _ in range(rng.randint(1, 5)):
            flip(data, rng.randrange(len(data)), rng.randrange(8))
        if seed % 2:
            data = data[: rng.randrange(len(data) // 2, len(data))]
        return data

    return damage


class TestDamagedSpool:
    """A damaged spool always opens; exactly what survives arrives, the rest it knows is counted.

    What must arrive, and how many events are counted ``corrupt``, are worked
    out in the test from the bytes the damage changed (`what_survives`), and
    compared exactly with what the next streamer delivers and counts.
    """

    @pytest.mark.parametrize(
        ("damage", "seed"),
        [(DAMAGE[name], 0) for name in DAMAGE] + [(random_damage(seed), seed) for seed in range(6)],
        ids=[*DAMAGE, *(f"random-{seed}" for seed in range(6))],
    )
    def test_damaged_spools_open_and_deliver_exactly_what_survives(
        self, tmp_path: Path, damage: Callable[..., bytearray], seed: int
    ) -> None:
        directory = tmp_path / "spool"
        first = ms.EventStreamer(
            [FaultySink(then="transient", name="sink")],
            spool_dir=directory,
            batch_size=50,
            flush_interval=60,
            retry=ms.RetryConfig(max_retries=0),
            register_atexit=False,
        )
        first.send_many(ms.event_from_sample("m", i) for i in range(1000))
        first.shutdown(0.2)
        assert first.health().sinks["sink"].spooled == 1000
        (segment,) = (directory / "segments").iterdir()
        original = segment.read_bytes()
        records = records_of(original)
        assert [v for r in records for v in r.values] == list(range(1000))
        damaged = bytes(damage(bytearray(original), records, random.Random(seed)))
        segment.write_bytes(damaged)
        delivered, corrupt, torn = what_survives(original, damaged, records)
        assert len(delivered) + corrupt + torn == 1000

        sink = InMemorySink("sink")
        second = ms.EventStreamer([sink], spool_dir=directory, register_atexit=False)
        # Nothing is sent to this streamer: the flush waits for what it recovered.
        assert second.flush(30) is True
        health = second.health().sinks["sink"]
        assert [e.fields["value"] for e in sink.events] == delivered
        assert health.events_written == len(delivered)
        assert health.dropped_by_reason == {**NO_REASONS, "corrupt": corrupt}
        assert (health.events_accepted, health.pending, health.spooled) == (
            len(delivered) + corrupt,
            0,
            0,
        )
        second.shutdown(5)


def steady_stream(streamer: ms.EventStreamer, measurement: str, first: int, seconds: float) -> int:
    """Send 50 events every 20 ms for `seconds`; return the next value to send."""
    value = first
    until = time.monotonic() + seconds
    while time.monotonic() < until:
        streamer.send_many(ms.event_from_sample(measurement, value + n) for n in range(50))
        value += 50
        time.sleep(0.02)
    return value


def spooled_streamer(sink: ms.Sink, directory: Path) -> ms.EventStreamer:
    return ms.EventStreamer(
        [sink],
        spool_dir=directory,
        batch_size=100,
        flush_interval=0.05,
        retry=ms.RetryConfig(max_retries=2, initial_delay_ms=10, max_delay_ms=50),
        probe_interval=0.2,
        register_atexit=False,
    )


@pytest.mark.servers
class TestKafkaOutage:
    """A Kafka broker down for seconds: every event still arrives, at least once."""

    def test_broker_stopped_and_restarted_mid_stream(self, tmp_path: Path) -> None:
        from metricstream.sinks import KafkaSink

        from .kafka_helpers import TansuProcess, read_events, unique_topic

        topic = unique_topic("outage")
        with TansuProcess() as broker:
            sink = KafkaSink(broker.bootstrap, topic, message="batch", delivery_timeout_ms=2000)
            streamer = spooled_streamer(sink, tmp_path / "spool")
            before = steady_stream(streamer, "outage", 0, 1.0)
            assert streamer.flush(60) is True
            # Tansu keeps messages in memory and forgets them when it stops:
            # read what arrived before the outage now.
            first = [int(e.fields["value"]) for e in read_events(broker.bootstrap, topic, before)]  # type: ignore[arg-type]
            broker.stop()
            during = steady_stream(streamer, "outage", before, 3.0)
            assert streamer.health().sinks["kafka"].events_written < during
            broker.start()
            sent = steady_stream(streamer, "outage", during, 1.0)
            assert streamer.flush(120) is True
            health = streamer.health().sinks["kafka"]
            assert (health.events_dropped, health.spooled, health.pending) == (0, 0, 0)
            assert health.events_written >= sent
            streamer.shutdown(10)
            after = [
                int(e.fields["value"]) for e in read_events(broker.bootstrap, topic, sent - before)
            ]  # type: ignore[arg-type]
        assert sorted(first) == list(range(before))
        assert set(after) >= set(range(before, sent))
        # At least once: a message may arrive twice; the test reports how many did.
        duplicates = len(after) - len(set(after))
        print(f"kafka outage: {sent:,} events, {duplicates} delivered twice")


@pytest.mark.servers
class TestRedisOutage:
    """Redis down for seconds: with the spool, the counters come out exact."""

    def test_redis_stopped_and_restarted_mid_stream(self, tmp_path: Path) -> None:
        from metricstream.sinks import CounterMapping, RedisCounterSink, TimeBuckets

        from .servers import RedisProcess

        with RedisProcess("--appendonly", "yes", "--appendfsync", "always") as server:
            buckets = TimeBuckets()
            sink = RedisCounterSink(
                server.url(), mapping=CounterMapping(count=["measurement"]), buckets=buckets
            )
            streamer = spooled_streamer(sink, tmp_path / "spool")
            started = time.time()
            before = steady_stream(streamer, "outage", 0, 1.0)
            server.stop()
            during = steady_stream(streamer, "outage", before, 3.0)
            server.start()
            sent = steady_stream(streamer, "outage", during, 1.0)
            assert streamer.flush(120) is True
            health = streamer.health().sinks["redis-counters"]
            assert (health.events_written, health.events_dropped, health.spooled) == (sent, 0, 0)
            assert health.write_errors > 0
            with sink.reader() as reader:
                counted = reader.count("measurement", ("outage",), started - 86_400, time.time())
            streamer.shutdown(10)
        assert counted.total == sent
