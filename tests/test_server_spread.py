"""Keep-alive connections spread over the workers (`metricstream.server._spread`).

The table's counting is checked byte by byte; the middleware in an
embedded application beside a second worker's slot;
and the real two-worker server with four clients that connect at the same
moment, round after round: each round ends with both workers answering
half of the requests.
"""

from __future__ import annotations

import asyncio
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from metricstream.query import parse_event_id
from metricstream.server import create_app
from metricstream.server._spread import (
    TABLE_SLOTS,
    LoadTable,
    ProcessConnections,
    clear_table,
    table_path,
)
from tests.server_support import ServerProcess
from tests.test_server_embedded import WAIT, started


def table_bytes(state_dir: Path) -> list[int]:
    """The first four bytes of the table, read from the file."""
    return list(table_path(state_dir).read_bytes()[:4])


class TestLoadTable:
    """One byte per slot: 0 free, else 1 plus the worker's connections that stay open."""

    def test_connections_and_crowding(self, tmp_path: Path) -> None:
        clear_table(tmp_path)
        mine, theirs = ProcessConnections(), ProcessConnections()
        first, second = LoadTable(tmp_path, 0, mine), LoadTable(tmp_path, 1, theirs)
        assert table_bytes(tmp_path) == [1, 1, 0, 0]
        seen = []
        for _ in range(3):
            mine.opened()
            seen.append((table_bytes(tmp_path), first.crowded(), second.crowded()))
        assert seen == [
            ([2, 1, 0, 0], False, False),
            ([3, 1, 0, 0], True, False),  # two against none
            ([4, 1, 0, 0], True, False),
        ]
        mine.leave()  # told to close after its answer: no longer counted
        assert (table_bytes(tmp_path), first.crowded()) == ([3, 1, 0, 0], True)
        mine.leave()
        assert (table_bytes(tmp_path), first.crowded()) == ([2, 1, 0, 0], False)
        mine.lost()
        mine.lost()  # the two closed: still one open
        assert (mine.open, mine.leaving, table_bytes(tmp_path)) == (1, 0, [2, 1, 0, 0])
        theirs.opened()
        theirs.opened()
        theirs.opened()
        assert [first.crowded(), second.crowded()] == [False, True]
        second.close()
        assert theirs.table is None
        theirs.opened()  # no longer published
        for _ in range(5):
            mine.opened()
        # Alone, a worker is never crowded, however many connections it holds.
        assert (table_bytes(tmp_path), first.crowded()) == ([7, 0, 0, 0], False)
        first.close()
        assert table_bytes(tmp_path) == [0, 0, 0, 0]

    def test_counts_never_go_below_none(self, tmp_path: Path) -> None:
        connections = ProcessConnections()
        table = LoadTable(tmp_path, 0, connections)
        connections.lost()
        connections.leave()
        connections.leave()
        connections.opened()
        assert (connections.open, connections.leaving, connections.staying) == (1, 2, 0)
        assert table_bytes(tmp_path)[0] == 1
        table.close()

    def test_a_count_stops_at_the_byte(self, tmp_path: Path) -> None:
        connections = ProcessConnections()
        table = LoadTable(tmp_path, 3, connections)
        for _ in range(300):
            connections.opened()
        assert table_path(tmp_path).read_bytes()[3] == 255
        table.close()

    def test_clearing_writes_over_without_cutting(self, tmp_path: Path) -> None:
        path = table_path(tmp_path)
        path.parent.mkdir(parents=True)
        path.write_bytes(b"\x07" * (TABLE_SLOTS + 10))
        clear_table(tmp_path)
        assert path.read_bytes() == bytes(TABLE_SLOTS) + b"\x07" * 10

    def test_a_missing_table_is_made(self, tmp_path: Path) -> None:
        table = LoadTable(tmp_path / "new", 2, ProcessConnections())
        assert table_path(tmp_path / "new").read_bytes() == bytes([0, 0, 1]) + bytes(253)
        table.close()

    @pytest.mark.parametrize("slot", [-1, TABLE_SLOTS])
    def test_a_slot_outside_the_table(self, tmp_path: Path, slot: int) -> None:
        with pytest.raises(ValueError, match=f"slot {slot} is outside the load table"):
            LoadTable(tmp_path, slot, ProcessConnections())


class TestMiddleware:
    """A worker two connections busier than another closes the connection after its answer."""

    def test_close_while_crowded(self, tmp_path: Path) -> None:
        async def scenario() -> tuple[list[tuple[int, str | None]], str]:
            app = create_app(tmp_path, spread_connections=True)
            async with started(app) as client:
                table = app.state.server.load
                # httpx's ASGI transport opens no connection: the test counts them.
                table.connections.opened()
                table.connections.opened()
                answers = [await client.get("/healthz")]  # alone: never crowded
                # A second worker, in slot 1, with no connection.
                peer = LoadTable(app.state.server.config.state_dir, 1, ProcessConnections())
                try:
                    answers.append(await client.post("/events", json={"events": [{}]}))
                    answers.append(await client.get("/healthz"))  # the first is leaving
                finally:
                    peer.close()
                metrics = (await client.get("/metrics")).text
                table.connections.lost()
                table.connections.lost()
            return [(r.status_code, r.headers.get("connection")) for r in answers], metrics

        answers, metrics = asyncio.run(scenario())
        assert answers == [(200, None), (200, "close"), (200, None)]
        assert "metricstream_server_connections_spread_total 1.0" in metrics

    def test_off_by_default(self, tmp_path: Path) -> None:
        async def scenario() -> object:
            app = create_app(tmp_path)
            async with started(app):
                return app.state.server.load

        assert asyncio.run(scenario()) is None


ROUNDS = 5
CLIENTS = 4
REQUESTS = 40
LAST = 10
"""The requests of each client at the end of a round, once the connections have moved."""


class TestTwoWorkers:
    """Four clients that connect at once end each round split evenly over two workers."""

    def test_every_round_ends_even(self, tmp_path: Path) -> None:
        body = {"events": [{"data": {"n": i, "text": "x" * 40}} for i in range(200)]}
        splits = []
        with ServerProcess(tmp_path, "--workers", "2") as server:
            # Ready means one worker answers; the rounds start once both are in the table.
            deadline = time.monotonic() + WAIT
            while sum(map(bool, table_bytes(tmp_path / ".metricstream"))) < 2:
                assert time.monotonic() < deadline, "the second worker did not start"
                time.sleep(0.05)
            for _ in range(ROUNDS):
                answered = self.round(server.url, body)
                late = [g for client in answered for g in client[-LAST:]]
                splits.append(sorted(late.count(g) for g in set(late)))
            metrics = httpx.get(server.url + "/metrics", timeout=WAIT).text
            server.stop()
        even = [CLIENTS * LAST // 2] * 2
        # The end of each round: two connections on each worker.
        assert splits == [even] * ROUNDS, (splits, metrics)

    @staticmethod
    def round(url: str, body: dict[str, Any]) -> list[list[int]]:
        """Each client's answering generations, in order; the clients connect at once."""
        ready, done = threading.Barrier(CLIENTS), threading.Barrier(CLIENTS)
        answered: list[list[int]] = [[] for _ in range(CLIENTS)]
        failures: list[BaseException] = []

        def client(number: int) -> None:
            try:
                with httpx.Client(base_url=url, timeout=WAIT) as session:
                    ready.wait(WAIT)
                    for _ in range(REQUESTS):
                        response = session.post("/events", json=body)
                        assert response.status_code == 200, response.text
                        first = response.json()["first_event_id"]
                        answered[number].append(parse_event_id(first)[1])
                    done.wait(WAIT)  # the connections close together, after every answer
            except BaseException as exc:  # reported by the test's thread
                failures.append(exc)

        threads = [threading.Thread(target=client, args=(n,)) for n in range(CLIENTS)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        if failures:
            raise failures[0]
        return answered
