"""Queries over a 5-million-event zstd archive: metricstream.query (DuckDB) beside a Python scan.

Run it with ``python benchmarks/bench_query.py`` (or through ``make bench``).

The archive is what `JsonLinesSink` writes for the demo's workload (page
views, clicks, conversions, signups, purchases of 500,000 users over three
days, one zstd frame per 1,000 events). It is generated once into
``$METRICSTREAM_BENCH_CACHE`` (default: the temp dir) and reused.

Three questions, each answered by a straightforward single-pass scan in
Python (zstd stream, ``orjson.loads`` per line: the peer) and by a fresh
`Archive` (so the frame check is included) three ways:

- archive: ``cache=False``, the archive read and parsed by every query;
- cold: the first query, which builds the query cache (in a temporary
  directory emptied before each cold run);
- warm: the next query, from a new `Archive` over the cache the cold run
  left, as a second ``metricstream query`` command would run.

The questions: page views counted; distinct users with a page view; the
funnel page_view -> click -> conversion in order, matched on the user. Runs
alternate their order; medians are printed with the CPU seconds of each (the
process's, DuckDB's threads included) and the ratio to the scan.

Targets: warm, each query at least 10x the scan's events/s, and the funnel
in under 2 s. The cold and no-cache figures are reported beside them in the
table of targets: the first query over an archive, and every query with
``cache=False``, do not have the warm cache's advantage.
"""

from __future__ import annotations

import io
import os
import random
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import orjson
import zstandard
from _common import alone, side_by_side

from metricstream.cli.workload import EVENT_MIX
from metricstream.contract import EventBatch
from metricstream.event import MetricEvent
from metricstream.query import Archive, clear_caches
from metricstream.sinks.jsonl import JsonLinesSink

EVENTS = 5_000_000
BATCH = 1000
RUNS = 3
STEPS = ("page_view", "click", "conversion")
TARGET_RATIO = 10.0
TARGET_FUNNEL_S = 2.0


def archive_path() -> Path:
    """Generate the archive once (about a minute); return its path."""
    cache = Path(os.environ.get("METRICSTREAM_BENCH_CACHE", tempfile.gettempdir()))
    path = cache / f"metricstream-bench-query-{EVENTS}.jsonl.zst"
    if path.exists():
        return path
    print(f"  generating {EVENTS:,} events into {path} (once)...", flush=True)
    partial = path.with_name(path.name + ".partial")
    partial.unlink(missing_ok=True)
    sink = JsonLinesSink(partial, compression="zstd")
    rnd = random.Random(42)
    kinds, weights = [k for k, _ in EVENT_MIX], [w for _, w in EVENT_MIX]
    orgs = [f"org-{n:03d}" for n in range(500)]
    paths, sources = ["/", "/pricing", "/docs", "/blog", "/signup"], ["google", "direct", "mail"]
    ts = 1_700_000_000_000_000_000
    for _ in range(EVENTS // BATCH):
        events = []
        for kind in rnd.choices(kinds, weights, k=BATCH):
            ts += rnd.randrange(1_000_000, 100_000_000)
            org = rnd.choice(orgs)
            tags = {
                "org": org,
                "user": f"{org}-u{rnd.randrange(1000):04d}",
                "path": rnd.choice(paths),
                "utm_source": rnd.choice(sources),
            }
            events.append(MetricEvent(kind, tags=tags, fields={"count": 1}, timestamp_ns=ts))
        sink.write(sink.prepare(EventBatch(events)))
    sink.close()
    partial.rename(path)
    return path


def _lines(path: Path) -> io.BufferedReader:
    stream = zstandard.ZstdDecompressor().stream_reader(open(path, "rb"), read_across_frames=True)  # noqa: SIM115
    return io.BufferedReader(stream, 1 << 20)


def scan_count(path: Path) -> int:
    count = 0
    with _lines(path) as lines:
        for line in lines:
            if orjson.loads(line)["measurement"] == "page_view":
                count += 1
    return count


def scan_unique(path: Path) -> int:
    users = set()
    with _lines(path) as lines:
        for line in lines:
            event = orjson.loads(line)
            if event["measurement"] == "page_view" and "user" in event["tags"]:
                users.add(event["tags"]["user"])
    return len(users)


def scan_funnel(path: Path) -> list[int]:
    """Per user, the step reached so far (the archive is in time order)."""
    reached: dict[str, tuple[int, int]] = {}
    position = {name: index for index, name in enumerate(STEPS)}
    with _lines(path) as lines:
        for line in lines:
            event = orjson.loads(line)
            step = position.get(event["measurement"])
            user = event["tags"].get("user")
            if step is None or user is None:
                continue
            ts = event["timestamp_ns"]
            done, at = reached.get(user, (-1, 0))
            if step == done + 1 and (step == 0 or ts > at):
                reached[user] = (step, ts)
    return [sum(1 for done, _ in reached.values() if done >= k) for k in range(len(STEPS))]


def query_count(path: Path, cache: Path | bool) -> int:
    with Archive(path, cache=cache) as archive:
        return archive.events("page_view").count().value


def query_unique(path: Path, cache: Path | bool) -> int:
    with Archive(path, cache=cache) as archive:
        return archive.events("page_view").unique("user").value


def query_funnel(path: Path, cache: Path | bool) -> list[int]:
    with Archive(path, cache=cache) as archive:
        steps = [archive.events(name) for name in STEPS]
        return [step.count for step in archive.funnel(steps, ["user"]).value]


WAYS = (
    ("scan", "single-pass orjson scan in Python (peer)"),
    ("archive", "metricstream.query, archive read (no cache)"),
    ("cold", "metricstream.query, cold (first query builds cache)"),
    ("warm", "metricstream.query, warm (cache present)"),
)


def timed(func: Callable[[], object]) -> tuple[float, float, object]:
    started, cpu = time.perf_counter(), time.process_time()
    answer = func()
    return time.perf_counter() - started, time.process_time() - cpu, answer


def one_run(
    run: int,
    ours: Callable[[Path, Path | bool], object],
    scan: Callable[[Path], object],
    path: Path,
    cache: Path,
) -> dict[str, tuple[float, float, object]]:
    """Time each way once; the order alternates between runs (warm always follows cold)."""
    funcs: dict[str, Callable[[], object]] = {
        "scan": lambda: scan(path),
        "archive": lambda: ours(path, False),
        "cold": lambda: ours(path, cache),
        "warm": lambda: ours(path, cache),
    }
    order = (
        ["scan", "archive", "cold", "warm"] if run % 2 == 0 else ["cold", "warm", "archive", "scan"]
    )
    found = {}
    for name in order:
        if name == "cold":
            clear_caches(cache)
        found[name] = timed(funcs[name])
    return found


def compare(
    title: str,
    ours: Callable[[Path, Path | bool], object],
    scan: Callable[[Path], object],
    path: Path,
    cache: Path,
) -> tuple[dict[str, float], dict[str, float]]:
    """Print the four ways side by side; return each way's median wall and CPU seconds."""
    results = [one_run(run, ours, scan, path, cache) for run in range(RUNS)]
    answers = {name: result[2] for runs in results for name, result in runs.items()}
    if len({repr(answer) for answer in answers.values()}) != 1:
        raise SystemExit(f"{title}: answers differ: {answers}")
    walls = {name: statistics.median(r[name][0] for r in results) for name, _ in WAYS}
    cpus = {name: statistics.median(r[name][1] for r in results) for name, _ in WAYS}
    print(
        f"\n{title} over {EVENTS:,} zstd events (answer {answers['scan']}), "
        f"median of {RUNS} alternating runs"
    )
    print(f"  {'':<52} {'wall':>8} {'CPU':>8} {'events/s':>14} {'vs scan':>8}")
    for name, label in WAYS:
        print(
            f"  {label:<52} {walls[name]:>6.2f} s {cpus[name]:>6.2f} s "
            f"{EVENTS / walls[name]:>14,.0f} {walls['scan'] / walls[name]:>7.1f}x"
        )
    return walls, cpus


WAYS_JUDGED = (
    ("warm", "warm (cache present)"),
    ("cold", "cold (the first query builds the cache)"),
    ("archive", "without the cache (cache=False)"),
)


def report(name: str, wall: dict[str, float], cpu: dict[str, float]) -> None:
    """Each way of one query beside the scan; the warm one judged against the targets."""
    per_million = EVENTS / 1e6
    for way, label in WAYS_JUDGED:
        ratio = wall["scan"] / wall[way]
        targets = []
        if way == "warm":
            targets.append((f">= {TARGET_RATIO:.0f}x the scan, warm", ratio >= TARGET_RATIO))
            if name == "funnel":
                targets.append(
                    (f"under {TARGET_FUNNEL_S:.0f} s, warm", wall["warm"] < TARGET_FUNNEL_S)
                )
        side_by_side(
            f"query {name} over {EVENTS:,} zstd events, {label}",
            (f"metricstream.query, {way}", EVENTS / wall[way]),
            ("single-pass orjson scan in Python", EVENTS / wall["scan"]),
            "events/s",
            higher_is_better=True,
            cpu=(cpu[way] / per_million, cpu["scan"] / per_million),
            target=targets or None,
            spread=f"{wall[way]:.2f} s against {wall['scan']:.2f} s",
            key=f"query_{name}_{way}",
        )


def main() -> None:
    path = archive_path()
    print(f"  archive: {path} ({path.stat().st_size / 2**20:.0f} MiB, {EVENTS:,} events)")
    with tempfile.TemporaryDirectory(prefix="metricstream-bench-query-cache-") as directory:
        cache = Path(directory)
        measured = {
            "count": compare("count(page_view)", query_count, scan_count, path, cache),
            "unique": compare("unique users of page_view", query_unique, scan_unique, path, cache),
            "funnel": compare("3-step funnel on user", query_funnel, scan_funnel, path, cache),
        }
        size = sum(file.stat().st_size for file in cache.iterdir())
    for name, (wall, cpu) in measured.items():
        report(name, wall, cpu)
    alone(
        "query cache file after the three queries",
        (f"metricstream query cache for {EVENTS:,} events", size / 2**20),
        "MiB",
        note=f"the archive: {path.stat().st_size / 2**20:.0f} MiB",
    )


if __name__ == "__main__":
    main()
