"""streamer.aggregator(): every aggregate against a reference computed here, through the streamer.

Values go through ``streamer.aggregator(clock=...)`` (a fake wall clock the
test sets, where windows matter) into an `InMemorySink`; the windows that
end are sent on ``flush`` or by the batcher, the open one at shutdown.
"""

from __future__ import annotations

import math
import subprocess
import threading
import urllib.request
from collections import defaultdict
from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from prometheus_client.parser import text_string_to_metric_families

import metricstream as ms
from metricstream.aggregate import DEFAULT_BUCKETS
from metricstream.streamer.operations import instruments
from metricstream.testing import InMemorySink

from .servers import require_promtool
from .support import FAST_RETRY, assert_balanced, wait_until
from .test_fork import run_child

SECOND = 1_000_000_000
INTERVAL = 10 * SECOND
START = 1_700_000_000 * SECOND  # a window boundary


class FakeClock:
    """A wall clock in ns that the test sets."""

    def __init__(self, now: int = START) -> None:
        self.now = now

    def __call__(self) -> int:
        return self.now


def streamer_with(sink: InMemorySink, **options: Any) -> ms.EventStreamer:
    options.setdefault("register_atexit", False)
    options.setdefault("retry", FAST_RETRY)
    return ms.EventStreamer([sink], **options)


Key = tuple[str, int, tuple[tuple[str, str], ...]]


def keyed(events: list[ms.MetricEvent]) -> dict[Key, dict[str, Any]]:
    """The events by (measurement, window start, sorted tags); each key appears once."""
    found: dict[Key, dict[str, Any]] = {}
    for event in events:
        key = (event.measurement, event.timestamp_ns, tuple(sorted(event.tags.items())))
        assert key not in found, f"two events for {key}"
        found[key] = dict(event.fields)
    return found


def bound_field(bound: float) -> str:
    """A bucket's field, its bound written exactly (the integer of a whole number)."""
    return f"le_{int(bound)}" if float(bound).is_integer() else f"le_{bound!r}"


def member_text(member: object) -> str:
    return member if isinstance(member, str) else repr(member)


# --- the reference -----------------------------------------------------------------


def expected_fields(kind: str, values: list[Any]) -> dict[str, Any]:
    """What one series emits for one window, computed from its values (floats approximate)."""
    if kind == "count":
        return {"count": sum(values)}
    if kind == "gauge":
        floats = [float(v) for v in values]
        return {
            "last": floats[-1],
            "min": min(floats),
            "max": max(floats),
            "sum": math.fsum(floats),
            "count": float(len(floats)),
        }
    if kind == "histogram":
        fields: dict[str, Any] = {
            bound_field(bound): sum(1 for v in values if v <= bound) for bound in DEFAULT_BUCKETS
        }
        fields.update(le_inf=len(values), sum=math.fsum(values), count=len(values))
        return fields
    if kind == "distribution":
        values = [float(v) for v in values]
        ranked = sorted(values)
        fields = {
            prefix: ranked[math.floor(q * (len(ranked) - 1))]
            for q, prefix in ((0.5, "p50"), (0.9, "p90"), (0.99, "p99"), (0.999, "p999"))
        }
        fields.update(min=ranked[0], max=ranked[-1], sum=math.fsum(values), count=len(values))
        return fields
    return {"unique": len({member_text(v) for v in values})}


def assert_fields_match(kind: str, got: dict[str, Any], expected: dict[str, Any]) -> None:
    assert got.keys() == expected.keys()
    for field, want in expected.items():
        value = got[field]
        if kind == "distribution" and field.startswith("p"):
            assert abs(value - want) <= 0.01 * abs(want) + 1e-12, (field, value, want)
        elif isinstance(want, float):
            assert value == pytest.approx(want, rel=1e-9, abs=1e-9), (field, value, want)
            assert type(value) is float
        else:
            assert (value, type(value)) == (want, type(want)), (field, value, want)


RECORD: dict[str, Callable[[Any, str, Any, dict[str, str]], None]] = {
    "count": lambda agg, name, value, tags: agg.count(name, value, tags=tags),
    "gauge": lambda agg, name, value, tags: agg.gauge(name, value, tags=tags),
    "histogram": lambda agg, name, value, tags: agg.histogram(name, value, tags=tags),
    "distribution": lambda agg, name, value, tags: agg.distribution(name, value, tags=tags),
    "set": lambda agg, name, value, tags: agg.set(name, value, tags=tags),
}

VALUES = {
    "count": st.integers(-1000, 1000),
    "gauge": st.one_of(st.integers(-10**6, 10**6), st.floats(-1e6, 1e6, allow_nan=False)),
    "histogram": st.one_of(st.floats(0, 12, allow_nan=False), st.sampled_from(DEFAULT_BUCKETS)),
    "distribution": st.one_of(
        st.just(0.0), st.floats(1e-3, 1e6), st.floats(-1e6, -1e-3), st.integers(-100, 100)
    ),
    "set": st.one_of(st.integers(0, 30), st.sampled_from(["a", "b", "1", "2", "x"])),
}

TIMES = st.one_of(
    st.integers(0, 4 * INTERVAL - 1),
    st.sampled_from([0, INTERVAL - 1, INTERVAL, 2 * INTERVAL - 1, 2 * INTERVAL, 3 * INTERVAL]),
)


@st.composite
def calls(draw: Any) -> list[tuple[int, str, dict[str, str], Any]]:
    """Calls of every kind, in time order: (time, kind, tags, value)."""
    size = draw(st.integers(0, 60))
    made = []
    for _ in range(size):
        kind = draw(st.sampled_from(sorted(RECORD)))
        tags = draw(st.dictionaries(st.sampled_from(["host", "route"]), st.sampled_from("ab")))
        made.append((draw(TIMES), kind, tags, draw(VALUES[kind])))
    return sorted(made, key=lambda call: call[0])


class TestEveryAggregateEqualsAReference:
    """Random streams of every kind, over window boundaries, flushed at random moments."""

    @settings(max_examples=30, deadline=None)
    @given(calls(), st.sets(st.integers(0, 59), max_size=6))
    def test_windows_and_the_partial_one_at_shutdown(
        self, made: list[tuple[int, str, dict[str, str], Any]], flush_after: set[int]
    ) -> None:
        sink = InMemorySink()
        clock = FakeClock()
        streamer = streamer_with(sink)
        try:
            aggregator = streamer.aggregator(10, clock=clock)
            expected: dict[Key, list[Any]] = defaultdict(list)
            for position, (at, kind, tags, value) in enumerate(made):
                clock.now = START + at
                RECORD[kind](aggregator, kind, value, tags)
                window = START + at - at % INTERVAL
                expected[(kind, window, tuple(sorted(tags.items())))].append(value)
                if position in flush_after:
                    assert streamer.flush(10)
        finally:
            assert streamer.shutdown(10)
        got = keyed(sink.events)
        assert got.keys() == expected.keys()
        for key, values in expected.items():
            assert_fields_match(key[0], got[key], expected_fields(key[0], values))
        assert_balanced(streamer.health(), len(got))


class TestWindows:
    """Windows aligned to the interval; each sent once it ends, the open one at shutdown."""

    def test_an_open_window_waits_an_ended_one_goes_and_an_empty_one_sends_nothing(
        self,
    ) -> None:
        sink = InMemorySink()
        clock = FakeClock(START + 3 * SECOND)
        streamer = streamer_with(sink)
        aggregator = streamer.aggregator(10, clock=clock)
        aggregator.count("jobs", 2)
        assert streamer.flush(10)
        assert sink.events == []  # the window [START, START + 10 s) is open
        clock.now = START + INTERVAL  # its end
        aggregator.count("jobs", 5)
        clock.now = START + 4 * INTERVAL  # two empty windows pass
        assert streamer.flush(10)
        assert [(e.timestamp_ns, e.fields) for e in sink.events] == [
            (START, {"count": 2}),
            (START + INTERVAL, {"count": 5}),
        ]
        aggregator.count("jobs", 7)
        assert streamer.shutdown(10)
        assert [(e.timestamp_ns, e.fields) for e in sink.events[2:]] == [
            (START + 4 * INTERVAL, {"count": 7})
        ]

    def test_the_batcher_sends_each_window_without_being_asked(self) -> None:
        """With the real clock and a short interval, windows arrive aligned to it."""
        sink = InMemorySink()
        streamer = streamer_with(sink, flush_interval=0.05)
        try:
            aggregator = streamer.aggregator(0.2)
            aggregator.count("ticks", 3, tags={"k": "v"})
            assert wait_until(lambda: len(sink.events) == 1)
            [event] = sink.events
            assert (event.measurement, event.tags, event.fields) == (
                "ticks", {"k": "v"}, {"count": 3}
            )  # fmt: skip
            assert event.timestamp_ns % 200_000_000 == 0
        finally:
            streamer.shutdown(10)

    def test_a_name_is_one_aggregator_and_other_options_need_another_name(self) -> None:
        streamer = streamer_with(InMemorySink())
        try:
            first = streamer.aggregator(30, 500)
            assert streamer.aggregator(30, 500) is first
            assert streamer.aggregator("30s", 500) is first
            with pytest.raises(ms.ConfigError) as info:
                streamer.aggregator(10)
            assert info.value.option == "interval"
            assert "exists with interval=30 s and max_series=500" in str(info.value)
            other = streamer.aggregator(10, name="fast")
            assert other is not first
            assert sorted(streamer.health().aggregators) == ["default", "fast"]
            with pytest.raises(ms.ConfigError, match="max_series"):
                streamer.aggregator(10, 0, name="x")
        finally:
            streamer.shutdown(10)


class TestConcurrency:
    """Eight threads recording into the same series lose nothing."""

    def test_eight_threads_totals_are_exact(self) -> None:
        sink = InMemorySink()
        streamer = streamer_with(sink)
        aggregator = streamer.aggregator(10, clock=FakeClock())
        threads, per_thread = 8, 5000
        barrier = threading.Barrier(threads)

        def work(worker: int) -> None:
            count, histogram, gauge = aggregator.count, aggregator.histogram, aggregator.gauge
            barrier.wait()
            for i in range(per_thread):
                count("requests", 1 + i % 3, tags={"route": "/a"})
                histogram("latency", (worker * per_thread + i) % 13 * 0.5, tags={"route": "/a"})
                gauge("depth", worker * per_thread + i)

        runners = [threading.Thread(target=work, args=(n,)) for n in range(threads)]
        for runner in runners:
            runner.start()
        for runner in runners:
            runner.join()
        assert streamer.shutdown(10)
        got = {event.measurement: event.fields for event in sink.events}
        assert got["requests"] == {"count": threads * sum(1 + i % 3 for i in range(per_thread))}
        values = [n % 13 * 0.5 for n in range(threads * per_thread)]
        assert_fields_match("histogram", got["latency"], expected_fields("histogram", values))
        depth = got["depth"]
        assert (depth["count"], depth["min"], depth["max"], depth["sum"]) == (
            float(threads * per_thread),
            0.0,
            float(threads * per_thread - 1),
            float(sum(range(threads * per_thread))),
        )
        assert depth["last"] in {float(w * per_thread + per_thread - 1) for w in range(threads)}


@pytest.mark.servers
class TestOverflow:
    """Beyond max_series, new series fold into one overflow=true series per name, counted."""

    def test_folded_series_are_summed_and_counted_in_health_and_metrics(self) -> None:
        sink = InMemorySink()
        streamer = streamer_with(sink)
        try:
            aggregator = streamer.aggregator(10, max_series=3, clock=FakeClock())
            for user in range(10):
                aggregator.count("logins", user + 1, tags={"user": str(user)})
                aggregator.count("logins", 1, tags={"user": str(user)})
            health = streamer.health()
            assert health.aggregators["default"] == ms.streamer.health.AggregatorHealth(
                interval=10.0, max_series=3, series=3, series_folded=7
            )
            assert health.series_folded == 7
            host, port = streamer.serve_health()
            with urllib.request.urlopen(f"http://{host}:{port}/metrics", timeout=10) as reply:
                body = reply.read()
        finally:
            streamer.shutdown(10)
        counts = {tuple(sorted(e.tags.items())): e.fields["count"] for e in sink.events}
        assert counts == {
            (("user", "0"),): 2,
            (("user", "1"),): 3,
            (("user", "2"),): 4,
            (("overflow", "true"),): sum(user + 2 for user in range(3, 10)),
        }
        samples = {
            (s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(body.decode())
            for s in family.samples
        }
        label = (("aggregator", "default"),)
        assert samples["metricstream_aggregator_series", label] == 3
        assert samples["metricstream_aggregator_series_folded", label] == 7
        promtool = subprocess.run(
            [require_promtool(), "check", "metrics"], input=body, capture_output=True, check=False
        )
        assert promtool.returncode == 0, promtool.stderr.decode() + promtool.stdout.decode()


class TestFork:
    """A forked child's aggregators are the same objects, empty, and keep working."""

    def test_the_child_starts_empty_and_sends_only_its_own(self) -> None:
        sink = InMemorySink()
        clock = FakeClock()
        streamer = streamer_with(sink)
        aggregator = streamer.aggregator(10, clock=clock)
        count = aggregator.count  # a recorder bound before the fork keeps working after it
        count("jobs", 40, tags={"q": "mail"})

        def child() -> dict[str, object]:
            empty = (aggregator.series_count, len(sink.events))
            count("jobs", 2, tags={"q": "mail"})
            streamer.shutdown(10)
            return {
                "empty": list(empty),
                "events": [[e.measurement, e.fields["count"]] for e in sink.events],
            }

        _, report = run_child(child)
        assert report == {"empty": [0, 0], "events": [["jobs", 2]]}
        assert streamer.shutdown(10)
        assert [e.fields for e in sink.events] == [{"count": 40}]

    def test_forks_while_threads_record_never_copy_a_held_lock(self) -> None:
        sink = InMemorySink()
        streamer = streamer_with(sink)
        aggregator = streamer.aggregator(10, clock=FakeClock())
        stop = threading.Event()

        def record() -> None:
            while not stop.is_set():
                aggregator.count("busy", tags={"t": threading.current_thread().name})
                aggregator.histogram("busy.h", 0.2)

        recorders = [threading.Thread(target=record, name=f"r{n}") for n in range(3)]
        for recorder in recorders:
            recorder.start()
        try:
            for _ in range(10):
                _, report = run_child(
                    lambda: {"series": aggregator.count("x") or aggregator.series_count}
                )
                assert report == {"series": 1}
        finally:
            stop.set()
            for recorder in recorders:
                recorder.join()
            streamer.shutdown(10)


class TestInstrumentsAggregate:
    """aggregate=True records into streamer.aggregator() instead of sending an event per call."""

    def test_timed_count_and_gauge(self, monkeypatch: pytest.MonkeyPatch) -> None:
        readings = iter(ms_ * 1_000_000 for ms_ in (0, 4, 10, 11, 20, 22.5))
        monkeypatch.setattr(instruments, "_perf_ns", lambda: int(next(readings)))
        sink = InMemorySink()
        streamer = streamer_with(sink)
        streamer.aggregator(10, clock=FakeClock())
        timer = streamer.timed("render", aggregate=True, template="home")
        with timer:
            pass
        with timer:
            pass
        with pytest.raises(KeyError), streamer.timed("render", aggregate=True, template="home"):
            raise KeyError("x")
        assert streamer.count("hits", 3, aggregate=True, tags={"page.kind": "a"}) is True
        streamer.count("hits", aggregate=True, tags={"page.kind": "a"})
        streamer.gauge("depth", 4, aggregate=True)
        streamer.gauge("depth", 2.5, aggregate=True)
        assert streamer.shutdown(10)
        got = keyed(sink.events)
        ok = got["render", START, (("outcome", "ok"), ("template", "home"))]
        assert_fields_match("distribution", ok, expected_fields("distribution", [4.0, 1.0]))
        failed = got["render", START, (("outcome", "KeyError"), ("template", "home"))]
        assert_fields_match("distribution", failed, expected_fields("distribution", [2.5]))
        assert got["hits", START, (("page.kind", "a"),)] == {"count": 4}
        assert_fields_match("gauge", got["depth", START, ()], expected_fields("gauge", [4, 2.5]))

    @pytest.mark.parametrize(
        ("call", "option"),
        [
            (lambda s: s.count("c", aggregate=True, sample_rate=0.5), "sample_rate"),
            (lambda s: s.gauge("g", 1, aggregate=True, timestamp=START), "timestamp"),
            (lambda s: s.timed("t", aggregate=True, sample_rate=0.1), "sample_rate"),
        ],
    )
    def test_aggregated_calls_take_no_rate_nor_timestamp(
        self, call: Callable[[ms.EventStreamer], object], option: str
    ) -> None:
        streamer = streamer_with(InMemorySink())
        try:
            with pytest.raises(ms.ConfigError) as info:
                call(streamer)
            assert info.value.option == option
        finally:
            streamer.shutdown(10)
