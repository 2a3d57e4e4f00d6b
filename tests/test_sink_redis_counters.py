"""RedisCounterSink and RedisCounterReader against real Redis: a single node and a cluster.

Expected counts, sums and unique members are computed in the tests from the
events themselves (plain dict and set arithmetic, an independent key
formatter), then compared key by key with what Redis holds and through the
reader. Unique counts are HyperLogLog estimates: Redis documents a standard
error of 0.81%; the tests allow 3% (3.7 standard errors) or 1, whichever is
larger. The estimate is deterministic for a given set of members, so with the
seeded workload a test passes or fails the same way every time; the bound
only has to be one the estimator meets for any set.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import logging
import os
import random
import re
import subprocess
import threading
import time
import uuid
import zoneinfo
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
from redis.cluster import RedisCluster

import metricstream as ms
from metricstream.cli import main
from metricstream.exceptions import ConfigError, PermanentSinkError, TransientSinkError
from metricstream.sinks import (
    CounterLimits,
    CounterMapping,
    RedisCounterReader,
    RedisCounterSink,
    TimeBuckets,
    sink_from_url,
)
from metricstream.sinks.redis_counters import parse_key

from . import servers

MAPPING = CounterMapping(
    unique=["user", "org~user"],
    count=["measurement", "event~source", "org~measurement~plan"],
    sum=[("measurement", "amount"), ("org~source", "units")],
)
ORGS = [f"org-{n}" for n in range(12)]
SOURCES = ["google", "direct", "mail:news", "a~b", "back\\slash"]
PLANS = ["free", "pro", None]
BASE = 1_700_006_400  # 2023-11-15T00:00:00Z
HLL_RELATIVE_ERROR = 0.03


# --- servers and prefixes ------------------------------------------------------------


@pytest.fixture(params=["single", "cluster"])
def target(request: pytest.FixtureRequest) -> str:
    """The URL of a single Redis node or of the three-node cluster."""
    if request.param == "single":
        servers.require_url("Redis", servers.REDIS_URL)
        return servers.REDIS_URL
    servers.require_url("Redis Cluster", servers.REDIS_CLUSTER_URL)
    return servers.REDIS_CLUSTER_URL


@pytest.fixture
def single() -> str:
    servers.require_url("Redis", servers.REDIS_URL)
    return servers.REDIS_URL


def admin(url: str) -> Any:
    if url.startswith("redis+cluster://"):
        return RedisCluster.from_url(url.replace("redis+cluster://", "redis://"))
    return redis.Redis.from_url(url)


def nodes(client: Any) -> list[redis.Redis]:
    """The clients of every primary (the client itself for a single node)."""
    if isinstance(client, RedisCluster):
        return [node.redis_connection for node in client.get_primaries()]
    return [client]


def all_keys(client: Any, prefix: str) -> list[bytes]:
    return [key for node in nodes(client) for key in node.scan_iter(match=f"{prefix}*", count=1000)]


def read_everything(client: Any, prefix: str) -> dict[str, Any]:
    """Every key of a prefix -> its value: a number, a PFCOUNT, a set, or (batch keys) its TTL."""
    stored: dict[str, Any] = {}
    readers = {"add": "get", "adv": "get", "bmp": "pfcount", "idx": "smembers", "bat": "ttl"}
    for node in nodes(client):
        keys = [key.decode() for key in node.scan_iter(match=f"{prefix}*", count=1000)]
        pipe = node.pipeline(transaction=False)
        for key in keys:
            getattr(pipe, readers[key[len(prefix) : len(prefix) + 3]])(key)
        for key, found in zip(keys, pipe.execute(), strict=True):
            if isinstance(found, bytes):
                stored[key] = float(found)
            elif isinstance(found, set):
                stored[key] = {member.decode() for member in found}
            else:
                stored[key] = found
    return stored


def delete_all(client: Any, prefix: str) -> None:
    """Delete every key of a prefix, node by node (each node holds the keys it lists)."""
    for node in nodes(client):
        pipe = node.pipeline(transaction=False)
        for key in node.scan_iter(match=f"{prefix}*", count=1000):
            pipe.unlink(key)
        pipe.execute()


@pytest.fixture
def prefix(request: pytest.FixtureRequest) -> Iterator[str]:
    """A key prefix unique to this test run; its keys are deleted afterwards."""
    chosen = f"mst:{uuid.uuid4().hex[:10]}:"
    yield chosen
    for url in (servers.REDIS_URL, servers.REDIS_CLUSTER_URL):
        try:
            client = admin(url)
            delete_all(client, chosen)
            client.close()
        except (redis.RedisError, redis.exceptions.RedisClusterException):
            pass  # that server is not up: the test skipped or failed already


# --- an independent reference --------------------------------------------------------


def workload(count: int, seed: int = 7, days: int = 3) -> list[ms.MetricEvent]:
    """Events over `days` days: some lack a plan, some a source; ints and floats."""
    rnd = random.Random(seed)
    events = []
    for _ in range(count):
        tags = {"org": rnd.choice(ORGS), "user": f"u{rnd.randrange(4000)}"}
        if rnd.random() < 0.9:
            tags["source"] = rnd.choice(SOURCES)
        plan = rnd.choice(PLANS)
        if plan is not None:
            tags["plan"] = plan
        kind = rnd.choice(["view", "view", "click", "purchase"])
        fields: dict[str, Any] = {"units": rnd.randrange(1, 5)}
        if kind == "purchase":
            fields["amount"] = round(rnd.uniform(1, 300), 2)
        stamp = (BASE + rnd.randrange(days * 86_400)) * 10**9 + rnd.randrange(10**9)
        events.append(ms.MetricEvent(kind, tags=tags, fields=fields, timestamp_ns=stamp))
    return events


def esc(text: str) -> str:
    return text.replace("\\", "\\\\").replace(":", "\\:").replace("~", "\\~")


def expected_counters(
    events: list[ms.MetricEvent], prefix: str, hourly: bool = True
) -> tuple[dict[str, float], dict[str, set[str]], dict[str, set[str]]]:
    """(count and sum keys -> value, unique keys -> members, index keys -> members), for MAPPING."""
    values: dict[str, float] = {}
    uniques: dict[str, set[str]] = {}
    index: dict[str, set[str]] = {}

    def prop(event: ms.MetricEvent, name: str) -> Any:
        if name in ("measurement", "event"):
            return event.measurement
        return event.tags.get(name, event.fields.get(name))

    for event in events:
        seconds = event.timestamp_ns // 10**9
        buckets = [("d", seconds - seconds % 86_400)]
        if hourly:
            buckets.append(("h", seconds - seconds % 3600))
        for kind, pattern, field in [
            ("add", "measurement", None),
            ("add", "event~source", None),
            ("add", "org~measurement~plan", None),
            ("adv", "measurement", "amount"),
            ("adv", "org~source", "units"),
        ]:
            parts = [prop(event, name) for name in pattern.split("~")]
            amount = 1 if field is None else prop(event, field)
            if None in parts or amount is None:
                continue
            text = "~".join(esc(part) for part in parts)
            for letter, start in buckets:
                key = f"{prefix}{kind}:{letter}:{start}:{pattern}:{text}"
                values[key] = values.get(key, 0) + amount
                index.setdefault(f"{prefix}idx:{kind}:{letter}:{start}:{pattern}", set()).add(text)
        for letter, start in buckets:
            user, org = event.tags["user"], event.tags["org"]
            uniques.setdefault(f"{prefix}bmp:{letter}:{start}:user", set()).add(user)
            uniques.setdefault(f"{prefix}bmp:{letter}:{start}:org~user:{org}", set()).add(user)
            index.setdefault(f"{prefix}idx:bmp:{letter}:{start}:org~user", set()).add(org)
    return values, uniques, index


def assert_estimate(estimate: int, members: set[str] | int) -> None:
    true = members if isinstance(members, int) else len(members)
    assert abs(estimate - true) <= max(1, HLL_RELATIVE_ERROR * true), (estimate, true)


def assert_counted(url: str, events: list[ms.MetricEvent], prefix: str) -> None:
    """Every daily count and sum of `events` is in Redis, exactly (floats to 1e-12)."""
    values, _, _ = expected_counters(events, prefix, hourly=False)
    client = admin(url)
    for key, value in values.items():
        assert float(client.get(key)) == pytest.approx(value, rel=1e-12), key
    client.close()


def stream(sink: RedisCounterSink, events: list[ms.MetricEvent], batch_size: int = 1000) -> Any:
    streamer = ms.EventStreamer(
        [sink], batch_size=batch_size, max_buffer=max(len(events), batch_size),
        flush_interval=0.05,
        register_atexit=False,
    )  # fmt: skip
    assert streamer.send_many(e.copy() for e in events) == len(events)
    assert streamer.flush(120)
    health = streamer.health().sinks[sink.name]
    streamer.shutdown(timeout=10)
    return health


# --- the workload, key by key and through the reader -------------------------------


@pytest.mark.servers
class TestExactCounters:
    """A generated workload lands exactly: every key, every value, every index member."""

    def test_every_key_holds_the_reference_value(self, target: str, prefix: str) -> None:
        events = workload(20_000)
        sink = RedisCounterSink(
            target, mapping=MAPPING, prefix=prefix, buckets=TimeBuckets(hourly=True)
        )
        health = stream(sink, events, batch_size=5000)
        assert (health.events_written, health.events_dropped, health.pending) == (20_000, 0, 0)
        values, uniques, index = expected_counters(events, prefix)
        client = admin(target)
        stored = read_everything(client, prefix)

        def kind(key: str) -> str:
            return key[len(prefix) : len(prefix) + 3]

        for key, ttl in stored.items():
            if kind(key) == "bat":
                assert 0 < ttl <= sink.options.batch_ttl
        counters = {k: v for k, v in stored.items() if kind(k) in ("add", "adv")}
        assert counters == pytest.approx(values, rel=1e-12)
        assert {k for k in stored if kind(k) == "bmp"} == set(uniques)
        for key, members in uniques.items():
            assert_estimate(stored[key], members)
        assert {k: v for k, v in stored.items() if kind(k) == "idx"} == index
        client.close()
        sink.close()

    def test_the_reader_answers_from_the_same_counters(self, target: str, prefix: str) -> None:
        events = workload(20_000, seed=11)
        buckets = TimeBuckets(hourly=True)
        sink = RedisCounterSink(target, mapping=MAPPING, prefix=prefix, buckets=buckets)
        stream(sink, events, batch_size=5000)
        values, _, _ = expected_counters(events, prefix)
        end = BASE + 3 * 86_400 - 1
        with RedisCounterReader(target, prefix=prefix, buckets=buckets) as reader:
            views = reader.count("measurement", ("view",), BASE, end)
            assert views.total == sum(e.measurement == "view" for e in events)
            assert [start for start, _ in views.series] == [BASE, BASE + 86_400, BASE + 172_800]
            for start, count in views.series:
                assert count == values.get(f"{prefix}add:d:{start}:measurement:view", 0)
            hourly = reader.count("event~source", ("click", "mail:news"), BASE, BASE + 7200, "h")
            assert [start for start, _ in hourly.series] == [BASE, BASE + 3600, BASE + 7200]
            revenue = reader.sum("measurement", ("purchase",), BASE, end)
            amounts = [e.fields["amount"] for e in events if e.measurement == "purchase"]
            assert revenue.total == pytest.approx(sum(amounts), rel=1e-9)
            units = reader.sum("org~source", ("org-3", "a~b"), BASE, end)
            assert units.total == sum(
                e.fields["units"]
                for e in events
                if e.tags["org"] == "org-3" and e.tags.get("source") == "a~b"
            )
            everyone = {e.tags["user"] for e in events}
            assert_estimate(reader.unique("user", BASE, end).total, everyone)
            org_users = {e.tags["user"] for e in events if e.tags["org"] == "org-5"}
            assert_estimate(
                reader.unique("org~user", BASE, end, values=("org-5",)).total, org_users
            )
            self._check_top(reader, events, end)
        sink.close()

    @staticmethod
    def _check_top(reader: RedisCounterReader, events: list[ms.MetricEvent], end: int) -> None:
        totals: dict[tuple[str, ...], int] = {}
        for event in events:
            source = event.tags.get("source")
            if source is not None:
                key = (event.measurement, source)
                totals[key] = totals.get(key, 0) + 1
        ranked = sorted(totals.items(), key=lambda item: (-item[1], item[0]))
        assert reader.top("event~source", BASE, end, n=5) == ranked[:5]
        assert reader.combinations("event~source", BASE, end) == set(totals)
        by_org = reader.top("org~user", BASE, end, n=3, kind="unique")
        assert len(by_org) == 3
        for (org,), estimate in by_org:
            assert_estimate(estimate, {e.tags["user"] for e in events if e.tags["org"] == org})


@pytest.mark.servers
class TestDaylightSaving:
    """In Europe/Berlin, the clock-change days have 23 and 25 hourly buckets."""

    @pytest.mark.parametrize(
        ("day_start", "next_day", "hours"),
        [(1_711_839_600, 1_711_922_400, 23), (1_729_980_000, 1_730_070_000, 25)],
        ids=["spring-forward", "fall-back"],
    )
    def test_change_days_count_each_local_hour(
        self, single: str, prefix: str, day_start: int, next_day: int, hours: int
    ) -> None:
        buckets = TimeBuckets(hourly=True, timezone="Europe/Berlin")
        events = [
            ms.MetricEvent("tick", fields={"n": 1}, timestamp_ns=moment * 10**9)
            for moment in range(day_start, next_day, 600)
        ]
        sink = RedisCounterSink(
            single, mapping=CounterMapping(count=["measurement"]), prefix=prefix, buckets=buckets
        )
        stream(sink, events)
        with sink.reader() as reader:
            day = reader.count("measurement", ("tick",), day_start, next_day - 1)
            assert day.series == ((day_start, hours * 6),)
            hourly = reader.count("measurement", ("tick",), day_start, next_day - 1, "h")
            assert len(hourly.series) == hours
            assert {count for _, count in hourly.series} == {6}
            assert hourly.series[0][0] == day_start
            berlin = zoneinfo.ZoneInfo("Europe/Berlin")
            local_midnight = dt.datetime.fromtimestamp(day_start, berlin).replace(tzinfo=None)
            aware = dt.datetime.fromtimestamp(day_start, dt.timezone.utc)
            for start in (local_midnight, aware):
                assert reader.count("measurement", ("tick",), start, next_day - 1) == day
        sink.close()


@pytest.mark.servers
class TestEscapingInRedis:
    """Hostile values are written, read back and listed exactly."""

    def test_hostile_values_round_trip(self, target: str, prefix: str) -> None:
        hostile = ["a:b", "a", "b~c", "x\\", "\\:~", "{tag}", "名前 with space", "::"]
        events = [
            ms.MetricEvent("m", fields={"v": value, "w": other, "n": 1}, timestamp_ns=BASE * 10**9)
            for value in hostile
            for other in ("1", "1:2")
        ]
        sink = RedisCounterSink(target, mapping=CounterMapping(count=["v~w"]), prefix=prefix)
        stream(sink, events)
        client = admin(target)
        keys = [
            k.decode() for k in all_keys(client, prefix) if k.startswith(f"{prefix}add:".encode())
        ]
        parsed = {parse_key(key, prefix).values for key in keys}
        assert parsed == {(value, other) for value in hostile for other in ("1", "1:2")}
        with sink.reader() as reader:
            for value in hostile:
                assert reader.count("v~w", (value, "1:2"), BASE, BASE).total == 1
            assert {values for values, _ in reader.top("v~w", BASE, BASE, n=100)} == parsed
        client.close()
        sink.close()


@pytest.mark.servers
class TestLimitsInRedis:
    """Events over the limits are dropped as 'limits'; the others are counted."""

    def test_over_long_values_are_dropped_with_reason_limits(
        self, single: str, prefix: str, caplog: pytest.LogCaptureFixture
    ) -> None:
        events = workload(300)
        for event in events[::30]:
            event.with_tag("source", "s" * 40)
        sink = RedisCounterSink(
            single, mapping=MAPPING, prefix=prefix, limits=CounterLimits(max_value_length=32)
        )
        with caplog.at_level(logging.WARNING, logger="metricstream"):
            health = stream(sink, events, batch_size=100)
        assert health.events_written == 290
        assert health.dropped_by_reason["limits"] == 10
        assert any("limits" in r.getMessage() and "max_value_length=32" in r.getMessage()
                   for r in caplog.records)  # fmt: skip
        kept = [e for e in events if e.tags.get("source") != "s" * 40]
        values, _, _ = expected_counters(kept, prefix, hourly=False)
        with sink.reader() as reader:
            total = reader.count("measurement", ("view",), BASE, BASE + 3 * 86_400).total
        assert total == sum(v for k, v in values.items() if k.endswith(":measurement:view")
                            and ":add:" in k)  # fmt: skip
        sink.close()


# --- exactly once ---------------------------------------------------------------------


@pytest.mark.servers
class TestExactlyOnce:
    """A batch is applied once, however often it is written."""

    def test_the_same_payload_written_twice_counts_once(self, target: str, prefix: str) -> None:
        events = workload(2000)
        sink = RedisCounterSink(target, mapping=MAPPING, prefix=prefix)
        payload = sink.prepare(ms.EventBatch(events))
        sink.write(payload)
        applied = sink.calls_applied
        sink.write(payload)
        assert sink.calls_repeated == applied == len(payload.calls)
        assert_counted(target, events, prefix)
        sink.close()

    def test_a_reply_lost_after_the_apply_is_retried_without_counting_twice(
        self, single: str, prefix: str
    ) -> None:
        host, port = servers.host_port(single)
        with ReplyDroppingProxy(host, port) as proxy:
            url = f"redis://127.0.0.1:{proxy.port}/0"
            sink = RedisCounterSink(url, mapping=MAPPING, prefix=prefix)
            warm_up, events = workload(10, seed=1), workload(500, seed=2)
            sink.write(sink.prepare(ms.EventBatch(warm_up)))  # loads the script
            payload = sink.prepare(ms.EventBatch(events))
            proxy.drop_next_reply()
            with pytest.raises(TransientSinkError):
                sink.write(payload)
            assert proxy.dropped == 1
            sink.write(payload)  # the lane's retry
            assert (sink.calls_applied, sink.calls_repeated) == (1, 1)
            assert_counted(single, warm_up + events, prefix)
            sink.close()

    def test_connections_killed_mid_stream_lose_and_double_nothing(
        self, target: str, prefix: str
    ) -> None:
        name = f"killme-{uuid.uuid4().hex[:8]}"
        sink = RedisCounterSink(target, mapping=MAPPING, prefix=prefix, name=name)
        killer = ConnectionKiller(target, f"metricstream:{name}")
        events = workload(12_000, seed=5)
        streamer = ms.EventStreamer(
            [sink], batch_size=200, max_buffer=20_000, flush_interval=0.01,
            retry=ms.RetryConfig(max_retries=50, initial_delay_ms=1, max_delay_ms=20,
                                 max_elapsed_ms=120_000),
            register_atexit=False,
        )  # fmt: skip
        streamer.send_many(e.copy() for e in events[:1000])
        assert streamer.flush(60)
        killer.kill_once()  # at least one kill, whatever the timing
        killer.start()
        try:
            streamer.send_many(e.copy() for e in events[1000:])
            assert streamer.flush(120)
        finally:
            killer.stop()
        health = streamer.health().sinks[name]
        streamer.shutdown(timeout=10)
        assert (health.events_written, health.events_dropped) == (12_000, 0)
        assert killer.killed >= 1
        assert_counted(target, events, prefix)
        sink.close()


class ReplyDroppingProxy:
    """A TCP proxy in front of Redis that can swallow one reply and cut the connection."""

    def __init__(self, host: str, port: int) -> None:
        import socket

        self._upstream = (host, port)
        self._server = socket.create_server(("127.0.0.1", 0))
        self.port: int = self._server.getsockname()[1]
        self._drop = threading.Event()
        self.dropped = 0
        self._threads: list[threading.Thread] = []
        self._sockets: list[Any] = []

    def drop_next_reply(self) -> None:
        """The next reply from Redis is not forwarded; both sides of its connection are closed."""
        self._drop.set()

    def __enter__(self) -> ReplyDroppingProxy:
        thread = threading.Thread(target=self._accept, daemon=True)
        thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.close()
        for sock in self._sockets:
            sock.close()

    def _accept(self) -> None:
        import socket

        while True:
            try:
                client, _ = self._server.accept()
            except OSError:
                return
            upstream = socket.create_connection(self._upstream)
            self._sockets += [client, upstream]
            for source, sink, replies in ((client, upstream, False), (upstream, client, True)):
                thread = threading.Thread(
                    target=self._pump, args=(source, sink, replies), daemon=True
                )
                thread.start()

    def _pump(self, source: Any, sink: Any, replies: bool) -> None:
        while True:
            try:
                data = source.recv(65536)
            except OSError:
                data = b""
            if replies and data and self._drop.is_set():
                self._drop.clear()
                self.dropped += 1
                data = b""
            if not data:
                for sock in (source, sink):
                    with contextlib.suppress(OSError):
                        sock.shutdown(2)
                    sock.close()
                return
            try:
                sink.sendall(data)
            except OSError:
                return


class ConnectionKiller(threading.Thread):
    """Kills every connection named `name` with CLIENT KILL, on every node, until stopped."""

    def __init__(self, url: str, name: str) -> None:
        super().__init__(daemon=True)
        self._name = name
        self._halt = threading.Event()
        self.killed = 0
        self._nodes = nodes(admin(url))

    def kill_once(self) -> None:
        for node in self._nodes:
            for info in node.client_list():
                if info.get("name") == self._name:
                    self.killed += int(node.execute_command("CLIENT", "KILL", "ID", info["id"]))

    def run(self) -> None:
        while not self._halt.wait(0.003):
            try:
                self.kill_once()
            except redis.RedisError:
                continue

    def stop(self) -> None:
        self._halt.set()
        self.join(30)


# --- the rest of the sink's duties --------------------------------------------------


@pytest.mark.servers
class TestRetentionAndRefusals:
    """TTLs come from the bucket start; a refused key fails loudly without losing the rest."""

    def test_ttls_expire_keys_at_bucket_start_plus_ttl(self, target: str, prefix: str) -> None:
        now = int(ms.MetricEvent("x", fields={"n": 1}).timestamp_ns // 10**9)
        buckets = TimeBuckets(hourly=True)
        sink = RedisCounterSink(
            target, mapping=MAPPING, prefix=prefix, buckets=buckets,
            ttl_daily=3 * 86_400, ttl_hourly=7200,
        )  # fmt: skip
        old = ms.MetricEvent("view", tags={"org": "o", "user": "u"}, fields={"units": 1},
                             timestamp_ns=(now - 10 * 86_400) * 10**9)  # fmt: skip
        fresh = ms.MetricEvent("view", tags={"org": "o", "user": "u"}, fields={"units": 1},
                               timestamp_ns=now * 10**9)  # fmt: skip
        sink.write(sink.prepare(ms.EventBatch([old, fresh])))
        client = admin(target)
        day, hour = buckets.day_start(now), buckets.hour_start(now)
        counters = [k.decode() for k in all_keys(client, prefix) if b":batch:" not in k]
        assert counters
        for key in counters:
            letter = key[len(prefix) :].split(":")[1 if not key.startswith(f"{prefix}idx:") else 2]
            expected = day + 3 * 86_400 if letter == "d" else hour + 7200
            assert client.execute_command("EXPIRETIME", key) == expected, key
        old_day = buckets.day_start(now - 10 * 86_400)
        assert not any(f":{old_day}:" in key for key in counters)  # past retention: gone
        client.close()
        sink.close()

    def test_a_key_of_the_wrong_type_is_reported_and_the_rest_applied(
        self, single: str, prefix: str
    ) -> None:
        client = admin(single)
        client.rpush(f"{prefix}add:d:{BASE}:measurement:view", "not a counter")
        sink = RedisCounterSink(single, mapping=MAPPING, prefix=prefix)
        events = workload(200, days=1)
        health = stream(sink, events, batch_size=200)
        assert (health.events_written, health.events_dropped) == (200, 0)
        assert health.write_errors == 1
        assert "WRONGTYPE" in (health.last_error or "")
        clicks = sum(e.measurement == "click" for e in events)
        assert int(client.get(f"{prefix}add:d:{BASE}:measurement:click")) == clicks
        client.close()
        sink.close()

    def test_int_then_float_sums_keep_adding(self, single: str, prefix: str) -> None:
        sink = RedisCounterSink(
            single, mapping=CounterMapping(sum=[("measurement", "v")]), prefix=prefix
        )
        for value in (3, 0.5, 4, 2**62, 0.25):
            event = ms.MetricEvent("m", fields={"v": value}, timestamp_ns=BASE * 10**9)
            sink.write(sink.prepare(ms.EventBatch([event])))
        with sink.reader() as reader:
            assert reader.sum("measurement", ("m",), BASE, BASE).total == pytest.approx(
                3 + 0.5 + 4 + 2**62 + 0.25, rel=1e-15
            )
        sink.close()


class TestConfiguration:
    """URLs, secrets, health probes, close and fork."""

    @pytest.mark.servers
    def test_a_url_configures_the_sink(self, single: str) -> None:
        sink = sink_from_url(
            f"{single}?prefix=app:&hourly=true&tz=Europe/Berlin&ttl_daily=86400&name=counts"
            '&mapping={"count":["measurement"]}'
        )
        assert isinstance(sink, RedisCounterSink)
        assert (sink.prefix, sink.name, sink.options.ttl_daily) == ("app:", "counts", 86_400)
        assert sink.options.buckets == TimeBuckets(hourly=True, timezone="Europe/Berlin")
        assert sink.options.mapping == CounterMapping(count=["measurement"])
        sink.check()
        sink.close()

    def test_cluster_urls_and_schemes(self) -> None:
        sink = sink_from_url(servers.REDIS_CLUSTER_URL, mapping=MAPPING)
        assert isinstance(sink, RedisCounterSink)
        assert sink.options.cluster
        assert RedisCounterSink("redis://h:1", mapping=MAPPING, cluster=True).options.cluster

    @pytest.mark.parametrize(
        ("url", "message"),
        [
            ("redis://h:1/0?colour=red", "unknown option"),
            ("redis://h:1/0", "needs a mapping"),
            ("redis://h:1/0?mapping={oops", "not valid JSON"),
            ("redis://h:1/0?hourly=maybe&mapping={}", "hourly"),
        ],
    )
    def test_bad_urls_are_refused(self, url: str, message: str) -> None:
        with pytest.raises(ConfigError, match=message):
            sink_from_url(url)

    @pytest.mark.servers
    def test_passwords_never_show(self, caplog: pytest.LogCaptureFixture) -> None:
        secret = "Pa55w0rdXYZsecret"
        with servers.RedisProcess("--requirepass", secret) as server:
            good = RedisCounterSink(server.url(secret), mapping=MAPPING, prefix="p:")
            good.write(good.prepare(ms.EventBatch(workload(50))))
            good.close()
            bad = RedisCounterSink(server.url("wrong-" + secret), mapping=MAPPING, name="bad")
            texts = [repr(bad), bad.url]
            streamer = ms.EventStreamer([bad], register_atexit=False, flush_interval=0.01)
            with caplog.at_level(logging.DEBUG, logger="metricstream"):
                streamer.send_many(workload(20))
                streamer.flush(10)
                with pytest.raises(PermanentSinkError) as raised:
                    bad.write(bad.prepare(ms.EventBatch(workload(5))))
            health = streamer.health().sinks["bad"]
            streamer.shutdown(timeout=5)
            texts += [str(raised.value), str(health.last_error), caplog.text]
            assert raised.value.unhealthy
            assert health.dropped_by_reason["rejected"] == 20
        assert all(secret not in text for text in texts), texts

    @pytest.mark.servers
    def test_tls_urls_reach_a_tls_server(self, tmp_path: Path, prefix: str) -> None:
        cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
        subprocess.run(
            ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=localhost",
             "-days", "1", "-keyout", str(key), "-out", str(cert)],
            check=True, capture_output=True,
        )  # fmt: skip
        port = servers.free_port()
        tls = ("--port", "0", "--tls-port", str(port), "--tls-cert-file", str(cert),
               "--tls-key-file", str(key), "--tls-ca-cert-file", str(cert),
               "--tls-auth-clients", "no")  # fmt: skip
        with servers.RedisProcess(*tls, port=port):
            url = f"rediss://localhost:{port}/0?ssl_ca_certs={cert}&prefix={prefix}"
            sink = sink_from_url(url, mapping=MAPPING)
            assert isinstance(sink, RedisCounterSink)
            events = workload(100, days=1)
            sink.write(sink.prepare(ms.EventBatch(events)))
            with sink.reader() as reader:
                views = reader.count("measurement", ("view",), BASE, BASE).total
            assert views == sum(e.measurement == "view" for e in events)
            sink.close()

    @pytest.mark.servers
    def test_protocol_probe_and_close(self, target: str) -> None:
        sink = RedisCounterSink(target, mapping=MAPPING, prefix="unused:")
        assert isinstance(sink, ms.Sink)
        assert sink.check() is None
        sink.close()
        sink.close()
        with pytest.raises(PermanentSinkError, match="closed"):
            sink.write(sink.prepare(ms.EventBatch(workload(1))))

    @pytest.mark.servers
    @pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
    def test_a_forked_child_writes_with_its_own_client(self, single: str, prefix: str) -> None:
        sink = RedisCounterSink(single, mapping=MAPPING, prefix=prefix)
        sink.check()  # the parent holds a connection
        events = workload(100, days=1)
        pid = os.fork()
        if pid == 0:  # pragma: no cover - the child
            try:
                sink.after_fork()
                sink.write(sink.prepare(ms.EventBatch(events)))
                os._exit(0)
            except BaseException:
                os._exit(1)
        _, status = os.waitpid(pid, 0)
        assert os.waitstatus_to_exitcode(status) == 0
        sink.check()  # the parent's connection still works
        with sink.reader() as reader:
            assert reader.count("measurement", ("view",), BASE, BASE).total == sum(
                e.measurement == "view" for e in events
            )
        sink.close()


@pytest.mark.servers
class TestRangesInsideBuckets:
    """A range that starts inside a bucket counts that bucket, and the answer says so."""

    def test_a_range_inside_a_day_counts_the_day_and_names_it(
        self, single: str, prefix: str
    ) -> None:
        buyers = [f"u{n % 31}" for n in range(97)]
        events = [
            ms.MetricEvent("purchase", {"user": user}, {"amount": 1}, (BASE + 36_000 + n) * 10**9)
            for n, user in enumerate(buyers)
        ]
        mapping = CounterMapping(count=["measurement"], unique=["user"])
        sink = RedisCounterSink(single, mapping=mapping, prefix=prefix)
        stream(sink, events)
        day = ((BASE, BASE + 86_400),)
        start, end = BASE + 43_200, BASE + 46_800  # noon to one, after every purchase
        with sink.reader() as reader:
            counted = reader.count("measurement", ("purchase",), start, end)
            assert (counted.total, counted.series, counted.buckets) == (97, ((BASE, 97),), day)
            assert counted.covered == day[0]
            assert_estimate(reader.unique("user", start, end).total, set(buyers))
            assert reader.top("measurement", start, end) == [(("purchase",), 97)]
            assert reader.buckets(start, end) == list(day)
            assert reader.count("measurement", ("purchase",), start, end, "h").total == 0
        sink.close()

    def test_the_command_counts_the_last_hour_of_a_daily_bucket(
        self, single: str, prefix: str, capsys: pytest.CaptureFixture[str]
    ) -> None:
        now = int(time.time())
        events = [
            ms.MetricEvent("purchase", fields={"amount": 1}, timestamp_ns=(now - n) * 10**9)
            for n in range(97)
        ]
        mapping = CounterMapping(count=["measurement"])
        sink = RedisCounterSink(single, mapping=mapping, prefix=prefix)
        stream(sink, events)
        sink.close()
        status = main(
            ["counters", "--redis", single, "--prefix", prefix, "count", "measurement",
             "purchase", "--start=-1h"]
        )  # fmt: skip
        out = capsys.readouterr().out
        assert status == 0
        assert out.splitlines()[-1].split() == ["total", "97"]
        today = now - now % 86_400
        days = 2 if now - 3600 < today else 1  # the hour may reach into yesterday
        assert f"buckets counted: {days} daily, from " in out
        first = dt.datetime.fromtimestamp(today - 86_400 * (days - 1), dt.timezone.utc)
        assert f"from {first.isoformat(timespec='minutes')} to " in out

    def test_the_readme_snippet_runs_and_counts_what_it_sent(
        self, single: str, prefix: str
    ) -> None:
        readme = (Path(__file__).parent.parent / "README.md").read_text()
        section = readme[readme.index("### Redis counters") :]
        start = section.index("```python\n") + len("```python\n")
        code = section[start : section.index("\n```", start)]
        code = code.replace('"redis://127.0.0.1:6379/0"', repr(single))
        code = code.replace('prefix="ms:"', f"prefix={prefix!r}")
        assert repr(single) in code
        assert f"prefix={prefix!r}" in code
        namespace: dict[str, Any] = {}
        exec(compile(code, "README.md", "exec"), namespace)
        purchases = namespace["purchases"]
        assert purchases.total == 1
        assert len(purchases.buckets) in (1, 2)  # the hour may reach into the day before


class TestCountersCommand:
    """`metricstream counters` reads the counters; `explain` prints one event's commands."""

    def test_explain_prints_traqq_style_commands(self, capsys: pytest.CaptureFixture[str]) -> None:
        mapping = (
            '{"bitmap": ["ip"], "add": ["event", "event~utm_source"], '
            '"add_value": [{"key": "event", "add_key": "amount"}]}'
        )
        event = "purchase,utm_source=google,ip=127.0.0.1 amount=99.99 1696118400000000000"
        assert main(["counters", "--prefix", "", "explain", "--mapping", mapping, event]) == 0
        lines = capsys.readouterr().out.splitlines()
        assert lines[-7:] == [
            "  INCRBY add:d:1696118400:event:purchase 1",
            "  INCRBY add:d:1696118400:event~utm_source:purchase~google 1",
            "  INCRBYFLOAT adv:d:1696118400:event:purchase 99.99",
            "  PFADD bmp:d:1696118400:ip 127.0.0.1",
            "  SADD idx:add:d:1696118400:event purchase",
            "  SADD idx:add:d:1696118400:event~utm_source purchase~google",
            "  SADD idx:adv:d:1696118400:event purchase",
        ]
        assert "7 commands" in lines[-8]

    @pytest.mark.servers
    def test_queries_print_tables_of_what_was_counted(
        self, single: str, prefix: str, capsys: pytest.CaptureFixture[str]
    ) -> None:
        events = workload(3000, days=2)
        sink = RedisCounterSink(single, mapping=MAPPING, prefix=prefix)
        sink.write(sink.prepare(ms.EventBatch(events)))
        sink.close()
        common = ["counters", "--redis", single, "--prefix", prefix]
        window = ["--start", str(BASE), "--end", str(BASE + 86_400)]
        views = sum(e.measurement == "view" for e in events)
        assert main([*common, "count", "measurement", "view", *window]) == 0
        out = capsys.readouterr().out
        assert out.splitlines()[-1].split() == ["total", f"{views:,}"]
        assert "2023-11-15T00:00+00:00" in out
        assert "2023-11-16T00:00+00:00" in out
        assert main([*common, "top", "event~source", "-n", "2", *window]) == 0
        rows = capsys.readouterr().out.splitlines()[3:]
        totals: dict[str, int] = {}
        for event in events:
            if "source" in event.tags:
                name = f"{event.measurement}~{event.tags['source']}"
                totals[name] = totals.get(name, 0) + 1
        best = sorted(totals.items(), key=lambda item: (-item[1], item[0]))[:2]
        assert [row.split()[1:] for row in rows] == [[name, f"{n:,}"] for name, n in best]
        assert main([*common, "unique", "org~user", "org-1", *window]) == 0
        estimate = int(capsys.readouterr().out.splitlines()[-1].split()[1].replace(",", ""))
        assert_estimate(estimate, {e.tags["user"] for e in events if e.tags["org"] == "org-1"})

    def test_a_query_without_a_server_url_says_so(
        self, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
    ) -> None:
        monkeypatch.delenv("METRICSTREAM_REDIS_URL", raising=False)
        assert main(["counters", "count", "measurement", "view"]) == 2
        assert "--redis URL" in capsys.readouterr().err

    @pytest.mark.servers
    def test_the_demo_on_redis_ends_with_a_dashboard(
        self, single: str, prefix: str, capsys: pytest.CaptureFixture[str]
    ) -> None:
        status = main(
            ["demo", "--sink", f"{single}?prefix={prefix}", "--duration", "1", "--rate", "600",
             "--seed", "3"]
        )  # fmt: skip
        out = capsys.readouterr().out
        assert status == 0
        written = int(re.search(r"written\s+([\d,]+)", out.split("Final accounting")[1])
                      .group(1).replace(",", ""))  # type: ignore[union-attr]  # fmt: skip
        assert "Dashboard from redis-counters" in out
        assert re.search(rf"^  all\s+{written:,}$", out, re.M), out
        assert "unique users today:" in out
        assert "revenue today" in out
