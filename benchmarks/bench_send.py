"""The application-thread cost of recording one measurement.

metricstream: ``streamer.send(event_from_sample(...))`` (building the event
included), against prometheus_client ``Counter.labels(...).inc()`` and the
OpenTelemetry SDK's ``counter.add(1, attributes)``, in the same process. The
sinks behind the streamer do nothing, so only the application's side is
measured (the batcher still runs, as it would in production, and what it
costs is counted: the wall clock of the calling thread includes it).

The three are run in alternating order, ``ROUNDS`` times; each round gives a
ratio, and the target holds for their median (in every run of the benchmark;
the lowest and highest round are printed beside it). Within a round they take
turns over ``CHUNKS`` chunks of calls, and each one's median chunk counts.
The figure compared is the CPU time of the calling thread per call (other
processes on a shared machine do not count in it; the pipeline's own threads
do not either, so the wall clock of the calling thread, which they slow down
when they run, is printed beside it, and the CPU time of the whole process
per call). The target is judged on the calling thread's CPU; the whole
process's CPU, which counts the batcher and the lane (with a sink that does
nothing), is reported beside it in the table of targets.
"""

from __future__ import annotations

import os
import statistics
import sys
import time
from collections.abc import Callable

sys.path.insert(0, os.path.dirname(__file__))

from _common import NullSink, side_by_side, spread_of

import metricstream as ms

CALLS = 100_000
ROUNDS = 7
CHUNKS = 5
TARGET = 1.5



def per_call(fn: Callable[[int], None], calls: int = CALLS) -> tuple[float, float, float]:
    """Run ``fn(calls)``; return (thread CPU ns, wall ns, process CPU ns) per call."""
    thread, wall, cpu = time.thread_time_ns(), time.perf_counter_ns(), time.process_time_ns()
    fn(calls)
    return (
        (time.thread_time_ns() - thread) / calls,
        (time.perf_counter_ns() - wall) / calls,
        (time.process_time_ns() - cpu) / calls,
    )


def main() -> None:
    tags = {"route": "/api/orders", "method": "GET", "status": "200"}
    streamer = ms.EventStreamer(
        [NullSink()], batch_size=1000, max_buffer=1_000_000, register_atexit=False
    )

    def ours(n: int) -> None:
        send, sample = streamer.send, ms.event_from_sample
        for _ in range(n):
            send(sample("http.requests", 1, tags))
        streamer.flush(10)

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

    runs: dict[str, list[tuple[float, float, float]]] = {"ours": [], "prometheus": [], "otel": []}
    order = [("ours", ours), ("prometheus", prometheus), ("otel", otel)]
    for _, warm in order:
        warm(CALLS // 10)
    for round_ in range(ROUNDS):
        # A round interleaves the three in CHUNKS chunks and keeps each one's
        # median chunk, so that a moment of interference on a shared machine
        # does not decide the round.
        chunks: dict[str, list[tuple[float, float, float]]] = {name: [] for name in runs}
        for _ in range(CHUNKS):
            for name, fn in order if round_ % 2 == 0 else order[::-1]:
                chunks[name].append(per_call(fn, CALLS // CHUNKS))
        for name, measured in chunks.items():
            thread, wall, cpu = (
                statistics.median(column) for column in zip(*measured, strict=True)
            )
            runs[name].append((thread, wall, cpu))
    streamer.shutdown(timeout=10)
    provider.shutdown()

    def median(name: str, index: int) -> float:
        return statistics.median(run[index] for run in runs[name])

    print(
        f"\n(a) application-thread cost per call, medians of {ROUNDS} alternating runs"
        f" x {CALLS:,} calls (CPU time of the calling thread; wall clock beside)"
    )
    for peer, label, key in (
        ("prometheus", "prometheus_client Counter.labels(...).inc()", "send"),
        ("otel", "opentelemetry-sdk counter.add(1, attributes)", "send_otel"),
    ):
        ratios = [p[0] / o[0] for o, p in zip(runs["ours"], runs[peer], strict=True)]
        walls = [p[1] / o[1] for o, p in zip(runs["ours"], runs[peer], strict=True)]
        side_by_side(
            f"send(event_from_sample(...)) vs {label.split()[0]}, calling-thread CPU time",
            ("metricstream send(event_from_sample(...))", median("ours", 0)),
            (label, median(peer, 0)),
            "ns/call",
            higher_is_better=False,
            cpu=(median("ours", 2) / 1000, median(peer, 2) / 1000),
            target=(
                (f">= {TARGET}x, median of {ROUNDS} rounds", statistics.median(ratios) >= TARGET)
                if key == "send"
                else None
            ),
            spread=(
                f"ratio {spread_of(ratios)}; wall clock {median('ours', 1):,.0f} vs"
                f" {median(peer, 1):,.0f} ns/call, ratio {spread_of(walls)}"
            ),
            key=key,
            ratio=statistics.median(ratios),
        )
    process = [p[2] / o[2] for o, p in zip(runs["ours"], runs["prometheus"], strict=True)]
    side_by_side(
        "send(event_from_sample(...)) vs prometheus_client, CPU time of the whole process"
        " (the batcher and the lane's threads included; the sink does nothing)",
        ("metricstream send(event_from_sample(...))", median("ours", 2)),
        ("prometheus_client Counter.labels(...).inc()", median("prometheus", 2)),
        "ns/call",
        higher_is_better=False,
        spread=f"ratio {spread_of(process)}",
        key="send_process",
        ratio=statistics.median(process),
    )


if __name__ == "__main__":
    main()
