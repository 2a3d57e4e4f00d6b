"""Queries over a 5-million-event zstd archive: metricstream.query (DuckDB) beside a Python scan.

Run it with ``python benchmarks/bench_query.py`` (or through ``make bench``).

The archive is what `JsonLinesSink` writes for the demo's workload (page
views, clicks, conversions, signups, purchases of 500,000 users over three
days, one zstd frame per 1,000 events). It is generated once into
``$METRICSTREAM_BENCH_CACHE`` (default: the temp dir) and reused.

Three questions, each answered by a fresh `Archive` (so the frame check is
included) and by a straightforward single-pass scan in Python (zstd stream,
``orjson.loads`` per line), in alternating runs; medians are printed with the
CPU time per event of each:

- count: page views;
- unique: distinct users with a page view;
- funnel: page_view -> click -> conversion in order, matched on the user.

Targets: each query at least 10x the scan's events/s, and the funnel in
under 2 s. A second table compares ways of feeding DuckDB only intact frames.
"""

from __future__ import annotations

import io
import mmap
import os
import random
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import duckdb
import orjson
import zstandard
from _common import side_by_side

from metricstream.cli.workload import EVENT_MIX
from metricstream.codecs.frames import Frame, iter_frames
from metricstream.contract import EventBatch
from metricstream.event import MetricEvent
from metricstream.query import Archive
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


def query_count(path: Path) -> int:
    with Archive(path) as archive:
        return archive.events("page_view").count().value


def query_unique(path: Path) -> int:
    with Archive(path) as archive:
        return archive.events("page_view").unique("user").value


def query_funnel(path: Path) -> list[int]:
    with Archive(path) as archive:
        steps = [archive.events(name) for name in STEPS]
        return [step.count for step in archive.funnel(steps, ["user"]).value]


def timed(func: Callable[[Path], object], path: Path) -> tuple[float, float, object]:
    started, cpu = time.perf_counter(), time.process_time()
    answer = func(path)
    return time.perf_counter() - started, time.process_time() - cpu, answer


def compare(
    title: str, ours: Callable[[Path], object], scan: Callable[[Path], object], path: Path
) -> tuple[float, float]:
    walls: dict[str, list[float]] = {"ours": [], "scan": []}
    cpus: dict[str, list[float]] = {"ours": [], "scan": []}
    answers = {}
    for run in range(RUNS):
        order = [("scan", scan), ("ours", ours)] if run % 2 else [("ours", ours), ("scan", scan)]
        for name, func in order:
            wall, cpu, answer = timed(func, path)
            walls[name].append(wall)
            cpus[name].append(cpu)
            answers[name] = answer
    if answers["ours"] != answers["scan"]:
        raise SystemExit(f"{title}: answers differ: {answers['ours']} != {answers['scan']}")
    ours_wall, scan_wall = statistics.median(walls["ours"]), statistics.median(walls["scan"])
    ratio = side_by_side(
        f"{title} over {EVENTS:,} zstd events (answer {answers['ours']}), median of {RUNS}",
        ("metricstream.query (DuckDB)", EVENTS / ours_wall),
        ("single-pass orjson scan in Python", EVENTS / scan_wall),
        "events/s",
        higher_is_better=True,
    )
    print(
        f"  wall: {ours_wall:.2f} s vs {scan_wall:.2f} s; CPU per event: "
        f"{statistics.median(cpus['ours']) / EVENTS * 1e9:.0f} ns vs "
        f"{statistics.median(cpus['scan']) / EVENTS * 1e9:.0f} ns"
    )
    return ratio, ours_wall


def feeding(path: Path) -> None:
    """How long each way of giving DuckDB only intact frames takes for one count."""
    columns = {"measurement": "VARCHAR"}
    sql = (
        "SELECT count(*) FROM read_ndjson(?, columns = ?, compression = ?, "
        "format = 'newline_delimited')"
    )

    def full_check() -> None:
        with (
            open(path, "rb") as handle,
            mmap.mmap(handle.fileno(), 0, access=mmap.ACCESS_READ) as data,
        ):
            for _ in iter_frames(data, len(data)):
                pass
        duckdb.connect().execute(sql, [str(path), columns, "zstd"]).fetchall()

    def decompress_to_plain() -> None:
        with tempfile.TemporaryDirectory() as directory:
            plain = Path(directory) / "plain.jsonl"
            with (
                open(path, "rb") as handle,
                mmap.mmap(handle.fileno(), 0, access=mmap.ACCESS_READ) as data,
                open(plain, "wb") as out,
            ):
                for found in iter_frames(data, len(data)):
                    if isinstance(found, Frame):
                        out.write(found.content)
            duckdb.connect().execute(sql, [str(plain), columns, "none"]).fetchall()

    ways = [
        ("frame headers checked, file cut in pieces (ours)", lambda: query_count(path)),
        ("every frame decompressed in Python, file read whole", full_check),
        ("frames decompressed into a plain temp file", decompress_to_plain),
    ]
    print(
        f"\nFeeding DuckDB only intact frames: one count over {EVENTS:,} events (median of {RUNS})"
    )
    for label, func in ways:
        walls = []
        for _ in range(RUNS):
            started = time.perf_counter()
            func()
            walls.append(time.perf_counter() - started)
        print(f"  {label:<52} {statistics.median(walls):>6.2f} s")


def main() -> None:
    path = archive_path()
    print(f"  archive: {path} ({path.stat().st_size / 2**20:.0f} MiB, {EVENTS:,} events)")
    ratios = {
        "count": compare("count(page_view)", query_count, scan_count, path)[0],
        "unique": compare("unique users of page_view", query_unique, scan_unique, path)[0],
    }
    ratios["funnel"], funnel_wall = compare(
        "3-step funnel on user", query_funnel, scan_funnel, path
    )
    feeding(path)
    print("\nTargets")
    for name, ratio in ratios.items():
        verdict = "met" if ratio >= TARGET_RATIO else "NOT met"
        print(f"  {name:<8} {ratio:6.1f}x the scan (target {TARGET_RATIO:.0f}x): {verdict}")
    verdict = "met" if funnel_wall < TARGET_FUNNEL_S else "NOT met"
    print(f"  funnel   {funnel_wall:6.2f} s (target < {TARGET_FUNNEL_S:.0f} s): {verdict}")


if __name__ == "__main__":
    main()
