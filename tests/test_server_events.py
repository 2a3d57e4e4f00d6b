"""POST /events: what is stored, with which types and ids; what is refused, storing nothing."""

from __future__ import annotations

import gzip
import json
import os
import re
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import jsonschema
import pytest
import zstandard

import metricstream as ms
from metricstream.query import parse_event_id
from metricstream.server import events_schema
from metricstream.spool import inspect_spool
from tests import server_reference as ref
from tests.server_support import ServerProcess, stored

T0 = 1_714_521_600_000  # 2024-05-01T00:00:00Z in milliseconds


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    directory = tmp_path_factory.mktemp("events")
    with ServerProcess(directory, "--max-body-bytes", "65536", "--max-events", "50") as running:
        yield running


def post(server: ServerProcess, body: Any, **headers: str) -> httpx.Response:
    content = body if isinstance(body, bytes) else json.dumps(body).encode()
    headers.setdefault("content-type", "application/json")
    return httpx.post(server.url + "/events", content=content, headers=headers, timeout=30)


BAD_BODIES: list[tuple[str, Any, dict[str, str], int, str | None]] = [
    ("not JSON", b"{nope", {}, 400, None),
    ("a list", [], {}, 400, "document"),
    ("no events", {}, {}, 400, "events"),
    ("events not a list", {"events": {}}, {}, 400, "events"),
    ("an unknown member", {"events": [], "extra": 1}, {}, 400, "document.extra"),
    ("an event not an object", {"events": [{"data": {}}, 3]}, {}, 400, "events[1]"),
    ("an unknown event member", {"events": [{"dta": {}}]}, {}, 400, "events[0].dta"),
    ("ts text", {"events": [{}, {}, {}, {"ts": "yesterday"}]}, {}, 400, "events[3].ts"),
    ("ts a bool", {"events": [{"ts": True}]}, {}, 400, "events[0].ts"),
    ("ts out of range", {"events": [{"ts": 10**16}]}, {}, 400, "events[0].ts"),
    ("samplerate 0", {"events": [{"samplerate": 0}]}, {}, 400, "events[0].samplerate"),
    ("samplerate 2.5", {"events": [{"samplerate": 2.5}]}, {}, 400, "events[0].samplerate"),
    ("samplerate text", {"events": [{"samplerate": "two"}]}, {}, 400, "events[0].samplerate"),
    ("data a list", {"events": [{"data": [1]}]}, {}, 400, "events[0].data"),
    ("a nested value", {"events": [{"data": {"a": {"b": 1}}}]}, {}, 400, "events[0].data.a"),
    ("a null value", {"events": [{"data": {"a": None}}]}, {}, 400, "events[0].data.a"),
    ("a list value", {"events": [{"data": {"a": [1]}}]}, {}, 400, "events[0].data.a"),
    ("event_id set", {"events": [{"data": {"event_id": "x"}}]}, {}, 400, "events[0].data.event_id"),
    ("samplerate in data", {"events": [{"data": {"samplerate": 2}}]}, {}, 400,
     "events[0].data.samplerate"),
    ("an empty key", {"events": [{"data": {"": 1}}]}, {}, 400, 'events[0].data[""]'),
    ("a reserved key", {"events": [{"data": {"time": 1}}]}, {}, 400, "events[0].data.time"),
    ("a newline in a key", {"events": [{"data": {"a\nb": 1}}]}, {}, 400,
     'events[0].data["a\\nb"]'),
    ("event not text", {"events": [{"data": {"event": 5}}]}, {}, 400, "events[0].data.event"),
    ("two measurements", {"events": [{"data": {"event": "a", "measurement": "b"}}]}, {}, 400,
     "events[0].data.measurement"),
    ("a long string", {"events": [{"data": {"s": "x" * 70_000}}]}, {}, 413, None),
    ("too many events", {"events": [{}] * 51}, {}, 413, None),
    ("a wrong type", {"events": []}, {"content-type": "text/plain"}, 415, None),
    ("a wrong encoding", {"events": []}, {"content-encoding": "br"}, 415, None),
    ("gzip that is not", {"events": []}, {"content-encoding": "gzip"}, 400, None),
    ("zstd that is not", {"events": []}, {"content-encoding": "zstd"}, 400, None),
    ("a bomb", gzip.compress(b" " * 200_000), {"content-encoding": "gzip"}, 413, None),
]  # fmt: skip


class TestRefused:
    """Every kind of bad body gets its status and path, and nothing of it is stored."""

    @pytest.mark.parametrize(
        ("body", "headers", "status", "path"),
        [case[1:] for case in BAD_BODIES],
        ids=[case[0] for case in BAD_BODIES],
    )
    def test_bad_bodies(
        self,
        server: ServerProcess,
        body: Any,
        headers: dict[str, str],
        status: int,
        path: str | None,
    ) -> None:
        before = len(stored(server))
        if isinstance(body, dict) and body.get("events") and status == 400:
            # A good event first: the request is refused whole.
            body = {"events": [{"data": {"fine": 1}}, *body["events"]]}
            path = _shift(path)
        response = post(server, body, **headers)
        assert response.status_code == status, response.text
        answer = response.json()
        assert isinstance(answer["error"], str)
        assert answer["error"]
        assert answer.get("path") == path
        assert len(stored(server)) == before


def _shift(path: str | None) -> str | None:
    """The path once a good event is put first: ``events[n]`` becomes ``events[n+1]``."""
    if path is None:
        return None
    return re.sub(r"^events\[(\d+)\]", lambda m: f"events[{int(m.group(1)) + 1}]", path)


class TestStored:
    """What an accepted request stores: types, times, sample rates, ids."""

    def test_values_times_and_rates_as_given(self, server: ServerProcess) -> None:
        body = {
            "events": [
                {"ts": T0, "data": {"user": "ü", "n": 3, "x": 2.5, "ok": True, "event": "view"}},
                {"ts": str(T0 + 1), "samplerate": "4", "data": {"n": -1, "big": 2**63}},
                {"ts": "2024-05-01T00:00:00.002Z", "samplerate": 2.0, "data": {}},
                {"ts": "2024-05-01T02:00:00+02:00", "data": {"measurement": "m"}},
                {"ts": T0 + 0.5, "data": {"s": "<img src=x onerror=alert(1)>"}},
            ]
        }
        before = {e.fields["event_id"] for e in stored(server)}
        response = post(server, body)
        assert response.status_code == 200, response.text
        answer = response.json()
        assert answer["accepted"] == 5
        found = [e for e in stored(server) if e.fields["event_id"] not in before]
        assert [(e.measurement, e.timestamp_ns) for e in found] == [
            ("view", T0 * 10**6),
            ("event", (T0 + 1) * 10**6),
            ("event", (T0 + 2) * 10**6),
            ("m", T0 * 10**6),
            ("event", T0 * 10**6 + 500_000),
        ]
        assert found[0].fields == {"user": "ü", "n": 3, "x": 2.5, "ok": True, "samplerate": 1,
                                   "event_id": found[0].fields["event_id"]}  # fmt: skip
        assert found[1].fields["big"] == ms.UInt(2**63)
        assert [e.fields["samplerate"] for e in found] == [1, 4, 2, 1, 1]
        assert found[4].fields["s"] == "<img src=x onerror=alert(1)>"
        ids = [parse_event_id(e.fields["event_id"]) for e in found]
        assert answer["first_event_id"] == found[0].fields["event_id"]
        assert [ts for ts, _, _ in ids] == [e.timestamp_ns for e in found]
        assert len({generation for _, generation, _ in ids}) == 1
        assert [counter for _, _, counter in ids] == list(range(ids[0][2], ids[0][2] + 5))

    def test_a_missing_ts_is_the_time_of_arrival(self, server: ServerProcess) -> None:
        import time

        low = time.time_ns()
        response = post(server, {"events": [{"data": {"arrival": 1}}, {"ts": None}]})
        high = time.time_ns()
        assert response.status_code == 200
        first = response.json()["first_event_id"]
        found = [e for e in stored(server) if e.fields["event_id"] >= first[:16]]
        arrived = [e for e in found if parse_event_id(e.fields["event_id"])[2] >=
                   parse_event_id(first)[2]]  # fmt: skip
        assert len(arrived) == 2
        assert all(low <= e.timestamp_ns <= high for e in arrived)
        assert arrived[0].timestamp_ns == arrived[1].timestamp_ns

    @pytest.mark.parametrize("encoding", ["gzip", "zstd"])
    def test_compressed_bodies(self, server: ServerProcess, encoding: str) -> None:
        raw = json.dumps({"events": [{"data": {"encoded": encoding}}]}).encode()
        body = gzip.compress(raw) if encoding == "gzip" else zstandard.compress(raw)
        response = post(server, body, **{"content-encoding": encoding})
        assert response.status_code == 200, response.text
        assert [e.fields["encoded"] for e in stored(server) if "encoded" in e.fields
                ][-1] == encoding  # fmt: skip

    def test_an_empty_list_stores_nothing(self, server: ServerProcess) -> None:
        assert post(server, {"events": []}).json() == {"accepted": 0, "first_event_id": None}


class TestIdempotency:
    """A retried request with its Idempotency-Key gets the first answer and stores nothing."""

    def test_a_retry_is_answered_from_the_first_time(self, server: ServerProcess) -> None:
        body = {"events": [{"data": {"retried": "yes"}}, {"data": {"retried": "yes"}}]}
        first = post(server, body, **{"idempotency-key": "k-1"})
        again = post(server, body, **{"idempotency-key": "k-1"})
        assert first.status_code == again.status_code == 200
        assert again.json() == first.json()
        assert again.headers["idempotent-replayed"] == "true"
        assert sum("retried" in e.fields for e in stored(server)) == 2

    def test_the_key_with_another_body_is_refused(self, server: ServerProcess) -> None:
        assert post(server, {"events": []}, **{"idempotency-key": "k-2"}).status_code == 200
        other = post(server, {"events": [{}]}, **{"idempotency-key": "k-2"})
        assert other.status_code == 422

    def test_a_refused_request_does_not_use_up_its_key(self, server: ServerProcess) -> None:
        bad = post(server, {"events": [{"ts": "x"}]}, **{"idempotency-key": "k-3"})
        assert bad.status_code == 400
        good = post(server, {"events": [{}]}, **{"idempotency-key": "k-3"})
        assert good.status_code == 200


# The schema cannot say that "event" and "measurement" must agree.
SCHEMA_CASES = [body for name, body, headers, status, _ in BAD_BODIES
                if isinstance(body, dict) and not headers and status == 400
                and name != "two measurements"] + [
    {"events": []},
    {"events": [{"ts": T0, "samplerate": 3, "data": {"a": "b", "n": 1.5, "ok": False}}]},
    {"events": [{"ts": "1714521600000.5", "samplerate": "12"}, {"ts": None}]},
    {"events": [{"ts": "2024-05-01T00:00:00Z", "data": {"event": "x", "u": 2**64 - 1}}]},
    {"events": [{"ts": "2024-05-01 10:00", "samplerate": 1.0}]},
]  # fmt: skip


class TestSchema:
    """The JSON Schema that documents the body accepts exactly the bodies the server accepts."""

    @pytest.mark.parametrize("body", SCHEMA_CASES)
    def test_schema_and_server_agree(self, server: ServerProcess, body: dict[str, Any]) -> None:
        validator = jsonschema.Draft202012Validator(events_schema())
        accepted = post(server, body).status_code == 200
        assert validator.is_valid(body) == accepted

    def test_the_schema_is_served(self, server: ServerProcess) -> None:
        assert httpx.get(server.url + "/schema/events.json").json() == events_schema()


class TestSpoolFull:
    """A full spool answers 503 with Retry-After, and nothing of the refused request is kept."""

    def test_refused_whole_while_a_sink_is_down(self, tmp_path: Path) -> None:
        # Nothing listens on port 1: the sink keeps every batch in the spool until it is full.
        down = "influxdb://127.0.0.1:1/nowhere?duplicate_points=keep"
        limit = 1 << 20
        with ServerProcess(tmp_path, "--spool-max-bytes", str(limit), "--to", down) as server:
            acked: list[tuple[int, int]] = []
            refused: list[httpx.Response] = []
            for request in range(100):  # 200 events of 1.2 kB each: about 10 fill 1 MiB
                body = {"events": [{"data": {"request": request, "i": i,
                                             "pad": os.urandom(600).hex()}}
                                   for i in range(200)]}  # fmt: skip
                response = post(server, body)
                if response.status_code != 200:
                    refused.append(response)
                    refused.append(post(server, body))  # still full: nothing was delivered
                    break
                acked += [(request, i) for i in range(200)]
            assert [r.status_code for r in refused] == [503, 503]
            for response in refused:
                assert response.headers["retry-after"] == "1"
                assert response.json() == {
                    "error": "the spool is full: cannot take 200 events now: "
                    f"the spool is full (spool_max_bytes={limit})"
                }
            found = stored(server)
            server.stop(signal.SIGKILL)
        assert acked
        assert [(e.fields["request"], e.fields["i"]) for e in found] == acked
        spool = inspect_spool(tmp_path / ".metricstream" / "spool" / "events-0")
        assert spool.bytes >= limit
        assert spool.next_seq - spool.first_seq == len(acked)
        assert spool.sinks["influxdb"].events == len(acked)


def canonical(value: Any) -> str:
    """JSON text with sorted keys: 3 and 3.0 differ, as they do in the archive."""
    return json.dumps(value, sort_keys=True, ensure_ascii=False)


def expected_record(event: dict[str, Any], first_event_id: str, index: int) -> dict[str, Any]:
    """The JSON object the archive holds for the request's event `index`, from what was posted."""
    data = dict(event.get("data", {}))
    measurement = data.pop("event", None) or data.pop("measurement", None) or "event"
    fields = {
        key: {"uint": value} if isinstance(value, int) and value >= 2**63 else value
        for key, value in data.items()
    }
    timestamp = ref.ts_ns(event["ts"])
    counter = int(first_event_id[22:], 16) + index
    fields["samplerate"] = int(event.get("samplerate", 1))
    fields["event_id"] = f"{timestamp + 2**63:016x}{first_event_id[16:22]}{counter:010x}"
    return {"measurement": measurement, "tags": {}, "fields": fields,
            "timestamp_ns": timestamp, "schema_version": 1}  # fmt: skip


class TestCat:
    """``metricstream cat`` reads a server's archive file: exactly the events that were posted."""

    def test_cat_gives_the_posted_events(self, tmp_path: Path) -> None:
        bodies: list[dict[str, Any]] = [
            {"events": [
                {"ts": T0, "data": {"event": "view", "user": "ü", "n": 3, "x": 2.5, "ok": True}},
                {"ts": "2024-05-01T00:00:01Z", "samplerate": 4,
                 "data": {"s": 'a\nb "q" \\', "f": 3.0, "neg": -7}},
            ]},
            {"events": [
                {"ts": str(T0 + 5), "data": {"measurement": "m", "big": 2**63, "no": False}},
                {"ts": T0 + 6},
                {"ts": T0 + 7, "samplerate": "2", "data": {"event": "view", "user": "<b>"}},
            ]},
        ]  # fmt: skip
        with ServerProcess(tmp_path) as server:
            answers = [post(server, body) for body in bodies]
            assert server.stop() == 0
        expected = []
        for body, answer in zip(bodies, answers, strict=True):
            assert answer.status_code == 200, answer.text
            first = answer.json()["first_event_id"]
            expected += [expected_record(e, first, i) for i, e in enumerate(body["events"])]
        result = subprocess.run(
            [sys.executable, "-m", "metricstream", "cat", str(tmp_path / "events-0.jsonl.zst"),
             "--format", "json"],
            capture_output=True, text=True, timeout=60, check=False,
        )  # fmt: skip
        assert (result.returncode, result.stderr) == (0, "")
        found = [json.loads(line) for line in result.stdout.splitlines()]
        assert [canonical(record) for record in found] == [canonical(e) for e in expected]
