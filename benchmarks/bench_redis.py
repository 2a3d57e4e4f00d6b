"""End-to-end throughput into Redis counters, beside a naive one-command-per-metric port.

Workload: the demo's simulated analytics events (`AnalyticsWorkload`, fixed
seed), generated before timing. Mapping: 2 unique (``user``, ``org~user``),
4 count (``measurement``, ``measurement~org``, ``measurement~utm_source``,
``path~utm_source``) and 2 sum (``utm_source`` += ``amount``,
``measurement~path`` += ``duration_ms``) metrics, daily buckets (the sink's
default).

- metricstream: an EventStreamer with a RedisCounterSink (batch_size 5000):
  each batch aggregated on the client and applied exactly once by one Lua
  script call;
- naive: the same streamer and batches, with a sink that sends one command
  per metric per event (INCRBY / INCRBYFLOAT / PFADD), pipelined per batch:
  what a direct port of traqq's command generation would do.

Both are timed from the first ``send`` until ``flush()`` returns (every event
acknowledged by Redis), in alternating runs (medians of 3). Client CPU is the
process's CPU time; server CPU is Redis's own (``INFO cpu``), from a private
``redis-server`` on a free port when one can be started (else
``METRICSTREAM_REDIS_URL``, shared, so its CPU figure is only indicative).
Afterwards both sides' counters are compared key by key: they must agree.
Targets: at least ``TARGET_RATE`` events/s, and ``TARGET_RATIO`` times the
naive port's.
"""

from __future__ import annotations

import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

sys.path.insert(0, os.path.dirname(__file__))

import redis
from _common import side_by_side

import metricstream as ms
from metricstream.cli.workload import AnalyticsWorkload
from metricstream.properties import property_values
from metricstream.sinks import CounterMapping, RedisCounterSink

EVENTS = 200_000
BATCH_SIZE = 5000
RUNS = 3
TARGET_RATE = 200_000
TARGET_RATIO = 5.0
MAPPING = CounterMapping(
    unique=["user", "org~user"],
    count=["measurement", "measurement~org", "measurement~utm_source", "path~utm_source"],
    sum=[("utm_source", "amount"), ("measurement~path", "duration_ms")],
)


class NaiveCounterSink:
    """One pipelined command per metric per event, keys as the counter sink writes them."""

    name = "naive"

    def __init__(self, url: str, prefix: str) -> None:
        self.prefix = prefix
        self.client = redis.Redis.from_url(url)
        self.commands = 0

    def _day(self, event: ms.MetricEvent) -> int:
        seconds = event.timestamp_ns // 1_000_000_000
        return seconds - seconds % 86_400

    def prepare(self, batch: ms.EventBatch) -> list[tuple[str, str, Any]]:
        commands: list[tuple[str, str, Any]] = []
        for event in batch.events:
            head = f"{self.prefix}{{}}:d:{self._day(event)}:"
            for metric in MAPPING.metrics:
                values = [property_values((event,), name)[0] for name in metric.names]
                if None in values:
                    continue
                texts = [str(value) for value in values]
                if metric.kind == "bmp":
                    key = head.format("bmp") + metric.pattern
                    if len(texts) > 1:
                        key += ":" + "~".join(texts[:-1])
                    commands.append(("pfadd", key, texts[-1]))
                elif metric.kind == "add":
                    key = head.format("add") + f"{metric.pattern}:{'~'.join(texts)}"
                    commands.append(("incrby", key, 1))
                else:
                    amount = property_values((event,), metric.value_field or "")[0]
                    if isinstance(amount, (int, float)) and not isinstance(amount, bool):
                        key = head.format("adv") + f"{metric.pattern}:{'~'.join(texts)}"
                        verb = "incrbyfloat" if isinstance(amount, float) else "incrby"
                        commands.append((verb, key, amount))
        return commands

    def write(self, commands: list[tuple[str, str, Any]]) -> None:
        pipe = self.client.pipeline(transaction=False)
        for verb, key, argument in commands:
            getattr(pipe, verb)(key, argument)
        pipe.execute()
        self.commands += len(commands)

    def check(self) -> None:
        self.client.ping()

    def close(self) -> None:
        self.client.close()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@contextmanager
def redis_server() -> Iterator[tuple[str, bool]]:
    """A private redis-server for the run (else the shared one): (url, private)."""
    binary = shutil.which("redis-server")
    if binary is None:
        yield os.environ.get("METRICSTREAM_REDIS_URL", "redis://127.0.0.1:26379/0"), False
        return
    port = free_port()
    workdir = tempfile.mkdtemp(prefix="metricstream-bench-redis-")
    process = subprocess.Popen(
        [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
         "--dir", workdir],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )  # fmt: skip
    client = redis.Redis(port=port)
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                client.ping()
                break
            except redis.ConnectionError:
                assert time.monotonic() < deadline, "redis-server did not start"
                time.sleep(0.05)
        yield f"redis://127.0.0.1:{port}/0", True
    finally:
        client.close()
        process.terminate()
        process.wait(30)
        shutil.rmtree(workdir, ignore_errors=True)


def server_cpu(client: redis.Redis) -> float:
    info = client.info("cpu")
    return float(info["used_cpu_sys"]) + float(info["used_cpu_user"])


def run_once(sink: Any, events: list[ms.MetricEvent], client: redis.Redis) -> dict[str, float]:
    streamer = ms.EventStreamer(
        [sink], batch_size=BATCH_SIZE, max_buffer=len(events), flush_interval=1.0,
        register_atexit=False,
    )  # fmt: skip
    cpu, server, started = time.process_time(), server_cpu(client), time.perf_counter()
    streamer.send_many(events)
    assert streamer.flush(600)
    elapsed = time.perf_counter() - started
    cpu, server = time.process_time() - cpu, server_cpu(client) - server
    health = streamer.health().sinks[sink.name]
    streamer.shutdown()
    assert (health.events_written, health.events_dropped) == (len(events), 0), health
    count = len(events)
    return {
        "rate": count / elapsed,
        "cpu_us": cpu / count * 1e6,
        "server_us": server / count * 1e6,
        "share": cpu / elapsed,
        "load": os.getloadavg()[0],
    }


def stored(client: redis.Redis, prefix: str) -> dict[str, Any]:
    """Every counter under a prefix: numbers for counts and sums, PFCOUNT for uniques."""
    found: dict[str, Any] = {}
    for raw in client.scan_iter(match=f"{prefix}*", count=1000):
        key = raw.decode()[len(prefix) :]
        if key.startswith(("add:", "adv:")):
            found[key] = round(float(client.get(raw) or 0), 6)
        elif key.startswith("bmp:"):
            found[key] = client.pfcount(raw)
    return found


def ops_per_event(sink: RedisCounterSink, events: list[ms.MetricEvent]) -> tuple[float, float]:
    commands = calls = 0
    for first in range(0, len(events), BATCH_SIZE):
        payload = sink.prepare(ms.EventBatch(events[first : first + BATCH_SIZE]))
        commands += payload.commands
        calls += len(payload.calls)
    return commands / len(events), calls / len(events)


def measure() -> tuple[dict[str, dict[str, float]], dict[str, float]]:
    """Alternating runs of both sides; medians, and the facts of the comparison."""
    events = AnalyticsWorkload(seed=42).events(EVENTS)
    runs: dict[str, list[dict[str, float]]] = {"ours": [], "naive": []}
    facts: dict[str, float] = {}
    with redis_server() as (url, private):
        client = redis.Redis.from_url(url)
        run = uuid.uuid4().hex[:8]
        for number in range(RUNS):
            ours_prefix, naive_prefix = f"bench:{run}:ms{number}:", f"bench:{run}:naive{number}:"
            sink = RedisCounterSink(url, mapping=MAPPING, prefix=ours_prefix, name="redis")
            runs["ours"].append(run_once(sink, events, client))
            baseline = NaiveCounterSink(url, naive_prefix)
            runs["naive"].append(run_once(baseline, events, client))
            if number == 0:
                ours_counts = stored(client, ours_prefix)
                assert ours_counts == stored(client, naive_prefix), "the two sides disagree"
                facts["counters"] = len(ours_counts)
                facts["naive_commands"] = baseline.commands / EVENTS
            for prefix in (ours_prefix, naive_prefix):
                for batch in _chunks(list(client.scan_iter(match=f"{prefix}*", count=1000))):
                    client.delete(*batch)
        facts["commands"], facts["calls"] = ops_per_event(sink, events)
        facts["private"] = float(private)
        client.close()
    median = {
        side: {key: statistics.median(r[key] for r in results) for key in results[0]}
        for side, results in runs.items()
    }
    return median, facts


def main() -> dict[str, float]:
    median, facts = measure()
    ours, naive = median["ours"], median["naive"]
    server = "private redis-server" if facts["private"] else "shared Redis"
    print(f"\n(r) Redis counters, {EVENTS:,} demo events, 2 unique + 4 count + 2 sum metrics, "
          f"daily buckets, batch {BATCH_SIZE};\n    medians of {RUNS} alternating runs "
          f"({server})")  # fmt: skip
    rate = ours["rate"]
    ratio = side_by_side(
        f"Redis counters, {EVENTS:,} demo events: first send until every event is acknowledged",
        ("metricstream RedisCounterSink (exactly once)", rate),
        ("naive: one pipelined command per metric", naive["rate"]),
        "events/s",
        higher_is_better=True,
        cpu=(ours["cpu_us"], naive["cpu_us"]),
        target=[
            (f">= {TARGET_RATE:,} events/s", rate >= TARGET_RATE),
            (f">= {TARGET_RATIO:.0f}x the naive port", rate / naive["rate"] >= TARGET_RATIO),
        ],
        key="redis",
    )
    side_by_side(
        "Redis counters: events per second of client CPU (1 / client CPU per event)",
        ("metricstream RedisCounterSink", 1e6 / ours["cpu_us"]),
        ("naive", 1e6 / naive["cpu_us"]),
        "events/s",
        higher_is_better=True,
    )
    commands, calls = facts["commands"], facts["calls"]
    print(f"  Redis commands per event      {commands:>8.3f} (after aggregation; "
          f"{calls:.5f} script calls)   naive {facts['naive_commands']:>6.3f}")  # fmt: skip
    for label, key in (("client CPU per event", "cpu_us"), ("Redis CPU per event", "server_us")):
        print(f"  {label:<29} {ours[key]:>8.2f} us{'naive':>38} {naive[key]:>6.2f} us")
    print(f"  client CPU share of the wall time {ours['share']:>5.0%}; machine load average "
          f"{ours['load']:.1f} on {os.cpu_count()} CPUs")  # fmt: skip
    print(f"  both sides stored the same {facts['counters']:,.0f} counters")
    return {"throughput": rate, "baseline": naive["rate"], "ratio": ratio}


def _chunks(items: list[Any], size: int = 1000) -> Iterator[list[Any]]:
    for first in range(0, len(items), size):
        yield items[first : first + size]


if __name__ == "__main__":
    main()
