"""Line protocol encoding: metricstream against influxdb-client, in one process.

Run it with ``python benchmarks/bench_encode.py`` (or through ``make bench``).

A typical event has three tags, two fields (a float and an int) and an
explicit timestamp. The figures, each the median of runs that alternate
between metricstream and influxdb-client (garbage collection paused during
each run), are CPU time per event, the wall clock beside:

- build + encode: ``MetricEvent(...)`` then ``to_influx_line()``, against
  building the ``Point`` and ``to_line_protocol()`` (the usual way each is
  used), for three kinds of tags, each with a target of 5x:

  - repeated series: the same tag dict every time, so every call after the
    first finds its tags and their encoding in metricstream's caches
    (influxdb-client has none);
  - 100 series: the tags are built for each call, one of them with 100
    distinct values in turn;
  - a new series every time: one tag has a value never seen before, so no
    cache helps;

- encode only: ``to_influx_line()`` on an event already built, against
  ``Point.to_line_protocol()`` on a point already built;
- the cost of constructing an event with ``event_from_sample`` and with the
  fluent builder (the Point builder is printed for scale).
"""

from __future__ import annotations

import gc
import itertools
import os
import statistics
import sys
import time
from collections.abc import Callable

sys.path.insert(0, os.path.dirname(__file__))

from _common import side_by_side, spread_of
from influxdb_client import Point, WritePrecision

import metricstream as ms

TIMESTAMP_NS = 1_700_000_000_123_456_789
TAGS = {"host": "web-01", "region": "eu-west", "route": "/api/orders"}
ROUTES = [f"/api/orders/{n}" for n in range(100)]
ROUNDS = 9
LOOPS = 20_000
TARGET_RATIO = 5.0


def _per_call(func: Callable[[], object], loops: int = LOOPS) -> tuple[float, float]:
    """Return (wall ns, CPU ns) per call of `func` over `loops` calls, collection paused."""
    loop_range = range(loops)
    gc_was_enabled = gc.isenabled()
    gc.disable()
    try:
        wall, cpu = time.perf_counter_ns(), time.process_time_ns()
        for _ in loop_range:
            func()
        return (time.perf_counter_ns() - wall) / loops, (time.process_time_ns() - cpu) / loops
    finally:
        if gc_was_enabled:
            gc.enable()


def _alternating(
    ours: Callable[[], object], peer: Callable[[], object]
) -> tuple[list[tuple[float, float]], list[tuple[float, float]]]:
    """Run ours and the peer alternately `ROUNDS` times; return each one's (wall, CPU) runs."""
    ours_runs: list[tuple[float, float]] = []
    peer_runs: list[tuple[float, float]] = []
    _per_call(ours, 1000)
    _per_call(peer, 1000)
    for round_ in range(ROUNDS):
        pair = ((ours, ours_runs), (peer, peer_runs))
        for func, runs in pair if round_ % 2 == 0 else pair[::-1]:
            runs.append(_per_call(func))
    return ours_runs, peer_runs


def _compare(
    title: str,
    ours: tuple[str, Callable[[], object]],
    peer: tuple[str, Callable[[], object]],
    *,
    key: str,
    target: float | None = None,
) -> None:
    ours_runs, peer_runs = _alternating(ours[1], peer[1])
    ratios = [p[1] / o[1] for o, p in zip(ours_runs, peer_runs, strict=True)]
    ratio = statistics.median(ratios)
    ours_wall = statistics.median(run[0] for run in ours_runs)
    peer_wall = statistics.median(run[0] for run in peer_runs)
    ours_cpu = statistics.median(run[1] for run in ours_runs)
    peer_cpu = statistics.median(run[1] for run in peer_runs)
    side_by_side(
        title,
        (ours[0], ours_cpu),
        (peer[0], peer_cpu),
        "ns CPU/event",
        higher_is_better=False,
        cpu=(ours_cpu / 1000, peer_cpu / 1000),
        target=None if target is None else (f">= {target:.0f}x", ratio >= target),
        spread=(
            f"ratio {spread_of(ratios)}; wall clock {ours_wall:,.0f} vs {peer_wall:,.0f} ns/event"
        ),
        ratio=ratio,
        key=key,
    )


def _build_event() -> ms.MetricEvent:
    return ms.MetricEvent(
        "http_requests",
        tags=TAGS,
        fields={"latency_ms": 12.5, "count": 3},
        timestamp_ns=TIMESTAMP_NS,
    )


def _build_event_of(route: str) -> ms.MetricEvent:
    return ms.MetricEvent(
        "http_requests",
        tags={"host": "web-01", "region": "eu-west", "route": route},
        fields={"latency_ms": 12.5, "count": 3},
        timestamp_ns=TIMESTAMP_NS,
    )


def _build_point_of(route: str) -> Point:
    return (
        Point("http_requests")
        .tag("host", "web-01")
        .tag("region", "eu-west")
        .tag("route", route)
        .field("latency_ms", 12.5)
        .field("count", 3)
        .time(TIMESTAMP_NS, WritePrecision.NS)
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


def _report(label: str, func: Callable[[], object]) -> None:
    runs = [_per_call(func) for _ in range(5)]
    wall = statistics.median(run[0] for run in runs)
    print(f"  {label:<48} {wall:8.0f} ns  ({1e9 / wall:>11,.0f} events/s)")


def main() -> None:
    """Run the encoding benchmark and print the figures."""
    event = _build_event()
    point = _build_point()
    print(f"metricstream    : {event.to_influx_line()}")
    print(f"influxdb-client : {point.to_line_protocol()}")
    print(f"timings: medians of {ROUNDS} alternating runs x {LOOPS:,} calls")
    _compare(
        "line protocol, build + encode one event (3 tags, 2 fields, timestamp), repeated series",
        ("metricstream MetricEvent(...).to_influx_line()", lambda: _build_event().to_influx_line()),
        (
            "influxdb-client Point(...)...to_line_protocol()",
            lambda: _build_point().to_line_protocol(),
        ),
        key="encode",
        target=TARGET_RATIO,
    )
    routes = itertools.cycle(ROUTES)
    _compare(
        "line protocol, build + encode one event, 100 series (one tag with 100 values)",
        (
            "metricstream MetricEvent(...).to_influx_line()",
            lambda: _build_event_of(next(routes)).to_influx_line(),
        ),
        (
            "influxdb-client Point(...)...to_line_protocol()",
            lambda: _build_point_of(next(routes)).to_line_protocol(),
        ),
        key="encode_distinct",
        target=TARGET_RATIO,
    )
    numbers = itertools.count()
    _compare(
        "line protocol, build + encode one event, a new series every time",
        (
            "metricstream MetricEvent(...).to_influx_line()",
            lambda: _build_event_of(f"/api/users/{next(numbers)}").to_influx_line(),
        ),
        (
            "influxdb-client Point(...)...to_line_protocol()",
            lambda: _build_point_of(f"/api/users/{next(numbers)}").to_line_protocol(),
        ),
        key="encode_new_series",
        target=TARGET_RATIO,
    )
    _compare(
        "line protocol, encode only (event or point already built)",
        ("metricstream event.to_influx_line()", event.to_influx_line),
        ("influxdb-client point.to_line_protocol()", point.to_line_protocol),
        key="encode_only",
    )
    print("\nconstructing an event (median of 5 runs)")
    _report("event_from_sample(metric, value, 3 tags)", _sample)
    _report("event_from_sample(metric, value)", _sample_without_tags)
    _report("fluent builder (3 tags, 2 fields, timestamp)", _build_fluent)
    _report("MetricEvent(...) with tags= and fields=", _build_event)
    _report("for scale: influxdb_client Point builder", _build_point)


if __name__ == "__main__":
    main()
