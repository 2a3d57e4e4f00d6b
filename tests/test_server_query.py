"""POST /query, /query/validate and /keys over posted events, against the plain-Python reference."""

from __future__ import annotations

import json
import random
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests import server_reference as ref
from tests.server_support import ServerProcess

T0 = 1_714_521_600_000  # 2024-05-01T00:00:00Z in milliseconds
KINDS = ["product_view", "product_view", "add_to_cart", "purchase"]

SEED_SHAPE_1: dict[str, Any] = {
    "start": T0,
    "end": "2024-05-01T06:00:00Z",
    "data": [
        {"name": "product_view",
         "filters": [{"type": "eq", "key": "event_tag", "value": "product_view"}],
         "unique": ["user_id"]},
        {"name": "add_to_cart",
         "filters": [{"type": "eq", "key": "event_tag", "value": "add_to_cart"}],
         "unique": ["user_id", "country"]},
        {"name": "purchase",
         "filters": [{"type": "eq", "key": "event_tag", "value": "purchase"},
                     {"type": "neq", "key": "status_code", "value": 503}],
         "unique": ["user_id"]},
        {"name": "errors",
         "filters": [{"type": "regex", "key": "status_code", "value": "5.."}],
         "unique": ["event_tag"]},
    ],
    "funnel": {"type": "exact_order", "order": ["product_view", "add_to_cart", "purchase"],
               "match": ["user_id"]},
}  # fmt: skip

SEED_SHAPE_2: dict[str, Any] = {
    "data": [
        {"name": "viewers", "keys": ["user_id", "country"],
         "filters": [{"type": "eq", "key": "event_tag", "value": "product_view"}],
         "operations": [{"type": "unique", "key": "user_id"}]},
        {"name": "buyers", "keys": ["user_id"],
         "filters": [{"type": "in", "key": "event_tag", "value": ["purchase", "add_to_cart"]}],
         "operations": [{"type": "unique", "key": "user_id"}, {"type": "unique", "key": "plan"}]},
    ],
    "funnel": {"type": "exact_order", "data": ["viewers", "buyers"], "match": ["user_id"]},
}  # fmt: skip


def seed_events(count: int, rng: random.Random) -> list[dict[str, Any]]:
    """Events with ties (shared milliseconds), repeats, missing keys, unicode and sample rates."""
    events = []
    for _ in range(count):
        # Few distinct minutes, so many events of one user share a millisecond.
        ms = T0 + rng.randrange(0, 40) * 9 * 60_000
        data: dict[str, Any] = {"event_tag": rng.choice(KINDS)}
        if rng.random() < 0.9:
            data["user_id"] = rng.choice([f"u{i}" for i in range(40)] + ["ü-ñ", "用户"])
        if rng.random() < 0.7:
            data["country"] = rng.choice(["fr", "de", "ß"])
        if rng.random() < 0.6:
            data["status_code"] = rng.choice([200, 200, 503, 504, 404, "503"])
        if rng.random() < 0.3:
            data["plan"] = rng.choice(["free", 1, 1.0, True])
        event: dict[str, Any] = {"data": data}
        event["ts"] = rng.choice([ms, str(ms), _iso(ms)])
        rate = rng.choice([None, 1, 3, "2"])
        if rate is not None:
            event["samplerate"] = rate
        events.append(event)
    return events


def tag(kind: str) -> dict[str, str]:
    return {"type": "eq", "key": "event_tag", "value": kind}


def _iso(ms: int) -> str:
    import datetime as dt

    moment = dt.datetime(1970, 1, 1, tzinfo=dt.timezone.utc) + dt.timedelta(milliseconds=ms)
    return moment.isoformat().replace("+00:00", "Z")


@pytest.fixture(scope="module")
def loaded(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[tuple[ServerProcess, list[ref.Posted]]]:
    """A server holding 600 posted events, and the reference's view of them."""
    rng = random.Random(7)
    with ServerProcess(tmp_path_factory.mktemp("query")) as server:
        seen: list[ref.Posted] = []
        for _ in range(12):
            batch = seed_events(50, rng)
            response = httpx.post(server.url + "/events", json={"events": batch}, timeout=30)
            assert response.status_code == 200, response.text
            seen += ref.posted(batch, response.json()["first_event_id"])
        yield server, seen


def query(server: ServerProcess, document: Any) -> httpx.Response:
    return httpx.post(server.url + "/query", json=document, timeout=60)


class TestSeedDocuments:
    """The seed's two documents answer exactly what the reference computes."""

    @pytest.mark.parametrize("document", [SEED_SHAPE_1, SEED_SHAPE_2], ids=["shape 1", "shape 2"])
    def test_answers_match_the_reference(
        self, loaded: tuple[ServerProcess, list[ref.Posted]], document: dict[str, Any]
    ) -> None:
        server, events = loaded
        response = query(server, document)
        assert response.status_code == 200, response.text
        answer = response.json()
        assert answer["data"] == ref.answer_sets(events, document)
        assert answer["funnel"] == ref.answer_funnel(events, document)
        assert answer["skipped"] == {"bytes": 0, "regions": []}
        assert all(item["count"] for item in answer["data"].values())

    def test_ties_count_in_arrival_order(self, tmp_path_factory: pytest.TempPathFactory) -> None:
        with ServerProcess(tmp_path_factory.mktemp("ties")) as server:
            same = {"ts": T0}
            body = {"events": [
                {**same, "data": {"event_tag": "product_view", "user_id": "a"}},
                {**same, "data": {"event_tag": "purchase", "user_id": "a"}},
                {**same, "data": {"event_tag": "purchase", "user_id": "b"}},
                {**same, "data": {"event_tag": "product_view", "user_id": "b"}},
            ]}  # fmt: skip
            assert httpx.post(server.url + "/events", json=body).status_code == 200
            document = {
                "data": [{"name": "v", "filters": [tag("product_view")]},
                         {"name": "p", "filters": [tag("purchase")]}],
                "funnel": {"type": "exact_order", "order": ["v", "p"], "match": ["user_id"]},
            }  # fmt: skip
            steps = query(server, document).json()["funnel"]
            assert [s["count"] for s in steps] == [2, 1]


class TestErrors:
    """A wrong document answers 400 with its path; /query/validate says the same."""

    @pytest.mark.parametrize(
        ("change", "path"),
        [
            (lambda d: d["data"][1]["filters"][0].update(type="like"), "data[1].filters[0].type"),
            (lambda d: d["data"][0]["filters"].append({"type": "regex", "key": "k", "value": "("}),
             "data[0].filters[1].value"),
            (lambda d: d["funnel"]["order"].append("nope"), "funnel.order[3]"),
            (lambda d: d.update(start="soon"), "start"),
        ],
    )  # fmt: skip
    def test_paths(
        self, loaded: tuple[ServerProcess, list[ref.Posted]], change: Any, path: str
    ) -> None:
        server, _ = loaded
        document = __import__("copy").deepcopy(SEED_SHAPE_1)
        change(document)
        response = query(server, document)
        assert response.status_code == 400
        assert response.json()["path"] == path
        check = httpx.post(server.url + "/query/validate", json=document).json()
        assert check == {"valid": False, **response.json()}

    def test_a_valid_document_validates(
        self, loaded: tuple[ServerProcess, list[ref.Posted]]
    ) -> None:
        server, _ = loaded
        assert httpx.post(server.url + "/query/validate", json=SEED_SHAPE_2).json() == {
            "valid": True
        }

    def test_deep_nesting_and_wrong_types_are_refused(
        self, loaded: tuple[ServerProcess, list[ref.Posted]]
    ) -> None:
        server, _ = loaded
        deep: Any = 1
        for _ in range(100):
            deep = [deep]
        assert query(server, {"data": deep}).status_code == 400
        bad = httpx.post(server.url + "/query", content=b"{}", headers={"content-type": "text/csv"})
        assert bad.status_code == 415

    def test_a_query_over_its_time_limit_answers_503(
        self, tmp_path_factory: pytest.TempPathFactory
    ) -> None:
        with ServerProcess(tmp_path_factory.mktemp("slow"), "--query-timeout", "0.001") as server:
            response = query(server, SEED_SHAPE_1)
            assert response.status_code == 503
            assert response.headers["retry-after"] == "1"


class TestKeys:
    """/keys and /keys/{key}/values list what the reference counts."""

    def test_keys_with_counts(self, loaded: tuple[ServerProcess, list[ref.Posted]]) -> None:
        server, events = loaded
        answer = httpx.get(server.url + "/keys", params={"prefix": "u"}).json()
        assert answer["keys"] == [
            {"key": "user_id", "count": sum("user_id" in e.data for e in events)}
        ]

    def test_keys_where(self, loaded: tuple[ServerProcess, list[ref.Posted]]) -> None:
        server, events = loaded
        answer = httpx.get(server.url + "/keys", params={"where": "event_tag=purchase"}).json()
        buyers = [e for e in events if e.data["event_tag"] == "purchase"]
        counts = {item["key"]: item["count"] for item in answer["keys"]}
        assert counts["plan"] == sum("plan" in e.data for e in buyers)
        assert counts["samplerate"] == counts["event_id"] == counts["measurement"] == len(buyers)

    def test_values_with_counts(self, loaded: tuple[ServerProcess, list[ref.Posted]]) -> None:
        server, events = loaded
        answer = httpx.get(
            server.url + "/keys/user_id/values", params={"limit": 3, "where": "country=ß"}
        ).json()
        counts: dict[str, int] = {}
        for e in events:
            if e.data.get("country") == "ß" and "user_id" in e.data:
                counts[e.data["user_id"]] = counts.get(e.data["user_id"], 0) + 1
        expected = sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))[:3]
        assert answer["values"] == [{"value": v, "count": c} for v, c in expected]

    def test_bad_arguments(self, loaded: tuple[ServerProcess, list[ref.Posted]]) -> None:
        server, _ = loaded
        assert httpx.get(server.url + "/keys", params={"limit": "0"}).json()["path"] == "limit"
        assert httpx.get(server.url + "/keys", params={"where": "=x"}).json()["path"] == "where[0]"


def value_text(value: Any) -> str:
    """The text a prefix is matched against: a string itself, a number's or bool's JSON text."""
    return value if isinstance(value, str) else json.dumps(value)


def expected_values(
    events: list[ref.Posted], key: str, prefix: str, limit: int, where: list[dict[str, Any]]
) -> list[tuple[tuple[str, Any], int]]:
    """The reference's top values: most events first, then by type letter, then by text."""
    counts: dict[tuple[str, Any], int] = {}
    for event in events:
        value = ref.prop(event, key)
        if value is ref.MISSING or not all(ref.passes(event, item) for item in where):
            continue
        if value_text(value).startswith(prefix):
            counts[ref.typed(value)] = counts.get(ref.typed(value), 0) + 1
    ranked = sorted(counts.items(), key=lambda kv: (-kv[1], kv[0][0], value_text(kv[0][1])))
    return ranked[:limit]


def answered_values(response: httpx.Response) -> list[tuple[tuple[str, Any], int]]:
    """The values of a /keys/{key}/values answer, typed (1 and 1.0 are different values)."""
    assert response.status_code == 200, response.text
    return [(ref.typed(item["value"]), item["count"]) for item in response.json()["values"]]


class TestValuesPrefix:
    """/keys/{key}/values?prefix= lists exactly the values whose text starts with the prefix."""

    @pytest.mark.parametrize(
        ("key", "prefix", "limit", "where"),
        [("user_id", "u1", None, None), ("user_id", "u1", 1000, None),
         ("user_id", "u", 1000, "country=fr"), ("user_id", "用", None, None),
         ("user_id", "U", None, None), ("status_code", "50", None, None),
         ("plan", "1", None, None), ("plan", "t", None, None), ("plan", "", 2, None),
         ("country", "", None, None), ("event_tag", "p", 1, None)],
    )  # fmt: skip
    def test_values_with_the_prefix(
        self,
        loaded: tuple[ServerProcess, list[ref.Posted]],
        key: str,
        prefix: str,
        limit: int | None,
        where: str | None,
    ) -> None:
        server, events = loaded
        params: dict[str, Any] = {"prefix": prefix}
        if limit is not None:
            params["limit"] = limit
        filters = []
        if where is not None:
            params["where"] = where
            name, value = where.split("=")
            filters.append({"type": "eq", "key": name, "value": value})
        response = httpx.get(f"{server.url}/keys/{key}/values", params=params, timeout=60)
        assert response.json()["key"] == key
        expected = expected_values(events, key, prefix, limit or 10, filters)
        assert answered_values(response) == expected
        if (key, prefix) != ("user_id", "U"):
            assert expected  # the case lists some values

    def test_prefix_characters_are_literal(self, tmp_path_factory: pytest.TempPathFactory) -> None:
        texts = ["50%", "50%off", "5000", "a_b", "axb", "A_b", "a\\b", "a.c", "abc", "ü_", "ü"]
        with ServerProcess(tmp_path_factory.mktemp("prefix")) as server:
            body = {"events": [{"ts": T0, "data": {"code": text}} for text in texts]}
            response = httpx.post(server.url + "/events", json=body, timeout=30)
            assert response.status_code == 200, response.text
            events = ref.posted(body["events"], response.json()["first_event_id"])
            for prefix in ["50%", "5_", "a_", "a\\", "a.", "a%", "ü_", "ü", "%", "_", "A"]:
                found = httpx.get(
                    f"{server.url}/keys/code/values",
                    params={"prefix": prefix, "limit": 100},
                    timeout=60,
                )
                assert answered_values(found) == expected_values(events, "code", prefix, 100, [])
