"""The relay against the real broker and Redis, in process: decoding, poison, sinks down, windows.

Each test runs one or two `Relay`s on threads of their own, on a topic of
its own, and checks what reached the sinks against a reference computed
here, and what the group committed against the end of each partition.
Crashes (SIGKILL) and the command line are in ``test_relay_processes.py``.
"""

from __future__ import annotations

import json
import threading
import time
import urllib.request
import uuid
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from confluent_kafka import Consumer, TopicPartition

import metricstream as ms
from metricstream.cli import main as cli_main
from metricstream.codecs.json import encode_event
from metricstream.relay import Relay
from metricstream.sinks import JsonLinesSink, RedisCounterSink
from metricstream.streamer.engine.lane.retry import RetryConfig

from . import servers
from .relay_helpers import (
    BASE_NS,
    BOOTSTRAP,
    MAPPING,
    committed_offsets,
    create_topic,
    end_offsets,
    produce,
    produce_raw,
    read_counters,
    reference_counters,
    source_url,
    wait_for,
)
from .servers import RedisProcess

pytestmark = pytest.mark.servers

S = 1_000_000_000
HOSTS = [f"web-{n}" for n in range(7)]


@pytest.fixture(autouse=True)
def _servers() -> None:
    servers.require_url("Kafka (Tansu)", BOOTSTRAP)
    servers.require_url("Redis", servers.REDIS_URL)


def events(count: int, source: str, *, first_seq: int = 0) -> list[ms.MetricEvent]:
    """`count` events of hosts web-0..6, each with its own seq; bytes vary, times increase."""
    return [
        ms.MetricEvent(
            "http",
            {"host": HOSTS[seq % len(HOSTS)], "source": source},
            {"bytes": seq % 1000, "seq": seq},
            timestamp_ns=BASE_NS + seq * 1_000_000,
        )
        for seq in range(first_seq, first_seq + count)
    ]


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def wait_committed(group: str, topic: str, partitions: int, timeout: float = 60) -> None:
    """Wait until the group's committed offset of every partition is the end of its log.

    A partition that holds nothing has no committed offset (-1001).
    """
    ends = {p: end if end else -1001 for p, end in end_offsets(topic, partitions).items()}
    wait_for(
        lambda: committed_offsets(group, topic, partitions) == ends,
        timeout,
        f"{group} to commit {ends}",
    )


class TestDelivery:
    """Every KafkaSink message, and plain line protocol, reaches every sink; Redis exactly once."""

    def test_every_format_mode_and_codec_is_decoded_and_delivered(
        self, redis_prefix: str, tmp_path: Path
    ) -> None:
        topic = create_topic("relay-formats", 3)
        sent: list[ms.MetricEvent] = []
        kinds = [("json", "event", "zstd"), ("json", "batch", "gzip"), ("line", "event", "lz4"),
                 ("line", "batch", "snappy")]  # fmt: skip
        for number, (fmt, message, codec) in enumerate(kinds):
            batch = events(300, f"{fmt}-{message}", first_seq=number * 1000)
            produce(topic, batch, format=fmt, message=message, compression=codec, key="host")
            sent.extend(batch)
        plain = events(90, "plain", first_seq=9000)
        lines = [
            b"\n".join(e.to_influx_line().encode() for e in plain[i : i + 3])
            for i in range(0, 90, 3)
        ]
        produce_raw(topic, ((i % 3, value, []) for i, value in enumerate(lines)))
        sent.extend(plain)

        group = f"relay-formats-{uuid.uuid4().hex[:6]}"
        out = tmp_path / "out.jsonl"
        sinks = [
            RedisCounterSink(servers.REDIS_URL, prefix=redis_prefix, mapping=MAPPING),
            JsonLinesSink(str(out)),
        ]
        with Relay(source_url(topic, group), sinks, linger=0.2, commit_interval=0.2) as relay:
            host, port = relay.serve_health(port=0)
            wait_committed(group, topic, 3)
            health = json.loads(urllib.request.urlopen(f"http://{host}:{port}/healthz").read())
            metrics = urllib.request.urlopen(f"http://{host}:{port}/metrics").read().decode()
            probes = [
                urllib.request.urlopen(f"http://{host}:{port}/{probe}").status
                for probe in ("livez", "readyz")
            ]
            assert cli_main(["health", f"{host}:{port}"]) == 0
        assert relay.error is None

        assert read_counters(servers.REDIS_URL, redis_prefix, "http", HOSTS) == reference_counters(
            sent
        )
        written = Counter((row["tags"]["source"], row["fields"]["seq"]) for row in read_jsonl(out))
        assert written == Counter((e.tags["source"], e.fields["seq"]) for e in sent)
        assert health["relay"]["counts"]["events_read"] == len(sent)
        assert health["relay"]["counts"]["invalid_messages"] == 0
        assert set(health["relay"]["partitions"]) == {f"{topic}/{p}" for p in range(3)}
        assert health["sinks"]["redis-counters"]["events_written"] == len(sent)
        assert f'metricstream_relay_consumer_lag{{partition="0",topic="{topic}"}}' in metrics
        assert "metricstream_events_written_total" in metrics
        assert probes == [200, 200]


class TestPoisonMessages:
    """A message that cannot be decoded is counted, sent to the DLQ if there is one, and passed."""

    def test_with_and_without_a_dead_letter_topic(self, tmp_path: Path) -> None:
        topic = create_topic("relay-poison", 2)
        dlq = create_topic("relay-poison-dlq", 1)
        good = events(40, "good")
        json_headers = [("content-type", b"application/json")]
        poison = [
            (b"{this is not json", json_headers),
            (b'{"measurement":"m","fields":{"v":1},"schema_version":99}', json_headers),
            (b"\xff\xfe not line protocol", []),
            (encode_event(good[0]), [("content-type", b"application/x-unknown")]),
        ]
        messages = [(i % 2, encode_event(e), json_headers) for i, e in enumerate(good)]
        for i, (value, headers) in enumerate(poison):
            messages.insert(7 * i + 3, (i % 2, value, headers))
        produce_raw(topic, messages)

        relays = {}
        for name, extra in (("dlq", f"dlq={dlq}"), ("counted", "")):
            group = f"relay-poison-{name}-{uuid.uuid4().hex[:6]}"
            sink = JsonLinesSink(str(tmp_path / f"{name}.jsonl"))
            relay = Relay(source_url(topic, group, extra), [sink], linger=0.2, commit_interval=0.2)
            relays[name] = (group, relay.start())
        try:
            for group, _ in relays.values():
                wait_committed(group, topic, 2)
        finally:
            for _, relay in relays.values():
                relay.stop(30)
        for name, (_, relay) in relays.items():
            seqs = sorted(row["fields"]["seq"] for row in read_jsonl(tmp_path / f"{name}.jsonl"))
            assert seqs == list(range(40)), name
            assert relay.counters.count("invalid_messages") == len(poison)
        assert relays["dlq"][1].counters.count("dead_letters_delivered") == len(poison)
        assert relays["counted"][1].counters.count("dead_letters_delivered") == 0

        dead = read_dead_letters(dlq, len(poison))
        assert sorted(value for value, _ in dead) == sorted(value for value, _ in poison)
        for _, headers in dead:
            assert headers["metricstream-error"]
            assert headers["metricstream-source"].startswith(f"{topic}/".encode())


def read_dead_letters(topic: str, expected: int) -> list[tuple[bytes, dict[str, bytes]]]:
    consumer = Consumer({"bootstrap.servers": BOOTSTRAP, "group.id": f"dl-{uuid.uuid4().hex}"})
    consumer.assign([TopicPartition(topic, 0, 0)])
    found: list[tuple[bytes, dict[str, bytes]]] = []
    deadline = time.monotonic() + 30
    try:
        while len(found) < expected and time.monotonic() < deadline:
            for message in consumer.consume(100, 0.5):
                if message.error() is None:
                    found.append((message.value(), dict(message.headers() or [])))
    finally:
        consumer.close()
    return found


class TestBackpressure:
    """A sink down longer than the retry budget: partitions paused, nothing lost, memory bounded."""

    @pytest.mark.parametrize("spooled", [False, True], ids=["memory", "spool"])
    def test_the_relay_pauses_and_loses_nothing(self, tmp_path: Path, spooled: bool) -> None:
        topic = create_topic("relay-down", 2)
        sent = events(6000, "down")
        produce(topic, sent, key="host")
        group = f"relay-down-{uuid.uuid4().hex[:6]}"
        budget = RetryConfig(max_retries=1, initial_delay_ms=5, max_delay_ms=20, max_elapsed_ms=50)
        server = RedisProcess()  # its port, with no Redis on it yet
        options: dict[str, Any] = {"retry": budget, "spool_dir": str(tmp_path)} if spooled else {}
        sink = RedisCounterSink(server.url(), prefix="down:", mapping=MAPPING, socket_timeout=0.5)
        relay = Relay(
            source_url(topic, group),
            [sink],
            max_buffer=1000,
            max_batch_events=100,
            batch_messages=50,
            linger=0.1,
            commit_interval=0.2,
            **options,
        ).start()
        try:
            wait_for(lambda: relay.health().relay["held_events"] >= 900, 60, "the relay to fill up")
            wait_for(
                lambda: all(p["paused"] for p in relay.health().relay["partitions"].values()),
                30,
                "every partition to be paused",
            )
            assert committed_offsets(group, topic, 2) != end_offsets(topic, 2)
            with server:
                wait_committed(group, topic, 2)
                counted = read_counters(server.url(), "down:", "http", HOSTS)
        finally:
            relay.stop(30)
        assert counted == reference_counters(sent)
        state = relay.health().relay
        assert state["held_events_peak"] <= 1000 + 100  # max_buffer, plus one batch
        assert relay.health().sinks["redis-counters"].events_dropped == 0
        assert state["counts"]["messages"] == len(sent)  # paused, never read twice


class TestWindows:
    """Windows: out-of-order events count, late ones go raw to late-to, an idle partition waits."""

    def test_out_of_order_late_and_an_idle_partition(self, tmp_path: Path) -> None:
        topic = create_topic("relay-windows", 3)  # partition 2 never gets an event
        group = f"relay-windows-{uuid.uuid4().hex[:6]}"
        results, late_out = tmp_path / "windows.jsonl", tmp_path / "late.jsonl"
        on_time = [
            ms.MetricEvent(
                "http",
                {"host": HOSTS[i % 4]},
                {"bytes": i, "latency_ms": float(1 + i % 50)},
                timestamp_ns=BASE_NS + (i * 200 - (i % 5) * 700) * 1_000_000,  # up to 2.8 s back
            )
            for i in range(600)  # 120 s of events
        ]
        headers = [("content-type", b"application/json")]
        produce_raw(
            topic, ((HOSTS.index(e.tags["host"]) % 2, encode_event(e), headers) for e in on_time)
        )
        relay = Relay(
            source_url(topic, group),
            [JsonLinesSink(str(results))],
            windows="tumbling 10s",
            name="http_10s",
            by="host",
            aggregates="count,sum:bytes,min:latency_ms,max:latency_ms,quantiles:latency_ms",
            allowed_lateness=5,
            idle_timeout=1,
            late_to=[JsonLinesSink(str(late_out))],
            commit_interval=0.2,
        ).start()
        try:
            wait_for(
                lambda: (
                    relay.health().relay["watermark_ns"] is not None
                    and relay.health().relay["watermark_ns"] >= BASE_NS + 100 * S
                ),
                60,
                "the watermark to pass 100 s (partition 2 idle)",
            )
            late = [
                ms.MetricEvent(
                    "http",
                    {"host": "web-0"},
                    {"bytes": 7, "latency_ms": 1.0},
                    timestamp_ns=BASE_NS + t * S,
                )
                for t in (3, 12, 45)
            ]
            closers = [
                ms.MetricEvent(
                    "http",
                    {"host": "closer"},
                    {"bytes": 0, "latency_ms": 1.0},
                    timestamp_ns=BASE_NS + 3600 * S,
                )
                for _ in range(2)
            ]
            produce_raw(
                topic,
                [(0, encode_event(e), headers) for e in late]
                + [(p, encode_event(e), headers) for p, e in enumerate(closers)],
            )
            expected = window_reference(on_time, 10)
            wait_for(lambda: results.exists() and len(read_jsonl(results)) >= len(expected), 60,
                     "every window")  # fmt: skip
            wait_for(
                lambda: late_out.exists() and len(read_jsonl(late_out)) >= 3, 60, "late events"
            )
        finally:
            relay.stop(30)
        got = {
            (row["tags"]["host"], row["timestamp_ns"]): row["fields"] for row in read_jsonl(results)
        }
        assert set(got) == set(expected)
        for key, (count, total, low, high, values) in expected.items():
            fields = got[key]
            assert (fields["count"], fields["sum_bytes"]) == (count, total)
            assert (fields["min_latency_ms"], fields["max_latency_ms"]) == (low, high)
            exact = sorted(values)[int(0.5 * (len(values) - 1))]
            assert abs(fields["p50_latency_ms"] - exact) <= 0.01 * exact
        assert all(row["tags"]["window"] == "tumbling" for row in read_jsonl(results))
        assert sorted(row["timestamp_ns"] for row in read_jsonl(late_out)) == [
            e.timestamp_ns for e in late
        ]
        assert relay.counters.count("late_events") == 3


def window_reference(rows: list[ms.MetricEvent], size_s: int) -> dict[Any, Any]:
    """Per (host, window start): count, sum of bytes, min and max latency, the latencies."""
    found: dict[Any, list[Any]] = {}
    for event in rows:
        start = event.timestamp_ns - event.timestamp_ns % (size_s * S)
        entry = found.setdefault((event.tags["host"], start), [0, 0, None, None, []])
        latency = event.fields["latency_ms"]
        entry[0] += 1
        entry[1] += event.fields["bytes"]
        entry[2] = latency if entry[2] is None else min(entry[2], latency)
        entry[3] = latency if entry[3] is None else max(entry[3], latency)
        entry[4].append(latency)
    return {key: tuple(value) for key, value in found.items()}


class TestRebalance:
    """A relay joining the group takes partitions over; nothing is counted twice in Redis."""

    def test_a_second_relay_joins_while_events_flow(self, redis_prefix: str) -> None:
        topic = create_topic("relay-join", 4)
        group = f"relay-join-{uuid.uuid4().hex[:6]}"
        sent = events(12_000, "join")
        sink_options = {"prefix": redis_prefix, "mapping": MAPPING}
        first = Relay(
            source_url(topic, group),
            [RedisCounterSink(servers.REDIS_URL, **sink_options)],
            linger=0.1,
            commit_interval=0.2,
        ).start()
        producing = threading.Thread(target=produce_slowly, args=(topic, sent), daemon=True)
        producing.start()
        try:
            wait_for(lambda: first.counters.count("messages") > 0, 60, "the first relay to read")
            second = Relay(
                source_url(topic, group),
                [RedisCounterSink(servers.REDIS_URL, **sink_options)],
                linger=0.1,
                commit_interval=0.2,
            ).start()
            try:
                producing.join(120)
                wait_committed(group, topic, 4)
            finally:
                second.stop(30)
        finally:
            first.stop(30)
        assert read_counters(servers.REDIS_URL, redis_prefix, "http", HOSTS) == reference_counters(
            sent
        )
        assert first.counters.count("rebalances") >= 2
        assert second.counters.count("messages") > 0
        assert first.error is None
        assert second.error is None


def produce_slowly(topic: str, sent: list[ms.MetricEvent]) -> None:
    """Publish in 20 pieces, 0.2 s apart: the events flow while the group changes."""
    size = len(sent) // 20
    for first in range(0, len(sent), size):
        produce(topic, sent[first : first + size], key="host")
        time.sleep(0.2)
