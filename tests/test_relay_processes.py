"""Acceptance: relay processes in one group, SIGKILLed at random moments and restarted.

``metricstream relay`` processes read a 6-partition topic while a producer
writes to it with `KafkaSink`; a seeded schedule kills one of them with
SIGKILL now and then and starts it again. At the end every relay is
stopped with SIGTERM (it delivers, commits and exits 0), and what reached
the sinks is compared with a reference computed here:

- without windows, 3 relays, 5 kills: the Redis counters equal the
  reference exactly (every batch applied once, whatever was read twice);
- with windows (tumbling into Redis counters, sliding and session into JSON
  Lines), 2 relays per group, one kill per group: every window's aggregates
  equal the reference (quantiles within the sketch's 1%), and a window
  delivered twice to JSON Lines (at least once) is the same both times.

CI runs them with ``METRICSTREAM_RELAY_EVENTS`` events (default 30,000 and
12,000); ``METRICSTREAM_RELAY_EVENTS=200000`` runs the full scale.
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid
from collections import defaultdict
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import metricstream as ms
from metricstream.codecs.json import encode_event

from . import servers
from .relay_helpers import (
    BASE_NS,
    committed_offsets,
    create_topic,
    end_offsets,
    hosts_on_every_partition,
    produce,
    produce_raw,
    read_counters,
    redis_url,
    reference_counters,
    source_url,
    wait_for,
)
from .servers import free_port

pytestmark = [pytest.mark.servers, pytest.mark.faults]

S = 1_000_000_000
EVENTS = int(os.environ.get("METRICSTREAM_RELAY_EVENTS", "30000"))
WINDOW_EVENTS = min(EVENTS, 12_000) if "METRICSTREAM_RELAY_EVENTS" not in os.environ else EVENTS
PARTITIONS = 6
HOSTS = [f"host-{n:02d}" for n in range(30)]


@pytest.fixture(autouse=True)
def _servers() -> None:
    servers.require_url("Kafka (Tansu)", servers.KAFKA_BOOTSTRAP)
    servers.require_url("Redis", servers.REDIS_URL)


STARTED: list[RelayProcess] = []


@pytest.fixture(autouse=True)
def _no_relay_outlives_its_test() -> Iterator[None]:
    """A test that fails or times out leaves no relay process behind."""
    yield
    while STARTED:
        relay = STARTED.pop()
        if relay.process is not None and relay.process.poll() is None:
            relay.process.kill()
            relay.process.wait()


class RelayProcess:
    """One ``metricstream relay`` process, started again after a kill under the same slot."""

    def __init__(self, name: str, args: list[str], logs: Path) -> None:
        self.name = name
        self.args = args
        self.logs = logs
        self.starts = 0
        self.process: subprocess.Popen[bytes] | None = None
        STARTED.append(self)

    def start(self) -> None:
        self.starts += 1
        log = self.logs / f"{self.name}.{self.starts}"
        self.process = subprocess.Popen(
            [sys.executable, "-m", "metricstream", "relay", *self.args],
            stdout=open(f"{log}.out", "wb"),  # noqa: SIM115 - the child owns it
            stderr=open(f"{log}.err", "wb"),  # noqa: SIM115
        )

    def kill(self) -> None:
        assert self.process is not None
        assert self.process.poll() is None, self.output()
        self.process.send_signal(signal.SIGKILL)
        self.process.wait()

    def stop(self) -> int:
        """SIGTERM, then the exit status (it delivers and commits first)."""
        assert self.process is not None
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        try:
            return self.process.wait(60)
        except subprocess.TimeoutExpired:
            self.process.kill()
            raise

    def output(self) -> str:
        log = self.logs / f"{self.name}.{self.starts}"
        return Path(f"{log}.out").read_text() + Path(f"{log}.err").read_text()


def produce_over(
    topic: str, events: list[ms.MetricEvent], seconds: float, **options: Any
) -> threading.Thread:
    """Publish `events` in 40 pieces spread over `seconds`, on a thread."""

    def run() -> None:
        size = max(1, len(events) // 40)
        for first in range(0, len(events), size):
            produce(topic, events[first : first + size], **options)
            time.sleep(seconds / 40)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread


def kill_on_schedule(
    relays: list[RelayProcess], kills: int, between: tuple[float, float], seed: int
) -> threading.Thread:
    """On a thread: SIGKILL a random relay at `kills` random moments `between` (s from now).

    Each is started again 0.2 to 1.5 s after its kill.
    """
    rnd = random.Random(seed)
    moments = sorted(rnd.uniform(*between) for _ in range(kills))
    victims = [rnd.choice(relays) for _ in moments]
    pauses = [rnd.uniform(0.2, 1.5) for _ in moments]
    started = time.monotonic()

    def run() -> None:
        for moment, victim, pause in zip(moments, victims, pauses, strict=True):
            time.sleep(max(0.0, started + moment - time.monotonic()))
            victim.kill()
            time.sleep(pause)
            victim.start()

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread


def http_events(
    count: int, hosts: list[str] = HOSTS, *, windows: bool = False
) -> list[ms.MetricEvent]:
    """Events of 30 hosts, 10 ms apart in event time.

    With `windows`, a 5 s pause every 1,000 events (sessions end) and each
    event up to 2.4 s older than its place (out of order, within the 5 s
    of allowed lateness: windows of one partition interleave).
    """
    made = []
    for i in range(count):
        shift = ((i // 1000) * 5 * S - (i % 7) * 400_000_000) if windows else 0
        made.append(
            ms.MetricEvent(
                "http",
                {"host": hosts[i % len(hosts)]},
                {"bytes": i % 997, "latency_ms": float(1 + (i * 7) % 300)},
                timestamp_ns=BASE_NS + i * 10_000_000 + shift,
            )
        )
    return made


def wait_committed(group: str, topic: str, timeout: float) -> None:
    ends = {p: end if end else -1001 for p, end in end_offsets(topic, PARTITIONS).items()}
    wait_for(
        lambda: committed_offsets(group, topic, PARTITIONS) == ends,
        timeout,
        f"{group} to commit {ends}",
    )


@pytest.mark.timeout(120 + EVENTS // 500)
class TestRelayProcesses:
    """Relays killed at random moments: Redis counters exact, windows exact, graceful SIGTERM."""

    def test_three_relays_five_kills_redis_counters_exact(
        self, redis_prefix: str, tmp_path: Path
    ) -> None:
        topic = create_topic("relay-kills", PARTITIONS)
        group = f"relay-kills-{uuid.uuid4().hex[:6]}"
        sent = http_events(EVENTS)
        args = [
            "--from",
            source_url(topic, group),
            "--to",
            redis_url(redis_prefix),
            "--stop-timeout",
            "20",
        ]
        relays = [RelayProcess(f"relay-{n}", args, tmp_path) for n in range(3)]
        for relay in relays:
            relay.start()
        seconds = max(8.0, EVENTS / 5000)
        producing = produce_over(topic, sent, seconds)
        killing = kill_on_schedule(relays, kills=5, between=(1.0, seconds + 2), seed=20240611)
        killing.join(300)
        producing.join(300)
        wait_committed(group, topic, timeout=120 + EVENTS / 2000)
        statuses = [relay.stop() for relay in relays]
        assert statuses == [0, 0, 0], [relay.output() for relay in relays]
        assert all("Final accounting" in relay.output() for relay in relays)
        assert read_counters(servers.REDIS_URL, redis_prefix, "http", HOSTS) == reference_counters(
            sent
        )
        assert sum(relay.starts for relay in relays) == 3 + 5

    def test_windows_in_three_groups_killed_and_rebuilt(
        self, redis_prefix: str, tmp_path: Path
    ) -> None:
        topic = create_topic("relay-window-kills", PARTITIONS)
        run = uuid.uuid4().hex[:6]
        hosts = hosts_on_every_partition(PARTITIONS, 5)  # every partition moves the watermark
        sent = http_events(WINDOW_EVENTS, hosts, windows=True)
        tumbling_mapping = {
            "sum": [["measurement~host", "count"], ["measurement~window~host", "sum_bytes"]]
        }
        common = ["--by", "host", "--allowed-lateness", "5s", "--idle-timeout", "30s"]
        groups = {
            "tumbling": ["--window", "tumbling 10s", "--name", "http_tumbling",
                         "--aggregate", "count,sum:bytes",
                         "--to", redis_url(redis_prefix, tumbling_mapping)],
            "sliding": ["--window", "sliding 20s every 10s", "--name", "http_sliding",
                        "--aggregate", "count,sum:bytes,max:latency_ms,quantiles:latency_ms",
                        "--to", "jsonl:{dir}/sliding-{slot}.jsonl"],
            "session": ["--window", "session gap 3s", "--name", "http_session",
                        "--aggregate", "count,sum:bytes,min:latency_ms",
                        "--to", "jsonl:{dir}/session-{slot}.jsonl"],
        }  # fmt: skip
        relays: dict[str, list[RelayProcess]] = {}
        for kind, options in groups.items():
            args = ["--from", source_url(topic, f"relay-{kind}-{run}"), *common, *options]
            relays[kind] = [  # a JSON Lines file has one writer: each relay writes its own
                RelayProcess(
                    f"{kind}-{n}", [a.format(dir=tmp_path, slot=n) for a in args], tmp_path
                )
                for n in range(2)
            ]
            for relay in relays[kind]:
                relay.start()
        seconds = max(8.0, WINDOW_EVENTS / 3000)
        producing = produce_over(topic, sent, seconds, key="host")
        killing = [
            kill_on_schedule(procs, kills=1, between=(0.3 * seconds, 0.9 * seconds), seed=7 + n)
            for n, procs in enumerate(relays.values())
        ]
        for thread in (*killing, producing):
            thread.join(300)
        closers = [
            ms.MetricEvent(
                "http",
                {"host": "closer"},
                {"bytes": 0, "latency_ms": 1.0},
                timestamp_ns=BASE_NS + 10 * 3600 * S,
            )
            for _ in range(PARTITIONS)
        ]
        headers = [("content-type", b"application/json")]
        produce_raw(topic, ((p, encode_event(e), headers) for p, e in enumerate(closers)))
        expected = {kind: window_reference(sent, kind) for kind in groups}
        try:
            wait_for(
                lambda: (
                    windows_read(tmp_path, "sliding").keys() == expected["sliding"].keys()
                    and windows_read(tmp_path, "session").keys() == expected["session"].keys()
                    and tumbling_totals(redis_prefix, hosts) == totals(sent)
                ),
                timeout=120,
                what="every window of every group",
            )
        finally:
            statuses = {kind: [relay.stop() for relay in procs] for kind, procs in relays.items()}
        assert statuses == {kind: [0, 0] for kind in groups}, {
            relay.name: relay.output() for procs in relays.values() for relay in procs
        }
        for kind in ("sliding", "session"):
            got = windows_read(tmp_path, kind)
            for key, (count, total, extreme, latencies) in expected[kind].items():
                fields = got[key]
                assert (fields["count"], fields["sum_bytes"]) == (count, total), (kind, key)
                if kind == "sliding":
                    assert fields["max_latency_ms"] == extreme
                    exact = sorted(latencies)[int(0.99 * (len(latencies) - 1))]
                    assert abs(fields["p99_latency_ms"] - exact) <= 0.01 * exact
                else:
                    assert fields["min_latency_ms"] == extreme


def window_reference(events: list[ms.MetricEvent], kind: str) -> dict[Any, Any]:
    """Per (host, window start): count, byte sum, max (sliding) or min (session) latency, values."""
    members: dict[Any, list[ms.MetricEvent]] = defaultdict(list)
    if kind == "session":
        by_host: dict[str, list[ms.MetricEvent]] = defaultdict(list)
        for event in events:
            by_host[event.tags["host"]].append(event)
        for host, mine in by_host.items():
            start = last = None
            for event in sorted(mine, key=lambda e: e.timestamp_ns):
                t = event.timestamp_ns
                if last is None or t >= last + 3 * S:
                    start = t
                last = t
                members[(host, start)].append(event)
    else:
        size, every = (10 * S, 10 * S) if kind == "tumbling" else (20 * S, 10 * S)
        for event in events:
            t = event.timestamp_ns
            last_start = t - t % every
            for window_start in range(last_start, t - size, -every):
                members[(event.tags["host"], window_start)].append(event)
    reference = {}
    for key, group in members.items():
        latencies = [e.fields["latency_ms"] for e in group]
        extreme = min(latencies) if kind == "session" else max(latencies)
        reference[key] = (len(group), sum(e.fields["bytes"] for e in group), extreme, latencies)
    return reference


def windows_read(directory: Path, kind: str) -> dict[Any, dict[str, Any]]:
    """A group's windows in its JSON Lines files by (host, start); a repeated one is the same."""
    found: dict[Any, dict[str, Any]] = {}
    lines = [
        line for path in directory.glob(f"{kind}-*.jsonl") for line in path.read_text().splitlines()
    ]
    for line in lines:
        if not line.strip():
            continue
        row = json.loads(line)
        key = (row["tags"]["host"], row["timestamp_ns"])
        if found.setdefault(key, row["fields"]) != row["fields"]:
            raise AssertionError(f"{kind} window {key} delivered twice, differently")
    return found


def totals(events: list[ms.MetricEvent]) -> dict[str, tuple[int, int]]:
    return reference_counters(events)


def tumbling_totals(prefix: str, hosts: list[str]) -> dict[str, tuple[int, int]]:
    """Per host, the sums of the tumbling windows' counts and byte sums, as Redis holds them."""
    from metricstream.sinks import RedisCounterReader

    start, end = BASE_NS // S - 86_400, BASE_NS // S + 2 * 86_400
    found = {}
    with RedisCounterReader(servers.REDIS_URL, prefix=prefix) as reader:
        for host in hosts:
            count = reader.sum("measurement~host", ("http_tumbling", host), start, end).total
            total = reader.sum(
                "measurement~window~host", ("http_tumbling", "tumbling", host), start, end
            ).total
            if count:
                found[host] = (int(count), int(total))
    return found


class TestStopping:
    """SIGTERM with a sink down: the relay gives up after --stop-timeout, commits nothing more."""

    def test_exit_status_1_and_nothing_committed_past_what_was_delivered(
        self, tmp_path: Path
    ) -> None:
        topic = create_topic("relay-stop", 2)
        group = f"relay-stop-{uuid.uuid4().hex[:6]}"
        produce(topic, http_events(100))
        port = free_port()
        down = f"redis://127.0.0.1:{free_port()}/0?mapping=" + urllib.parse.quote(
            json.dumps({"count": ["measurement"]})
        )
        args = ["--from", source_url(topic, group), "--to", down, "--stop-timeout", "1",
                "--health-port", str(port)]  # fmt: skip
        relay = RelayProcess("stopping", args, tmp_path)
        relay.start()
        wait_for(lambda: read_count(port, "events_read") == 100, 60, "the relay to read everything")
        assert relay.stop() == 1, relay.output()
        assert "Final accounting" in relay.output()
        assert set(committed_offsets(group, topic, 2).values()) <= {0, -1001}


def read_count(port: int, name: str) -> int:
    """A count of the relay's ``/healthz`` (served with 503 while a sink is down), or -1."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=2) as answer:
            body = answer.read()
    except urllib.error.HTTPError as refused:
        body = refused.read()
    except OSError:
        return -1
    return int(json.loads(body)["relay"]["counts"][name])
