"""The event store under load: ingest beside InfluxDB 1.6, the seed's query beside a Python scan.

Run it with ``python benchmarks/bench_server.py`` (or through ``make bench``).
Both parts run the real ``metricstream serve`` in its own process, on
loopback.

Ingest: 4 client threads, each with its own keep-alive ``httpx.Client``,
post 1,000 events per request (``POST /events``, ``--spool-fsync batch``:
every answer waits until its events are appended to the spool and
fsynced), to a server with one worker and to one with two (``--workers
2``: this machine's two cores, as InfluxDB uses every core). Beside them, in
the same run, InfluxDB 1.6 (the test server, ``METRICSTREAM_INFLUXDB_V1_URL``)
takes the same events as line protocol on ``/write?precision=ms`` from the
same clients and concurrency (a database of its own per round). Each server
is first seen to run all its workers (``/stats``). The three take turns for
``INGEST_ROUNDS`` rounds, in a rotating order; medians are printed
with each server's CPU seconds per million events (read from
``/proc/PID/stat`` for the server's whole process tree: the server
processes are the figure that compares the servers; the clients share the
machine's two cores with them). Target: at least InfluxDB's rate, judged
on two workers; one worker is reported beside it.

Query: 1,000,000 events in the store's format (generated once into
``$METRICSTREAM_BENCH_CACHE``), the seed's document (three sets by
``event_tag`` with unique users, and the three-step funnel on the user)
posted after a first query that builds the query cache (cold, reported).
Each server is asked on one keep-alive connection, as an application or
the query page asks: a new connection per query would add the client's own
setup to every figure (a new ``httpx`` client builds its TLS context,
about 20 ms here). Then, for ``ROUNDS`` rounds that alternate with the
peer, ``RUNS`` queries of each case:

- warm: the query cache holds the archive's columns, the server keeps no
  answers in memory (``METRICSTREAM_QUERY_MEMO=0``) and the archive is
  unchanged: each query is computed from the cache's columns. The figure
  the targets are judged on;
- 1,000 new events since the last query: posted before each query (not
  timed), so each query first loads them into the cache;
- asked again: the same document over the unchanged archive, to a server
  that keeps answers (the default), so it is answered from the memory of
  the previous answer (a cache hit, not a query).

Medians, with the server's CPU per query, beside a single-pass orjson scan
in Python answering the same document (its answer is checked against the
cold query's). Targets: a warm median of at most 100 ms, and at least 10x
the scan.
"""

from __future__ import annotations

import contextlib
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
from _common import alone, side_by_side, spread_of

from metricstream.contract import EventBatch
from metricstream.event import MetricEvent
from metricstream.query import format_event_id
from metricstream.sinks.jsonl import JsonLinesSink

CLIENTS = 4
WORKERS = (1, 2)
JUDGED_WORKERS = 2
EVENTS_PER_REQUEST = 1000
REQUESTS_PER_CLIENT = 25
ROUNDS = 3
INGEST_ROUNDS = 9
QUERY_EVENTS = 1_000_000
RUNS = 3
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

    def __init__(
        self, directory: Path, *args: str, workers: int = 1, env: dict[str, str] | None = None
    ) -> None:
        command = [sys.executable, "-m", "metricstream", "serve", str(directory), "--port", "0",
                   "--workers", str(workers), *args]  # fmt: skip
        self.process = subprocess.Popen(
            command, stdout=subprocess.PIPE, text=True, env={**os.environ, **(env or {})}
        )
        assert self.process.stdout is not None
        found = re.search(r"listening on (\S+)", self.process.stdout.readline())
        if found is None:
            raise SystemExit("metricstream serve did not start")
        self.url = found.group(1)
        self.client = httpx.Client(base_url=self.url, timeout=600)
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            try:
                if self.client.get("/stats").json().get("workers") == workers:
                    return
            except (httpx.HTTPError, ValueError):
                pass
            time.sleep(0.1)
        raise SystemExit(f"metricstream serve did not run {workers} workers")

    def stop(self) -> None:
        self.client.close()
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
    serves: dict[str, Serve],
    json_bodies: list[list[bytes]],
    line_bodies: list[list[bytes]],
    order: list[str],
) -> dict[str, tuple[float, float]]:
    """One round: each side's (wall seconds, server CPU seconds), in the order given."""
    database = f"bench_server_{uuid.uuid4().hex[:8]}"
    httpx.post(
        f"{INFLUX_URL}/query", params={"q": f"CREATE DATABASE {database}"}
    ).raise_for_status()
    sides = {
        name: (
            serve.process.pid,
            f"{serve.url}/events",
            json_bodies,
            {"Content-Type": "application/json"},
            200,
        )
        for name, serve in serves.items()
    }
    sides["influx"] = (influxd_pid(), f"{INFLUX_URL}/write?db={database}&precision=ms",
                       line_bodies, {}, 204)  # fmt: skip
    found = {}
    for name in order:
        pid, url, chunks, headers, ok = sides[name]
        cpu = cpu_seconds(pid)
        wall = drive(url, chunks, headers, ok)
        found[name] = (wall, cpu_seconds(pid) - cpu)
    httpx.post(f"{INFLUX_URL}/query", params={"q": f"DROP DATABASE {database}"})
    return found


def bench_ingest() -> None:
    total = CLIENTS * REQUESTS_PER_CLIENT * EVENTS_PER_REQUEST
    json_bodies, line_bodies = bodies()
    names = [f"workers={count}" for count in WORKERS]
    with contextlib.ExitStack() as stack:
        serves = {}
        for name, count in zip(names, WORKERS, strict=True):
            directory = stack.enter_context(
                tempfile.TemporaryDirectory(prefix="metricstream-bench-serve-")
            )
            serve = Serve(Path(directory), "--spool-fsync", "batch", workers=count)
            stack.callback(serve.stop)
            drive(f"{serve.url}/events", [json_bodies[0][:2]], {}, 200)  # warm up
            serves[name] = serve
        sides = [*names, "influx"]
        rounds = [
            ingest_round(serves, json_bodies, line_bodies, sides[r % 3 :] + sides[: r % 3])
            for r in range(INGEST_ROUNDS)
        ]
    rate = {n: statistics.median(total / r[n][0] for r in rounds) for n in sides}
    cpu = {n: statistics.median(r[n][1] for r in rounds) * 1e6 / total for n in sides}
    print(f"\ningest: {CLIENTS} clients x {REQUESTS_PER_CLIENT} requests x "
          f"{EVENTS_PER_REQUEST} events, median of {INGEST_ROUNDS} rounds in turn")  # fmt: skip
    for name, count in zip(names, WORKERS, strict=True):
        ratios = [r["influx"][0] / r[name][0] for r in rounds]
        judged = count == JUDGED_WORKERS
        side_by_side(
            f"ingest: events/s (durable, --spool-fsync batch), {name}",
            (f"metricstream serve --workers {count} POST /events", rate[name]),
            ("InfluxDB 1.6 /write, line protocol", rate["influx"]),
            "events/s",
            higher_is_better=True,
            cpu=(cpu[name], cpu["influx"]),
            target=("at least InfluxDB's rate", statistics.median(ratios) >= 1.0)
            if judged
            else None,
            ratio=statistics.median(ratios),
            spread=spread_of(ratios),
            key="server_ingest" if judged else f"server_ingest_{count}",
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


def ask(serve: Serve, document: dict[str, Any]) -> tuple[float, float, dict[str, Any]]:
    """Post a query; return the wall seconds, the server's CPU seconds and the answer."""
    cpu, wall = cpu_seconds(serve.process.pid), time.perf_counter()
    response = serve.client.post("/query", json=document)
    response.raise_for_status()
    return time.perf_counter() - wall, cpu_seconds(serve.process.pid) - cpu, response.json()


def query_round(
    computing: Serve, remembering: Serve, round_number: int
) -> dict[str, list[tuple[float, float]]]:
    """`RUNS` queries of each case (see the module documentation): (wall, CPU) of each."""
    found: dict[str, list[tuple[float, float]]] = {"warm": [], "growing": [], "repeated": []}
    for _ in range(RUNS):
        wall, cpu, _ = ask(computing, SEED)
        found["warm"].append((wall, cpu))
    for run in range(RUNS):
        body = {"events": make_events(1000, 10**6 + round_number * RUNS + run)}
        computing.client.post("/events", json=body).raise_for_status()
        wall, cpu, _ = ask(computing, SEED)
        found["growing"].append((wall, cpu))
    ask(remembering, SEED)
    for _ in range(RUNS):
        wall, cpu, _ = ask(remembering, SEED)
        found["repeated"].append((wall, cpu))
    return found


def seed_answer(answer: dict[str, Any]) -> dict[str, Any]:
    """The parts of an answer the scan computes."""
    return {
        "data": {k: (v["count"], v["unique"]["user_id"]) for k, v in answer["data"].items()},
        "funnel": [step["count"] for step in answer["funnel"]],
    }


CASES = {
    "warm": ("query: seed document, warm (the cache holds the columns; computed)",
             "server_query"),
    "growing": ("query: seed document, 1,000 new events since the last query",
                "server_query_growing"),
    "repeated": ("query: seed document asked again, archive unchanged (answer from memory)",
                 "server_query_repeated"),
}  # fmt: skip


def bench_query() -> None:
    path = query_archive()
    scans: list[tuple[float, float]] = []
    rounds = []
    with contextlib.ExitStack() as stack:
        serves = []
        for memo in ("0", ""):
            directory = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="ms-bench-q-")))
            shutil.copy(path, directory / "events-0.jsonl.zst")
            serve = Serve(directory, env={"METRICSTREAM_QUERY_MEMO": memo})
            stack.callback(serve.stop)
            serves.append(serve)
        cold, cold_cpu, answer = ask(serves[0], SEED)
        ask(serves[1], SEED)
        for number in range(ROUNDS):
            scan_cpu, scan_wall = time.process_time(), time.perf_counter()
            expected = scan(path)
            scans.append((time.perf_counter() - scan_wall, time.process_time() - scan_cpu))
            rounds.append(query_round(serves[0], serves[1], number))
    if seed_answer(answer) != expected:
        raise SystemExit(f"the answers differ: {seed_answer(answer)} != {expected}")
    scan_wall = statistics.median(wall for wall, _ in scans)
    scan_per_m = statistics.median(cpu for _, cpu in scans) * 1e6 / QUERY_EVENTS
    print(f"\nquery: the seed's document over {QUERY_EVENTS:,} events, {RUNS} runs of each "
          f"case in each of {ROUNDS} rounds beside the scan")  # fmt: skip
    alone(
        "query: seed document, cold (the first query builds the query cache) (ms)",
        ("metricstream serve POST /query", cold * 1000),
        "ms",
        cpu=cold_cpu * 1e6 / QUERY_EVENTS,
        key="server_query_cold",
    )
    for case, (title, key) in CASES.items():
        runs = [run for found in rounds for run in found[case]]
        wall = statistics.median(wall for wall, _ in runs)
        cpu = statistics.median(cpu for _, cpu in runs)
        side_by_side(
            title + " (ms)",
            ("metricstream serve POST /query", wall * 1000),
            ("single-pass orjson scan in Python", scan_wall * 1000),
            "ms",
            higher_is_better=False,
            cpu=(cpu * 1e6 / QUERY_EVENTS, scan_per_m),
            target=[
                (f"<= {TARGET_LATENCY_S * 1000:.0f} ms", wall <= TARGET_LATENCY_S),
                (f">= {TARGET_RATIO:.0f}x the scan", scan_wall / wall >= TARGET_RATIO),
            ]
            if case == "warm"
            else None,
            spread=f"{spread_of([w * 1000 for w, _ in runs], ' ms')}; "
            f"server CPU {cpu * 1000:.0f} ms per query",
            key=key,
        )


def main() -> None:
    bench_ingest()
    bench_query()


if __name__ == "__main__":
    main()
