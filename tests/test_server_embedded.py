"""The event store embedded: `create_app` in this process, driven by httpx's ASGI transport.

The application's ASGI lifespan is run as a server runs it (`started`): the
worker's slot, archive, ingest and spool are opened at startup and flushed
and closed at shutdown; requests go through the ASGI interface, without a
socket.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import json
import random
import subprocess
import sys
import threading
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
from starlette.applications import Starlette

from metricstream.columns import EventColumns
from metricstream.server import Receipt, ServerConfig, StreamerIngest, create_app
from metricstream.server._serve import COLLECTOR_THRESHOLDS
from metricstream.sinks.jsonl import JsonLinesReader
from tests import server_reference as ref
from tests.test_server_query import SEED_SHAPE_1, SEED_SHAPE_2, seed_events

TOKEN = "embedded-t0ken"
WAIT = 60.0
"""Seconds the test waits for something that happens at once on a quiet machine."""


@contextlib.asynccontextmanager
async def started(app: Starlette, **headers: str) -> AsyncIterator[httpx.AsyncClient]:
    """Start `app` (the ASGI lifespan, as a server runs it); a client for it; stop it after."""
    inbox: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
    outbox: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
    scope = {"type": "lifespan", "asgi": {"version": "3.0"}, "state": {}}
    lifespan = asyncio.create_task(app(scope, inbox.get, outbox.put))
    await inbox.put({"type": "lifespan.startup"})
    assert (await outbox.get())["type"] == "lifespan.startup.complete"
    transport = httpx.ASGITransport(app=app)
    try:
        async with httpx.AsyncClient(
            transport=transport, base_url="http://embedded", headers=headers, timeout=WAIT
        ) as client:
            yield client
    finally:
        await inbox.put({"type": "lifespan.shutdown"})
        stopped = await outbox.get()
        await lifespan
        assert stopped["type"] == "lifespan.shutdown.complete", stopped


def event_id(order: tuple[int, int, int]) -> str:
    """The id of an event from its (timestamp, generation, counter): hex digits, as documented."""
    timestamp, generation, counter = order
    return f"{timestamp + 2**63:016x}{generation:06x}{counter:010x}"


class TestEmbedded:
    """POST /events, then POST /query, on an application built in this process."""

    def test_events_then_queries(self, tmp_path: Path) -> None:
        rng = random.Random(11)
        posted: list[ref.Posted] = []

        async def scenario() -> tuple[list[httpx.Response], httpx.Response]:
            app = create_app(tmp_path, token=TOKEN, spool_fsync="batch")
            async with started(app, Authorization=f"Bearer {TOKEN}") as client:
                for _ in range(6):
                    batch = seed_events(50, rng)
                    response = await client.post("/events", json={"events": batch})
                    assert response.status_code == 200, response.text
                    first = response.json()["first_event_id"]
                    assert response.json() == {"accepted": 50, "first_event_id": first}
                    posted.extend(ref.posted(batch, first))
                documents = (SEED_SHAPE_1, SEED_SHAPE_2)
                answers = [await client.post("/query", json=d) for d in documents]
                refused = await client.post(
                    "/query", json=SEED_SHAPE_1, headers={"Authorization": "Bearer x"}
                )
            return answers, refused

        answers, refused = asyncio.run(scenario())
        assert refused.status_code == 401
        for document, response in zip((SEED_SHAPE_1, SEED_SHAPE_2), answers, strict=True):
            assert response.status_code == 200, response.text
            assert response.json() == {
                "data": ref.answer_sets(posted, document),
                "funnel": ref.answer_funnel(posted, document),
                "skipped": {"bytes": 0, "regions": []},
            }
        # Stopped: the archive file holds every event, in the order they were received.
        stored = [e.fields["event_id"] for e in JsonLinesReader(tmp_path / "events-0.jsonl.zst")]
        assert stored == [event_id(e.order) for e in posted]

    def test_a_second_application_reads_what_the_first_stored(self, tmp_path: Path) -> None:
        body = {"events": [{"ts": 1_714_521_600_000 + i, "data": {"n": i}} for i in range(30)]}
        document = {"data": [{"name": "big", "filters": [{"type": "gte", "key": "n", "value": 10}],
                              "unique": ["n"]}]}  # fmt: skip

        async def scenario() -> tuple[dict[str, Any], dict[str, Any]]:
            async with started(create_app(tmp_path)) as client:
                assert (await client.post("/events", json=body)).status_code == 200
            async with started(create_app(tmp_path)) as client:
                more = {"events": [{"data": {"n": 99}}]}
                again = (await client.post("/events", json=more)).json()
                answer = (await client.post("/query", json=document)).json()
            return again, answer

        again, answer = asyncio.run(scenario())
        assert answer["data"] == {"big": {"count": 21, "weighted_count": 21, "unique": {"n": 21}}}
        # The second application is the next generation, in the same slot and file.
        assert int(again["first_event_id"][16:22], 16) == 2
        assert [p.name for p in tmp_path.glob("events-*")] == ["events-0.jsonl.zst"]


class GatedIngest:
    """The real ingest, whose read-your-writes wait (every read's first step) holds at a gate.

    A read that reaches `caught_up` holds its place among ``max_queries``
    until the test opens `gate`: a query that stays as long as the test says.
    """

    def __init__(self, config: ServerConfig, path: Path) -> None:
        self.inner = StreamerIngest(config, path)
        self.entered = threading.Event()
        self.gate = threading.Event()

    def submit(self, events: EventColumns, batch_id: str) -> Receipt:
        return self.inner.submit(events, batch_id)

    def caught_up(self, timeout: float) -> bool:
        self.entered.set()
        if not self.gate.wait(WAIT):
            raise AssertionError(f"the gate was not opened within {WAIT} s")
        return self.inner.caught_up(timeout)

    def status(self) -> dict[str, Any]:
        return self.inner.status()

    def close(self, timeout: float) -> None:
        self.gate.set()
        self.inner.close(timeout)


class TestMaxQueries:
    """With ``max_queries`` queries running, one more waits for a place, then answers 503."""

    def test_a_query_beyond_the_limit(self, tmp_path: Path) -> None:
        made: list[GatedIngest] = []
        ran: list[object] = []

        def gated(config: ServerConfig, path: Path) -> GatedIngest:
            made.append(GatedIngest(config, path))
            return made[-1]

        document = {
            "data": [{"name": "all", "filters": [{"type": "eq", "key": "k", "value": "v"}]}]
        }

        async def scenario() -> tuple[httpx.Response, httpx.Response, httpx.Response]:
            app = create_app(tmp_path, ingest=gated, max_queries=1, query_timeout=1.0)
            async with started(app) as client:
                stored = await client.post("/events", json={"events": [{"data": {"k": "v"}}]})
                assert stored.status_code == 200
                (ingest,) = made
                archive = app.state.server.archive
                run = archive.run
                archive.run = lambda document: (ran.append(document), run(document))[1]
                holding = asyncio.create_task(client.post("/query", json=document))
                # The first query holds the only place until the gate opens.
                assert await asyncio.to_thread(ingest.entered.wait, WAIT)
                beyond = await client.post("/query", json=document)
                held = await holding
                ingest.gate.set()
                places = app.state.server.queries
                await asyncio.wait_for(places.acquire(), WAIT)  # the first query ended
                places.release()
                after = await client.post("/query", json=document)
            return beyond, held, after

        beyond, held, after = asyncio.run(scenario())
        assert (beyond.status_code, beyond.json()) == (503, {"error": "1 queries are running"})
        assert beyond.headers["retry-after"] == "1"
        # The first query kept its place past its own time limit, so the second found none.
        assert (held.status_code, held.json()) == (503, {"error": "the query ran longer than 1 s"})
        assert after.status_code == 200, after.text
        assert after.json()["data"] == {"all": {"count": 1, "weighted_count": 1, "unique": {}}}
        # Only the last query ran: the first answered 503 before its work began (it is not run
        # afterwards, holding a place for no one), the second never had a place.
        assert ran == [document]


class TestCollector:
    """A worker of ``metricstream serve`` tunes its garbage collector; an embedded app does not."""

    def test_only_a_worker_of_serve_tunes_it(self, tmp_path: Path) -> None:
        script = (
            "import gc, json, sys\n"
            "from metricstream.server import create_app\n"
            "from metricstream.server._serve import worker_app\n"
            "before = gc.get_threshold(), gc.get_freeze_count()\n"
            "create_app(sys.argv[1])\n"
            "embedded = gc.get_threshold(), gc.get_freeze_count()\n"
            "worker_app(sys.argv[1])\n"
            "print(json.dumps([before, embedded, gc.get_threshold(), gc.get_freeze_count()]))\n"
        )
        found = subprocess.run(
            [sys.executable, "-c", script, str(tmp_path)],
            capture_output=True,
            text=True,
            timeout=WAIT,
            check=True,
        )
        before, embedded, threshold, frozen = json.loads(found.stdout)
        # Python's own thresholds until a worker's.
        assert embedded == before
        assert tuple(before[0]) == tuple(gc.get_threshold()) != COLLECTOR_THRESHOLDS
        assert tuple(threshold) == COLLECTOR_THRESHOLDS == (20_000, 50, 100)
        # Every object the process held (modules, the application) frozen on top of
        # what the interpreter may keep there itself (Python 3.12 starts with some).
        assert frozen > before[1] + 10_000
