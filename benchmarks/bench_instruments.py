"""The calling-thread cost of the instrumentation helpers, beside the hand-written call.

Each helper is timed beside the code it replaces, which sends the very same
event: ``streamer.send(event_from_sample(...))`` with the same tags and
field, plus, for `timed`, the same two ``perf_counter_ns`` reads around the
timed code. The cost is the CPU time of the calling thread (so the batcher
thread, and other processes on a shared machine, do not count), per call, in
runs that alternate (helper, peer, peer, helper, ...); the medians are
compared. The sink does nothing: only the application's side is measured.
Target: each helper no slower than the call it replaces.
"""

from __future__ import annotations

import os
import statistics
import sys
import time
from collections.abc import Callable

sys.path.insert(0, os.path.dirname(__file__))

from _common import ROUTES, NullSink, side_by_side

import metricstream as ms

CALLS = 5_000
ROUNDS = 61


def alternating_medians(
    ours: Callable[[int], None], peer: Callable[[int], None]
) -> tuple[float, float]:
    """Run ours and the peer alternately `ROUNDS` times; return their median ns per call."""
    ours(CALLS)
    peer(CALLS)
    results: tuple[list[float], list[float]] = ([], [])
    for round_ in range(ROUNDS):
        order = ((ours, results[0]), (peer, results[1]))
        for fn, into in order if round_ % 2 == 0 else order[::-1]:
            started = time.thread_time_ns()
            fn(CALLS)
            into.append((time.thread_time_ns() - started) / CALLS)
    return statistics.median(results[0]), statistics.median(results[1])


def cases(
    streamer: ms.EventStreamer,
) -> dict[str, tuple[str, Callable[[int], None], str, Callable[[int], None]]]:
    send, sample, clock = streamer.send, ms.event_from_sample, time.perf_counter_ns
    count, gauge, timed = streamer.count, streamer.gauge, streamer.timed

    def count_helper(n: int) -> None:
        for i in range(n):
            count("http.requests", route=ROUTES[i % 50], method="GET")

    def count_peer(n: int) -> None:
        for i in range(n):
            send(
                sample(
                    "http.requests", 1, {"route": ROUTES[i % 50], "method": "GET"}, field="count"
                )
            )

    def gauge_helper(n: int) -> None:
        for i in range(n):
            gauge("queue.depth", i * 0.5, queue="emails")

    def gauge_peer(n: int) -> None:
        for i in range(n):
            send(sample("queue.depth", i * 0.5, {"queue": "emails"}))

    def work() -> None:
        pass

    decorated = timed("work.ms", job="resize")(work)

    def decorator_helper(n: int) -> None:
        for _ in range(n):
            decorated()

    def timed_peer(n: int) -> None:
        for _ in range(n):
            started = clock()
            work()
            elapsed = clock() - started
            send(
                sample(
                    "work.ms",
                    elapsed / 1e6,
                    {"job": "resize", "outcome": "ok"},
                    field="duration_ms",
                )
            )

    def block_helper(n: int) -> None:
        for i in range(n):
            with timed("db.query_ms", route=ROUTES[i % 50]):
                pass

    def block_peer(n: int) -> None:
        for i in range(n):
            started = clock()
            elapsed = clock() - started
            send(
                sample(
                    "db.query_ms",
                    elapsed / 1e6,
                    {"route": ROUTES[i % 50], "outcome": "ok"},
                    field="duration_ms",
                )
            )

    return {
        "count": ("count(name, **tags)", count_helper, "send(event_from_sample(...))", count_peer),
        "gauge": (
            "gauge(name, v, **tags)",
            gauge_helper,
            "send(event_from_sample(...))",
            gauge_peer,
        ),
        "timed, decorator": (
            "@timed(...) call",
            decorator_helper,
            "clocks + call + send(...)",
            timed_peer,
        ),
        "timed, block": (
            "with timed(...): (new timer)",
            block_helper,
            "clocks + send(...)",
            block_peer,
        ),
    }


def main() -> dict[str, float]:
    streamer = ms.EventStreamer(
        [NullSink()], batch_size=1000, max_buffer=1_000_000, register_atexit=False
    )
    ratios: dict[str, float] = {}
    print(f"\ncalling-thread cost per call, medians of {ROUNDS} alternating runs x {CALLS:,} calls")
    for key, (ours_label, ours, peer_label, peer) in cases(streamer).items():
        ours_ns, peer_ns = alternating_medians(ours, peer)
        ratios[key] = side_by_side(
            f"helper {key}, calling-thread CPU time",
            (f"metricstream {ours_label}", ours_ns),
            (peer_label, peer_ns),
            "ns/call",
            higher_is_better=False,
            target=("no slower than the call it replaces (>= 1x)", peer_ns / ours_ns >= 1.0),
        )
    streamer.shutdown(timeout=10)
    return ratios


if __name__ == "__main__":
    main()
