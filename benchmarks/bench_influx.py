"""End-to-end throughput into VictoriaMetrics over the InfluxDB v2 write API.

The same 200,000 events (50 routes, three tags, one float field, explicit
nanosecond timestamps one millisecond apart) are written in the same run:

- metricstream: each event built with ``event_from_sample`` in the timed loop
  and sent to an EventStreamer with an InfluxDBSink (its defaults: gzip level
  1 bodies through influxdb-client's WriteService), batch_size 5000; timed
  from the first send until ``flush()`` returns, i.e. every event is
  acknowledged by the server; the sink's health must say 200,000 written.
- influxdb-client: a ``Point`` built in the timed loop for each event and
  handed to its batching ``WriteApi`` (``WriteOptions(batch_size=5000)``,
  the client's defaults otherwise: no gzip); timed until ``close()`` has
  drained it and the success callbacks have acknowledged every point.

Each side writes its own measurement; afterwards both are counted in
VictoriaMetrics (``/api/v1/export``) and must hold exactly 200,000 points.
The two run alternately, ``ROUNDS`` times; the medians are reported, with
the CPU seconds of the client process per million events (the server
shares the machine's cores, so this is the figure that compares the
clients). Needs VictoriaMetrics (``scripts/services.sh start``;
``METRICSTREAM_VM_URL``).
"""

from __future__ import annotations

import json
import os
import statistics
import sys
import threading
import time
import urllib.parse
import urllib.request
import uuid

sys.path.insert(0, os.path.dirname(__file__))

from _common import side_by_side, spread_of, timed
from influxdb_client import InfluxDBClient, Point, WriteOptions, WritePrecision

import metricstream as ms
from metricstream.sinks import InfluxDBSink

EVENTS = 200_000
BATCH_SIZE = 5000
ROUNDS = 3
TARGET = 5.0
VM_URL = os.environ.get("METRICSTREAM_VM_URL", "http://127.0.0.1:28428")
ROUTES = [f"/api/v1/resource/{n}" for n in range(50)]
TAG_SETS = [{"route": route, "method": "GET", "host": "web-1"} for route in ROUTES]


def start_ns() -> int:
    """A millisecond-aligned start an hour ago: EVENTS ms later is still in the past."""
    return (time.time_ns() // 1_000_000 - 3_600_000) * 1_000_000


def ours(measurement: str, base_ns: int, **options: object) -> tuple[float, float]:
    """metricstream until every event is acknowledged; return (wall s, CPU s)."""
    sink = InfluxDBSink(VM_URL, org="bench", bucket="bench", name="vm")
    streamer = ms.EventStreamer(
        [sink],
        batch_size=options.pop("batch_size", BATCH_SIZE),  # type: ignore[arg-type]
        max_buffer=EVENTS,
        flush_interval=1.0,
        register_atexit=False,
    )
    send, sample = streamer.send, ms.event_from_sample

    def body() -> None:
        for i in range(EVENTS):
            send(
                sample(measurement, i * 0.5, TAG_SETS[i % 50], timestamp_ns=base_ns + i * 1_000_000)
            )
        assert streamer.flush(300)

    wall, cpu = timed(body)
    health = streamer.health().sinks["vm"]
    streamer.shutdown()
    assert (health.events_written, health.events_dropped) == (EVENTS, 0), health
    return wall, cpu


def influxdb_client(
    measurement: str, base_ns: int, batch_size: int = BATCH_SIZE
) -> tuple[float, float]:
    """influxdb-client's batching WriteApi until every point is acknowledged; (wall s, CPU s)."""
    acknowledged = [0]
    errors: list[BaseException] = []
    lock = threading.Lock()

    def on_success(_conf: object, data: bytes | str) -> None:
        lines = data.count(b"\n" if isinstance(data, bytes) else "\n") + 1
        with lock:
            acknowledged[0] += lines

    def on_error(_conf: object, _data: object, exc: BaseException) -> None:
        errors.append(exc)

    client = InfluxDBClient(url=VM_URL, token="unused", org="bench")
    write_api = client.write_api(
        write_options=WriteOptions(batch_size=batch_size),
        success_callback=on_success,
        error_callback=on_error,
    )

    def body() -> None:
        for i in range(EVENTS):
            tags = TAG_SETS[i % 50]
            point = (
                Point(measurement)
                .tag("route", tags["route"])
                .tag("method", "GET")
                .tag("host", "web-1")
                .field("value", i * 0.5)
                .time(base_ns + i * 1_000_000, WritePrecision.NS)
            )
            write_api.write(bucket="bench", record=point)
        write_api.flush()
        write_api.close()
        deadline = time.monotonic() + 300
        while acknowledged[0] < EVENTS and not errors:
            assert time.monotonic() < deadline, f"{acknowledged[0]} of {EVENTS} acknowledged"
            time.sleep(0.001)

    wall, cpu = timed(body)
    client.close()
    assert (acknowledged[0], errors) == (EVENTS, []), (acknowledged[0], errors)
    return wall, cpu


def stored_points(measurement: str) -> int:
    """The points VictoriaMetrics holds for `measurement` (series measurement_value)."""
    urllib.request.urlopen(f"{VM_URL}/internal/force_flush", timeout=10).read()
    query = urllib.parse.urlencode({"match[]": f'{{__name__="{measurement}_value"}}'})
    with urllib.request.urlopen(f"{VM_URL}/api/v1/export", data=query.encode(), timeout=60) as r:
        return sum(len(json.loads(line)["values"]) for line in r.read().splitlines())


def delete_series(measurement: str) -> None:
    query = urllib.parse.urlencode({"match[]": f'{{__name__="{measurement}_value"}}'})
    urllib.request.urlopen(
        f"{VM_URL}/api/v1/admin/tsdb/delete_series", data=query.encode(), timeout=60
    ).read()


def main() -> None:
    run = uuid.uuid4().hex[:8]
    base_ns = start_ns()
    ours_runs: list[tuple[float, float]] = []
    peer_runs: list[tuple[float, float]] = []
    names: list[str] = []
    try:
        for round_ in range(ROUNDS):
            ours_name, peer_name = f"bench_ms_{run}_{round_}", f"bench_ic_{run}_{round_}"
            names += [ours_name, peer_name]
            pair = (
                (ours_runs, lambda n=ours_name: ours(n, base_ns)),
                (peer_runs, lambda n=peer_name: influxdb_client(n, base_ns)),
            )
            for into, fn in pair if round_ % 2 == 0 else pair[::-1]:
                into.append(fn())
        stored = [stored_points(name) for name in names]
    finally:
        for name in names:
            delete_series(name)
    assert stored == [EVENTS] * len(names), stored
    ratios = [p[0] / o[0] for o, p in zip(ours_runs, peer_runs, strict=True)]
    print(
        f"\n(d) end-to-end throughput into VictoriaMetrics (v2 write API), {EVENTS:,} events, "
        f"medians of {ROUNDS} alternating pairs"
    )
    side_by_side(
        "200,000 events to VictoriaMetrics until acknowledged",
        (
            "metricstream EventStreamer + InfluxDBSink",
            statistics.median(EVENTS / w for w, _ in ours_runs),
        ),
        (
            "influxdb-client WriteApi, Point, batch 5000",
            statistics.median(EVENTS / w for w, _ in peer_runs),
        ),
        "events/s",
        higher_is_better=True,
        cpu=(
            statistics.median(c for _, c in ours_runs) / EVENTS * 1e6,
            statistics.median(c for _, c in peer_runs) / EVENTS * 1e6,
        ),
        target=(f">= {TARGET:.0f}x, median of {ROUNDS} pairs", statistics.median(ratios) >= TARGET),
        spread="ratio " + spread_of(ratios),
        ratio=statistics.median(ratios),
        key="vm",
    )
    print(f"  every run stored {EVENTS:,} points in VictoriaMetrics")


if __name__ == "__main__":
    main()
