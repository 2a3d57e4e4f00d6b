"""Line protocol encoding: metricstream against influxdb-client, in one process.

Run it with ``python benchmarks/bench_encode.py`` (or through ``make bench``).

A typical event has three tags, two fields (a float and an int) and an
explicit timestamp. Four things are timed, each as the best and the median of
several repeats:

- encode only: ``MetricEvent.to_influx_line()`` on an event already built,
  against ``Point.to_line_protocol()`` on a point already built;
- build + encode: constructing the event (or point) and encoding it;
- the cost of constructing an event with ``event_from_sample`` and with the
  fluent builder.
"""

from __future__ import annotations

import gc
import statistics
import time
from collections.abc import Callable

from influxdb_client import Point, WritePrecision

import metricstream as ms

TIMESTAMP_NS = 1_700_000_000_123_456_789
TAGS = {"host": "web-01", "region": "eu-west", "route": "/api/orders"}
REPEATS = 7
LOOPS = 20_000
TARGET_RATIO = 5.0


def _per_call_ns(func: Callable[[], object], loops: int = LOOPS, repeats: int = REPEATS) -> list[float]:
    """Return the ns per call of `func` for each repeat (garbage collection paused)."""
    results: list[float] = []
    loop_range = range(loops)
    gc_was_enabled = gc.isenabled()
    gc.disable()
    try:
        for _ in range(repeats):
            start = time.perf_counter_ns()
            for _ in loop_range:
                func()
            results.append((time.perf_counter_ns() - start) / loops)
    finally:
        if gc_was_enabled:
            gc.enable()
    return results


def _build_event() -> ms.MetricEvent:
    return ms.MetricEvent(
        "http_requests",
        tags=TAGS,
        fields={"latency_ms": 12.5, "count": 3},
        timestamp_ns=TIMESTAMP_NS,
    )


def _build_point() -> Point:
    return (
        Point("http_requests")
        .tag("host", "web-01")
        .tag("region", "eu-west")
        .tag("route", "/api/orders")
        .field("latency_ms", 12.5)
        .field("count", 3)
        .time(TIMESTAMP_NS, WritePrecision.NS)
    )


def _build_fluent() -> ms.MetricEvent:
    return (
        ms.MetricEvent("http_requests")
        .with_tag("host", "web-01")
        .with_tag("region", "eu-west")
        .with_tag("route", "/api/orders")
        .with_field("latency_ms", 12.5)
        .with_field("count", 3)
        .with_timestamp(TIMESTAMP_NS)
    )


def _sample() -> ms.MetricEvent:
    return ms.event_from_sample("http.latency_ms", 12.5, TAGS)


def _report(label: str, samples: list[float]) -> float:
    best = min(samples)
    median = statistics.median(samples)
    print(
        f"  {label:<44} best {best:8.0f} ns  median {median:8.0f} ns"
        f"  ({1e9 / best:>11,.0f} events/s)"
    )
    return best


def _compare(title: str, ours: Callable[[], object], theirs: Callable[[], object]) -> float:
    print(title)
    ours_best = _report("metricstream", _per_call_ns(ours))
    theirs_best = _report("influxdb-client", _per_call_ns(theirs))
    ratio = theirs_best / ours_best
    verdict = "meets" if ratio >= TARGET_RATIO else "MISSES"
    print(f"  ratio (best): {ratio:.1f}x  ({verdict} the {TARGET_RATIO:.0f}x target)")
    return ratio


def main() -> None:
    """Run the encoding benchmark and print the figures."""
    event = _build_event()
    point = _build_point()
    ours_line = event.to_influx_line()
    theirs_line = point.to_line_protocol()
    print(f"metricstream    : {ours_line}")
    print(f"influxdb-client : {theirs_line}")
    print(f"timings: best and median of {REPEATS} repeats x {LOOPS:,} calls\n")

    _compare("encode only (event already built)", event.to_influx_line, point.to_line_protocol)
    print()
    _compare(
        "build + encode",
        lambda: _build_event().to_influx_line(),
        lambda: _build_point().to_line_protocol(),
    )
    print()
    print("constructing an event")
    _report("event_from_sample(metric, value, 3 tags)", _per_call_ns(_sample))
    _report("fluent builder (3 tags, 2 fields, timestamp)", _per_call_ns(_build_fluent))
    _report("MetricEvent(...) with tags= and fields=", _per_call_ns(_build_event))
    _report("influxdb_client.Point(...) builder", _per_call_ns(_build_point))


if __name__ == "__main__":
    main()
