"""Memory with a million events pending behind a sink that never succeeds.

Each measurement runs in a fresh subprocess and reports its peak resident set
size (VmHWM) above the baseline measured just before the first event.

- metricstream, memory only: ``send(event_from_sample(...))`` one million
  times into an EventStreamer whose only sink is an InfluxDBSink (v1 API,
  gzip) pointed at a closed loopback port, so every write fails with a
  connection error and is retried; the benchmark waits until all the events
  are prepared in the sink's lane (pending, nothing dropped).
- peer: influxdb-client's batching ``WriteApi`` (batch_size 5000) given the
  same million points, as ``Point`` objects, for the same closed port.
- metricstream with a spool (``spool_dir=``, the default ``max_buffer`` and
  ``spool_fsync``): the same million events, which end on disk; the target
  is a peak under 64 MiB above the baseline.
- the largest ``send()`` pause while 2,000,000 events are pending in memory:
  the longest gap between two consecutive sends of the loop, and the time
  the garbage collector spent in full collections meanwhile (a collection
  walks every tracked object, so pending events must not be such objects).

The two memory-only runs alternate, ``ROUNDS`` times; medians are reported.
"""

from __future__ import annotations

import gc
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from typing import Any

sys.path.insert(0, os.path.dirname(__file__))

from _common import ROUTES, alone, rss_kib, send_samples, side_by_side, spread_of

EVENTS = 1_000_000
PAUSE_EVENTS = 2_000_000
ROUNDS = 2
SPOOL_TARGET_MIB = 64


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _dead_sink(port: int) -> Any:
    from metricstream.sinks.influxdb import InfluxDBSink

    return InfluxDBSink(f"http://127.0.0.1:{port}", api="v1", database="bench", timeout=1.0)


def _patient_retry() -> Any:
    import metricstream as ms

    return ms.RetryConfig(
        max_retries=1_000_000, initial_delay_ms=50, max_delay_ms=200, max_elapsed_ms=3_600_000
    )


def _queued_bytes(streamer: Any) -> int:
    """Bytes of the request bodies waiting in the streamer's lanes."""
    total = 0
    for lane in streamer._pipeline.lanes:
        ledger = lane.ledger
        with ledger._cond:
            items = [*ledger._queue, ledger._in_flight]
        total += sum(len(item.payload.body) for item in items if hasattr(item, "payload"))
    return total


def _wait_prepared(streamer: Any, events: int) -> Any:
    """Wait until every event is pending (or spooled) in prepared form; return the sink's health."""
    pipeline = streamer._pipeline
    while True:
        health = streamer.health().sinks["influxdb"]
        prepared = all(
            lane.ledger.raw == 0 and lane.ledger._preparing is None for lane in pipeline.lanes
        )
        if health.pending + health.spooled == events and not pipeline.buffer and prepared:
            return health
        time.sleep(0.05)


def _streamer(port: int, **options: Any) -> Any:
    """A streamer whose only sink is dead, retrying patiently, batches of 5000."""
    import metricstream as ms

    return ms.EventStreamer(
        [_dead_sink(port)],
        batch_size=5000,
        retry=_patient_retry(),
        register_atexit=False,
        **options,
    )


def _send_all(streamer: Any) -> tuple[Any, dict[str, float]]:
    """Send `EVENTS` samples and wait until all are prepared; return the health and figures."""
    baseline = rss_kib("VmRSS")
    started, cpu = time.perf_counter(), time.process_time()
    send_samples(streamer, EVENTS)
    health = _wait_prepared(streamer, EVENTS)
    return health, {
        "peak_mib": (rss_kib("VmHWM") - baseline) / 1024,
        "pending": health.pending,
        "dropped": health.events_dropped,
        "seconds": time.perf_counter() - started,
        "cpu_s_per_m": (time.process_time() - cpu) / EVENTS * 1e6,
    }


def run_ours(port: int) -> dict[str, float]:
    streamer = _streamer(port, max_buffer=EVENTS)
    _, result = _send_all(streamer)
    result["queued_body_mib"] = _queued_bytes(streamer) / 2**20
    streamer.shutdown(timeout=0.5)
    return result


def run_spool(port: int) -> dict[str, float]:
    directory = tempfile.mkdtemp(prefix="ms-bench-spool-")
    try:
        streamer = _streamer(port, spool_dir=directory)
        health, result = _send_all(streamer)
        result["spooled"] = health.spooled
        result["disk_mib"] = (
            sum(
                os.path.getsize(os.path.join(root, name))
                for root, _, names in os.walk(directory)
                for name in names
            )
            / 2**20
        )
        streamer.shutdown(timeout=0.5)
        return result
    finally:
        shutil.rmtree(directory, ignore_errors=True)


def run_pause(port: int) -> dict[str, float]:
    import metricstream as ms

    streamer = _streamer(port, max_buffer=PAUSE_EVENTS)
    full = [0, 0.0]
    start_ns = [0]

    def on_gc(phase: str, info: dict[str, int]) -> None:
        if info["generation"] != 2:
            return
        if phase == "start":
            start_ns[0] = time.perf_counter_ns()
        else:
            full[0] += 1
            full[1] += (time.perf_counter_ns() - start_ns[0]) / 1e6

    gc.callbacks.append(on_gc)
    send, sample, clock = streamer.send, ms.event_from_sample, time.perf_counter_ns
    gaps: list[int] = []
    last = clock()
    for i in range(PAUSE_EVENTS):
        send(sample("http.latency_ms", i * 0.5, {"route": ROUTES[i % 50], "host": "web-1"}))
        now = clock()
        gaps.append(now - last)
        last = now
    gc.callbacks.remove(on_gc)
    health = _wait_prepared(streamer, PAUSE_EVENTS)
    gaps.sort()
    result = {
        "max_ms": gaps[-1] / 1e6,
        "p9999_ms": gaps[int(len(gaps) * 0.9999)] / 1e6,
        "median_us": gaps[len(gaps) // 2] / 1e3,
        "full_collections": full[0],
        "full_collection_ms": full[1],
        "pending": health.pending,
        "tracked_objects": len(gc.get_objects()),
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
    baseline = rss_kib("VmRSS")
    started, cpu = time.perf_counter(), time.process_time()
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
    return {
        "peak_mib": (rss_kib("VmHWM") - baseline) / 1024,
        "given_up": failed[0],
        "seconds": time.perf_counter() - started,
        "cpu_s_per_m": (time.process_time() - cpu) / EVENTS * 1e6,
    }


RUNNERS = {"ours": run_ours, "peer": run_peer, "spool": run_spool, "pause": run_pause}


def _in_subprocess(which: str, port: int) -> dict[str, float]:
    out = subprocess.run(
        [sys.executable, __file__, which, str(port)],
        capture_output=True,
        text=True,
        timeout=900,
        check=True,
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    port = _closed_port()
    ours: list[dict[str, float]] = []
    peer: list[dict[str, float]] = []
    for round_ in range(ROUNDS):
        pair = ((ours, "ours"), (peer, "peer"))
        for into, which in pair if round_ % 2 == 0 else pair[::-1]:
            into.append(_in_subprocess(which, port))

    def median(runs: list[dict[str, float]], key: str) -> float:
        return statistics.median(run[key] for run in runs)

    ratios = [p["peak_mib"] / o["peak_mib"] for o, p in zip(ours, peer, strict=True)]
    print(
        f"\n(c) peak memory above baseline with {EVENTS:,} events pending behind a dead InfluxDB, "
        f"medians of {ROUNDS} alternating runs (metricstream: {median(ours, 'pending'):,.0f} "
        f"pending, {median(ours, 'dropped'):,.0f} dropped; influxdb-client gave up "
        f"{median(peer, 'given_up'):,.0f})"
    )
    side_by_side(
        "peak memory, 1,000,000 events pending behind a dead InfluxDB (memory only)",
        ("metricstream EventStreamer + InfluxDBSink", median(ours, "peak_mib")),
        ("influxdb-client WriteApi(batch_size=5000)", median(peer, "peak_mib")),
        "MiB",
        higher_is_better=False,
        cpu=(median(ours, "cpu_s_per_m"), median(peer, "cpu_s_per_m")),
        target=("at most the peer's peak (>= 1x; aim 2x)", min(ratios) >= 1.0),
        spread="ratio " + spread_of(ratios),
        ratio=statistics.median(ratios),
        key="memory",
    )
    print(
        f"  metricstream keeps the pending events as {median(ours, 'queued_body_mib'):.1f} MiB "
        "of gzip bodies; influxdb-client keeps each pending point as a line protocol string"
    )

    spool = _in_subprocess("spool", port)
    alone(
        f"peak memory, {EVENTS:,} events behind a dead sink with a spool "
        "(spool_dir=, default max_buffer and spool_fsync)",
        ("metricstream EventStreamer(spool_dir=...)", spool["peak_mib"]),
        "MiB",
        target=(
            f"< {SPOOL_TARGET_MIB} MiB above baseline, nothing dropped",
            spool["peak_mib"] < SPOOL_TARGET_MIB and spool["dropped"] == 0,
        ),
        cpu=spool["cpu_s_per_m"],
        key="memory_spool",
        note=(
            f"{spool['spooled']:,.0f} spooled on disk ({spool['disk_mib']:.1f} MiB), "
            f"{spool['pending']:,.0f} pending in memory, {spool['dropped']:,.0f} dropped"
        ),
    )

    pause = _in_subprocess("pause", port)
    alone(
        f"largest send() pause with {PAUSE_EVENTS:,} events pending in memory",
        ("metricstream send(event_from_sample(...))", pause["max_ms"]),
        "ms",
        key="pause",
        note=(
            f"99.99th percentile gap {pause['p9999_ms']:.2f} ms, median "
            f"{pause['median_us']:.2f} us; {pause['full_collections']:.0f} full garbage "
            f"collections took {pause['full_collection_ms']:.1f} ms in all; "
            f"{pause['tracked_objects']:,.0f} objects tracked with "
            f"{pause['pending']:,.0f} events pending"
        ),
    )


if __name__ == "__main__":
    if len(sys.argv) == 3:
        result = RUNNERS[sys.argv[1]](int(sys.argv[2]))
        sys.stdout.write(json.dumps(result) + "\n")
        sys.stdout.flush()
        os._exit(0)
    main()
