"""End-to-end throughput into a zstd JSON Lines file, beside the fastest hand-written loop.

metricstream: events sent to an EventStreamer with a JsonLinesSink (zstd),
timed from the first send until ``flush()`` returns, so batching, encoding,
compression and the write are all inside. The events are built with
``event_from_sample`` before the clock starts (building them is the
application's work, measured in bench_encode and bench_send); a second
figure times building and sending together.

Peer: the fastest hand-written loop for the same file: the same events as
plain dicts, built before the clock starts; one ``orjson.dumps`` per batch
of 1,000, split into lines, one zstd frame (level 3, as the sink's), one
``os.write``. It does nothing else: no accounting, no retry, no threads.

The two run alternately, ``ROUNDS`` times, each into a fresh file; the
medians are reported with the CPU seconds of the process per million events.
"""

from __future__ import annotations

import os
import statistics
import sys
import tempfile
from typing import Any

sys.path.insert(0, os.path.dirname(__file__))

import orjson
import zstandard
from _common import ROUTES, send_samples, side_by_side, spread_of, timed

import metricstream as ms
from metricstream.sinks.jsonl import JsonLinesSink, read_events

EVENTS = 500_000
BATCH_SIZE = 5000
ROUNDS = 7
TARGET = 0.6
_BOUNDARY = b'},{"measurement":'
_LINE_BREAK = b'}\n{"measurement":'


def make_events(count: int = EVENTS) -> list[ms.MetricEvent]:
    """The benchmark's events: 50 routes, three tags, one float field, now."""
    sample = ms.event_from_sample
    return [
        sample(
            "http.latency_ms", i * 0.5, {"route": ROUTES[i % 50], "method": "GET", "host": "web-1"}
        )
        for i in range(count)
    ]


def as_dicts(events: list[ms.MetricEvent]) -> list[dict[str, Any]]:
    """The same events as the plain dicts of their JSON form."""
    return [
        {
            "measurement": e.measurement,
            "tags": dict(e.tags),
            "fields": dict(e.fields),
            "timestamp_ns": e.timestamp_ns,
            "schema_version": 1,
        }
        for e in events
    ]


def run_ours(path: str, events: list[ms.MetricEvent] | None, **options: Any) -> tuple[float, float]:
    """Send the events (or build and send them) until flushed; return (wall s, CPU s)."""
    sink = JsonLinesSink(path)
    streamer = ms.EventStreamer(
        [sink],
        batch_size=options.pop("batch_size", BATCH_SIZE),
        max_buffer=1_000_000,
        flush_interval=1.0,
        register_atexit=False,
        **options,
    )

    def body() -> None:
        if events is None:
            send_samples(streamer, EVENTS)
        else:
            send = streamer.send
            for event in events:
                send(event)
        assert streamer.flush(300)

    wall, cpu = timed(body)
    written = streamer.health().sinks["jsonl"].events_written
    streamer.shutdown()
    assert written == (EVENTS if events is None else len(events)), written
    return wall, cpu


def run_peer(path: str, dicts: list[dict[str, Any]], chunk: int = 1000) -> tuple[float, float]:
    """The hand-written loop; return (wall s, CPU s)."""
    compressor = zstandard.ZstdCompressor(level=3)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    dumps = orjson.dumps

    def body() -> None:
        for start in range(0, len(dicts), chunk):
            lines = dumps(dicts[start : start + chunk])[1:-1].replace(_BOUNDARY, _LINE_BREAK)
            os.write(fd, compressor.compress(lines + b"\n"))

    try:
        return timed(body)
    finally:
        os.close(fd)


def main() -> None:
    events = make_events()
    dicts = as_dicts(events)
    ours: list[tuple[float, float]] = []
    peer: list[tuple[float, float]] = []
    with tempfile.TemporaryDirectory() as directory:
        run_peer(os.path.join(directory, "warm.zst"), dicts[:50_000])
        for round_ in range(ROUNDS):
            pair = (
                (
                    ours,
                    lambda n=round_: run_ours(os.path.join(directory, f"o{n}.jsonl.zst"), events),
                ),
                (peer, lambda n=round_: run_peer(os.path.join(directory, f"p{n}.zst"), dicts)),
            )
            for into, run in pair if round_ % 2 == 0 else pair[::-1]:
                into.append(run())
        built = [
            run_ours(os.path.join(directory, f"b{n}.jsonl.zst"), None) for n in range(ROUNDS // 2)
        ]
        ours_path = os.path.join(directory, "o0.jsonl.zst")
        size = os.path.getsize(ours_path)
        assert sum(1 for _ in read_events(ours_path)) == EVENTS
        peer_size = os.path.getsize(os.path.join(directory, "p0.zst"))
    rate = statistics.median(EVENTS / wall for wall, _ in ours)
    peer_rate = statistics.median(EVENTS / wall for wall, _ in peer)
    ratios = [p[0] / o[0] for o, p in zip(ours, peer, strict=True)]
    print(
        f"\n(b) end-to-end throughput into a zstd JSON Lines file, {EVENTS:,} events, "
        f"medians of {ROUNDS} alternating runs ({size / EVENTS:.1f} bytes/event on disk, "
        f"the loop's {peer_size / EVENTS:.1f})"
    )
    side_by_side(
        "send -> flush into a zstd JSON Lines file (events built before the clock)",
        ("metricstream send() each event, then flush()", rate),
        ("hand-written orjson + zstd per 1000 + os.write", peer_rate),
        "events/s",
        higher_is_better=True,
        cpu=(
            statistics.median(cpu for _, cpu in ours) / EVENTS * 1e6,
            statistics.median(cpu for _, cpu in peer) / EVENTS * 1e6,
        ),
        target=(f">= {TARGET}x", statistics.median(ratios) >= TARGET),
        spread="ratio " + spread_of(ratios),
        ratio=statistics.median(ratios),
        key="jsonl",
    )
    built_rate = statistics.median(EVENTS / wall for wall, _ in built)
    built_cpu = statistics.median(cpu for _, cpu in built) / EVENTS * 1e6
    print(
        f"  metricstream building each event in the loop too   {built_rate:>14,.1f} events/s"
        f"   {built_cpu:7.2f} CPU s/M"
    )


if __name__ == "__main__":
    main()
