"""End-to-end cost into a zstd JSON Lines file, two shapes of event, beside a hand-written loop.

metricstream: events sent to an EventStreamer with a JsonLinesSink (zstd),
timed from the first send until ``flush()`` returns, so batching, encoding,
compression and the write are all inside. Two shapes, each built before
the clock starts (building them is the application's work, measured in
bench_encode and bench_send):

- samples: ``event_from_sample("http.latency_ms", value, tags)``, one float
  field;
- events: ``MetricEvent("http_requests", tags, {"latency_ms": float,
  "count": int})``, two fields;

both with the same three tags (50 routes). A last figure times building
samples and sending them together.

Peer: the fastest hand-written loop for the same file: the same events as
plain dicts, built before the clock starts; one ``orjson.dumps`` per batch
of 1,000, split into lines, one zstd frame (the sink's level and frame
flags: `metricstream.codecs.compression.ZSTD_FRAME_LEVEL`, content size and
checksum), one ``os.write``. It does nothing else: no accounting, no retry, no threads.

Each round runs both shapes, each beside the loop, in alternating order,
each run into a fresh file. The figures are the CPU time of the process
(every thread: the machine is shared, so the wall clock also counts other
work; the wall-clock rates are printed beside). Targets, judged on the
median of the rounds: each shape at least 0.6x the loop (the pairs'
ratios), and an event of two fields at most 1.2x a sample's CPU time.
"""

from __future__ import annotations

import os
import statistics
import sys
import tempfile
from collections.abc import Callable
from typing import Any

sys.path.insert(0, os.path.dirname(__file__))

import orjson
import zstandard
from _common import ROUTES, send_samples, side_by_side, spread_of, timed

import metricstream as ms
from metricstream.codecs.compression import ZSTD_FRAME_LEVEL
from metricstream.sinks.jsonl import JsonLinesSink, read_events

EVENTS = 500_000
BATCH_SIZE = 5000
ROUNDS = 7
TARGET = 0.6
COST_TARGET = 1.2
_BOUNDARY = b'},{"measurement":'
_LINE_BREAK = b'}\n{"measurement":'


def _tags(i: int) -> dict[str, str]:
    return {"route": ROUTES[i % 50], "method": "GET", "host": "web-1"}


def make_samples(count: int = EVENTS) -> list[ms.MetricEvent]:
    """Samples: 50 routes, three tags, one float field, now."""
    sample = ms.event_from_sample
    return [sample("http.latency_ms", i * 0.5, _tags(i)) for i in range(count)]


def make_events(count: int = EVENTS) -> list[ms.MetricEvent]:
    """Events of two fields (a float and an int): 50 routes, three tags, now."""
    event = ms.MetricEvent
    return [
        event("http_requests", _tags(i), {"latency_ms": i * 0.5, "count": i % 7})
        for i in range(count)
    ]


SHAPES: dict[str, Callable[[], list[ms.MetricEvent]]] = {
    "samples": make_samples,
    "events": make_events,
}
TITLES = {"samples": "samples (one float field)", "events": "events of two fields"}
KEYS = {"samples": "jsonl", "events": "jsonl_events"}


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
    """Send the events (or build and send samples) until flushed; return (wall s, CPU s)."""
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
    compressor = zstandard.ZstdCompressor(
        level=ZSTD_FRAME_LEVEL, write_checksum=True, write_content_size=True
    )
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


Runs = dict[str, dict[str, list[tuple[float, float]]]]


def _rounds(directory: str) -> tuple[Runs, dict[str, float]]:
    """Run every shape, ours and the loop, `ROUNDS` times in alternating order.

    Returns:
        The (wall s, CPU s) of each run by shape and side, and each shape's
        bytes per event on disk.
    """
    data = {}
    for shape, make in SHAPES.items():
        events = make()
        dicts = as_dicts(events)
        run_peer(os.path.join(directory, f"warm-{shape}.zst"), dicts[:50_000])
        data[shape] = (events, dicts)
    runs: Runs = {shape: {"ours": [], "peer": []} for shape in SHAPES}
    for round_ in range(ROUNDS):
        for shape in list(SHAPES) if round_ % 2 == 0 else list(SHAPES)[::-1]:
            events, dicts = data[shape]
            ours = os.path.join(directory, f"o-{shape}-{round_}.jsonl.zst")
            peer = os.path.join(directory, f"p-{shape}-{round_}.zst")
            if round_ % 2 == 0:
                runs[shape]["ours"].append(run_ours(ours, events))
                runs[shape]["peer"].append(run_peer(peer, dicts))
            else:
                runs[shape]["peer"].append(run_peer(peer, dicts))
                runs[shape]["ours"].append(run_ours(ours, events))
    sizes = {}
    for shape in SHAPES:
        path = os.path.join(directory, f"o-{shape}-0.jsonl.zst")
        assert sum(1 for _ in read_events(path)) == EVENTS
        sizes[shape] = os.path.getsize(path) / EVENTS
    return runs, sizes


def _report_shape(
    shape: str, ours: list[tuple[float, float]], peer: list[tuple[float, float]]
) -> None:
    ratios = [p[1] / o[1] for o, p in zip(ours, peer, strict=True)]
    ours_cpu = statistics.median(cpu for _, cpu in ours)
    peer_cpu = statistics.median(cpu for _, cpu in peer)
    wall = statistics.median(EVENTS / wall for wall, _ in ours)
    peer_wall = statistics.median(EVENTS / wall for wall, _ in peer)
    ratio = statistics.median(ratios)
    side_by_side(
        f"send -> flush into a zstd JSON Lines file, {TITLES[shape]}, CPU time",
        ("metricstream send() each event, then flush()", EVENTS / ours_cpu),
        ("hand-written orjson + zstd per 1000 + os.write", EVENTS / peer_cpu),
        "events per CPU s",
        higher_is_better=True,
        cpu=(ours_cpu / EVENTS * 1e6, peer_cpu / EVENTS * 1e6),
        target=(f">= {TARGET}x", ratio >= TARGET),
        spread=(
            f"ratio {spread_of(ratios)}; wall clock {wall:,.0f} vs {peer_wall:,.0f} events/s"
        ),
        ratio=ratio,
        key=KEYS[shape],
    )


def main() -> None:
    with tempfile.TemporaryDirectory() as directory:
        runs, sizes = _rounds(directory)
        built = [
            run_ours(os.path.join(directory, f"b{n}.jsonl.zst"), None) for n in range(ROUNDS // 2)
        ]
    print(
        f"\n(b) end-to-end into a zstd JSON Lines file, {EVENTS:,} events per run, batch "
        f"{BATCH_SIZE:,}, medians of {ROUNDS} alternating rounds (bytes per event on disk: "
        + ", ".join(f"{shape} {size:.1f}" for shape, size in sizes.items())
        + ")"
    )
    for shape in SHAPES:
        _report_shape(shape, runs[shape]["ours"], runs[shape]["peer"])
    costs = [
        e[1] / s[1] for s, e in zip(runs["samples"]["ours"], runs["events"]["ours"], strict=True)
    ]
    cost = statistics.median(costs)
    sample_ns = statistics.median(cpu for _, cpu in runs["samples"]["ours"]) / EVENTS * 1e9
    event_ns = statistics.median(cpu for _, cpu in runs["events"]["ours"]) / EVENTS * 1e9
    side_by_side(
        "CPU per event end to end: an event of two fields beside a sample",
        ("metricstream, events of two fields", event_ns),
        ("metricstream, samples", sample_ns),
        "ns CPU/event",
        higher_is_better=False,
        target=(f"at most {COST_TARGET}x a sample", cost <= COST_TARGET),
        spread=f"cost ratio {spread_of(costs)} (median {cost:.2f}x a sample)",
        ratio=1 / cost,
        key="event_cost",
    )
    built_rate = statistics.median(EVENTS / wall for wall, _ in built)
    built_cpu = statistics.median(cpu for _, cpu in built) / EVENTS * 1e6
    print(
        f"  metricstream building each sample in the loop too  {built_rate:>14,.1f} events/s"
        f"   {built_cpu:7.2f} CPU s/M"
    )


if __name__ == "__main__":
    main()
