"""Archive.keys and Archive.values: the properties events have and their top values."""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from tests.servers import require_module

require_module("duckdb", "metricstream.query runs on DuckDB (the query extra)")

import metricstream as ms  # noqa: E402
from metricstream.exceptions import ConfigError  # noqa: E402
from metricstream.query import Archive, KeyCount, ValueCount, eq, parse_where  # noqa: E402
from tests.test_query_reference import (  # noqa: E402
    MISSING,
    both_ways,  # noqa: F401  (a fixture: every test with and without the cache)
    number_text,
    passes,
    resolve,
    typed,
    write_archive,
)

Event = ms.MetricEvent


def events() -> list[Event]:
    found = []
    for i in range(60):
        tags = {"user": f"u{i % 7}", "event_tag": ["view", "cart", "buy"][i % 3]}
        fields: dict[str, Any] = {"status": [200, 503, 404, 2.5][i % 4]}
        if i % 5 == 0:
            fields["user"] = "shadowed"
            fields["ünï"] = True
        if i % 2:
            tags["user_agent"] = "curl"
        found.append(
            Event(["web", "app"][i % 2], tags=tags, fields=fields, timestamp_ns=i, before_2001=True)
        )
    return found


@pytest.fixture
def archive(tmp_path: Path) -> Archive:
    write_archive(tmp_path / "k.jsonl.zst", [events()[:30], events()[30:]])
    return Archive(tmp_path / "k.jsonl.zst")


def expected_keys(stored: list[Event], prefix: str, limit: int) -> list[KeyCount]:
    counts: Counter[str] = Counter()
    for event in stored:
        counts.update({"measurement", *event.tags, *event.fields})
    ranked = sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))
    return [KeyCount(k, c) for k, c in ranked if k.startswith(prefix)][:limit]


def text_of(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return value if isinstance(value, str) else number_text(value)


def expected_values(stored: list[Event], key: str, prefix: str, limit: int) -> list[ValueCount]:
    counts: Counter[tuple[str, Any]] = Counter()
    for event in stored:
        found = resolve(event, key)
        if found is not MISSING and text_of(found).startswith(prefix):
            counts[typed(found)] += 1
    ranked = sorted(counts.items(), key=lambda kv: (-kv[1], kv[0][0], text_of(kv[0][1])))
    return [ValueCount(value, count) for (_, value), count in ranked[:limit]]


class TestKeys:
    """Every tag and field key, with the events that have it, most common first."""

    @pytest.mark.parametrize(("prefix", "limit"), [("", 100), ("us", 100), ("", 2), ("ü", 5)])
    def test_keys_match_the_reference(self, archive: Archive, prefix: str, limit: int) -> None:
        assert archive.keys(prefix, limit=limit).value == expected_keys(events(), prefix, limit)

    def test_where_restricts_the_events(self, archive: Archive) -> None:
        where = [parse_where("event_tag=cart")]
        chosen = [e for e in events() if passes(e, ms.query.Filter(**where[0]))]  # type: ignore[arg-type]
        assert archive.keys(where=where).value == expected_keys(chosen, "", 100)

    def test_bad_arguments_are_refused(self, archive: Archive) -> None:
        with pytest.raises(ConfigError, match="limit"):
            archive.keys(limit=0)
        with pytest.raises(ConfigError, match="filters"):
            archive.keys(where=[{"type": "like", "key": "a"}])


class TestValues:
    """The top values of one property, typed, with prefixes on their text."""

    @pytest.mark.parametrize(
        ("key", "prefix", "limit"),
        [("user", "", 10), ("user", "u1", 10), ("status", "", 10), ("status", "5", 10),
         ("status", "2", 1), ("measurement", "", 10), ("ünï", "", 3), ("missing", "", 3)],
    )  # fmt: skip
    def test_values_match_the_reference(
        self, archive: Archive, key: str, prefix: str, limit: int
    ) -> None:
        found = archive.values(key, prefix, limit).value
        assert found == expected_values(events(), key, prefix, limit)

    def test_where_restricts_the_events(self, archive: Archive) -> None:
        chosen = [e for e in events() if passes(e, eq("event_tag", "buy"))]
        found = archive.values("status", where=[eq("event_tag", "buy")]).value
        assert found == expected_values(chosen, "status", "", 10)


class TestEventIds:
    """Archive.holds_event_id finds an event by its id, from its funnel order."""

    def test_held_and_not_held(self, tmp_path: Path) -> None:
        from metricstream.query import format_event_id

        events = [
            Event(
                "m",
                fields={"event_id": format_event_id(i * 7, 3, i + 1)},
                timestamp_ns=i * 7,
                before_2001=True,
            )
            for i in range(20)
        ]
        other = {"event_id": format_event_id(5, 3, 99)}
        events.append(Event("m", fields=other, timestamp_ns=6, before_2001=True))
        write_archive(tmp_path / "ids.jsonl.zst", [events])
        archive = Archive(tmp_path / "ids.jsonl.zst")
        assert archive.holds_event_id(format_event_id(14, 3, 3))
        assert not archive.holds_event_id(format_event_id(14, 3, 4))
        assert not archive.holds_event_id(format_event_id(14, 4, 3))
        assert not archive.holds_event_id(format_event_id(5, 3, 99))
        with pytest.raises(ConfigError):
            archive.holds_event_id("not an id")
