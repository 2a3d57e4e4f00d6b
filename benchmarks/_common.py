"""Helpers shared by the benchmarks: timing and printing side by side."""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable

import metricstream as ms

ROUTES = [f"/api/v1/resource/{n}" for n in range(50)]


def send_samples(streamer: ms.EventStreamer, count: int) -> None:
    """Build and send `count` typical samples (3 tags, a float), as an application would."""
    send, sample = streamer.send, ms.event_from_sample
    for i in range(count):
        send(
            sample(
                "http.latency_ms",
                i * 0.5,
                {"route": ROUTES[i % 50], "method": "GET", "host": "web-1"},
            )
        )


def median_ns_per_call(fn: Callable[[int], None], calls: int, repeats: int = 7) -> float:
    """Run ``fn(calls)`` `repeats` times; return the median ns per call."""
    results = []
    for _ in range(repeats):
        started = time.perf_counter_ns()
        fn(calls)
        results.append((time.perf_counter_ns() - started) / calls)
    return statistics.median(results)


def side_by_side(
    title: str, ours: tuple[str, float], peer: tuple[str, float], unit: str, higher_is_better: bool
) -> float:
    """Print both figures and the ratio (how many times better ours is); return the ratio."""
    ratio = ours[1] / peer[1] if higher_is_better else peer[1] / ours[1]
    print(f"\n{title}")
    print(f"  {ours[0]:<44} {ours[1]:>14,.1f} {unit}")
    print(f"  {peer[0]:<44} {peer[1]:>14,.1f} {unit}")
    print(f"  ratio (metricstream advantage)               {ratio:>14.2f}x")
    return ratio
