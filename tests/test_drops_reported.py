"""on_drop and dead letters: told which events were dropped, and nothing a sink refused is lost.

The sink that refuses is a real InfluxDB 1.6, which refuses a point whose
field changes type (``field type conflict``); the dead letters are sent
again with ``metricstream pipe`` once the cause is gone.
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest

import metricstream as ms
from metricstream.exceptions import InvalidEventError
from metricstream.sinks import InfluxDBSink
from metricstream.testing import FaultySink, InMemorySink

from .influx_readback import influx_query, quote_identifier
from .servers import INFLUXDB_V1_URL, require_url
from .support import FAST_RETRY, assert_balanced, wait_until

T0 = 1_700_000_000_000_000_000
RUN = uuid.uuid4().hex[:8]


class Calls:
    """Records the calls of an on_drop callback, and the thread each ran on."""

    def __init__(self, fail_first: int = 0) -> None:
        self.calls: list[tuple[str, str, int, ms.MetricEvent | None]] = []
        self.threads: set[str] = set()
        self.times: list[float] = []
        self._fail = fail_first
        self._lock = threading.Lock()

    def __call__(self, sink: str, reason: str, count: int, first: ms.MetricEvent | None) -> None:
        with self._lock:
            self.calls.append((sink, reason, count, first))
            self.threads.add(threading.current_thread().name)
            self.times.append(time.monotonic())
            if self._fail:
                self._fail -= 1
                raise RuntimeError("the callback is broken")

    def total(self, sink: str, reason: str) -> int:
        return sum(c for s, r, c, _ in self.calls if (s, r) == (sink, reason))


class RefusesTagged(InMemorySink):
    """A sink that cannot encode events tagged ``bad``, naming which ones."""

    def prepare(self, batch: ms.EventBatch) -> ms.EventBatch:
        bad = tuple(i for i, tags in enumerate(batch.columns().tags) if "bad" in tags)
        if bad:
            raise InvalidEventError("bad", f"cannot encode {len(bad)} events", indexes=bad)
        return batch


@pytest.fixture
def database() -> Iterator[str]:
    """A fresh database on the shared InfluxDB 1.6, dropped afterwards."""
    require_url("InfluxDB 1.6 (v1 API)", INFLUXDB_V1_URL)
    name = f"ms_drops_{RUN}_{uuid.uuid4().hex[:6]}"
    influx_query(INFLUXDB_V1_URL, f"CREATE DATABASE {quote_identifier(name)}")
    yield name
    influx_query(INFLUXDB_V1_URL, f"DROP DATABASE {quote_identifier(name)}")


def stored(database: str, measurement: str) -> list[list[Any]]:
    result = influx_query(
        INFLUXDB_V1_URL, f"SELECT * FROM {quote_identifier(measurement)}", db=database
    )
    series = result["results"][0].get("series", [])
    return [row[1:] for row in series[0]["values"]] if series else []


def dead_letters(directory: Path) -> list[dict[str, Any]]:
    lines = []
    for path in sorted(directory.glob("*.jsonl")):
        lines += [orjson.loads(line) for line in path.read_bytes().splitlines()]
    return lines


@pytest.mark.servers
class TestAgainstInfluxDB:
    """A type conflict on a real InfluxDB: reported, kept, and sent again once fixed."""

    def test_a_refused_point_is_reported_written_down_and_sent_again(
        self, database: str, tmp_path: Path
    ) -> None:
        calls = Calls()
        letters = tmp_path / "dead-letters"
        sink = InfluxDBSink(url=INFLUXDB_V1_URL, api="v1", database=database, name="influxdb")
        streamer = ms.EventStreamer(
            [sink], on_drop=calls, dead_letter_dir=letters, register_atexit=False, retry=FAST_RETRY
        )
        first = ms.MetricEvent("orders", {"shop": "eu"}, {"total": 3}, T0)
        conflicting = ms.MetricEvent("orders", {"shop": "eu"}, {"total": 3.5}, T0 + 1)
        streamer.send(first)
        assert streamer.flush(30)
        streamer.send(conflicting)
        assert streamer.flush(30)
        assert wait_until(lambda: calls.total("influxdb", "rejected") == 1)
        assert wait_until(lambda: len(dead_letters(letters)) == 1)
        assert streamer.shutdown(30)
        [(_, _, count, event)] = [c for c in calls.calls if c[1] == "rejected"]
        assert (count, event) == (1, conflicting)
        assert calls.threads == {"metricstream-drops"}
        [letter] = dead_letters(letters)
        about = letter.pop("dead_letter")
        assert ms.MetricEvent.from_json(orjson.dumps(letter)) == conflicting
        assert (about["sink"], about["reason"], about["exact"]) == ("influxdb", "rejected", True)
        assert "field type conflict" in about["error"]
        health = streamer.health()
        assert health.dead_letters == ms.streamer.health.DeadLetterHealth(str(letters), 1, 0)
        assert_balanced(health, 2)

        # The cause goes away (the measurement is dropped); the dead letter is sent again.
        influx_query(INFLUXDB_V1_URL, "DROP MEASUREMENT orders", db=database)
        [path] = letters.glob("*.jsonl")
        cat = subprocess.run(
            [sys.executable, "-m", "metricstream", "cat", str(path), "--format", "json"],
            capture_output=True,
            check=True,
        )
        assert orjson.loads(cat.stdout) == orjson.loads(conflicting.to_json())
        replay = subprocess.run(
            [sys.executable, "-m", "metricstream", "pipe", "--input-format", "json",
             "--input", str(path), "--sink", f"influxdb://127.0.0.1:{port()}/{database}"],
            capture_output=True, check=False, timeout=120,
        )  # fmt: skip
        assert replay.returncode == 0, replay.stderr.decode()
        assert stored(database, "orders") == [["eu", 3.5]]

    def test_a_gauge_never_changes_type(self, database: str) -> None:
        """gauge("q", 3) then gauge("q", 3.5): both stored (3 was once an integer field)."""
        sink = InfluxDBSink(url=INFLUXDB_V1_URL, api="v1", database=database, name="influxdb")
        streamer = ms.EventStreamer([sink], register_atexit=False, retry=FAST_RETRY)
        streamer.gauge("queue", 3, timestamp=T0, name="emails")
        assert streamer.flush(30)
        streamer.gauge("queue", 3.5, timestamp=T0 + 1, name="emails")
        assert streamer.shutdown(30)
        assert_balanced(streamer.health(), 2)
        assert streamer.health().sinks["influxdb"].events_written == 2
        assert stored(database, "queue") == [["emails", 3.0], ["emails", 3.5]]


def port() -> int:
    return int(INFLUXDB_V1_URL.rsplit(":", 1)[1])


class TestOnDrop:
    """The callback: off the application's threads, the counts adding up to health."""

    def test_counts_add_up_and_calls_come_at_most_once_a_second(self) -> None:
        calls = Calls()
        streamer = ms.EventStreamer(
            [InMemorySink("kept"), FaultySink(then=FaultySink.permanent(), name="refuses")],
            on_drop=calls,
            batch_size=10,
            register_atexit=False,
            retry=FAST_RETRY,
        )
        started = time.monotonic()
        for round_ in range(6):
            streamer.send_many(
                ms.event_from_sample("m", i, timestamp_ns=T0 + i) for i in range(round_ * 50)
            )
            assert streamer.flush(10)
            time.sleep(0.3)
        assert streamer.shutdown(10)
        elapsed = time.monotonic() - started
        health = streamer.health()
        assert calls.total("refuses", "rejected") == health.sinks["refuses"].dropped_by_reason[
            "rejected"
        ] == sum(round_ * 50 for round_ in range(6))
        assert {(s, r) for s, r, _, _ in calls.calls} == {("refuses", "rejected")}
        # One call a second at most, and one more at shutdown (a bound, never a timing).
        assert len(calls.calls) <= int(elapsed / 1.0) + 2
        assert calls.threads == {"metricstream-drops"}
        assert all(isinstance(c[3], ms.MetricEvent) for c in calls.calls)

    def test_drops_before_the_lanes_are_reported_for_every_sink(self) -> None:
        calls = Calls()
        streamer = ms.EventStreamer(
            [InMemorySink("a"), InMemorySink("b")],
            on_drop=calls,
            max_series_per_measurement=1,
            register_atexit=False,
        )
        for user in ("u1", "u2", "u3"):
            streamer.send(ms.event_from_sample("login", 1, {"user": user}, timestamp_ns=T0))
        assert streamer.shutdown(10)
        assert sorted((s, r, c, e.tags["user"] if e else None) for s, r, c, e in calls.calls) == [
            ("a", "cardinality", 2, "u2"),
            ("b", "cardinality", 2, "u2"),
        ]

    def test_a_callback_that_raises_is_counted_and_delivery_goes_on(self, caplog: Any) -> None:
        calls = Calls(fail_first=1)
        kept = InMemorySink("kept")
        streamer = ms.EventStreamer(
            [kept, FaultySink(then=FaultySink.permanent(), name="refuses")],
            on_drop=calls,
            register_atexit=False,
            retry=FAST_RETRY,
        )
        streamer.send_many(ms.event_from_sample("m", i, timestamp_ns=T0) for i in range(5))
        assert streamer.flush(10)
        assert wait_until(lambda: len(calls.calls) >= 1)
        streamer.send_many(ms.event_from_sample("m", i, timestamp_ns=T0) for i in range(7))
        assert streamer.shutdown(10)
        assert len(kept.events) == 12
        assert calls.total("refuses", "rejected") == 12
        assert streamer.health().on_drop_errors == 1
        said = [r.getMessage() for r in caplog.records]
        assert any("the on_drop callback raised RuntimeError" in line for line in said)

    def test_a_slow_callback_holds_back_no_lane(self) -> None:
        release = threading.Event()
        kept = InMemorySink("kept")
        streamer = ms.EventStreamer(
            [kept, FaultySink(then=FaultySink.permanent(), name="refuses")],
            on_drop=lambda *_: release.wait(),
            register_atexit=False,
            retry=FAST_RETRY,
        )
        try:
            for batch in range(5):
                streamer.send_many(
                    ms.event_from_sample("m", i, timestamp_ns=T0) for i in range(100)
                )
                assert streamer.flush(10), batch
            assert len(kept.events) == 500
        finally:
            release.set()
            streamer.shutdown(10)


class TestDeadLetters:
    """What a sink refused is written down, with each event's own error."""

    def test_events_a_sink_cannot_encode_each_with_its_error(self, tmp_path: Path) -> None:
        streamer = ms.EventStreamer(
            [RefusesTagged("strict")], dead_letter_dir=tmp_path, register_atexit=False
        )
        events = [
            ms.event_from_sample("m", i, {"bad": "yes"} if i % 3 == 0 else {}, timestamp_ns=T0)
            for i in range(9)
        ]
        streamer.send_many(events)
        assert streamer.shutdown(10)
        letters = dead_letters(tmp_path)
        assert [letter["fields"]["value"] for letter in letters] == [0, 3, 6]
        assert {
            (d["sink"], d["reason"], d["error"], d["exact"])
            for d in (letter["dead_letter"] for letter in letters)
        } == {("strict", "invalid", "cannot encode 3 events", True)}
        [path] = tmp_path.glob("*.jsonl")
        assert path.name.startswith("strict-")
        assert path.name.endswith(f"-{os.getpid()}.jsonl")
        assert oct(path.stat().st_mode & 0o777) == oct(0o600)
        assert streamer.health().dead_letters.events_written == 3  # type: ignore[union-attr]

    def test_a_full_directory_counts_instead_of_writing(self, tmp_path: Path) -> None:
        (tmp_path / "earlier.jsonl").write_bytes(b"x" * (1 << 20))
        streamer = ms.EventStreamer(
            [FaultySink(then=FaultySink.permanent(), name="refuses")],
            dead_letter_dir=tmp_path,
            dead_letter_max_bytes=1 << 20,
            register_atexit=False,
            retry=FAST_RETRY,
        )
        streamer.send_many(ms.event_from_sample("m", i, timestamp_ns=T0) for i in range(4))
        assert streamer.shutdown(10)
        letters = streamer.health().dead_letters
        assert letters is not None
        assert (letters.events_written, letters.events_not_written) == (0, 4)
        assert sorted(p.name for p in tmp_path.iterdir()) == ["earlier.jsonl"]
