"""An archive written at least once: a batch stored twice (as after a crash) is counted once.

The spool delivers again, after a crash, what the archive had not
acknowledged: the same events, with the same event ids. Every way of asking
(`Archive.run` with and without the cache, ``metricstream query``, ``POST
/query``) counts each event id once, compared with a reference counted in
the test over the events as they were made, each once.
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.servers import require_module

require_module("duckdb", "metricstream.query runs on DuckDB (the query extra)")

from metricstream import MetricEvent  # noqa: E402
from metricstream.cli import main  # noqa: E402
from metricstream.contract import EventBatch  # noqa: E402
from metricstream.query import Archive, format_event_id  # noqa: E402
from metricstream.sinks.jsonl import JsonLinesSink  # noqa: E402
from tests.server_support import ServerProcess  # noqa: E402

T0 = 1_714_521_600_000_000_000
KINDS = ["product_view", "add_to_cart", "purchase"]

DOCUMENT: dict[str, Any] = {
    "data": [
        {"name": kind, "filters": [{"type": "eq", "key": "event_tag", "value": kind}],
         "unique": ["user_id"]}
        for kind in KINDS
    ],
    "funnel": {"type": "exact_order", "order": KINDS, "match": ["user_id"]},
}  # fmt: skip


def made(first: int, count: int, *, ids: bool = True) -> list[MetricEvent]:
    """Events of the event store (with their ids unless `ids` is false), several per millisecond."""
    found = []
    for number in range(first, first + count):
        timestamp = T0 + (number // 3) * 1_000_000
        fields: dict[str, Any] = {
            "event_tag": KINDS[number % 3],
            "user_id": f"u{number % 7}",
            "samplerate": 1 + number % 2,
        }
        if ids:
            fields["event_id"] = format_event_id(timestamp, 1, number + 1)
        found.append(MetricEvent("event", fields=fields, timestamp_ns=timestamp))
    return found


def write(path: Path, *batches: EventBatch) -> None:
    """Append the batches to a zstd JSON Lines file, as the server's archive sink does."""
    sink = JsonLinesSink(path, compression="zstd")
    try:
        for batch in batches:
            sink.write(sink.prepare(batch))
    finally:
        sink.close()


def reference(events: list[MetricEvent]) -> dict[str, Any]:
    """Counts, weighted counts, uniques and funnel counts of `events`, each counted once."""
    data = {}
    for kind in KINDS:
        chosen = [e for e in events if e.fields["event_tag"] == kind]
        data[kind] = {
            "count": len(chosen),
            "weighted_count": sum(int(e.fields["samplerate"]) for e in chosen),
            "unique": {"user_id": len({e.fields["user_id"] for e in chosen})},
        }
    # Every event has an id of its own: in id order, no two are at one place.
    ordered = sorted(events, key=lambda e: str(e.fields["event_id"]))
    reached: dict[object, int] = {}
    for event in ordered:
        step = KINDS.index(str(event.fields["event_tag"]))
        if step == reached.get(event.fields["user_id"], -1) + 1:
            reached[event.fields["user_id"]] = step
    return {"data": data, "funnel": [sum(1 for d in reached.values() if d >= k) for k in range(3)]}


def counted(answer: dict[str, Any]) -> dict[str, Any]:
    """The parts of an answer `reference` computes."""
    return {"data": answer["data"], "funnel": [step["count"] for step in answer["funnel"]]}


@pytest.fixture
def events() -> list[MetricEvent]:
    return made(0, 300)


@pytest.fixture
def archive(tmp_path: Path, events: list[MetricEvent]) -> Path:
    """One file holding the first batch, the second, then the first again (a crash's replay)."""
    directory = tmp_path / "archive"
    directory.mkdir()
    first, second = EventBatch(events[:200]), EventBatch(events[200:])
    write(directory / "events-9.jsonl.zst", first, second, first)
    return directory


class TestCountedOnce:
    """Each way of asking counts each event id once."""

    def test_archive_run_with_and_without_the_cache(
        self, archive: Path, events: list[MetricEvent], tmp_path: Path
    ) -> None:
        expected = reference(events)
        path = str(archive / "events-9.jsonl.zst")
        assert counted(Archive(path, cache=tmp_path / "cache").run(DOCUMENT)) == expected
        assert counted(Archive(path, cache=False).run(DOCUMENT)) == expected
        assert Archive(path, cache=False).events().count().value == 300
        assert Archive(path, cache=tmp_path / "cache").events().count().value == 300

    def test_the_query_command(
        self,
        archive: Path,
        events: list[MetricEvent],
        tmp_path: Path,
        capsys: pytest.CaptureFixture[str],
    ) -> None:
        document = tmp_path / "query.json"
        document.write_text(json.dumps(DOCUMENT))
        command = ["query", str(archive / "events-9.jsonl.zst"), "--json", str(document)]
        for cache in (["--cache-dir", str(tmp_path / "cache")], ["--no-cache"]):
            assert main([*command, *cache, "--format", "json"]) == 0
            assert counted(json.loads(capsys.readouterr().out)) == reference(events)

    def test_post_query(self, archive: Path, events: list[MetricEvent]) -> None:
        with ServerProcess(archive) as server:
            response = httpx.post(server.url + "/query", json=DOCUMENT, timeout=120)
            assert response.status_code == 200, response.text
            assert counted(response.json()) == reference(events)


class TestTheCacheFollows:
    """Copies arriving in a later load, and copies left when a file goes, are counted once."""

    def test_a_batch_written_again_after_it_was_loaded(
        self, tmp_path: Path, events: list[MetricEvent]
    ) -> None:
        path = tmp_path / "events.jsonl.zst"
        first, second = EventBatch(events[:200]), EventBatch(events[200:])
        write(path, first)
        archive = Archive(path, cache=tmp_path / "cache")
        assert counted(archive.run(DOCUMENT)) == reference(events[:200])
        write(path, second, first, second)  # again, and twice in one load
        assert counted(archive.run(DOCUMENT)) == reference(events)
        assert archive.cache is not None
        assert (archive.cache.stats.records_loaded, archive.cache.stats.rebuilds) == (600, 0)

    def test_the_file_of_the_copy_counted_goes(
        self, tmp_path: Path, events: list[MetricEvent]
    ) -> None:
        first, second = EventBatch(events[:200]), EventBatch(events[200:])
        write(tmp_path / "a.jsonl.zst", first, second)
        write(tmp_path / "b.jsonl.zst", first)
        archive = Archive(str(tmp_path / "*.jsonl.zst"), cache=tmp_path / "cache")
        assert counted(archive.run(DOCUMENT)) == reference(events)
        (tmp_path / "a.jsonl.zst").unlink()
        assert counted(archive.run(DOCUMENT)) == reference(events[:200])
        write(tmp_path / "b.jsonl.zst", first, second)
        assert counted(archive.run(DOCUMENT)) == reference(events)

    def test_events_without_ids_are_each_a_record(self, tmp_path: Path) -> None:
        plain = made(0, 30, ids=False)
        path = tmp_path / "events.jsonl.zst"
        write(path, EventBatch(plain), EventBatch(plain))
        expected = Counter(str(e.fields["event_tag"]) for e in plain + plain)
        for cache in (tmp_path / "cache", False):
            found = {kind: Archive(path, cache=cache).events(filters=[
                {"type": "eq", "key": "event_tag", "value": kind}]).count().value
                for kind in KINDS}  # fmt: skip
            assert found == dict(expected)
