"""The demo's analytics events to Kafka and to Redis counters, then a dashboard.

Run with ``python examples/analytics_pipeline.py [--events 20000]``. It
writes to the Kafka broker at ``$KAFKA_BOOTSTRAP`` (default
``localhost:9092``) and to the Redis server at ``$REDIS_URL`` (default
``redis://localhost:6379/0``), and fails with a clear message when either
does not answer. Against the test servers of ``scripts/services.sh start``::

    KAFKA_BOOTSTRAP=127.0.0.1:29092 REDIS_URL=redis://127.0.0.1:26379/0 \\
        python examples/analytics_pipeline.py

One `EventStreamer` fans the simulated product-analytics workload out to:

- a `KafkaSink` (one message per batch), the durable stream other programs
  consume; a consumer reads the topic back with `decode_message` and counts
  what arrived;
- a `RedisCounterSink`, which keeps events per type and organisation,
  unique users and revenue per ``utm_source`` in hourly buckets; a
  `RedisCounterReader` then answers the dashboard's questions directly.

Each figure is printed beside the one computed from the events sent. Every
run uses its own topic and key prefix, so runs never mix.
"""

from __future__ import annotations

import argparse
import os
import socket
import sys
import time
import uuid
from collections import Counter

import metricstream as ms
from metricstream.cli.workload import AnalyticsWorkload
from metricstream.sinks import CounterMapping, KafkaSink, RedisCounterSink, TimeBuckets
from metricstream.sinks.kafka import decode_message

KAFKA = os.environ.get("KAFKA_BOOTSTRAP", "localhost:9092")
REDIS = os.environ.get("REDIS_URL", "redis://localhost:6379/0")
MAPPING = CounterMapping(
    unique=["user", "org~user"],
    count=["measurement", "measurement~org"],
    sum=[("utm_source", "amount")],
)


def reachable(host_port: str) -> bool:
    host, _, port = host_port.rpartition(":")
    try:
        with socket.create_connection((host, int(port)), timeout=3):
            return True
    except OSError:
        return False


def read_topic(topic: str, expected: int) -> list[ms.MetricEvent]:
    """Consume the whole topic (assigning every partition) until `expected` events arrived."""
    from confluent_kafka import Consumer, TopicPartition

    consumer = Consumer(
        {"bootstrap.servers": KAFKA, "group.id": f"example-{topic}", "enable.auto.commit": False}
    )
    try:
        partitions = consumer.list_topics(topic, timeout=10).topics[topic].partitions
        consumer.assign([TopicPartition(topic, p, 0) for p in partitions])
        events: list[ms.MetricEvent] = []
        deadline = time.monotonic() + 60
        while len(events) < expected and time.monotonic() < deadline:
            message = consumer.poll(0.5)
            if message is None or message.error():
                continue
            events.extend(decode_message(message.value(), message.headers()))
        return events
    finally:
        consumer.close()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=20_000)
    args = parser.parse_args()
    redis_host = REDIS.split("://", 1)[1].split("/", 1)[0].rpartition("@")[2]
    for what, address in (("Kafka", KAFKA), ("Redis", redis_host)):
        if not reachable(address):
            variable = "KAFKA_BOOTSTRAP" if what == "Kafka" else "REDIS_URL"
            print(f"{what} does not answer at {address}: set {variable} to a server's address")
            return 1

    run = uuid.uuid4().hex[:8]
    topic, prefix = f"analytics-{run}", f"example:{run}:"
    buckets = TimeBuckets(hourly=True)
    counters = RedisCounterSink(
        REDIS,
        mapping=MAPPING,
        buckets=buckets,
        prefix=prefix,
        ttl_daily=3 * 86_400,
        ttl_hourly=3 * 86_400,
    )
    stream = KafkaSink(KAFKA, topic, message="batch", compression="zstd")
    events = AnalyticsWorkload(seed=42).events(args.events)
    started = time.time()
    with ms.EventStreamer([stream, counters], batch_size=2000) as streamer:
        streamer.send_many(events)
        streamer.flush(60)
        health = streamer.health()
    for name, sink in health.sinks.items():
        print(f"{name:<16} written {sink.events_written:,} dropped {sink.events_dropped:,}")

    consumed = read_topic(topic, len(events))
    per_type = Counter(e.measurement for e in events)
    print(f"\nKafka topic {topic}: {len(consumed):,} events read back (sent {len(events):,})")
    same = sorted(map(repr, consumed)) == sorted(map(repr, events))
    print(f"  the same events as sent: {same}")

    now = time.time() + 1
    with counters.reader() as reader:
        since = time.strftime("%H:%M", time.gmtime(started))
        print(f"\nDashboard from Redis counters (since {since} UTC):")
        print(f"  {'event type':<12} {'counted':>9} {'sent':>9}")
        for kind, sent in sorted(per_type.items()):
            counted = reader.count("measurement", (kind,), started - 3600, now, bucket="h").total
            print(f"  {kind:<12} {int(counted):>9,} {sent:>9,}")
        unique = reader.unique("user", started - 3600, now, bucket="h").total
        users = len({e.tags["user"] for e in events})
        print(f"  unique users {int(unique):>8,} {users:>9,} (HyperLogLog)")
        revenue = Counter[str]()
        for event in events:
            if "amount" in event.fields:
                revenue[event.tags["utm_source"]] += float(event.fields["amount"])  # type: ignore[arg-type]
        print(f"\n  {'utm_source':<12} {'revenue':>12} {'sent':>12}")
        for source, amount in sorted(revenue.items()):
            summed = reader.sum("utm_source", (source,), started - 3600, now, bucket="h").total
            print(f"  {source:<12} {summed:>12,.2f} {amount:>12,.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
