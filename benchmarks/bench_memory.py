"""Peak memory with 1,000,000 events pending behind a sink that never succeeds.

Each side runs in a fresh subprocess and reports its peak resident set size
(VmHWM) above the baseline measured just before the first event is recorded.

- metricstream: ``send(event_from_sample(...))`` one million times into an
  EventStreamer whose only sink is an InfluxDBSink (v1 API, gzip) pointed at
  a closed loopback port, so every write fails with a connection error and is
  retried; the benchmark waits until all the events sit in the sink's lane.
- peer: influxdb-client's batching ``WriteApi`` (batch_size 5000) given the
  same million points, as ``Point`` objects, for the same closed port.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(__file__))

from _common import ROUTES, send_samples, side_by_side

EVENTS = 1_000_000


def _rss_kib(field: str) -> int:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise RuntimeError(field)


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _queued_bytes(streamer: object) -> int:
    """Bytes of the request bodies waiting in the streamer's lanes."""
    total = 0
    for lane in streamer._pipeline.lanes:  # type: ignore[attr-defined]
        items = list(lane._queue._items)
        if lane._in_flight is not None:
            items.append(lane._in_flight)
        total += sum(len(item.payload.body) for item in items)
    return total


def run_ours(port: int) -> dict[str, float]:
    import metricstream as ms
    from metricstream.sinks.influxdb import InfluxDBSink

    sink = InfluxDBSink(f"http://127.0.0.1:{port}", api="v1", database="bench", timeout=1.0)
    retry = ms.RetryConfig(
        max_retries=1_000_000, initial_delay_ms=50, max_delay_ms=200, max_elapsed_ms=3_600_000
    )
    streamer = ms.EventStreamer(
        [sink], batch_size=5000, max_buffer=EVENTS, retry=retry, register_atexit=False
    )
    baseline = _rss_kib("VmRSS")
    started = time.perf_counter()
    send_samples(streamer, EVENTS)
    while True:
        health = streamer.health().sinks[sink.name]
        if health.pending == EVENTS and not streamer._pipeline.buffer:  # type: ignore[attr-defined]
            break
        time.sleep(0.05)
    elapsed = time.perf_counter() - started
    peak = _rss_kib("VmHWM")
    result = {
        "peak_mib": (peak - baseline) / 1024,
        "queued_body_mib": _queued_bytes(streamer) / 2**20,
        "pending": health.pending,
        "dropped": health.events_dropped,
        "seconds": elapsed,
    }
    streamer.shutdown(timeout=0.5)
    return result


def run_peer(port: int) -> dict[str, float]:
    from influxdb_client import InfluxDBClient, Point, WriteOptions

    client = InfluxDBClient(url=f"http://127.0.0.1:{port}", token="t", org="o", timeout=1000)
    options = WriteOptions(
        batch_size=5000,
        flush_interval=1000,
        retry_interval=50,
        max_retries=1_000_000,
        max_retry_time=3_600_000,
        max_retry_delay=200,
    )
    failed = [0]

    def on_error(_conf: object, data: str, _exc: object) -> None:
        failed[0] += data.count("\n") + 1

    write_api = client.write_api(write_options=options, error_callback=on_error)
    baseline = _rss_kib("VmRSS")
    started = time.perf_counter()
    for i in range(EVENTS):
        write_api.write(
            "bench",
            "o",
            Point("http.latency_ms")
            .tag("route", ROUTES[i % 50])
            .tag("method", "GET")
            .tag("host", "web-1")
            .field("value", i * 0.5),
        )
    time.sleep(2.0)
    elapsed = time.perf_counter() - started
    peak = _rss_kib("VmHWM")
    return {
        "peak_mib": (peak - baseline) / 1024,
        "given_up": failed[0],
        "seconds": elapsed,
    }


def _in_subprocess(which: str, port: int) -> dict[str, float]:
    out = subprocess.run(
        [sys.executable, __file__, which, str(port)],
        capture_output=True,
        text=True,
        timeout=900,
        check=True,
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> dict[str, float]:
    port = _closed_port()
    ours = _in_subprocess("ours", port)
    peer = _in_subprocess("peer", port)
    print(
        f"\n(c) peak memory above baseline with {EVENTS:,} events pending behind a dead InfluxDB "
        f"(metricstream: {ours['pending']:,.0f} pending, {ours['dropped']:,.0f} dropped)"
    )
    ratio = side_by_side(
        "    vs influxdb-client batching WriteApi (peak resident size)",
        ("metricstream EventStreamer + InfluxDBSink", ours["peak_mib"]),
        ("influxdb-client WriteApi(batch_size=5000)", peer["peak_mib"]),
        "MiB",
        higher_is_better=False,
    )
    print(
        f"  metricstream keeps the pending events as {ours['queued_body_mib']:.1f} MiB of gzip"
        " bodies; its peak is the burst of event objects waiting to be encoded"
    )
    print(
        f"  influxdb-client gave up {peer['given_up']:,.0f} points; it keeps each pending point"
        " as a line protocol string"
    )
    met = ours["peak_mib"] * 1.048576 < 300
    print(f"  target: peak < 300 MB above baseline -> {'met' if met else 'MISSED'}")
    return {"peak_mib": ours["peak_mib"], "peer_peak_mib": peer["peak_mib"], "ratio": ratio}


if __name__ == "__main__":
    if len(sys.argv) == 3:
        runner = run_ours if sys.argv[1] == "ours" else run_peer
        result = runner(int(sys.argv[2]))
        sys.stdout.write(json.dumps(result) + "\n")
        sys.stdout.flush()
        os._exit(0)
    main()
