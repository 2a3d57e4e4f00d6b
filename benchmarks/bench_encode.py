"""Line protocol encoding: metricstream against influxdb-client, in one process.

Run it with ``python benchmarks/bench_encode.py`` (or through ``make bench``).

A typical event has three tags, two fields (a float and an int) and an
explicit timestamp. Four things are timed, each as the best and the median of
several repeats:

- metricstream, encode only: ``MetricEvent.to_influx_line()`` on an event
  already built;
- metricstream, build + encode: ``MetricEvent(...)`` then ``to_influx_line()``;
- influxdb-client: ``Point.to_line_protocol()`` alone, and building the
  ``Point`` then encoding it (the usual way it is used);
- the cost of constructing an event with ``event_from_sample`` and with the
  fluent builder (the Point builder is printed for scale).

The target is metricstream encoding at least 5x faster than influxdb-client
building and encoding the same point.
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


def _per_call_ns(
    func: Callable[[], object], loops: int = LOOPS, repeats: int = REPEATS
) -> list[float]:
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


def _sample_without_tags() -> ms.MetricEvent:
    return ms.event_from_sample("http.latency_ms", 12.5)


def _report(label: str, samples: list[float]) -> float:
    best = min(samples)
    median = statistics.median(samples)
    print(
        f"  {label:<48} best {best:8.0f} ns  median {median:8.0f} ns"
        f"  ({1e9 / best:>11,.0f} events/s)"
    )
    return best


def _ratio(label: str, ours: float, theirs: float) -> None:
    ratio = theirs / ours
    verdict = "meets" if ratio >= TARGET_RATIO else "MISSES"
    print(f"  ratio, {label}: {ratio:.1f}x ({verdict} the {TARGET_RATIO:.0f}x target)")


def main() -> None:
    """Run the encoding benchmark and print the figures."""
    event = _build_event()
    point = _build_point()
    print(f"metricstream    : {event.to_influx_line()}")
    print(f"influxdb-client : {point.to_line_protocol()}")
    print(f"timings: best and median of {REPEATS} repeats x {LOOPS:,} calls\n")

    print("line protocol for one event (3 tags, 2 fields, explicit timestamp)")
    encode_only = _report(
        "metricstream: encode only (event built)", _per_call_ns(event.to_influx_line)
    )
    build_encode = _report(
        "metricstream: build + encode", _per_call_ns(lambda: _build_event().to_influx_line())
    )
    point_only = _report(
        "influxdb-client: to_line_protocol (point built)", _per_call_ns(point.to_line_protocol)
    )
    point_build = _report(
        "influxdb-client: build Point + to_line_protocol",
        _per_call_ns(lambda: _build_point().to_line_protocol()),
    )
    _ratio("encode only vs Point build + to_line_protocol", encode_only, point_build)
    _ratio("encode only vs to_line_protocol alone", encode_only, point_only)
    _ratio("build + encode vs Point build + to_line_protocol", build_encode, point_build)
    print()
    print("constructing an event")
    _report("event_from_sample(metric, value, 3 tags)", _per_call_ns(_sample))
    _report("event_from_sample(metric, value)", _per_call_ns(_sample_without_tags))
    _report("fluent builder (3 tags, 2 fields, timestamp)", _per_call_ns(_build_fluent))
    _report("MetricEvent(...) with tags= and fields=", _per_call_ns(_build_event))
    _report("for scale: influxdb_client Point builder", _per_call_ns(_build_point))


if __name__ == "__main__":
    main()
