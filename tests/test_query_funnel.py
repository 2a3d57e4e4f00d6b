"""Funnels: exact and strict order, windows, ties and repeats, against a brute-force reference."""

from __future__ import annotations

import tempfile
import uuid
from pathlib import Path

import pytest

from tests.servers import require_module

require_module("duckdb", "metricstream.query runs on DuckDB (the query extra)")

from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

import metricstream as ms  # noqa: E402
from metricstream.exceptions import ConfigError  # noqa: E402
from metricstream.query import Archive, EventSet, eq, format_event_id  # noqa: E402
from tests.test_query_reference import (  # noqa: E402
    both_ways,  # noqa: F401  (a fixture: every test with and without the cache)
    funnel,
    passes,
    write_archive,
)

Event = ms.MetricEvent
S = 1_000_000_000


def ev(name: str, user: str | None, second: float, **tags: str) -> Event:
    if user is not None:
        tags["user"] = user
    return Event(name, tags=tags, fields={"n": 1}, timestamp_ns=int(second * S), before_2001=True)


def run(
    tmp_path: Path,
    events: list[Event],
    steps: list[str],
    order: str = "exact_order",
    window: float | None = None,
) -> list[tuple[int, float | None]]:
    write_archive(tmp_path / "f.jsonl.zst", [events])
    archive = Archive(tmp_path / "f.jsonl.zst")
    result = archive.funnel([archive.events(s) for s in steps], ["user"], order, window).value
    return [(step.count, step.median_seconds) for step in result]


class TestFunnelRules:
    """The documented rules, on small hand-made paths."""

    def test_steps_count_only_in_order(self, tmp_path: Path) -> None:
        events = [
            ev("view", "a", 1), ev("cart", "a", 3), ev("buy", "a", 7),
            ev("cart", "b", 1), ev("view", "b", 2),
            ev("view", "c", 5), ev("buy", "c", 6),
        ]  # fmt: skip
        assert run(tmp_path, events, ["view", "cart", "buy"]) == [
            (3, None), (1, 2.0), (1, 4.0),
        ]  # fmt: skip

    def test_ties_are_not_in_order(self, tmp_path: Path) -> None:
        events = [ev("view", "a", 1), ev("cart", "a", 1), ev("view", "b", 1), ev("cart", "b", 2)]
        assert run(tmp_path, events, ["view", "cart"]) == [(2, None), (1, 1.0)]

    def test_event_ids_put_ties_in_arrival_order(self, tmp_path: Path) -> None:
        events = [ev("cart", "a", 1), ev("view", "a", 1), ev("cart", "a", 1)]
        for counter, event in enumerate(events, start=1):
            event.with_field("event_id", format_event_id(event.timestamp_ns, 7, counter))
        assert run(tmp_path, events, ["view", "cart"]) == [(1, None), (1, 0.0)]
        (tmp_path / "two").mkdir()
        assert run(tmp_path / "two", events[:2], ["view", "cart"]) == [(1, None), (0, None)]

    def test_an_event_id_of_another_time_is_not_an_order(self, tmp_path: Path) -> None:
        events = [ev("view", "a", 1), ev("cart", "a", 1)]
        events[0].with_field("event_id", format_event_id(events[0].timestamp_ns + 1, 1, 1))
        events[1].with_field("event_id", format_event_id(events[1].timestamp_ns + 1, 1, 2))
        assert run(tmp_path, events, ["view", "cart"]) == [(1, None), (0, None)]
        archive = Archive(tmp_path / "f.jsonl.zst")
        steps = [archive.events("cart"), archive.events("view")]
        assert [s.count for s in archive.funnel(steps, ["user"]).value] == [1, 0]
        archive.close()

    def test_a_repeated_step_needs_a_later_timestamp(self, tmp_path: Path) -> None:
        events = [ev("view", "a", 1), ev("view", "a", 1), ev("view", "b", 1), ev("view", "b", 4)]
        assert run(tmp_path, events, ["view", "view"]) == [(2, None), (1, 3.0)]

    def test_time_is_measured_from_the_latest_previous_step(self, tmp_path: Path) -> None:
        events = [ev("view", "a", 1), ev("view", "a", 5), ev("cart", "a", 10), ev("cart", "a", 20)]
        assert run(tmp_path, events, ["view", "cart"]) == [(1, None), (1, 5.0)]

    def test_strict_order_allows_no_step_in_between(self, tmp_path: Path) -> None:
        events = [
            ev("view", "a", 1), ev("view", "a", 2), ev("cart", "a", 3),
            ev("view", "b", 1), ev("cart", "b", 2), ev("cart", "b", 3), ev("buy", "b", 4),
            ev("view", "c", 1), ev("other", "c", 2), ev("cart", "c", 3), ev("buy", "c", 5),
        ]  # fmt: skip
        steps = ["view", "cart", "buy"]
        assert run(tmp_path, events, steps, "strict") == [(3, None), (3, 1.0), (1, 2.0)]
        assert run(tmp_path, events, steps) == [(3, None), (3, 1.0), (2, 1.5)]

    def test_the_window_runs_from_the_first_step(self, tmp_path: Path) -> None:
        events = [
            ev("view", "a", 0), ev("cart", "a", 5), ev("view", "a", 8), ev("buy", "a", 12),
            ev("view", "b", 0), ev("cart", "b", 5), ev("buy", "b", 11),
        ]  # fmt: skip
        steps = ["view", "cart", "buy"]
        assert run(tmp_path, events, steps, window=10) == [(2, None), (2, 5.0), (0, None)]
        assert run(tmp_path, events, steps, window=11) == [(2, None), (2, 5.0), (1, 6.0)]
        assert run(tmp_path, events, steps)[2] == (2, 6.5)

    def test_events_without_the_match_keys_take_no_part(self, tmp_path: Path) -> None:
        events = [ev("view", None, 1), ev("cart", None, 2), ev("view", "a", 1)]
        assert run(tmp_path, events, ["view", "cart"]) == [(1, None), (0, None)]

    def test_match_on_several_keys_and_filtered_steps(self, tmp_path: Path) -> None:
        events = [
            ev("view", "a", 1, item="x"), ev("cart", "a", 2, item="y"),
            ev("view", "a", 3, item="y"), ev("cart", "a", 4, item="y"),
            ev("view", "b", 1, item="x"), ev("cart", "b", 2, item="x", source="ad"),
        ]  # fmt: skip
        write_archive(tmp_path / "m.jsonl", [events], compression="none")
        archive = Archive(tmp_path / "m.jsonl")
        steps = [archive.events("view"), archive.events("cart")]
        result = archive.funnel(steps, ["user", "item"]).value
        assert [(s.name, s.count) for s in result] == [("view", 3), ("cart", 2)]
        assert [s.conversion for s in result] == [1.0, 2 / 3]
        filtered = [archive.events("view"), archive.events("cart", [eq("source", "ad")])]
        assert [s.count for s in archive.funnel(filtered, "user").value] == [2, 1]

    def test_bad_funnels_are_refused(self, tmp_path: Path) -> None:
        write_archive(tmp_path / "e.jsonl", [[ev("view", "a", 1)]], compression="none")
        archive = Archive(tmp_path / "e.jsonl")
        with pytest.raises(ConfigError, match="steps"):
            archive.funnel([], ["user"])
        with pytest.raises(ConfigError, match="match"):
            archive.funnel([archive.events("view")], [])
        with pytest.raises(ConfigError, match="order"):
            archive.funnel([archive.events("view")], ["user"], order="loose")
        with pytest.raises(ConfigError, match="window"):
            archive.funnel([archive.events("view")], ["user"], window=-1)


names = st.sampled_from(["view", "cart", "buy"])


@st.composite
def paths(draw: st.DrawFn) -> list[Event]:
    """Events at few timestamps; with event ids on none, all or some, or ids that are UUIDs."""
    events = []
    ids = draw(st.sampled_from(["none", "all", "some", "uuid"]))
    for counter in range(1, draw(st.integers(0, 45)) + 1):
        user = draw(st.sampled_from(["a", "b", "ü", None]))
        tags = {"user": user} if user is not None else {}
        if draw(st.booleans()):
            tags["src"] = draw(st.sampled_from(["ad", "mail"]))
        timestamp = draw(st.integers(0, 12)) * S
        fields: dict[str, object] = {"n": 1}
        if ids == "all" or (ids == "some" and draw(st.booleans())):
            generation = draw(st.sampled_from([1, 2]))
            fields["event_id"] = format_event_id(timestamp, generation, counter)
        elif ids == "uuid":
            fields["event_id"] = uuid.UUID(int=draw(st.integers(0, 2**128 - 1))).hex
        events.append(
            Event(draw(names), tags=tags, fields=fields, timestamp_ns=timestamp, before_2001=True)
        )
    return events


class TestGeneratedFunnels:
    """Generated paths: every order and window gives the brute-force answer."""

    @settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
    @given(
        events=paths(),
        steps=st.lists(st.tuples(names, st.sampled_from([None, "ad"])), min_size=1, max_size=4),
        order=st.sampled_from(["exact_order", "strict"]),
        window=st.sampled_from([None, 0, 3, 7]),
        match=st.sampled_from([["user"], ["user", "src"]]),
    )
    def test_funnel_matches_the_reference(
        self,
        events: list[Event],
        steps: list[tuple[str, str | None]],
        order: str,
        window: int | None,
        match: list[str],
    ) -> None:
        with tempfile.TemporaryDirectory() as directory:
            path = Path(directory) / "f.jsonl.zst"
            write_archive(path, [events[i : i + 10] for i in range(0, len(events), 10)])
            if not events:
                path.write_bytes(b"")
            archive = Archive(path, threads=2)
            sets: list[EventSet] = [
                archive.events(name, [eq("src", source)] if source else [])
                for name, source in steps
            ]
            found = archive.funnel(sets, match, order, window).value
            expected = funnel(
                events,
                [
                    lambda e, s=s: e.measurement == s.name and all(passes(e, f) for f in s.filters)
                    for s in sets
                ],
                match,
                order,
                None if window is None else window * S,
            )
            assert [(s.count, s.median_seconds) for s in found] == [
                (count, None if median is None else median / S) for count, median in expected
            ]
            archive.close()
