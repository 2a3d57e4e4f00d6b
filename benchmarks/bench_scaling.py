"""Scaling curves: throughput and peak memory as the batch size, threads and sinks grow.

For the JSON Lines path (a zstd JSON Lines file) and the VictoriaMetrics path
(InfluxDB v2 write API), each point of each curve is one run in a fresh
subprocess, timed from the first send until everything is written (and, for
VictoriaMetrics, acknowledged); the peak resident size above the baseline
taken after the input is built is the memory figure.

- batch size 100 to 10,000: metricstream's ``batch_size``, against the peer
  with the same batch: the hand-written orjson + zstd loop's chunk, and
  influxdb-client's ``WriteOptions(batch_size=...)``;
- sending threads 1, 2 and 8, each sending its share of the events: against
  influxdb-client's WriteApi written to from as many threads (the
  hand-written loop has no threads; its one-thread figure is the reference);
- sinks 1 to 4 (each a file, or a sink to VictoriaMetrics, of its own):
  against the peer writing each file, or through as many WriteApis.

One run per point: these are shapes, not medians (the headline figures are
in bench_throughput and bench_influx).
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse
import urllib.request
from typing import Any

sys.path.insert(0, os.path.dirname(__file__))

from _common import Curve, record_curve, rss_kib

BATCH_SIZES = (100, 300, 1000, 3000, 10_000)
THREADS = (1, 2, 8)
SINKS = (1, 2, 3, 4)
DEFAULT_BATCH = 5000
EVENTS = {"jsonl": 200_000, "vm": 100_000}
VM_URL = os.environ.get("METRICSTREAM_VM_URL", "http://127.0.0.1:28428")
ROUTES = [f"/api/v1/resource/{n}" for n in range(50)]
TAG_SETS = [{"route": route, "method": "GET", "host": "web-1"} for route in ROUTES]


def _base_ns() -> int:
    return (time.time_ns() // 1_000_000 - 3_600_000) * 1_000_000


def _split(items: list[Any], parts: int) -> list[list[Any]]:
    return [items[i::parts] for i in range(parts)]


def _run_threads(work: list[Any], threads: int, target: Any) -> None:
    if threads == 1:
        target(work)
        return
    workers = [threading.Thread(target=target, args=(share,)) for share in _split(work, threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()


def ours(path: str, batch: int, threads: int, sinks: int) -> dict[str, float]:
    """metricstream, on the JSON Lines ("jsonl") or VictoriaMetrics ("vm") path."""
    import metricstream as ms
    from metricstream.sinks import InfluxDBSink, JsonLinesSink

    count = EVENTS[path]
    base = _base_ns()
    events = [
        ms.event_from_sample(
            "scaling", i * 0.5, TAG_SETS[i % 50], timestamp_ns=base + i * 1_000_000
        )
        for i in range(count)
    ]
    directory = tempfile.mkdtemp(prefix="ms-scaling-")
    if path == "jsonl":
        targets = [
            JsonLinesSink(os.path.join(directory, f"{n}.jsonl.zst"), name=f"s{n}")
            for n in range(sinks)
        ]
    else:
        targets = [
            InfluxDBSink(VM_URL, org="bench", bucket="bench", name=f"s{n}") for n in range(sinks)
        ]
    streamer = ms.EventStreamer(
        targets, batch_size=batch, max_buffer=count, flush_interval=1.0, register_atexit=False
    )

    def send_all(share: list[ms.MetricEvent]) -> None:
        send = streamer.send
        for event in share:
            send(event)

    baseline = rss_kib("VmRSS")
    wall, cpu = time.perf_counter(), time.process_time()
    _run_threads(events, threads, send_all)
    assert streamer.flush(300)
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    written = [h.events_written for h in streamer.health().sinks.values()]
    streamer.shutdown()
    shutil.rmtree(directory, ignore_errors=True)
    assert written == [count] * sinks, written
    return {
        "rate": count / wall,
        "cpu": cpu / count * 1e6,
        "peak_mib": (rss_kib("VmHWM") - baseline) / 1024,
    }


def peer(path: str, batch: int, threads: int, sinks: int) -> dict[str, float]:
    """The peer: the hand-written orjson + zstd loop, or influxdb-client's WriteApi."""
    count = EVENTS[path]
    base = _base_ns()
    if path == "jsonl":
        import orjson
        import zstandard

        from metricstream.codecs.compression import ZSTD_FRAME_LEVEL

        dicts = [
            {
                "measurement": "scaling",
                "tags": TAG_SETS[i % 50],
                "fields": {"value": i * 0.5},
                "timestamp_ns": base + i * 1_000_000,
                "schema_version": 1,
            }
            for i in range(count)
        ]
        directory = tempfile.mkdtemp(prefix="ms-scaling-")
        fds = [
            os.open(os.path.join(directory, f"{n}.zst"), os.O_WRONLY | os.O_CREAT, 0o600)
            for n in range(sinks)
        ]
        compressors = [
            zstandard.ZstdCompressor(
                level=ZSTD_FRAME_LEVEL, write_checksum=True, write_content_size=True
            )
            for _ in range(sinks)
        ]
        baseline = rss_kib("VmRSS")
        wall, cpu = time.perf_counter(), time.process_time()
        for start in range(0, count, batch):
            chunk = orjson.dumps(dicts[start : start + batch])[1:-1]
            lines = chunk.replace(b'},{"measurement":', b'}\n{"measurement":') + b"\n"
            for fd, compressor in zip(fds, compressors, strict=True):
                os.write(fd, compressor.compress(lines))
        wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
        shutil.rmtree(directory, ignore_errors=True)
        return {
            "rate": count / wall,
            "cpu": cpu / count * 1e6,
            "peak_mib": (rss_kib("VmHWM") - baseline) / 1024,
        }
    from influxdb_client import InfluxDBClient, Point, WriteOptions, WritePrecision

    acknowledged = [0]
    lock = threading.Lock()

    def on_success(_conf: object, data: bytes | str) -> None:
        with lock:
            acknowledged[0] += data.count(b"\n" if isinstance(data, bytes) else "\n") + 1

    clients = [InfluxDBClient(url=VM_URL, token="unused", org="bench") for _ in range(sinks)]
    apis = [
        client.write_api(write_options=WriteOptions(batch_size=batch), success_callback=on_success)
        for client in clients
    ]
    baseline = rss_kib("VmRSS")
    wall, cpu = time.perf_counter(), time.process_time()

    def write_all(share: list[int]) -> None:
        for i in share:
            point = (
                Point("scaling")
                .tag("route", ROUTES[i % 50])
                .tag("method", "GET")
                .tag("host", "web-1")
                .field("value", i * 0.5)
                .time(base + i * 1_000_000, WritePrecision.NS)
            )
            for api in apis:
                api.write(bucket="bench", record=point)

    _run_threads(list(range(count)), threads, write_all)
    for api in apis:
        api.flush()
        api.close()
    deadline = time.monotonic() + 300
    while acknowledged[0] < count * sinks:
        assert time.monotonic() < deadline
        time.sleep(0.001)
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    for client in clients:
        client.close()
    return {
        "rate": count / wall,
        "cpu": cpu / count * 1e6,
        "peak_mib": (rss_kib("VmHWM") - baseline) / 1024,
    }


def _point(side: str, path: str, batch: int, threads: int, sinks: int) -> dict[str, float]:
    out = subprocess.run(
        [sys.executable, __file__, side, path, str(batch), str(threads), str(sinks)],
        capture_output=True,
        text=True,
        timeout=600,
        check=True,
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def _delete_series() -> None:
    query = urllib.parse.urlencode({"match[]": '{__name__="scaling_value"}'})
    with contextlib.suppress(OSError):
        urllib.request.urlopen(
            f"{VM_URL}/api/v1/admin/tsdb/delete_series", data=query.encode(), timeout=60
        ).read()


def _curves(knob: str, xs: tuple[int, ...], with_peer: bool) -> None:
    for path, label in (("jsonl", "JSON Lines"), ("vm", "VictoriaMetrics")):
        rates: dict[str, list[float | None]] = {"metricstream": [], "peer": []}
        memory: dict[str, list[float | None]] = {"metricstream": [], "peer": []}
        for x in xs:
            settings = {"batch": DEFAULT_BATCH, "threads": 1, "sinks": 1, knob: x}
            args = (path, settings["batch"], settings["threads"], settings["sinks"])
            mine = _point("ours", *args)
            theirs = _point("peer", *args) if with_peer or path == "vm" else None
            _delete_series()
            rates["metricstream"].append(mine["rate"])
            memory["metricstream"].append(mine["peak_mib"])
            rates["peer"].append(None if theirs is None else theirs["rate"])
            memory["peer"].append(None if theirs is None else theirs["peak_mib"])
            peer_text = (
                ""
                if theirs is None
                else (f"   peer {theirs['rate']:>11,.0f} events/s {theirs['peak_mib']:6.1f} MiB")
            )
            print(
                f"  {label:<15} {knob} {x:>6}: metricstream {mine['rate']:>11,.0f} events/s "
                f"{mine['cpu']:5.2f} CPU s/M {mine['peak_mib']:6.1f} MiB{peer_text}"
            )
        peer_name = "hand-written loop" if path == "jsonl" else "influxdb-client WriteApi"
        for series in (rates, memory):
            series[peer_name] = series.pop("peer")
        record_curve(
            Curve(f"{path}_{knob}_rate", f"{label}: throughput", knob, "events/s", list(xs), rates)
        )
        record_curve(
            Curve(
                f"{path}_{knob}_memory",
                f"{label}: peak memory",
                knob,
                "MiB above baseline",
                list(xs),
                memory,
            )
        )


def main() -> None:
    print(
        f"\n(f) scaling: {EVENTS['jsonl']:,} events to a zstd JSON Lines file, "
        f"{EVENTS['vm']:,} to VictoriaMetrics; one run per point"
    )
    _curves("batch", BATCH_SIZES, with_peer=True)
    _curves("threads", THREADS, with_peer=False)
    _curves("sinks", SINKS, with_peer=True)


if __name__ == "__main__":
    if len(sys.argv) == 6:
        side, path = sys.argv[1], sys.argv[2]
        batch, threads, sinks = (int(arg) for arg in sys.argv[3:])
        runner = ours if side == "ours" else peer
        sys.stdout.write(json.dumps(runner(path, batch, threads, sinks)) + "\n")
        sys.stdout.flush()
        os._exit(0)
    main()
