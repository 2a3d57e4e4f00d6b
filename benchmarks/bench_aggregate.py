"""The in-process aggregator's hot path and memory, beside prometheus_client and DogStatsD.

What users call: ``aggregator = streamer.aggregator(...)`` on a running
streamer (its sink does nothing), then ``aggregator.count(...)`` and
``aggregator.histogram(...)``. Calling-thread CPU per call
(``time.thread_time_ns``, so background threads and other processes do not
count), with the same three tags as the other benchmarks (50 routes, a
method, a host), in rounds of ``CALLS`` calls that alternate their order
(ours, prometheus_client, DogStatsD, then rotated); the figure of each is
the median of its rounds, and the ratio to prometheus_client is the median
of the rounds' ratios:

- ``aggregator.count(name, tags={...})`` beside prometheus_client's
  ``Counter.labels(**tags).inc()`` and DogStatsD's ``increment(name,
  tags=[...])`` with client-side aggregation (``DogStatsd(
  disable_aggregation=False, disable_buffering=False)``);
- ``aggregator.histogram(name, value, tags={...})`` beside
  ``Histogram.labels(**tags).observe(value)`` and DogStatsD's ``histogram``,
  aggregated on the client (``max_metric_samples_per_context``, without
  which the client sends every sample).

DogStatsD sends to a closed loopback UDP port. The target: each call at
least 3x cheaper than prometheus_client's.

Memory per series with 100,000 series (one call each, tracemalloc, each
side in a fresh process, ours through ``streamer.aggregator``), beside
prometheus_client's per labelled child; the target is no more than
prometheus_client's. The aggregator's window is an hour there, so that no
window ends (and is sent) while the series are counted.
"""

from __future__ import annotations

import gc
import json
import os
import socket
import statistics
import subprocess
import sys
import time
import tracemalloc
from collections.abc import Callable
from typing import Any

sys.path.insert(0, os.path.dirname(__file__))

from _common import ROUTES, NullSink, side_by_side, spread_of

import metricstream as ms

CALLS = 5_000
ROUNDS = int(os.environ.get("BENCH_ROUNDS", "31"))
SERIES = 100_000
TARGET_RATIO = 3.0


def _closed_udp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])



def _streamer() -> ms.EventStreamer:
    return ms.EventStreamer([NullSink()], register_atexit=False)


def _recorders() -> tuple[dict[str, tuple[Callable[[int], None], ...]], Any]:
    """(ours, prometheus_client, DogStatsD) loops for count and histogram; the client, streamer."""
    from datadog.dogstatsd.base import DogStatsd
    from prometheus_client import CollectorRegistry, Counter, Histogram

    streamer = _streamer()
    aggregator = streamer.aggregator(10.0)
    registry = CollectorRegistry()
    labels = ["route", "method", "host"]
    counter = Counter("http_requests", "Requests.", labels, registry=registry)
    histogram = Histogram("http_latency", "Latency.", labels, registry=registry)
    statsd = DogStatsd(
        host="127.0.0.1",
        port=_closed_udp_port(),
        disable_aggregation=False,
        disable_buffering=False,
        disable_telemetry=True,
        max_metric_samples_per_context=1000,
    )
    routes = ROUTES

    def our_count(n: int) -> None:
        count = aggregator.count
        for i in range(n):
            count("http.requests", tags={"route": routes[i % 50], "method": "GET", "host": "web-1"})

    def prometheus_count(n: int) -> None:
        labelled = counter.labels
        for i in range(n):
            labelled(route=routes[i % 50], method="GET", host="web-1").inc()

    def statsd_count(n: int) -> None:
        increment = statsd.increment
        for i in range(n):
            increment("http.requests", tags=[f"route:{routes[i % 50]}", "method:GET", "host:web-1"])

    def our_histogram(n: int) -> None:
        record = aggregator.histogram
        for i in range(n):
            record(
                "http.latency",
                i * 0.001,
                tags={"route": routes[i % 50], "method": "GET", "host": "web-1"},
            )

    def prometheus_histogram(n: int) -> None:
        labelled = histogram.labels
        for i in range(n):
            labelled(route=routes[i % 50], method="GET", host="web-1").observe(i * 0.001)

    def statsd_histogram(n: int) -> None:
        record = statsd.histogram
        for i in range(n):
            record(
                "http.latency",
                i * 0.001,
                tags=[f"route:{routes[i % 50]}", "method:GET", "host:web-1"],
            )

    loops = {
        "count": (our_count, prometheus_count, statsd_count),
        "histogram": (our_histogram, prometheus_histogram, statsd_histogram),
    }
    return loops, (statsd, streamer)


def alternating_rounds(loops: tuple[Callable[[int], None], ...]) -> list[list[float]]:
    """ns per call of each loop in each of `ROUNDS` rounds, the order rotating every round."""
    for loop in loops:
        loop(CALLS)
    results: list[list[float]] = [[] for _ in loops]
    order = list(range(len(loops)))
    for round_ in range(ROUNDS):
        turn = order[round_ % len(order) :] + order[: round_ % len(order)]
        for index in turn if round_ % 2 == 0 else turn[::-1]:
            started = time.thread_time_ns()
            loops[index](CALLS)
            results[index].append((time.thread_time_ns() - started) / CALLS)
    return results


LABELS = {
    "count": (
        "metricstream aggregator.count(name, tags={...})",
        "prometheus_client Counter.labels(...).inc()",
        "datadog DogStatsd.increment(name, tags=[...])",
    ),
    "histogram": (
        "metricstream aggregator.histogram(name, v, tags={...})",
        "prometheus_client Histogram.labels(...).observe(v)",
        "datadog DogStatsd.histogram(name, v, tags=[...])",
    ),
}


def hot_paths() -> dict[str, float]:
    loops, (statsd, streamer) = _recorders()
    ratios = {}
    try:
        for key, calls in loops.items():
            ours, prometheus, dogstatsd = alternating_rounds(calls)
            labels = LABELS[key]
            pair_ratios = [peer / mine for mine, peer in zip(ours, prometheus, strict=True)]
            ratio = statistics.median(pair_ratios)
            ratios[key] = side_by_side(
                f"    {key}: calling-thread CPU per call, 3 tags, 50 series",
                (labels[0], statistics.median(ours)),
                (labels[1], statistics.median(prometheus)),
                "ns/call",
                higher_is_better=False,
                target=(
                    f">= {TARGET_RATIO:g}x less CPU than prometheus_client",
                    ratio >= TARGET_RATIO,
                ),
                spread=spread_of(pair_ratios),
                key=f"aggregate_{key}",
                ratio=ratio,
            )
            statsd_ratios = [peer / mine for mine, peer in zip(ours, dogstatsd, strict=True)]
            side_by_side(
                f"    {key}: beside DogStatsD's client-side aggregation",
                (labels[0], statistics.median(ours)),
                (labels[2], statistics.median(dogstatsd)),
                "ns/call",
                higher_is_better=False,
                spread=spread_of(statsd_ratios),
                ratio=statistics.median(statsd_ratios),
            )
    finally:
        statsd.stop()
        streamer.shutdown(10)
    return ratios


def _memory_run(which: str) -> dict[str, float]:
    """Bytes per series for SERIES counter and histogram series (run in a fresh process)."""
    tags = [
        {"route": f"/api/v1/resource/{i}", "method": "GET", "host": "web-1"} for i in range(SERIES)
    ]
    if which == "ours":
        aggregator = _streamer().aggregator(3600.0, max_series=2 * SERIES)

        def count(t: dict[str, str]) -> None:
            aggregator.count("http.requests", tags=t)

        def observe(t: dict[str, str]) -> None:
            aggregator.histogram("http.latency", 0.3, tags=t)
    else:
        from prometheus_client import CollectorRegistry, Counter, Histogram

        registry = CollectorRegistry()
        labels = ["route", "method", "host"]
        counter = Counter("http_requests", "Requests.", labels, registry=registry)
        histogram = Histogram("http_latency", "Latency.", labels, registry=registry)

        def count(t: dict[str, str]) -> None:
            counter.labels(**t).inc()

        def observe(t: dict[str, str]) -> None:
            histogram.labels(**t).observe(0.3)

    figures = {}
    tracemalloc.start()
    for kind, record in (("counter", count), ("histogram", observe)):
        gc.collect()
        before = tracemalloc.get_traced_memory()[0]
        for t in tags:
            record(t)
        gc.collect()
        figures[kind] = (tracemalloc.get_traced_memory()[0] - before) / SERIES
    return figures


def _in_subprocess(which: str) -> dict[str, float]:
    out = subprocess.run(
        [sys.executable, __file__, which],
        capture_output=True,
        text=True,
        timeout=900,
        check=True,
    )
    return json.loads(out.stdout.strip().splitlines()[-1])  # type: ignore[no-any-return]


def memory() -> None:
    ours, peer = _in_subprocess("ours"), _in_subprocess("prometheus")
    for kind in ("counter", "histogram"):
        side_by_side(
            f"    memory per {kind} series, {SERIES:,} series (tracemalloc)",
            (f"metricstream streamer.aggregator() {kind} series", ours[kind]),
            (f"prometheus_client {kind.capitalize()} labelled child", peer[kind]),
            "bytes",
            higher_is_better=False,
            target=("no more than prometheus_client's", ours[kind] <= peer[kind]),
            key=f"aggregate_memory_{kind}",
        )


def main() -> None:
    print(f"\ncalling-thread cost per call, medians of {ROUNDS} rotating rounds x {CALLS:,} calls")
    hot_paths()
    memory()


if __name__ == "__main__":
    if len(sys.argv) == 2 and sys.argv[1] in ("ours", "prometheus"):
        print(json.dumps(_memory_run(sys.argv[1])))
    else:
        main()
