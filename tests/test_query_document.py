"""The query document (its JSON Schema, errors by path) and the ``metricstream query`` command."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from tests.servers import require_module

require_module("duckdb", "metricstream.query runs on DuckDB (the query extra)")

import metricstream as ms  # noqa: E402
from metricstream.cli import main  # noqa: E402
from metricstream.cli.query import parse_where  # noqa: E402
from metricstream.exceptions import ConfigError  # noqa: E402
from metricstream.query import (  # noqa: E402
    Archive,
    QueryDocumentError,
    eq,
    present,
    query_schema,
    regex,
)
from tests.test_query_reference import (  # noqa: E402
    both_ways,  # noqa: F401  (a fixture: every test with and without the cache)
    funnel,
    select,
    unique,
    weight,
    write_archive,
)

Event = ms.MetricEvent
T0 = 1_714_521_600_000  # 2024-05-01T00:00:00Z in milliseconds
KINDS = ["page_view", "page_view", "signup", "purchase"]


def events() -> list[Event]:
    """The event store's events: the kind is the tag ``event_tag``, measurements vary."""
    found = []
    for i in range(120):
        fields: dict[str, Any] = {"count": 1, "status_code": [200, 503, 404][i % 3]}
        if i % 5:
            fields["samplerate"] = i % 4 + 1
        found.append(
            Event(
                ["web", "app", "batch"][i % 3],
                tags={"user": f"u{i % 9}", "utm_source": ["google", "mail", "ü"][i % 3],
                      "event_tag": KINDS[i % 4]},
                fields=fields,
                timestamp_ns=(T0 + i * 60_000) * 1_000_000,
            )
        )  # fmt: skip
    return found


@pytest.fixture
def archive_path(tmp_path: Path) -> Path:
    path = tmp_path / "events.jsonl.zst"
    write_archive(path, [events()[i : i + 25] for i in range(0, 120, 25)])
    return path


def tagged(kind: str) -> dict[str, str]:
    return {"type": "eq", "key": "event_tag", "value": kind}


DOCUMENT: dict[str, Any] = {
    "start": "2024-05-01T00:10:00Z",
    "end": T0 + 100 * 60_000,
    "data": [
        {
            "name": "page_view",
            "filters": [
                tagged("page_view"),
                {"type": "eq", "key": "utm_source", "value": "google"},
            ],
            "unique": ["user"],
        },
        {"name": "signup", "filters": [tagged("signup")], "unique": ["user", "utm_source"]},
        {"name": "purchase", "filters": [tagged("purchase")]},
    ],
    "funnel": {
        "type": "exact_order",
        "order": ["page_view", "signup", "purchase"],
        "match": ["user"],
    },
}

SHAPE_2: dict[str, Any] = {
    "data": [
        {
            "name": "views",
            "keys": ["utm_source"],
            "filters": [tagged("page_view")],
            "operations": [{"type": "unique", "key": "user"}],
        },
        {
            "name": "failures",
            "measurement": "app",
            "filters": [{"type": "regex", "key": "status_code", "value": "5.."}],
            "operations": [
                {"type": "unique", "key": "user"},
                {"type": "unique", "key": "event_tag"},
            ],
        },
    ],
    "funnel": {"type": "exact_order", "data": ["views", "failures"], "match": ["user"]},
}


def counts(found: list[Event], keys: list[str]) -> dict[str, Any]:
    """A set's answer, from the reference."""
    return {
        "count": len(found),
        "weighted_count": sum(weight(e) for e in found),
        "unique": {key: unique(found, [key]) for key in keys},
    }


class TestDocument:
    """Archive.run answers the event store's document, with the event store's semantics."""

    def test_the_answer_matches_the_reference(self, archive_path: Path) -> None:
        answer = Archive(archive_path).run(DOCUMENT)
        start, end = (T0 + 10 * 60_000) * 10**6, (T0 + 100 * 60_000) * 10**6
        stored = events()
        views = select(stored, None, [eq("event_tag", "page_view"), eq("utm_source", "google")],
                       start, end)  # fmt: skip
        signups = select(stored, None, [eq("event_tag", "signup")], start, end)
        purchases = select(stored, None, [eq("event_tag", "purchase")], start, end)
        assert {e.measurement for e in signups} == {"web", "app", "batch"}
        assert answer["data"] == {
            "page_view": counts(views, ["user"]),
            "signup": counts(signups, ["user", "utm_source"]),
            "purchase": counts(purchases, []),
        }
        assert answer["data"]["signup"]["weighted_count"] != len(signups)
        steps = [set(map(id, group)) for group in (views, signups, purchases)]
        expected = funnel(stored, [lambda e, s=s: id(e) in s for s in steps], ["user"])
        assert [(s["step"], s["count"]) for s in answer["funnel"]] == list(
            zip(["page_view", "signup", "purchase"], [count for count, _ in expected], strict=True)
        )
        first = expected[0][0]
        assert [s["conversion"] for s in answer["funnel"]] == [c / first for c, _ in expected]
        assert answer["skipped"] == {"bytes": 0, "regions": []}

    def test_the_second_shape_keys_operations_and_numbers_read_as_text(
        self, archive_path: Path
    ) -> None:
        answer = Archive(archive_path).run(SHAPE_2)
        stored = events()
        views = select(stored, None, [eq("event_tag", "page_view"), present("utm_source")])
        failures = select(stored, "app", [regex("status_code", "5..")])
        assert failures
        assert answer["data"] == {
            "views": counts(views, ["user"]),
            "failures": counts(failures, ["user", "event_tag"]),
        }
        steps = [set(map(id, group)) for group in (views, failures)]
        expected = funnel(stored, [lambda e, s=s: id(e) in s for s in steps], ["user"])
        assert [s["count"] for s in answer["funnel"]] == [count for count, _ in expected]

    def test_a_measurement_narrows_a_set_and_the_name_chooses_nothing(
        self, archive_path: Path
    ) -> None:
        answer = Archive(archive_path).run(
            {"data": [{"name": "web"}, {"name": "only web", "measurement": "web"}]}
        )
        assert answer["data"]["web"]["count"] == 120
        assert answer["data"]["only web"]["count"] == 40

    def test_breakdown_series_and_windows(self, archive_path: Path) -> None:
        document = {
            "data": [
                {
                    "name": "page_view",
                    "filters": [tagged("page_view")],
                    "unique": ["user"],
                    "breakdown": {"keys": ["utm_source"], "n": 2},
                },
                {"name": "views", "filters": [tagged("page_view")], "series": {"bucket": "hour"}},
                {"name": "signup", "filters": [tagged("signup")]},
            ],
            "funnel": {
                "type": "strict",
                "order": ["views", "signup"],
                "match": ["user"],
                "window": 600,
            },
        }
        answer = Archive(archive_path).run(document)
        stored = select(events(), None, [eq("event_tag", "page_view")])
        rows = answer["data"]["page_view"]["breakdown"]
        assert [row["count"] for row in rows] == [20, 20]
        for row in rows:
            group = [e for e in stored if e.tags["utm_source"] == row["values"][0]]
            assert row["weighted_count"] == sum(weight(e) for e in group)
        series_points = answer["data"]["views"]["series"]
        assert series_points[0]["start"] == "2024-05-01T00:00:00+00:00"
        assert sum(p["count"] for p in series_points) == 60
        assert sum(p["weighted_count"] for p in series_points) == sum(weight(e) for e in stored)
        assert answer["funnel"][0]["count"] == 9

    @pytest.mark.parametrize(
        ("change", "path"),
        [
            (
                lambda d: d["data"][1].update(filters=[{"type": "like", "key": "a"}]),
                "data[1].filters[0].type",
            ),
            (lambda d: d["data"][0]["filters"][0].pop("value"), "data[0].filters[0]"),
            (lambda d: d["data"][0]["filters"][1].update(value=[1]), "data[0].filters[1].value"),
            (lambda d: d["data"][2].update(unique="user"), "data[2].unique"),
            (lambda d: d["data"].append({"name": "signup"}), "data[3].name"),
            (lambda d: d["data"][0].update(label="views"), "data[0]"),
            (lambda d: d["data"][0].update(keys=["user", ""]), "data[0].keys[1]"),
            (
                lambda d: d["data"][0].update(operations=[{"type": "sum", "key": "n"}]),
                "data[0].operations[0].type",
            ),
            (lambda d: d["funnel"]["order"].append("nope"), "funnel.order[3]"),
            (lambda d: d["funnel"].update(data=[*d["funnel"].pop("order"), "x"]), "funnel.data[3]"),
            (lambda d: d["funnel"].update(data=["signup"]), "funnel"),
            (lambda d: d["funnel"].update(type="loose"), "funnel.type"),
            (lambda d: d.update(start="yesterday"), "start"),
            (lambda d: d.update(extra=1), "document"),
            (
                lambda d: d["data"][0].update(series={"bucket": "day", "timezone": "No/Where"}),
                "data[0].series.timezone",
            ),
            (
                lambda d: d["data"][0]["filters"].append(
                    {"type": "regex", "key": "a", "value": "("}
                ),
                "data[0].filters[2].value",
            ),
            (
                lambda d: d["data"][0].update(
                    keys=["user"], filters=[{"type": "regex", "key": "a", "value": "("}]
                ),
                "data[0].filters[0].value",
            ),
        ],
    )
    def test_a_malformed_document_names_the_path(
        self, archive_path: Path, change: Any, path: str
    ) -> None:
        document = json.loads(json.dumps(DOCUMENT))
        change(document)
        with pytest.raises(QueryDocumentError) as caught:
            Archive(archive_path).run(document)
        assert caught.value.option == path
        assert str(caught.value).startswith(f"{path}: ")

    def test_the_schema_ships_with_the_package(self) -> None:
        schema = query_schema()
        assert schema["$schema"].endswith("2020-12/schema")
        assert schema["$defs"]["filter"]["properties"]["type"]["enum"] == [
            "eq", "neq", "in", "regex", "all", "gt", "gte", "lt", "lte",
        ]  # fmt: skip


class TestCommand:
    """``metricstream query`` with flags or a document, as a table or JSON."""

    def test_a_funnel_in_one_command(
        self, archive_path: Path, capsys: pytest.CaptureFixture[str]
    ) -> None:
        status = main(["query", str(archive_path), "--funnel", "web,app", "--match", "user"])
        output = capsys.readouterr().out
        assert status == 0
        assert "funnel (exact_order, matched on user)" in output
        assert "web" in output
        assert "app" in output

    def test_flags_and_the_same_document_give_the_same_json(
        self, archive_path: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
    ) -> None:
        flags = [
            "--event", "web", "--where", "utm_source=google", "--unique", "user",
            "--by", "user", "--top", "3", "--format", "json",
        ]  # fmt: skip
        assert main(["query", str(archive_path), *flags]) == 0
        from_flags = json.loads(capsys.readouterr().out)
        document = {
            "data": [
                {
                    "name": "web",
                    "measurement": "web",
                    "filters": [{"type": "eq", "key": "utm_source", "value": "google"}],
                    "unique": ["user"],
                    "breakdown": {"keys": ["user"], "n": 3},
                }
            ]
        }
        (tmp_path / "q.json").write_text(json.dumps(document))
        assert (
            main(
                ["query", str(archive_path), "--json", str(tmp_path / "q.json"), "--format", "json"]
            )
            == 0
        )
        assert json.loads(capsys.readouterr().out) == from_flags
        assert from_flags["data"]["web"]["count"] == 40

    def test_errors_go_to_stderr_with_status_2(
        self, archive_path: Path, capsys: pytest.CaptureFixture[str]
    ) -> None:
        assert main(["query", str(archive_path), "--event", "x", "--where", "count>abc"]) == 2
        assert "--where: 'abc' after '>' is not a number" in capsys.readouterr().err
        assert main(["query", str(archive_path)]) == 2
        assert main(["query", str(archive_path / "missing")]) == 2

    def test_damage_is_printed(
        self, archive_path: Path, capsys: pytest.CaptureFixture[str]
    ) -> None:
        with open(archive_path, "ab") as handle:
            handle.write(b"\x28\xb5\x2f\xfd\x00\x01")
        assert main(["query", str(archive_path), "--event", "signup"]) == 0
        assert "skipped 1 damaged region(s), 6 bytes" in capsys.readouterr().out

    def test_the_schema_is_printed(self, capsys: pytest.CaptureFixture[str]) -> None:
        assert main(["query", "--schema"]) == 0
        assert json.loads(capsys.readouterr().out) == query_schema()

    @pytest.mark.parametrize(
        ("text", "expected"),
        [
            ("user=ana", {"type": "eq", "key": "user", "value": "ana"}),
            ("user!=a=b", {"type": "neq", "key": "user", "value": "a=b"}),
            ("count:=1", {"type": "eq", "key": "count", "value": 1}),
            ("ok:=true", {"type": "eq", "key": "ok", "value": True}),
            ("path~^/d", {"type": "regex", "key": "path", "value": "^/d"}),
            ("amount>=2.5", {"type": "gte", "key": "amount", "value": 2.5}),
            ("count<3", {"type": "lt", "key": "count", "value": 3}),
            ("user", {"type": "all", "key": "user"}),
        ],
    )
    def test_where_expressions(self, text: str, expected: dict[str, object]) -> None:
        assert parse_where(text) == expected

    def test_where_refuses_what_it_cannot_read(self) -> None:
        with pytest.raises(ConfigError):
            parse_where("=x")
        with pytest.raises(ConfigError):
            parse_where("a:={")
