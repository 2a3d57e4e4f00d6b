"""The event store under load: ingest beside InfluxDB 1.6, the seed's query beside a Python scan.

Run it with ``python benchmarks/bench_server.py`` (or through ``make bench``).
Both parts run the real ``metricstream serve`` in its own process, on
loopback, with one worker.

Ingest: one worker (``METRICSTREAM_BENCH_SERVE_WORKERS`` for more), 4
client threads, each with its own keep-alive ``httpx.Client``,
post 1,000 events per request (``POST /events``, ``--spool-fsync batch``:
every answer waits until its events are appended to the spool and
fsynced). Beside it, in the same run, InfluxDB 1.6 (the test server,
``METRICSTREAM_INFLUXDB_V1_URL``) takes the same events as line protocol on
``/write?precision=ms`` from the same clients and concurrency (a database
of its own per run). The two alternate for ``ROUNDS`` rounds; medians are
printed with each server's CPU seconds per million events (read from
``/proc/PID/stat``: the server processes are the figure that compares the
servers; the clients share the machine's two cores with them). Target: at
least InfluxDB's rate.

Query: 1,000,000 events in the store's format (generated once into
``$METRICSTREAM_BENCH_CACHE``), the seed's document (three sets by
``event_tag`` with unique users, and the three-step funnel on the user)
posted after a first query that builds the query cache: ``RUNS`` times
with 1,000 new events posted before each (the query loads them into the
cache: the figure the target is judged on), then ``RUNS`` times over the
unchanged archive (answered from memory). Medians, with the server's CPU
per query, beside a single-pass orjson scan in Python answering the same
document. Targets: a warm median of at most 100 ms, and at least 10x the
scan.
"""

from __future__ import annotations

import io
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections import defaultdict
from pathlib import Path
from typing import Any

sys.path.insert(0, os.path.dirname(__file__))

import httpx
import orjson
import zstandard
from _common import side_by_side

from metricstream.contract import EventBatch
from metricstream.event import MetricEvent
from metricstream.query import format_event_id
from metricstream.sinks.jsonl import JsonLinesSink

CLIENTS = 4
WORKERS = int(os.environ.get("METRICSTREAM_BENCH_SERVE_WORKERS", "1"))
EVENTS_PER_REQUEST = 1000
REQUESTS_PER_CLIENT = 25
ROUNDS = 3
QUERY_EVENTS = 1_000_000
RUNS = 9
TARGET_LATENCY_S = 0.100
TARGET_RATIO = 10.0
T0 = 1_714_521_600_000
KINDS = ["product_view"] * 6 + ["add_to_cart"] * 3 + ["purchase"]
INFLUX_URL = os.environ.get("METRICSTREAM_INFLUXDB_V1_URL", "http://127.0.0.1:28086")
SERVICES_DIR = Path(
    os.environ.get("METRICSTREAM_SERVICES_DIR")
    or Path(os.environ.get("TMPDIR", "/tmp")) / "metricstream-services"
)

SEED: dict[str, Any] = {
    "data": [
        {"name": kind, "filters": [{"type": "eq", "key": "event_tag", "value": kind}],
         "unique": ["user_id"]}
        for kind in ("product_view", "add_to_cart", "purchase")
    ],
    "funnel": {"type": "exact_order", "order": ["product_view", "add_to_cart", "purchase"],
               "match": ["user_id"]},
}  # fmt: skip


# --- processes ---------------------------------------------------------------


def _stat(pid: int) -> list[str]:
    return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()


def cpu_seconds(pid: int) -> float:
    """CPU seconds (user + system) of a process and every process under it, so far."""
    parents: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                parents[int(entry.name)] = int(_stat(int(entry.name))[1])
            except (OSError, IndexError):
                continue
    tree, grew = {pid}, True
    while grew:
        found = {child for child, parent in parents.items() if parent in tree}
        grew = not found <= tree
        tree |= found
    ticks = 0
    for member in tree:
        try:
            ticks += sum(int(value) for value in _stat(member)[11:15])
        except (OSError, IndexError):
            continue
    return ticks / os.sysconf("SC_CLK_TCK")


def influxd_pid() -> int:
    """The pid of the InfluxDB 1.6 test server (from the services script's pid file)."""
    return int((SERVICES_DIR / "influxdb.pid").read_text().strip())


class Serve:
    """``metricstream serve DIR --port 0`` in its own process."""

    def __init__(self, directory: Path, *args: str) -> None:
        command = [sys.executable, "-m", "metricstream", "serve", str(directory), "--port", "0",
                   *args]  # fmt: skip
        self.process = subprocess.Popen(command, stdout=subprocess.PIPE, text=True)
        assert self.process.stdout is not None
        found = re.search(r"listening on (\S+)", self.process.stdout.readline())
        if found is None:
            raise SystemExit("metricstream serve did not start")
        self.url = found.group(1)
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            try:
                if httpx.get(self.url + "/readyz", timeout=5).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        raise SystemExit("metricstream serve was not ready")

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(120)


# --- ingest ------------------------------------------------------------------


def make_events(count: int, seed: int) -> list[dict[str, Any]]:
    import random

    rnd = random.Random(seed)
    return [
        {"ts": T0 + i, "data": {"event_tag": rnd.choice(KINDS),
                                "user_id": f"u{rnd.randrange(50_000)}",
                                "country": rnd.choice(["fr", "de", "us"]),
                                "status_code": rnd.choice([200, 200, 503])}}
        for i in range(count)
    ]  # fmt: skip


def line_of(event: dict[str, Any]) -> str:
    data = event["data"]
    return (
        f'event event_tag="{data["event_tag"]}",user_id="{data["user_id"]}",'
        f'country="{data["country"]}",status_code={data["status_code"]}i {event["ts"]}'
    )


def bodies() -> tuple[list[list[bytes]], list[list[bytes]]]:
    """Per client: the JSON bodies and the same events as line protocol."""
    json_bodies, line_bodies = [], []
    for client in range(CLIENTS):
        ours, theirs = [], []
        for request in range(REQUESTS_PER_CLIENT):
            events = make_events(EVENTS_PER_REQUEST, client * 10_000 + request)
            ours.append(orjson.dumps({"events": events}))
            theirs.append("\n".join(line_of(e) for e in events).encode())
        json_bodies.append(ours)
        line_bodies.append(theirs)
    return json_bodies, line_bodies


def drive(url: str, per_client: list[list[bytes]], headers: dict[str, str], ok: int) -> float:
    """Post every body from CLIENTS threads; return the wall seconds."""
    failures: list[str] = []

    def client(chunks: list[bytes]) -> None:
        with httpx.Client(timeout=120) as session:
            for body in chunks:
                response = session.post(url, content=body, headers=headers)
                if response.status_code != ok:
                    failures.append(f"{response.status_code} {response.text[:200]}")

    threads = [threading.Thread(target=client, args=(chunks,)) for chunks in per_client]
    started = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    if failures:
        raise SystemExit(f"{len(failures)} requests failed: {failures[0]}")
    return time.perf_counter() - started


def ingest_round(
    serve: Serve, json_bodies: list[list[bytes]], line_bodies: list[list[bytes]], first: str
) -> dict[str, tuple[float, float]]:
    """One round: each side's (wall seconds, server CPU seconds), in the order given."""
    database = f"bench_server_{uuid.uuid4().hex[:8]}"
    httpx.post(
        f"{INFLUX_URL}/query", params={"q": f"CREATE DATABASE {database}"}
    ).raise_for_status()
    sides = {
        "ours": (serve.process.pid, f"{serve.url}/events", json_bodies,
                 {"Content-Type": "application/json"}, 200),
        "influx": (influxd_pid(), f"{INFLUX_URL}/write?db={database}&precision=ms", line_bodies,
                   {}, 204),
    }  # fmt: skip
    found = {}
    for name in (first, "influx" if first == "ours" else "ours"):
        pid, url, chunks, headers, ok = sides[name]
        cpu = cpu_seconds(pid)
        wall = drive(url, chunks, headers, ok)
        found[name] = (wall, cpu_seconds(pid) - cpu)
    httpx.post(f"{INFLUX_URL}/query", params={"q": f"DROP DATABASE {database}"})
    return found


def bench_ingest() -> None:
    total = CLIENTS * REQUESTS_PER_CLIENT * EVENTS_PER_REQUEST
    json_bodies, line_bodies = bodies()
    with tempfile.TemporaryDirectory(prefix="metricstream-bench-serve-") as directory:
        serve = Serve(Path(directory), "--spool-fsync", "batch", "--workers", str(WORKERS))
        try:
            drive(f"{serve.url}/events", [json_bodies[0][:2]], {}, 200)  # warm up
            rounds = [
                ingest_round(serve, json_bodies, line_bodies, "ours" if r % 2 == 0 else "influx")
                for r in range(ROUNDS)
            ]
        finally:
            serve.stop()
    rate = {n: statistics.median(total / r[n][0] for r in rounds) for n in ("ours", "influx")}
    cpu = {n: statistics.median(r[n][1] for r in rounds) * 1e6 / total for n in ("ours", "influx")}
    ratios = statistics.median(r["influx"][0] / r["ours"][0] for r in rounds)
    print(f"\ningest: {CLIENTS} clients x {REQUESTS_PER_CLIENT} requests x "
          f"{EVENTS_PER_REQUEST} events, median of {ROUNDS} alternating rounds")  # fmt: skip
    side_by_side(
        "ingest: events/s (durable, --spool-fsync batch)",
        ("metricstream serve POST /events", rate["ours"]),
        ("InfluxDB 1.6 /write, line protocol", rate["influx"]),
        "events/s",
        higher_is_better=True,
        cpu=(cpu["ours"], cpu["influx"]),
        target=("at least InfluxDB's rate", ratios >= 1.0),
        ratio=ratios,
        key="server_ingest",
    )


# --- query -------------------------------------------------------------------


def query_archive() -> Path:
    """The 1,000,000 events in the store's format, generated once."""
    cache = Path(os.environ.get("METRICSTREAM_BENCH_CACHE", tempfile.gettempdir()))
    path = cache / f"metricstream-bench-serve-{QUERY_EVENTS}.jsonl.zst"
    if path.exists():
        return path
    print(f"  generating {QUERY_EVENTS:,} events into {path} (once)...", flush=True)
    import random

    partial = path.with_name(path.name + ".partial")
    partial.unlink(missing_ok=True)
    sink = JsonLinesSink(partial, compression="zstd")
    rnd = random.Random(1)
    ts, counter = T0, 0
    for _ in range(QUERY_EVENTS // 1000):
        events = []
        for _ in range(1000):
            ts += rnd.choice([0, 0, 1, 3, 10])
            counter += 1
            ns = ts * 1_000_000
            fields = {"event_tag": rnd.choice(KINDS), "user_id": f"u{rnd.randrange(50_000)}",
                      "country": rnd.choice(["fr", "de", "us", "jp"]),
                      "status_code": rnd.choice([200, 200, 200, 503, 404]),
                      "samplerate": rnd.choice([1, 1, 2]),
                      "event_id": format_event_id(ns, 1, counter)}  # fmt: skip
            events.append(MetricEvent("event", fields=fields, timestamp_ns=ns))
        sink.write(sink.prepare(EventBatch(events)))
    sink.close()
    partial.rename(path)
    return path


def scan(path: Path) -> dict[str, Any]:
    """The seed's document answered by one pass of orjson over the archive (in event-id order)."""
    counts: dict[str, int] = defaultdict(int)
    users: dict[str, set[str]] = defaultdict(set)
    steps = {"product_view": 0, "add_to_cart": 1, "purchase": 2}
    reached: dict[str, int] = {}
    stream = zstandard.ZstdDecompressor().stream_reader(open(path, "rb"), read_across_frames=True)  # noqa: SIM115
    with io.BufferedReader(stream, 1 << 20) as lines:
        for line in lines:
            fields = orjson.loads(line)["fields"]
            kind, user = fields["event_tag"], fields["user_id"]
            counts[kind] += 1
            users[kind].add(user)
            step = steps[kind]
            done = reached.get(user, -1)
            if step == done + 1:
                reached[user] = step
    return {
        "data": {k: (counts[k], len(users[k])) for k in steps},
        "funnel": [sum(1 for done in reached.values() if done >= k) for k in range(3)],
    }


def timed_queries(serve: Serve, fresh: bool) -> tuple[float, float]:
    """Median wall seconds and server CPU seconds of `RUNS` queries of the seed's document.

    With `fresh`, 1,000 new events are posted before each query (not timed),
    so that each query loads them into the query cache and cannot be
    answered from memory.
    """
    walls, cpus = [], []
    for run in range(RUNS):
        if fresh:
            body = {"events": make_events(1000, 10**6 + run)}
            httpx.post(serve.url + "/events", json=body, timeout=600).raise_for_status()
        cpu, wall = cpu_seconds(serve.process.pid), time.perf_counter()
        httpx.post(serve.url + "/query", json=SEED, timeout=600).raise_for_status()
        walls.append(time.perf_counter() - wall)
        cpus.append(cpu_seconds(serve.process.pid) - cpu)
    return statistics.median(walls), statistics.median(cpus)


def bench_query() -> None:
    path = query_archive()
    with tempfile.TemporaryDirectory(prefix="metricstream-bench-serve-query-") as directory:
        shutil.copy(path, Path(directory) / "events-0.jsonl.zst")
        serve = Serve(Path(directory))
        try:
            first = time.perf_counter()
            answer = httpx.post(serve.url + "/query", json=SEED, timeout=600).json()
            cold = time.perf_counter() - first
            repeated = timed_queries(serve, fresh=False)
            growing = timed_queries(serve, fresh=True)
        finally:
            serve.stop()
    scan_cpu, scan_wall = time.process_time(), time.perf_counter()
    expected = scan(path)
    scan_wall, scan_cpu = time.perf_counter() - scan_wall, time.process_time() - scan_cpu
    found = {
        "data": {k: (v["count"], v["unique"]["user_id"]) for k, v in answer["data"].items()},
        "funnel": [step["count"] for step in answer["funnel"]],
    }
    if found != expected:
        raise SystemExit(f"the answers differ: {found} != {expected}")
    print(f"\nquery: the seed's document over {QUERY_EVENTS:,} events (cold {cold:.2f} s), "
          f"median of {RUNS} runs each")  # fmt: skip
    scan_ms, scan_per_m = scan_wall * 1000, scan_cpu * 1e6 / QUERY_EVENTS
    for title, (wall, cpu), key in (
        ("query: seed document, 1,000 new events before each", growing, "server_query"),
        ("query: seed document asked again, archive unchanged", repeated, None),
    ):
        side_by_side(
            title + " (ms)",
            ("metricstream serve POST /query", wall * 1000),
            ("single-pass orjson scan in Python", scan_ms),
            "ms",
            higher_is_better=False,
            cpu=(cpu * 1e6 / QUERY_EVENTS, scan_per_m),
            target=[
                (f"<= {TARGET_LATENCY_S * 1000:.0f} ms", wall <= TARGET_LATENCY_S),
                (f">= {TARGET_RATIO:.0f}x the scan", scan_wall / wall >= TARGET_RATIO),
            ]
            if key
            else None,
            key=key,
        )  # fmt: skip


def main() -> None:
    bench_ingest()
    bench_query()


if __name__ == "__main__":
    main()
