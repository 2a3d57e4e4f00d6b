"""The Kafka relay's throughput, beside a plain confluent-kafka consume-and-decode loop.

One 6-partition topic holds ``EVENTS`` events (3 tags, 2 fields), written by
`KafkaSink` (JSON, one message per event, zstd), before anything is timed.

- peer: a plain ``confluent_kafka.Consumer`` in this process, assigned every
  partition from the start, calling ``consume(1000)`` and ``decode_message``
  on each message until every event is decoded; it delivers nothing.
- relay: ``metricstream relay`` processes (1 or 2, in one consumer group),
  from the same topic to Redis counters or a JSON Lines file, without
  windows (every event delivered, offsets committed) or with a tumbling
  60 s window grouped by host (every event read and aggregated).

Each run is timed from the moment the first event was decoded (peer) or
delivered / aggregated (relay, as its ``/healthz`` reports, polled every
50 ms) until the last: the group join is not counted. CPU is the CPU time of
the reading processes over that span (every thread: librdkafka's, the
streamer's, the sinks'). Since the broker, Redis and the relays share the
machine's cores, the figures compared are events per CPU second (the
wall-clock rates of each pair are printed beside them); each relay run is
paired with a plain loop run just before it, ``ROUNDS`` times, and the
ratio is the median of the pairs' ratios. Target: the relay delivers at
least half the plain loop's rate.
"""

from __future__ import annotations

import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.parse
import urllib.request
import uuid
from dataclasses import dataclass

sys.path.insert(0, os.path.dirname(__file__))

from _common import side_by_side
from confluent_kafka import Consumer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

import metricstream as ms
from metricstream.sinks import KafkaSink
from metricstream.sinks.kafka import decode_message

EVENTS = int(os.environ.get("METRICSTREAM_BENCH_RELAY_EVENTS", "200000"))
PARTITIONS = 6
ROUNDS = int(os.environ.get("METRICSTREAM_BENCH_RELAY_ROUNDS", "3"))
BOOTSTRAP = os.environ.get("METRICSTREAM_KAFKA_BOOTSTRAP", "127.0.0.1:29092")
REDIS = os.environ.get("METRICSTREAM_REDIS_URL", "redis://127.0.0.1:26379/0")
GROUP_SETTINGS = "session.timeout.ms=2000&heartbeat.interval.ms=300"
MAPPING = {"count": ["measurement~host"], "sum": [["measurement~host", "bytes"]]}


@dataclass
class Run:
    rate: float
    cpu_per_million: float


def fill_topic() -> str:
    topic = f"bench-relay-{uuid.uuid4().hex[:10]}"
    admin = AdminClient({"bootstrap.servers": BOOTSTRAP})
    for future in admin.create_topics([NewTopic(topic, PARTITIONS, 1)]).values():
        future.result(30)
    sink = KafkaSink(BOOTSTRAP, topic, compression="zstd", name="kafka")
    with ms.EventStreamer([sink], max_buffer=EVENTS, register_atexit=False) as streamer:
        for i in range(EVENTS):
            streamer.send(
                ms.MetricEvent(
                    "http",
                    {"host": f"web-{i % 50}", "route": f"/api/{i % 20}", "method": "GET"},
                    {"bytes": i % 5000, "latency_ms": (i % 300) * 0.5},
                    timestamp_ns=1_700_000_000_000_000_000 + i * 1_000_000,
                )
            )
        assert streamer.flush(300)
        assert streamer.health().sinks["kafka"].events_written == EVENTS
    return topic


def plain_loop(topic: str) -> Run:
    consumer = Consumer({"bootstrap.servers": BOOTSTRAP, "group.id": f"peer-{uuid.uuid4().hex}"})
    consumer.assign([TopicPartition(topic, p, 0) for p in range(PARTITIONS)])
    decoded = 0
    started = cpu = 0.0
    try:
        while decoded < EVENTS:
            for message in consumer.consume(1000, 1.0):
                if message.error() is None:
                    if not decoded:
                        started, cpu = time.perf_counter(), time.process_time()
                    decoded += len(decode_message(message.value(), message.headers()))
        elapsed, cpu = time.perf_counter() - started, time.process_time() - cpu
    finally:
        consumer.close()
    return Run(EVENTS / elapsed, cpu / EVENTS * 1e6)


def relay_run(topic: str, processes: int, sink: str, window: bool, directory: str) -> Run:
    group = f"bench-relay-{uuid.uuid4().hex[:8]}"
    source = f"kafka://{BOOTSTRAP}/{topic}?group={group}&{GROUP_SETTINGS}"
    ports = [free_port() for _ in range(processes)]
    children = []
    for n, port in enumerate(ports):
        if sink == "redis":
            mapping = urllib.parse.quote(json.dumps(MAPPING, separators=(",", ":")))
            target = f"{REDIS}?prefix=bench-relay:{group}:&mapping={mapping}"
        else:
            target = f"jsonl:{directory}/{group}-{n}.jsonl"
        args = ["--from", source, "--to", target, "--health-port", str(port)]
        if window:
            args += ["--window", "tumbling 60s", "--by", "host", "--name", "http_1m",
                     "--aggregate", "count,sum:bytes,max:latency_ms"]  # fmt: skip
        children.append(
            subprocess.Popen(
                [sys.executable, "-m", "metricstream", "relay", *args],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
        )
    try:
        return watch(ports, "events_read" if window else "written")
    finally:
        for child in children:
            child.send_signal(signal.SIGTERM)
        for child in children:
            child.wait(60)
        if sink == "redis":
            clean_redis(f"bench-relay:{group}:")


def watch(ports: list[int], what: str) -> Run:
    """Poll the relays' /healthz until `what` reaches EVENTS; rate and CPU from first to last."""
    first: tuple[float, float] | None = None
    deadline = time.monotonic() + 600
    while time.monotonic() < deadline:
        done, cpu = 0, 0.0
        for port in ports:
            try:
                url = f"http://127.0.0.1:{port}/healthz"
                document = json.loads(urllib.request.urlopen(url, timeout=5).read())
            except (OSError, ValueError):
                continue
            relay = document["relay"]
            cpu += relay["process_cpu_seconds"]
            if what == "written":
                done += sum(s["events_written"] for s in document["sinks"].values())
            else:
                done += relay["counts"]["events_read"]
        now = time.perf_counter()
        if done and first is None:
            first = (now, cpu)
        if done >= EVENTS and first is not None:
            return Run(EVENTS / (now - first[0]), (cpu - first[1]) / EVENTS * 1e6)
        time.sleep(0.05)
    raise RuntimeError(f"the relays did not finish: {done} of {EVENTS}")


def free_port() -> int:
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def clean_redis(prefix: str) -> None:
    import redis

    client = redis.Redis.from_url(REDIS)
    keys = list(client.scan_iter(match=f"{prefix}*", count=1000))
    for first in range(0, len(keys), 1000):
        client.delete(*keys[first : first + 1000])
    client.close()


VARIANTS = [
    ("redis", False, 1), ("jsonl", False, 1), ("redis", True, 1), ("jsonl", True, 1),
    ("redis", False, 2), ("jsonl", False, 2),
]  # fmt: skip


def main() -> None:
    topic = fill_topic()
    pairs: dict[tuple[str, bool, int], list[tuple[Run, Run]]] = {v: [] for v in VARIANTS}
    with tempfile.TemporaryDirectory() as directory:
        for _ in range(ROUNDS):
            for variant in VARIANTS:
                peer = plain_loop(topic)
                ours = relay_run(topic, variant[2], variant[0], variant[1], directory)
                pairs[variant].append((ours, peer))
    AdminClient({"bootstrap.servers": BOOTSTRAP}).delete_topics([topic])
    print(f"{EVENTS:,} JSON events (one message each, zstd) on {PARTITIONS} partitions; "
          f"{ROUNDS} rounds, each relay run paired with a plain loop run just before it; "
          "medians (the ratio: the median of the pairs' ratios)")  # fmt: skip
    for (sink, window, processes), runs in pairs.items():
        # The machine's cores are shared (Tansu, Redis, other work): the rates are
        # compared per CPU second of the reading processes, wall-clock rates beside.
        ours_per_cpu = statistics.median(1e6 / ours.cpu_per_million for ours, _ in runs)
        peer_per_cpu = statistics.median(1e6 / peer.cpu_per_million for _, peer in runs)
        ratio = statistics.median(peer.cpu_per_million / us.cpu_per_million for us, peer in runs)
        mode = "tumbling 60s by host, read and aggregated" if window else "delivered, committed"
        title = (
            f"Kafka -> {sink}, {processes} relay process{'es' if processes > 1 else ''}, {mode}:"
            " events per CPU second"
        )
        target = None
        if not window:
            target = ("at least half the plain loop's rate", ratio >= 0.5)
        side_by_side(
            title,
            ("metricstream relay", ours_per_cpu),
            ("plain consume + decode loop (delivers nothing)", peer_per_cpu),
            "events/CPU s",
            higher_is_better=True,
            cpu=(
                statistics.median(ours.cpu_per_million for ours, _ in runs),
                statistics.median(peer.cpu_per_million for _, peer in runs),
            ),
            target=target,
            ratio=ratio,
            spread="wall-clock pairs (relay / loop, events/s): "
            + ", ".join(f"{ours.rate:,.0f} / {peer.rate:,.0f}" for ours, peer in runs),
            key=f"relay_{sink}_{processes}" if not window else None,
        )


if __name__ == "__main__":
    main()
