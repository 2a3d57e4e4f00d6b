"""The application-thread cost of recording one measurement.

metricstream: ``streamer.send(event_from_sample(...))`` (building the event
included), against prometheus_client ``Counter.labels(...).inc()`` and the
OpenTelemetry SDK's ``counter.add(1, attributes)``, in the same process. The
sinks behind the streamer do nothing, so only the application's side is
measured (the batcher still runs, as it would in production).
"""

from __future__ import annotations

import os
import sys

sys.path.insert(0, os.path.dirname(__file__))

from _common import median_ns_per_call, side_by_side

import metricstream as ms

CALLS = 100_000


class NullSink:
    """Accepts everything instantly."""

    name = "null"

    def prepare(self, batch: ms.EventBatch) -> int:
        return len(batch)

    def write(self, payload: int) -> None:
        pass

    def check(self) -> None:
        pass

    def close(self) -> None:
        pass


def main() -> dict[str, float]:
    tags = {"route": "/api/orders", "method": "GET", "status": "200"}
    streamer = ms.EventStreamer(
        [NullSink()], batch_size=1000, max_buffer=1_000_000, register_atexit=False
    )

    def ours(n: int) -> None:
        send, sample = streamer.send, ms.event_from_sample
        for _ in range(n):
            send(sample("http.requests", 1, tags))

    import prometheus_client

    registry = prometheus_client.CollectorRegistry()
    counter = prometheus_client.Counter(
        "http_requests", "requests", ["route", "method", "status"], registry=registry
    )

    def prometheus(n: int) -> None:
        labels = counter.labels
        for _ in range(n):
            labels(route="/api/orders", method="GET", status="200").inc()

    from opentelemetry.sdk.metrics import MeterProvider

    provider = MeterProvider()
    otel_counter = provider.get_meter("bench").create_counter("http.requests")

    def otel(n: int) -> None:
        add = otel_counter.add
        for _ in range(n):
            add(1, tags)

    ours(CALLS)
    prometheus(CALLS)
    otel(CALLS)
    ours_ns = median_ns_per_call(ours, CALLS)
    prom_ns = median_ns_per_call(prometheus, CALLS)
    otel_ns = median_ns_per_call(otel, CALLS)
    streamer.shutdown(timeout=10)
    provider.shutdown()
    print(f"\n(a) application-thread cost per call, median of 7 x {CALLS:,} calls")
    r1 = side_by_side(
        "    vs prometheus_client",
        ("metricstream send(event_from_sample(...))", ours_ns),
        ("prometheus_client Counter.labels(...).inc()", prom_ns),
        "ns/call",
        higher_is_better=False,
    )
    r2 = side_by_side(
        "    vs OpenTelemetry SDK",
        ("metricstream send(event_from_sample(...))", ours_ns),
        ("opentelemetry-sdk counter.add(1, attributes)", otel_ns),
        "ns/call",
        higher_is_better=False,
    )
    target = "met" if ours_ns <= prom_ns else "MISSED"
    print(f"  target: no slower than prometheus_client -> {target}")
    return {
        "send_ns": ours_ns,
        "prometheus_ns": prom_ns,
        "otel_ns": otel_ns,
        "ratio_prom": r1,
        "ratio_otel": r2,
    }


if __name__ == "__main__":
    main()
