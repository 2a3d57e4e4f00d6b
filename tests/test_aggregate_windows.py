"""Event-time windows, the watermark and the options' text forms, against plain references."""

from __future__ import annotations

import math
from collections import defaultdict
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from metricstream import ConfigError, MetricEvent
from metricstream._validate import INT64_MIN
from metricstream.aggregate import (
    QUANTILES,
    AggregateSpec,
    EventTimeWindows,
    Session,
    Sliding,
    Tumbling,
    WatermarkTracker,
    Window,
    WindowResult,
    parse_aggregates,
    parse_by,
    parse_duration,
    parse_window,
    tumbling,
)
from metricstream.aggregate._sketches import RELATIVE_ACCURACY

S = 1_000_000_000


class FakeClock:
    """A processing-time clock the test moves."""

    def __init__(self) -> None:
        self.now = 0

    def __call__(self) -> int:
        return self.now


def tracker(lateness_s: float = 0, idle_s: float = 60, clock: FakeClock | None = None) -> Any:
    return WatermarkTracker(lateness_s, idle_s, clock=clock or FakeClock())


class TestTextForms:
    """Durations, windows, groups and aggregates read from text; mistakes name the option."""

    @pytest.mark.parametrize(
        ("text", "ns"),
        [
            ("500ms", S // 2),
            ("10s", 10 * S),
            ("1.5m", 90 * S),
            ("1h", 3600 * S),
            (2, 2 * S),
            (0.25, S // 4),
            (" 3 s ", 3 * S),
            ("10", 10 * S),
        ],
    )
    def test_durations(self, text: object, ns: int) -> None:
        assert parse_duration("size", text) == ns

    @pytest.mark.parametrize("text", ["-1s", "1d", "", "ten s", True, math.nan, 0, "0s", "nan"])
    def test_bad_durations_name_the_option(self, text: object) -> None:
        with pytest.raises(ConfigError) as caught:
            parse_duration("gap", text)
        assert caught.value.option == "gap"

    def test_windows_from_text(self) -> None:
        assert parse_window("tumbling 60s") == Tumbling(60 * S)
        assert parse_window("sliding 60s every 10s") == Sliding(60 * S, 10 * S)
        assert parse_window("session gap 30s") == Session(30 * S)
        assert parse_window(tumbling("1m")) == Tumbling(60 * S)

    @pytest.mark.parametrize(
        ("text", "option"),
        [
            ("tumbling", "window"),
            ("sliding 60s", "window"),
            ("session 30s", "window"),
            ("hopping 1s", "window"),
            (42, "window"),
            ("tumbling 0s", "size"),
            ("sliding 10s every 60s", "every"),
            ("session gap soon", "gap"),
        ],
    )
    def test_bad_windows_name_the_option(self, text: object, option: str) -> None:
        with pytest.raises(ConfigError) as caught:
            parse_window(text)  # type: ignore[arg-type]
        assert caught.value.option == option

    def test_aggregates_from_text(self) -> None:
        specs = parse_aggregates(
            "count,sum:bytes,min:latency_ms,max:latency_ms,mean:latency_ms,last:value,"
            "unique:user,quantiles:latency_ms"
        )
        assert [field for spec in specs for field in spec.fields] == [
            "count",
            "sum_bytes",
            "min_latency_ms",
            "max_latency_ms",
            "mean_latency_ms",
            "last_value",
            "unique_user",
            "p50_latency_ms",
            "p90_latency_ms",
            "p99_latency_ms",
            "p999_latency_ms",
        ]
        assert parse_aggregates(["count", "sum:b"]) == (
            AggregateSpec("count", None),
            AggregateSpec("sum", "b"),
        )

    @pytest.mark.parametrize(
        "text", ["", "avg:x", "count:x", "sum", "sum:", "sum:x,sum:x", "p50:x", "sum:x\\"]
    )
    def test_bad_aggregates_name_the_option(self, text: str) -> None:
        with pytest.raises(ConfigError) as caught:
            parse_aggregates(text)
        assert caught.value.option == "aggregates"

    def test_groups_from_text(self) -> None:
        assert parse_by("host, route") == ("host", "route")
        assert parse_by(["host"]) == ("host",)
        assert parse_by("") == parse_by(None) == ()
        for bad in ("host,host", "window", ["time"], ["a", ""]):
            with pytest.raises(ConfigError) as caught:
                parse_by(bad)
            assert caught.value.option == "by"


class TestAssignment:
    """Tumbling and sliding windows hold exactly the instants a brute-force search finds."""

    @settings(max_examples=200, deadline=None)
    @given(st.integers(-(10**12), 10**12), st.integers(1, 50), st.integers(1, 50))
    def test_windows_equal_a_brute_force_search(self, t: int, size_s: int, every_s: int) -> None:
        size, every = size_s * S // 10, min(every_s, size_s) * S // 10
        found = {
            Window(k * every, k * every + size)
            for k in range(t // every - size // every - 2, t // every + 2)
            if k * every <= t < k * every + size
        }
        assert set(Sliding(size, every).assign(t)) == found
        assert len(Sliding(size, every).assign(t)) == len(found)
        (only,) = Tumbling(size).assign(t)
        assert only.start % size == 0
        assert only.start <= t < only.end == only.start + size


def event(t_s: float, host: str = "a", **fields: Any) -> MetricEvent:
    tags = {"host": host}
    for key in [k for k, v in fields.items() if isinstance(v, str)]:
        tags[key] = fields.pop(key)
    return MetricEvent(
        "req", tags, fields or {"n": 1}, timestamp_ns=round(t_s * S), before_2001=True
    )


AGGREGATES = "count,sum:bytes,min:lat,max:lat,mean:lat,last:lat,unique:user,quantiles:lat"


def reference_fields(events: list[MetricEvent]) -> dict[str, Any]:
    """The aggregates of AGGREGATES over `events` (in arrival order), computed plainly."""
    lat = [e.fields["lat"] for e in events if "lat" in e.fields]
    total = 0.0
    for e in events:
        total += e.fields.get("bytes", 0) if "bytes" in e.fields else 0
    fields: dict[str, Any] = {"count": len(events)}
    if any("bytes" in e.fields for e in events):
        fields["sum_bytes"] = total
    if lat:
        lat_sum = 0.0
        for value in lat:
            lat_sum += value
        latest = max(e.timestamp_ns for e in events if "lat" in e.fields)
        fields.update(
            min_lat=min(lat),
            max_lat=max(lat),
            mean_lat=lat_sum / len(lat),
            last_lat=[
                e.fields["lat"] for e in events if "lat" in e.fields and e.timestamp_ns == latest
            ][-1],
        )
    users = {e.tags["user"] for e in events if "user" in e.tags}
    if users:
        fields["unique_user"] = len(users)
    if lat:
        ordered = sorted(lat)
        for q, prefix in QUANTILES:
            fields[f"{prefix}_lat"] = ordered[math.floor(q * (len(ordered) - 1))]
    return fields


def same_fields(got: dict[str, Any], expected: dict[str, Any]) -> bool:
    if got.keys() != expected.keys():
        return False
    for key, value in expected.items():
        if key[:2] in ("p5", "p9"):
            if abs(got[key] - value) > RELATIVE_ACCURACY * abs(value) * (1 + 1e-9):
                return False
        elif got[key] != value:
            return False
    return True


random_events = st.lists(
    st.tuples(
        st.integers(0, 120_000).map(lambda ms: ms / 1000),
        st.sampled_from(["a", "b"]),
        st.integers(0, 1000),
        # Magnitudes within DDSketch's range of 10**17 (see metricstream.aggregate._sketches).
        st.one_of(st.just(0.0), st.floats(1e-3, 100), st.floats(-100, -1e-3)),
        st.sampled_from(["u1", "u2", "u3", "u4"]),
    ),
    max_size=80,
)


class TestTumblingAndSliding:
    """Results equal a plain-Python reference, with events out of order and late ones."""

    @settings(max_examples=60, deadline=None)
    @given(
        random_events,
        st.integers(0, 30),
        st.sampled_from(["tumbling 10s", "sliding 10s every 5s", "sliding 30s every 10s"]),
    )
    def test_results_equal_the_reference(self, rows: list[Any], lateness: int, spec: str) -> None:
        events = [event(t, host, bytes=b, lat=lat, user=user) for t, host, b, lat, user in rows]
        windows = EventTimeWindows(
            "traffic", spec, by="host", aggregates=AGGREGATES, watermark=tracker(lateness)
        )
        assigner = parse_window(spec)
        expected: dict[tuple[str, Window], list[MetricEvent]] = defaultdict(list)
        expected_late, newest = [], -math.inf
        results: list[WindowResult] = []
        for position, e in enumerate(events):
            newest = max(newest, e.timestamp_ns)
            watermark = newest - lateness * S
            mine = assigner.assign(e.timestamp_ns)
            for w in mine:
                if w.end > watermark:
                    expected[(e.tags["host"], w)].append(e)
            is_late = any(w.end <= watermark for w in mine)
            if is_late:
                expected_late.append(e)
            assert windows.add([e]) == ([e] if is_late else [])
            if position % 5 == 0:
                closed = windows.close()
                assert all(r.window.end <= watermark for r in closed)
                results += closed
        results += windows.close_all()
        got = {(r.event.tags["host"], r.window): r for r in results}
        assert len(got) == len(results)
        assert got.keys() == expected.keys()
        for key, r in got.items():
            assert r.event.tags == {"host": key[0], "window": assigner.kind}
            assert r.event.timestamp_ns == key[1].start
            assert r.event.measurement == "traffic"
            assert same_fields(r.event.fields, reference_fields(expected[key])), key
        assert windows.late_events == len(expected_late)

    def test_groups_read_tags_then_fields_and_leave_out_what_is_missing(self) -> None:
        windows = EventTimeWindows(
            "g", "tumbling 10s", by=["host", "code", "measurement"], watermark=tracker()
        )
        windows.add(
            [
                MetricEvent("req", {"host": "a"}, {"code": 200}, timestamp_ns=1, before_2001=True),
                MetricEvent(
                    "req", {"host": "a", "code": "200"}, {"n": 1}, timestamp_ns=2, before_2001=True
                ),
                MetricEvent("req", {"host": "a"}, {"n": 1}, timestamp_ns=3, before_2001=True),
                MetricEvent("req", {"host": "a"}, {"code": ""}, timestamp_ns=4, before_2001=True),
            ]
        )
        tags = [(r.event.tags, r.event.fields["count"]) for r in windows.close_all()]
        assert sorted(tags, key=str) == sorted(
            [
                ({"host": "a", "code": "200", "measurement": "req", "window": "tumbling"}, 2),
                ({"host": "a", "measurement": "req", "window": "tumbling"}, 2),
            ],
            key=str,
        )


def reference_sessions(times: list[float], gap: float) -> list[tuple[float, float, int]]:
    ordered = sorted(times)
    sessions: list[list[float]] = []
    for t in ordered:
        if sessions and t < sessions[-1][-1] + gap:
            sessions[-1].append(t)
        else:
            sessions.append([t])
    return [(s[0], s[-1] + gap, len(s)) for s in sessions]


class TestSessions:
    """Sessions merge when an event bridges them; results equal a plain-Python reference."""

    @settings(max_examples=80, deadline=None)
    @given(st.lists(st.integers(0, 200), max_size=40), st.integers(1, 30))
    def test_sessions_equal_the_reference_when_nothing_is_late(
        self, times: list[int], gap: int
    ) -> None:
        windows = EventTimeWindows("s", f"session gap {gap}s", watermark=tracker(10_000))
        assert windows.add([event(t) for t in times]) == []
        got = [
            (r.window.start / S, r.window.end / S, r.event.fields["count"])
            for r in windows.close_all()
        ]
        assert got == reference_sessions(times, gap)

    def test_an_event_between_two_sessions_joins_them(self) -> None:
        windows = EventTimeWindows(
            "s", "session gap 20s", aggregates="count,sum:v", watermark=tracker(100)
        )
        windows.add([event(0, v=1), event(30, v=2)])
        assert windows.open_windows == 2  # [0, 20) and [30, 50)
        windows.add([event(15, v=4)])  # [15, 35) overlaps both
        (result,) = windows.close_all()
        assert result.window == Window(0, 50 * S)
        assert result.event.fields == {"count": 3, "sum_v": 7.0}

    def test_a_session_closes_when_the_watermark_passes_its_end(self) -> None:
        windows = EventTimeWindows("s", "session gap 10s", watermark=tracker(5))
        windows.add([event(0), event(8)])
        assert windows.close() == []
        windows.add([event(22)])  # watermark 17 < 18
        assert windows.close() == []
        windows.add([event(23)])  # watermark 18
        (result,) = windows.close()
        assert (result.window, result.event.fields) == (Window(0, 18 * S), {"count": 2})
        assert windows.add([event(7)]) == [event(7)]  # [7, 17) ends before 18: late
        assert windows.add([event(9)]) == []  # [9, 19) ends after 18, a session of its own
        assert [r.window for r in windows.close_all()] == [
            Window(9 * S, 19 * S),
            Window(22 * S, 33 * S),
        ]
        assert windows.late_events == 1


class TestWatermark:
    """The slowest active partition holds the watermark; an idle one stops holding it."""

    def test_several_partitions_and_an_idle_one(self) -> None:
        clock = FakeClock()
        watermark = WatermarkTracker(5, 30, clock=clock, partitions=[0, 1])
        windows = EventTimeWindows("w", "tumbling 10s", watermark=watermark)
        windows.add([event(100)], partition=0)
        assert watermark.watermark() == -(2**63)  # partition 1 has sent nothing yet
        windows.add([event(50)], partition=1)
        assert watermark.watermark() == 45 * S
        assert [r.window for r in windows.close()] == []
        clock.now = 20 * S
        windows.add([event(101)], partition=0)
        assert watermark.watermark() == 45 * S  # partition 1 is quiet, not idle yet
        clock.now = 40 * S
        windows.add([event(102)], partition=0)
        assert watermark.watermark() == 97 * S  # partition 1 idle for 40 s >= 30 s
        assert [r.window for r in windows.close()] == [Window(50 * S, 60 * S)]
        assert windows.add([event(60)], partition=1) == [event(60)]  # [60, 70) is complete
        assert watermark.watermark() == 97 * S  # active again, but it never goes back
        assert windows.late_events == 1
        assert watermark.partitions() == {0: 102 * S, 1: 60 * S}

    def test_an_assigned_partition_that_never_speaks_stops_holding_it_when_idle(self) -> None:
        clock = FakeClock()
        watermark = WatermarkTracker(0, 10, clock=clock, partitions=["quiet"])
        watermark.observe("busy", 50 * S)
        assert watermark.watermark() == -(2**63)
        clock.now = 10 * S
        watermark.observe("busy", 60 * S)
        assert watermark.watermark() == 60 * S

    def test_with_every_partition_idle_the_newest_counts(self) -> None:
        clock = FakeClock()
        watermark = WatermarkTracker(0, 1, clock=clock)
        watermark.observe("a", 10 * S)
        watermark.observe("b", 20 * S)
        assert watermark.watermark() == 10 * S
        clock.now = 2 * S
        assert watermark.watermark() == 20 * S

    def test_before_any_event_nothing_closes(self) -> None:
        windows = EventTimeWindows("w", "tumbling 10s", watermark=tracker())
        assert windows.close() == []
        assert windows.watermark.watermark() == -(2**63)


def all_results(windows: EventTimeWindows) -> list[tuple[Any, ...]]:
    return [(r.identity, r.window_id, r.event) for r in windows.close_all()]


class TestRebuildAndMerge:
    """Windows rebuilt from the same events, or merged from parts, give the same results."""

    @settings(max_examples=40, deadline=None)
    @given(
        random_events, st.sampled_from(["tumbling 10s", "sliding 20s every 10s", "session gap 7s"])
    )
    def test_rebuilt_and_merged_windows_equal_one_that_saw_everything(
        self, rows: list[Any], spec: str
    ) -> None:
        events = [event(t, host, bytes=b, user=user) for t, host, b, _, user in rows]
        aggregates = "count,sum:bytes,max:bytes,last:bytes,unique:user"

        def build() -> EventTimeWindows:
            return EventTimeWindows(
                "m", spec, by="host", aggregates=aggregates, watermark=tracker(10_000)
            )

        whole, again, left, right = build(), build(), build(), build()
        whole.add(events)
        for e in events:
            again.add([e])
        left.add([e for e in events if e.tags["host"] == "a" or e.fields["bytes"] % 2])
        right.add(
            [e for e in events if not (e.tags["host"] == "a" or e.fields["bytes"] % 2)], partition=1
        )
        left.merge(right)
        expected = all_results(whole)
        assert all_results(again) == expected
        merged = all_results(left)
        assert [(identity, fields_without_last(e)) for identity, _, e in merged] == [
            (identity, fields_without_last(e)) for identity, _, e in expected
        ]

    def test_identities_are_stable_and_distinct(self) -> None:
        def build() -> EventTimeWindows:
            return EventTimeWindows("m", "tumbling 10s", by="host", watermark=tracker(1000))

        first, second = build(), build()
        for windows in (first, second):
            windows.add([event(1, "a"), event(2, "b"), event(12, "a")])
        ids = [r.window_id for r in first.close_all()]
        assert ids == [r.window_id for r in second.close_all()]
        assert len(set(ids)) == 3
        assert all(len(i) == 32 for i in ids)

    def test_merging_windows_of_other_options_is_refused(self) -> None:
        one = EventTimeWindows("m", "tumbling 10s")
        with pytest.raises(ConfigError, match="different"):
            one.merge(EventTimeWindows("m", "tumbling 20s"))

    def test_a_bad_measurement_names_the_option(self) -> None:
        with pytest.raises(ConfigError) as caught:
            EventTimeWindows("", "tumbling 10s")
        assert caught.value.option == "measurement"


def fields_without_last(e: MetricEvent) -> dict[str, Any]:
    """Merged parts may order equal times differently: ``last`` is checked by the rebuild."""
    return {k: v for k, v in e.fields.items() if k != "last_bytes"}


class TestCheckpoints:
    """What a reader resuming from a checkpoint needs: sources, open positions, resumed floors."""

    def test_windows_remember_their_sources_and_the_earliest_open_position(self) -> None:
        windows = EventTimeWindows("m", "tumbling 10s", by="host", watermark=tracker(5))
        windows.add(
            [event(1, "a"), event(12, "a"), event(3, "b")], partition="p", positions=[7, 8, 9]
        )
        windows.add([event(2, "a"), event(14, "a")], partition="q", positions=[40, 41])
        assert windows.open_positions() == {"p": 7, "q": 40}
        windows.add([event(30, "a")], partition="p", positions=[10])
        windows.add([event(30, "a")], partition="q", positions=[42])  # watermark 25: [0, 20) close
        results = windows.close()
        assert windows.closed_through == 25 * S
        assert [(r.group, r.window.start // S, r.sources) for r in results] == [
            ((("host", "a"),), 0, (("p", 7), ("q", 40))),
            ((("host", "b"),), 0, (("p", 9),)),
            ((("host", "a"),), 10, (("p", 8), ("q", 41))),
        ]
        assert windows.open_positions() == {"p": 10, "q": 42}

    def test_merged_sessions_keep_the_earliest_position_of_each_source(self) -> None:
        windows = EventTimeWindows("s", "session gap 20s", watermark=tracker(100))
        windows.add([event(0)], partition="p", positions=[5])
        windows.add([event(30)], partition="q", positions=[3])
        windows.add([event(15)], partition="p", positions=[9])  # joins both sessions
        (result,) = windows.close_all()
        assert dict(result.sources) == {"p": 5, "q": 3}

    def test_a_resumed_partition_is_late_below_its_floor(self) -> None:
        clock = FakeClock()
        windows = EventTimeWindows("m", "tumbling 10s", watermark=tracker(5, clock=clock))
        windows.watermark.resume("p", 20 * S)  # windows ending by 20 s were emitted for p
        windows.watermark.assign(["q"])
        assert windows.watermark.floor("p") == 20 * S
        assert windows.watermark.floor("q") == INT64_MIN
        assert windows.watermark.watermark() == INT64_MIN  # both wait for their events
        late = windows.add([event(15), event(25)], partition="p")
        assert [e.timestamp_ns // S for e in late] == [15]
        assert windows.add([event(15)], partition="q") == []  # q resumed from nothing
        assert windows.watermark.watermark() == 10 * S  # q: 15 - 5; p: 25 - 5

    def test_a_rebuilt_session_that_closes_by_the_floor_is_not_emitted_again(self) -> None:
        windows = EventTimeWindows("s", "session gap 3s", watermark=tracker(0))
        windows.watermark.resume("p", 20 * S)  # sessions ending by 20 s were emitted
        # 10 s: a straggler of an emitted session; 16 s then 18 s: a session that went on
        assert windows.add([event(10), event(16), event(18), event(40)], partition="p") == []
        (result,) = windows.close()  # [16, 21) ends after the floor: emitted whole
        assert (result.window, result.event.fields["count"]) == (Window(16 * S, 21 * S), 2)
        assert windows.replayed_events == 1  # [10, 13) was emitted before the resume

    def test_discard_forgets_windows_and_starts_the_watermark_over(self) -> None:
        windows = EventTimeWindows("m", "tumbling 10s", watermark=tracker(0))
        windows.add([event(5), event(50)])
        windows.close()
        assert windows.watermark.watermark() == 50 * S
        assert windows.open_windows == 1
        windows.discard()
        assert windows.open_windows == 0
        assert windows.watermark.watermark() == INT64_MIN
        assert windows.closed_through == INT64_MIN
        assert windows.add([event(5)]) == []  # not late: the new watermark knows nothing

    def test_forgotten_partitions_stop_holding_the_watermark(self) -> None:
        watermark = tracker(0)
        watermark.observe("p", 10 * S)
        watermark.observe("q", 30 * S)
        assert watermark.watermark() == 10 * S
        watermark.forget(["p"])
        assert watermark.watermark() == 30 * S
