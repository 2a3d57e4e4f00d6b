"""Helpers for the relay's tests: topics, producing, offsets, Redis counters read back.

Everything runs against the real broker (Tansu) and Redis that
``scripts/services.sh`` starts; names carry a random run id. `FAST_GROUP`
shortens the group's session so that a join takes about a second on Tansu
(which answers a first JoinGroup after half the session timeout) and a
killed relay's partitions move after two.
"""

from __future__ import annotations

import json
import time
import urllib.parse
import uuid
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from typing import Any

from confluent_kafka import Consumer, KafkaError, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

import metricstream as ms
from metricstream.sinks import KafkaSink, RedisCounterReader

from . import servers

__all__ = [
    "BASE_NS",
    "DAY",
    "FAST_GROUP",
    "MAPPING",
    "committed_offsets",
    "create_topic",
    "end_offsets",
    "hosts_on_every_partition",
    "produce",
    "produce_raw",
    "read_counters",
    "redis_url",
    "reference_counters",
    "source_url",
    "wait_for",
]

BOOTSTRAP = servers.KAFKA_BOOTSTRAP
FAST_GROUP = "session.timeout.ms=2000&heartbeat.interval.ms=300"
BASE_NS = 1_700_000_000_000_000_000
"""Event times start here (2023-11-14 22:13:20 UTC): one day holds every test's events."""
DAY = 86_400
MAPPING = {"count": ["measurement~host"], "sum": [["measurement~host", "bytes"]]}
"""Counts and byte sums per measurement and host."""


def create_topic(prefix: str, partitions: int) -> str:
    """A new topic with a unique name."""
    topic = f"{prefix}-{uuid.uuid4().hex[:10]}"
    admin = AdminClient({"bootstrap.servers": BOOTSTRAP})
    for future in admin.create_topics([NewTopic(topic, partitions, 1)]).values():
        future.result(30)
    return topic


def redis_url(prefix: str, mapping: dict[str, Any] | None = None) -> str:
    """A Redis counter sink URL with its own key prefix and `MAPPING` (or `mapping`)."""
    text = urllib.parse.quote(json.dumps(mapping or MAPPING, separators=(",", ":")))
    return f"{servers.REDIS_URL}?prefix={prefix}&mapping={text}"


def source_url(topic: str, group: str, extra: str = "") -> str:
    """A relay source URL for `topic` and `group`, with the short session of the tests."""
    suffix = f"&{extra}" if extra else ""
    return f"kafka://{BOOTSTRAP}/{topic}?group={group}&{FAST_GROUP}{suffix}"


def produce(topic: str, events: Sequence[ms.MetricEvent], **sink_options: Any) -> None:
    """Publish `events` with a `KafkaSink` (its options as given) and wait for every report."""
    sink = KafkaSink(BOOTSTRAP, topic, **sink_options)
    size = max(1000, len(events))
    with ms.EventStreamer([sink], register_atexit=False, max_buffer=size) as streamer:
        for event in events:
            streamer.send(event)
        assert streamer.flush(60)
        health = streamer.health().sinks[sink.name]
    assert (health.events_written, health.events_dropped) == (len(events), 0), health


def produce_raw(topic: str, messages: Iterable[tuple[int, bytes, list[tuple[str, bytes]]]]) -> int:
    """Produce (partition, value, headers) messages as they are; return how many."""
    producer = Producer({"bootstrap.servers": BOOTSTRAP})
    count = 0
    for partition, value, headers in messages:
        producer.produce(topic, value, partition=partition, headers=headers)
        count += 1
    assert producer.flush(60) == 0
    return count


def hosts_on_every_partition(partitions: int, per_partition: int) -> list[str]:
    """Host names that `KafkaSink(key="host")` spreads evenly over `partitions` partitions.

    Found by publishing one event per candidate name and reading where each
    landed (the client's own partitioner decides), so that no partition is
    left without events (it would hold a relay's watermark back).
    """
    topic = create_topic("relay-hosts", partitions)
    candidates = [f"host-{n:03d}" for n in range(per_partition * partitions * 8)]
    probes = [ms.MetricEvent("probe", {"host": host}, {"n": 1}) for host in candidates]
    produce(topic, probes, key="host")
    chosen: dict[int, list[str]] = {p: [] for p in range(partitions)}
    consumer = Consumer({"bootstrap.servers": BOOTSTRAP, "group.id": f"hosts-{uuid.uuid4().hex}"})
    try:
        consumer.assign([TopicPartition(topic, p, 0) for p in range(partitions)])
        seen = 0
        deadline = time.monotonic() + 60
        while seen < len(candidates) and time.monotonic() < deadline:
            for message in consumer.consume(1000, 0.5):
                if message.error() is None:
                    seen += 1
                    chosen[message.partition()].append(message.key().decode())
    finally:
        consumer.close()
    picked = [host for p in range(partitions) for host in sorted(chosen[p])[:per_partition]]
    assert len(picked) == partitions * per_partition, chosen
    return picked


def end_offsets(topic: str, partitions: int) -> dict[int, int]:
    """The end of the log of each partition: the offset after its last message (0 if empty).

    Read to the end, since Tansu answers a ListOffsets query with the base
    offset of the last record batch plus one; fetch responses are right.
    """
    consumer = Consumer(
        {
            "bootstrap.servers": BOOTSTRAP,
            "group.id": f"ends-{uuid.uuid4().hex}",
            "enable.partition.eof": True,
            "fetch.wait.max.ms": 10,
        }
    )
    ends = dict.fromkeys(range(partitions), 0)
    at_end: set[int] = set()
    try:
        consumer.assign([TopicPartition(topic, p, 0) for p in range(partitions)])
        deadline = time.monotonic() + 60
        while len(at_end) < partitions and time.monotonic() < deadline:
            for message in consumer.consume(5000, 0.2):
                if message.error() is None:
                    ends[message.partition()] = message.offset() + 1
                elif message.error().code() == KafkaError._PARTITION_EOF:
                    at_end.add(message.partition())
        assert len(at_end) == partitions, "could not read the topic to its end"
        return ends
    finally:
        consumer.close()


def committed_offsets(group: str, topic: str, partitions: int) -> dict[int, int]:
    """The offsets `group` committed (as the broker says), -1001 where none."""
    consumer = Consumer({"bootstrap.servers": BOOTSTRAP, "group.id": group})
    try:
        answers = consumer.committed(
            [TopicPartition(topic, p) for p in range(partitions)], timeout=30
        )
        return {answer.partition: answer.offset for answer in answers}
    finally:
        consumer.close()


def wait_for(predicate: Callable[[], bool], timeout: float, what: str) -> None:
    """Wait until `predicate` holds (polling every 0.1 s); fail naming `what` after `timeout`."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(0.1)


def reference_counters(events: Iterable[ms.MetricEvent]) -> dict[str, tuple[int, int]]:
    """Per host: (count, sum of bytes) of `events`: what the Redis counters must hold."""
    counts: Counter[str] = Counter()
    sums: Counter[str] = Counter()
    for event in events:
        counts[event.tags["host"]] += 1
        sums[event.tags["host"]] += int(event.fields["bytes"])
    return {host: (counts[host], sums[host]) for host in counts}


def read_counters(
    url: str, prefix: str, measurement: str, hosts: Iterable[str]
) -> dict[str, tuple[int, int]]:
    """Per host: (count, sum of bytes) as the Redis counters hold them (around `BASE_NS`)."""
    start, end = BASE_NS // 10**9 - DAY, BASE_NS // 10**9 + 2 * DAY
    found = {}
    with RedisCounterReader(url, prefix=prefix) as reader:
        for host in hosts:
            count = reader.count("measurement~host", (measurement, host), start, end).total
            total = reader.sum("measurement~host", (measurement, host), start, end).total
            if count or total:
                found[host] = (int(count), int(total))
    return found
