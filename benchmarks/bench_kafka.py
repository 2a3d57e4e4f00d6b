"""End-to-end throughput into Kafka (Tansu), beside a raw confluent-kafka loop.

The same 200,000 events (50 routes, three tags, one float field) go to a
fresh topic per run, every run timed from the first send until every
delivery report is in:

- metricstream, ``message="event"``: the events (built before the clock
  starts) sent to an EventStreamer with a KafkaSink, one message per event;
  timed until ``flush()`` returns, which is when the sink has seen every
  delivery report; health must say 200,000 written.
- metricstream, ``message="batch"``: the same, one message per batch.
- raw confluent-kafka: the events' JSON, encoded with orjson before the clock
  starts (the exact bytes the sink sends), produced in a plain loop with the
  same headers (content-type, schema_version) and a delivery callback that
  counts, then ``flush()``; the callback must count 200,000. This is the
  practical ceiling: no batching, encoding or accounting of its own.

Both producers have the same settings (the sink's defaults: idempotence,
acks=all, linger.ms=5, zstd) and are connected before the clock starts. The
three are run in alternating order, ``ROUNDS`` times; the medians are
reported, with the client's CPU seconds (every thread of the process,
librdkafka's included) per million events, since the broker shares the
machine's cores. Target: ``message="event"`` at least ``TARGET`` times the
raw loop's events/s. Needs Tansu (``scripts/services.sh start``;
``METRICSTREAM_KAFKA_BOOTSTRAP``).
"""

from __future__ import annotations

import os
import statistics
import sys
import time
import uuid
from collections.abc import Callable

sys.path.insert(0, os.path.dirname(__file__))

from _common import ROUTES, side_by_side
from confluent_kafka import Producer
from confluent_kafka.admin import AdminClient

import metricstream as ms
from metricstream.codecs.json import encode_event
from metricstream.sinks import KafkaSink

EVENTS = 200_000
BATCH_SIZE = 10_000
ROUNDS = 5
TARGET = 0.8
BOOTSTRAP = os.environ.get("METRICSTREAM_KAFKA_BOOTSTRAP", "127.0.0.1:29092")
HEADERS = [("content-type", b"application/json"), ("schema_version", b"1")]
PRODUCER = {
    "bootstrap.servers": BOOTSTRAP,
    "enable.idempotence": True,
    "acks": "all",
    "linger.ms": 5,
    "compression.type": "zstd",
    "partitioner": "murmur2_random",
}

Run = Callable[[str], tuple[float, float]]


def make_events() -> list[ms.MetricEvent]:
    sample = ms.event_from_sample
    return [
        sample(
            "http.latency_ms", i * 0.5, {"route": ROUTES[i % 50], "method": "GET", "host": "web-1"}
        )
        for i in range(EVENTS)
    ]


def ours(events: list[ms.MetricEvent], message: str) -> Run:
    def run(topic: str) -> tuple[float, float]:
        sink = KafkaSink(BOOTSTRAP, topic, message=message, compression="zstd", name="kafka")
        sink.check()
        streamer = ms.EventStreamer(
            [sink],
            batch_size=BATCH_SIZE,
            max_buffer=EVENTS,
            flush_interval=1.0,
            register_atexit=False,
        )
        send = streamer.send
        cpu, started = time.process_time(), time.perf_counter()
        for event in events:
            send(event)
        assert streamer.flush(300)
        elapsed, cpu = time.perf_counter() - started, time.process_time() - cpu
        health = streamer.health().sinks["kafka"]
        streamer.shutdown(10)
        assert (health.events_written, health.events_dropped) == (EVENTS, 0), health
        return EVENTS / elapsed, cpu

    return run


def raw(payloads: list[bytes]) -> Run:
    def run(topic: str) -> tuple[float, float]:
        producer = Producer(PRODUCER)
        producer.list_topics(topic, timeout=30)
        delivered = [0]

        def on_delivery(error: object, _message: object) -> None:
            if error is None:
                delivered[0] += 1

        produce, poll = producer.produce, producer.poll
        cpu, started = time.process_time(), time.perf_counter()
        for payload in payloads:
            while True:
                try:
                    produce(topic, payload, on_delivery=on_delivery, headers=HEADERS)
                    break
                except BufferError:
                    poll(0.05)
        assert producer.flush(300) == 0
        elapsed, cpu = time.perf_counter() - started, time.process_time() - cpu
        assert delivered[0] == EVENTS, delivered
        return EVENTS / elapsed, cpu

    return run


def main() -> None:
    events = make_events()
    payloads = [encode_event(event) for event in events]
    runs: dict[str, Run] = {
        "event": ours(events, "event"),
        "batch": ours(events, "batch"),
        "raw": raw(payloads),
    }
    rates: dict[str, list[float]] = {name: [] for name in runs}
    cpus: dict[str, list[float]] = {name: [] for name in runs}
    admin = AdminClient({"bootstrap.servers": BOOTSTRAP})
    order = list(runs)
    for round_number in range(ROUNDS):
        for name in order[round_number % 3 :] + order[: round_number % 3]:
            topic = f"bench-kafka-{name}-{uuid.uuid4().hex[:10]}"
            rate, cpu = runs[name](topic)
            rates[name].append(rate)
            cpus[name].append(cpu / EVENTS * 1e6)
            # Tansu keeps every message in memory: give it back.
            for future in admin.delete_topics([topic], operation_timeout=30).values():
                try:
                    future.result()
                except Exception as exc:
                    print(f"  (could not delete {topic}: {exc})")
    median = {name: statistics.median(values) for name, values in rates.items()}
    cpu_median = {name: statistics.median(values) for name, values in cpus.items()}
    print(
        f"{EVENTS:,} events per run, batch_size={BATCH_SIZE:,}, zstd, acks=all, idempotent; "
        f"median of {ROUNDS} alternating runs"
    )
    for name in runs:
        shown = ", ".join(f"{value:,.0f}" for value in rates[name])
        print(f"  {name:<6} runs (events/s): {shown}")
    for mode in ("event", "batch"):
        ratio = median[mode] / median["raw"]
        side_by_side(
            f'Kafka end-to-end, message="{mode}" (until every delivery report is in)',
            (f'metricstream KafkaSink(message="{mode}")', median[mode]),
            ("raw confluent-kafka produce loop", median["raw"]),
            "events/s",
            higher_is_better=True,
            cpu=(cpu_median[mode], cpu_median["raw"]),
            target=(f">= {TARGET:.1f}x the raw loop", ratio >= TARGET) if mode == "event" else None,
            key=f"kafka_{mode}",
        )
    print("\nclient CPU seconds per million events (all threads, librdkafka's included)")
    for name in runs:
        share = cpu_median[name] / cpu_median["raw"]
        print(f"  {name:<44} {cpu_median[name]:>14.2f} s  ({share:.2f}x the raw loop's)")


if __name__ == "__main__":
    main()
