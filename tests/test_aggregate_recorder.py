"""The interval recorder: every kind against a reference computed here, windows, limits, threads."""

from __future__ import annotations

import functools
import itertools
import math
import threading
from collections import defaultdict
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from metricstream import ConfigError, InvalidEventError, MetricEvent
from metricstream.aggregate import DEFAULT_BUCKETS, Aggregator, bucket_bounds

SECOND = 1_000_000_000
INTERVAL = 10 * SECOND


class FakeClock:
    """A wall clock the test sets."""

    def __init__(self, now: int = 0) -> None:
        self.now = now

    def __call__(self) -> int:
        return self.now


TAG_KEYS = ["host", "route", "zone"]
TAG_VALUES = ["a", "b", "/api", "1", 1, "200", 200]


@st.composite
def tag_dicts(draw: Any) -> dict[str, object]:
    """A tag dict with a few keys, its items in a random order, values str or int."""
    keys = draw(st.lists(st.sampled_from(TAG_KEYS), unique=True, max_size=3))
    values = [draw(st.sampled_from(TAG_VALUES)) for _ in keys]
    return dict(zip(keys, values, strict=True))


def canonical(tags: dict[str, object]) -> tuple[tuple[str, str], ...]:
    return tuple(sorted((key, str(value)) for key, value in tags.items()))


def times(count: int) -> Any:
    """Non-decreasing times over a few windows."""
    return st.lists(st.integers(0, 4 * INTERVAL), min_size=count, max_size=count).map(sorted)


def keyed(events: list[MetricEvent]) -> dict[tuple[str, int, tuple[tuple[str, str], ...]], Any]:
    """The events by (name, window start, sorted tags), each appearing once."""
    result = {}
    for event in events:
        key = (event.measurement, event.timestamp_ns, tuple(sorted(event.tags.items())))
        assert key not in result, f"two events for {key}"
        result[key] = event.fields
    return result


def run(
    aggregator: Aggregator, clock: FakeClock, calls: list[tuple[int, Any]]
) -> list[MetricEvent]:
    """Make each call at its time, collecting now and then; return every event emitted."""
    events = []
    for position, (at, call) in enumerate(calls):
        clock.now = at
        call()
        if position % 7 == 3:
            events += aggregator.collect(at)
    events += aggregator.collect(10 * INTERVAL)
    return events


def recorded(
    data: Any, name: str, numbers: Any, record: Any
) -> tuple[dict[Any, Any], dict[Any, list[Any]]]:
    """Draw a stream of (tags, value, time) and record it with ``record(aggregator, value, tags)``.

    Returns:
        The events emitted, by `keyed`, and the values recorded, by the same keys.
    """
    size = data.draw(st.integers(0, 100))
    tags = data.draw(st.lists(tag_dicts(), min_size=size, max_size=size))
    values = data.draw(st.lists(numbers, min_size=size, max_size=size))
    at = data.draw(times(size))
    clock = FakeClock()
    aggregator = Aggregator(10, clock=clock)
    expected: dict[Any, list[Any]] = defaultdict(list)
    calls = []
    for tag, value, when in zip(tags, values, at, strict=True):
        expected[(name, when - when % INTERVAL, canonical(tag))].append(value)
        calls.append((when, functools.partial(record, aggregator, value, tag)))
    return keyed(run(aggregator, clock, calls)), expected


class TestCounters:
    """Counts are exact per series and window, whatever the order of the tag dict."""

    @settings(max_examples=60, deadline=None)
    @given(st.data())
    def test_counts_equal_a_reference(self, data: Any) -> None:
        got, expected = recorded(
            data, "req", st.integers(-50, 50), lambda agg, n, tags: agg.count("req", n, tags)
        )
        assert {key: fields["count"] for key, fields in got.items()} == {
            key: sum(amounts) for key, amounts in expected.items()
        }
        assert all(type(fields["count"]) is int and len(fields) == 1 for fields in got.values())

    def test_tags_as_pairs_or_without_tags_are_series_too(self) -> None:
        aggregator = Aggregator(10, clock=FakeClock())
        aggregator.count("jobs")
        aggregator.count("jobs", tags=None)
        aggregator.count("jobs", 3, tags=[("queue", "mail")])
        aggregator.count("jobs", tags={"queue": "mail"})
        got = keyed(aggregator.collect(INTERVAL))
        assert got == {
            ("jobs", 0, ()): {"count": 2},
            ("jobs", 0, (("queue", "mail"),)): {"count": 4},
        }

    def test_a_name_recorded_with_several_tag_layouts_keeps_them_apart(self) -> None:
        aggregator = Aggregator(10, clock=FakeClock())
        for _ in range(3):
            aggregator.count("svc", tags={"service": "db"})
            aggregator.count("svc", tags={"component": "db"})
            aggregator.count("svc", tags={"component": "db", "service": "db"})
            aggregator.count("svc", tags={"service": "db", "component": "db"})
        assert keyed(aggregator.collect(INTERVAL)) == {
            ("svc", 0, (("service", "db"),)): {"count": 3},
            ("svc", 0, (("component", "db"),)): {"count": 3},
            ("svc", 0, (("component", "db"), ("service", "db"))): {"count": 6},
        }

    @pytest.mark.parametrize("n", [1.5, True, "1", 2**63, None])
    def test_a_count_that_is_not_an_int64_is_refused(self, n: object) -> None:
        aggregator = Aggregator(10, clock=FakeClock())
        with pytest.raises(InvalidEventError, match="'req'"):
            aggregator.count("req", n)  # type: ignore[arg-type]
        assert aggregator.collect(INTERVAL) == []


class TestGauges:
    """Gauges report last, min, max, sum and count, always as floats."""

    @settings(max_examples=60, deadline=None)
    @given(st.data())
    def test_gauges_equal_a_reference(self, data: Any) -> None:
        numbers = st.one_of(st.integers(-1000, 1000), st.floats(-1e6, 1e6, allow_nan=False))
        got, expected = recorded(
            data, "queue", numbers, lambda agg, value, tags: agg.gauge("queue", value, tags)
        )
        reference = {}
        for key, values in expected.items():
            seen = [float(value) for value in values]
            total = 0.0
            for value in seen:
                total += value
            reference[key] = {
                "last": seen[-1],
                "min": min(seen),
                "max": max(seen),
                "sum": total,
                "count": float(len(seen)),
            }
        assert got == reference
        assert all(type(v) is float for fields in got.values() for v in fields.values())

    @pytest.mark.parametrize("value", [math.nan, math.inf, -math.inf, "3", None, True, 10**400])
    def test_a_value_that_is_not_a_finite_number_is_refused(self, value: object) -> None:
        aggregator = Aggregator(10, clock=FakeClock())
        with pytest.raises(InvalidEventError, match="'q'"):
            aggregator.gauge("q", value)  # type: ignore[arg-type]


def reference_histogram(values: list[float], bounds: tuple[float, ...]) -> dict[str, object]:
    _, names = bucket_bounds(bounds)
    fields: dict[str, object] = {}
    for name, bound in zip(names, [*bounds, math.inf], strict=True):
        fields[name] = sum(1 for value in values if value <= bound)
    total = 0.0
    for value in values:
        total += value
    fields["sum"] = total
    fields["count"] = len(values)
    return fields


class TestHistograms:
    """Cumulative bucket counts are exactly Prometheus's: values <= bound."""

    @settings(max_examples=60, deadline=None)
    @given(st.data())
    def test_histograms_equal_a_reference(self, data: Any) -> None:
        bounds = tuple(
            data.draw(
                st.lists(
                    st.sampled_from([-1, 0, 0.005, 0.1, 1, 2.5, 10, 1e6, 1000001]),
                    unique=True,
                    min_size=1,
                ).map(sorted)
            )
        )
        numbers = st.one_of(
            st.sampled_from([*bounds, -1.0, 0.0, 1e7]),
            st.floats(-5, 20, allow_nan=False),
            st.integers(-5, 20),
        )
        got, expected = recorded(
            data, "lat", numbers, lambda agg, v, tags: agg.histogram("lat", v, tags, buckets=bounds)
        )
        assert got == {
            key: reference_histogram([float(v) for v in seen], bounds)
            for key, seen in expected.items()
        }

    def test_bound_names_are_exact_and_distinct(self) -> None:
        _, names = bucket_bounds([0.005, 1, 2.5, 1_000_000, 1_000_001, 1e20])
        assert names == (
            "le_0.005",
            "le_1",
            "le_2.5",
            "le_1000000",
            "le_1000001",
            "le_1e+20",
            "le_inf",
        )

    def test_the_default_buckets_are_prometheus_clients(self) -> None:
        aggregator = Aggregator(10, clock=FakeClock())
        aggregator.histogram("lat", 0.3)
        (event,) = aggregator.collect(INTERVAL)
        assert list(event.fields)[:-3] == [f"le_{b:g}" for b in DEFAULT_BUCKETS]
        assert event.fields["le_0.25"] == 0
        assert event.fields["le_0.5"] == 1
        assert event.to_influx_line().startswith("lat le_0.005=0i,")

    @pytest.mark.parametrize(
        ("buckets", "problem"),
        [
            ([1, 0.5], "not sorted"),
            ([1, 1.0], "repeated"),
            ([1, math.inf], "not finite"),
            ([math.nan], "not finite"),
            ([], "non-empty"),
            (["1"], "not a number"),
            ([True], "not a number"),
            ("1,2", "non-empty list"),
            ([2**53, 2**53 + 1], "repeated"),
        ],
    )
    def test_bad_buckets_are_refused_naming_the_option(self, buckets: object, problem: str) -> None:
        aggregator = Aggregator(10, clock=FakeClock())
        with pytest.raises(ConfigError, match=problem) as caught:
            aggregator.histogram("lat", 1.0, buckets=buckets)  # type: ignore[arg-type]
        assert caught.value.option == "buckets"

    def test_a_name_keeps_the_buckets_of_its_first_series(self) -> None:
        aggregator = Aggregator(10, clock=FakeClock())
        aggregator.histogram("lat", 1.0, {"route": "/a"}, buckets=[1, 2])
        aggregator.histogram("lat", 1.0, {"route": "/a"}, buckets=[1, 2])
        with pytest.raises(ConfigError, match="first recorded with buckets"):
            aggregator.histogram("lat", 1.0, {"route": "/b"}, buckets=[1, 3])


class TestNamesAndTags:
    """A name has one kind; names and tags follow the model's rules."""

    def test_a_name_cannot_change_kind(self) -> None:
        aggregator = Aggregator(10, clock=FakeClock())
        aggregator.count("x")
        for record in (
            lambda: aggregator.gauge("x", 1.0),
            lambda: aggregator.histogram("x", 1.0),
            lambda: aggregator.set("x", "m"),
        ):
            with pytest.raises(ConfigError, match="recorded as a counter"):
                record()

    @pytest.mark.parametrize(
        ("name", "tags"),
        [
            ("", None),
            ("ok", {"": "v"}),
            ("ok", {"k": ""}),
            ("ok", {"time": "v"}),
            ("ok", {"k": []}),
        ],
    )
    def test_invalid_names_and_tags_are_refused(self, name: str, tags: Any) -> None:
        aggregator = Aggregator(10, clock=FakeClock())
        with pytest.raises(InvalidEventError):
            aggregator.count(name, tags=tags)
        with pytest.raises(InvalidEventError):
            aggregator.histogram(name, 1.0, tags=tags)
        assert aggregator.collect(INTERVAL) == []

    @pytest.mark.parametrize(
        ("options", "option"),
        [
            ({"interval": 0}, "interval"),
            ({"interval": "10 parsecs"}, "interval"),
            ({"max_series": 0}, "max_series"),
            ({"exact_unique": -1}, "exact_unique"),
        ],
    )
    def test_invalid_options_name_themselves(self, options: dict[str, Any], option: str) -> None:
        with pytest.raises(ConfigError) as caught:
            Aggregator(**options)
        assert caught.value.option == option


class TestWindows:
    """Windows are aligned to the interval; nothing is emitted for what received nothing."""

    def test_values_land_in_the_window_of_their_clock_time(self) -> None:
        clock = FakeClock()
        aggregator = Aggregator("10s", clock=clock)
        collected = []
        for now in (9_999_999_999, 10 * SECOND, 19 * SECOND, 25 * SECOND, 47 * SECOND):
            clock.now = now
            aggregator.count("c")
            collected.append(aggregator.collect(now))
        assert collected == [
            [],
            [MetricEvent("c", None, {"count": 1}, 0, before_2001=True)],
            [],
            [MetricEvent("c", None, {"count": 2}, INTERVAL, before_2001=True)],
            [
                MetricEvent("c", None, {"count": 1}, 2 * INTERVAL, before_2001=True)
            ],  # [30 s, 40 s) was empty
        ]
        assert aggregator.collect(49 * SECOND) == []
        assert aggregator.collect_all() == [
            MetricEvent("c", None, {"count": 1}, 4 * INTERVAL, before_2001=True)
        ]
        assert aggregator.collect_all() == []
        assert aggregator.collect(60 * SECOND) == []

    def test_a_series_silent_in_a_window_emits_nothing_for_it(self) -> None:
        clock = FakeClock()
        aggregator = Aggregator(10, clock=clock)
        aggregator.count("c", tags={"k": "a"})
        aggregator.count("c", tags={"k": "b"})
        clock.now = INTERVAL
        aggregator.count("c", tags={"k": "b"})
        events = aggregator.collect(2 * INTERVAL)
        assert [(e.timestamp_ns, e.tags) for e in events] == [
            (0, {"k": "a"}),
            (0, {"k": "b"}),
            (INTERVAL, {"k": "b"}),
        ]

    def test_a_clock_going_back_counts_in_the_current_window(self) -> None:
        clock = FakeClock(25 * SECOND)
        aggregator = Aggregator(10, clock=clock)
        aggregator.count("c")
        clock.now = 5 * SECOND
        aggregator.count("c")
        assert aggregator.collect(30 * SECOND) == [
            MetricEvent("c", None, {"count": 2}, 2 * INTERVAL, before_2001=True)
        ]


class TestCardinality:
    """Past max_series, new series fold into one overflow series per name, and are counted."""

    @settings(max_examples=40, deadline=None)
    @given(
        st.integers(1, 6),
        st.lists(
            st.tuples(st.sampled_from(["a", "b"]), st.integers(0, 9), st.integers(1, 9)),
            max_size=80,
        ),
    )
    def test_folded_series_are_counted_and_their_totals_kept(
        self, limit: int, calls: list[tuple[str, int, int]]
    ) -> None:
        aggregator = Aggregator(10, max_series=limit, clock=FakeClock())
        admitted: list[tuple[str, int]] = []
        folded: set[tuple[str, int]] = set()
        expected: dict[tuple[str, tuple[tuple[str, str], ...]], int] = defaultdict(int)
        for name, user, n in calls:
            aggregator.count(name, n, {"user": user})
            series = (name, user)
            if series not in admitted and len(admitted) < limit:
                admitted.append(series)
            if series in admitted:
                expected[(name, (("user", str(user)),))] += n
            else:
                folded.add(series)
                expected[(name, (("overflow", "true"),))] += n
        got = {
            (event.measurement, tuple(sorted(event.tags.items()))): event.fields["count"]
            for event in aggregator.collect(INTERVAL)
        }
        assert got == dict(expected)
        assert aggregator.series_folded == len(folded)
        assert aggregator.series_count == len(admitted)


class TestConcurrency:
    """Eight threads recording into the same series lose nothing, across window changes."""

    def test_totals_are_exact_with_eight_threads_and_a_collector(self) -> None:
        ticks = itertools.count()
        aggregator = Aggregator(10, clock=lambda: next(ticks) * 1_000_000)  # 1 ms per call
        per_thread = 20_000
        start = threading.Barrier(9)
        collected: list[MetricEvent] = []
        done = threading.Event()

        def record() -> None:
            start.wait()
            for i in range(per_thread):
                aggregator.count("hits", tags={"route": "/a"})
                aggregator.histogram("lat", float(i % 3), tags={"route": "/a"}, buckets=[1, 2])

        def collect() -> None:
            start.wait()
            while not done.is_set():
                collected.extend(aggregator.collect())

        threads = [threading.Thread(target=record) for _ in range(8)]
        collector = threading.Thread(target=collect)
        for thread in [*threads, collector]:
            thread.start()
        for thread in threads:
            thread.join()
        done.set()
        collector.join()
        collected.extend(aggregator.collect_all())
        hits = [e.fields["count"] for e in collected if e.measurement == "hits"]
        lat = [e.fields for e in collected if e.measurement == "lat"]
        assert sum(hits) == 8 * per_thread
        assert len(hits) > 1  # the windows did change while the threads recorded
        assert sum(f["count"] for f in lat) == 8 * per_thread
        assert sum(f["le_1"] for f in lat) == 8 * (per_thread - per_thread // 3)
        assert len({(e.measurement, e.timestamp_ns) for e in collected}) == len(collected)
