"""The real ``metricstream serve`` process: what it acknowledged survives SIGKILL, retries are
answered once, workers share nothing but the archive, SIGTERM flushes, ``--to`` forwards.

Every server here is started by the test, on a free port (``--port 0``),
and every check reads the archive afterwards with the query layer (which
steps over a frame a kill tore).
"""

from __future__ import annotations

import contextlib
import multiprocessing
import random
import signal
import sqlite3
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from metricstream.query import Archive, parse_event_id
from metricstream.server._idempotency import IdempotencyStore
from metricstream.sinks.jsonl import JsonLinesReader
from tests.server_support import ServerProcess

pytestmark = pytest.mark.faults

CLIENTS = 4
KILLS = 10


def stored_markers(archive_dir: Path) -> dict[tuple[str, int], set[str]]:
    """For each (client, seq) marker in the archive, the event ids that carry it."""
    found: dict[tuple[str, int], set[str]] = {}
    with Archive(archive_dir / "events-*.jsonl.zst", cache=False) as archive:
        rows = (
            archive.events(None, [{"type": "all", "key": "client"}])
            .breakdown(["client", "seq", "event_id"], n=10**9)
            .value
        )
    for row in rows:
        client, seq, event_id = row.values
        found.setdefault((str(client), int(seq)), set()).add(str(event_id))
    return found


def wait_delivered(server: ServerProcess, expected: int, timeout: float = 120.0) -> None:
    """Wait until /stats counts at least `expected` events (the spool reached the archive)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if httpx.get(server.url + "/stats", timeout=30).json()["events"] >= expected:
            return
        time.sleep(0.1)
    raise AssertionError(f"fewer than {expected} events reached the archive in {timeout} s")


class Clients:
    """`CLIENTS` threads posting small batches until stopped; what was acknowledged is kept."""

    def __init__(self, url: str, seed: int) -> None:
        self.url = url
        self.acked: set[tuple[str, int]] = set()
        self.stop = threading.Event()
        self.lock = threading.Lock()
        self.rng = random.Random(seed)
        names = [f"s{seed}c{n}" for n in range(CLIENTS)]
        self.next = dict.fromkeys(names, 0)
        self.threads = [threading.Thread(target=self.run, args=(name,)) for name in names]

    def run(self, client: str) -> None:
        with httpx.Client(timeout=10) as session:
            while not self.stop.is_set():
                with self.lock:
                    first = self.next[client]
                    size = self.rng.randint(1, 40)
                    self.next[client] = first + size
                body = {"events": [{"data": {"client": client, "seq": first + i}}
                                   for i in range(size)]}  # fmt: skip
                try:
                    response = session.post(self.url + "/events", json=body)
                except httpx.HTTPError:
                    time.sleep(0.02)
                    continue
                if response.status_code == 200:
                    with self.lock:
                        self.acked.update((client, first + i) for i in range(size))

    def __enter__(self) -> Clients:
        for thread in self.threads:
            thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        for thread in self.threads:
            thread.join(30)


class TestKills:
    """SIGKILL under load loses nothing that was acknowledged."""

    def test_ten_kills_under_four_clients(self, tmp_path: Path) -> None:
        acked: set[tuple[str, int]] = set()
        rng = random.Random(3)
        for kill in range(KILLS):
            server = ServerProcess(tmp_path).start()
            with Clients(server.url, seed=kill) as clients:
                deadline = time.monotonic() + rng.uniform(0.5, 1.5)
                while time.monotonic() < deadline or not clients.acked:
                    time.sleep(0.05)
                server.stop(signal.SIGKILL)
            acked |= clients.acked
        with ServerProcess(tmp_path) as server:
            wait_delivered(server, len(acked))
            server.stop()
        found = stored_markers(tmp_path)
        lost = acked - set(found)
        assert not lost, f"{len(lost)} acknowledged events lost, e.g. {sorted(lost)[:5]}"
        assert len(acked) > KILLS * CLIENTS
        # Each marker was posted once: one event id each, whatever a replay wrote twice.
        assert {marker: len(ids) for marker, ids in found.items() if len(ids) != 1} == {}


class TestIdempotencyAfterKill:
    """A retried Idempotency-Key after a SIGKILL stores nothing twice."""

    def test_retry_after_kill(self, tmp_path: Path) -> None:
        body = {"events": [{"data": {"client": "idem", "seq": i}} for i in range(25)]}
        headers = {"Idempotency-Key": "after-kill-1"}
        with ServerProcess(tmp_path) as server:
            first = httpx.post(server.url + "/events", json=body, headers=headers, timeout=30)
            assert first.status_code == 200
            server.stop(signal.SIGKILL)
        with ServerProcess(tmp_path) as server:
            again = httpx.post(server.url + "/events", json=body, headers=headers, timeout=30)
            assert again.status_code == 200
            assert again.json() == first.json()
            assert again.headers["idempotent-replayed"] == "true"
            wait_delivered(server, 25)
            server.stop()
        found = stored_markers(tmp_path)
        assert sorted(found) == [("idem", i) for i in range(25)]
        assert all(len(ids) == 1 for ids in found.values())

    def test_a_request_cut_by_a_kill_is_stored_once_when_retried(self, tmp_path: Path) -> None:
        body = {"events": [{"data": {"client": "cut", "seq": i}} for i in range(500)]}
        headers = {"Idempotency-Key": "cut-1"}
        server = ServerProcess(tmp_path).start()
        threading.Timer(0.01, server.stop, args=(signal.SIGKILL,)).start()
        with contextlib.suppress(httpx.HTTPError):
            httpx.post(server.url + "/events", json=body, headers=headers, timeout=30)
        server.process.wait(30)  # type: ignore[union-attr]
        with ServerProcess(tmp_path) as server:
            retry = httpx.post(server.url + "/events", json=body, headers=headers, timeout=30)
            assert retry.status_code == 200
            wait_delivered(server, 500)
            server.stop()
        found = stored_markers(tmp_path)
        assert sorted(found) == [("cut", i) for i in range(500)]
        assert all(len(ids) == 1 for ids in found.values())


class TestWorkers:
    """Two workers, four clients: exact counts, unique event ids, each worker writing its file."""

    def test_two_workers(self, tmp_path: Path) -> None:
        with ServerProcess(tmp_path, "--workers", "2") as server:
            with Clients(server.url, seed=9) as clients:
                time.sleep(3)
            acked = clients.acked
            answered_by = until_both_workers_answer(server.url, acked)
            wait_delivered(server, len(acked))
            document = {"data": [{"name": "all", "keys": ["client"], "unique": ["event_id"]}]}
            answer = httpx.post(server.url + "/query", json=document, timeout=60).json()
            server.stop()
        assert answer["data"]["all"]["count"] == len(acked)
        assert answer["data"]["all"]["unique"]["event_id"] == len(acked)
        found = stored_markers(tmp_path)
        assert set(found) == acked
        # Each worker wrote its own file, every event of it under the worker's generation.
        in_files = {
            path.name: {parse_event_id(str(e.fields["event_id"]))[1] for e in JsonLinesReader(path)}
            for path in tmp_path.glob("events-*.jsonl.zst")
        }
        assert sorted(in_files) == ["events-0.jsonl.zst", "events-1.jsonl.zst"]
        assert all(len(generations) == 1 for generations in in_files.values())
        assert set().union(*in_files.values()) == answered_by
        assert len(answered_by) == 2


def _open_store_at(path: Path, ready: Any) -> str | None:
    """In a child process: open the key store once every sibling is ready; the error, if any."""
    ready.wait()
    try:
        store = IdempotencyStore(
            path, 1, 3600.0, 10, alive=lambda generation: True, stored=lambda event_id: False
        )
    except sqlite3.Error as exc:
        return repr(exc)
    store.close()
    return None


class TestWorkersStartingTogether:
    """Workers that start at once all open the new key store (none fails with "locked")."""

    def test_four_processes_open_a_new_store_at_once(self, tmp_path: Path) -> None:
        context = multiprocessing.get_context("fork")
        with context.Manager() as manager, context.Pool(4) as pool:
            for trial in range(40):
                path = tmp_path / f"trial-{trial}" / "idempotency.sqlite3"
                ready = manager.Barrier(4)
                errors = pool.starmap(_open_store_at, [(path, ready)] * 4)
                assert errors == [None] * 4, f"trial {trial}: {errors}"
                with sqlite3.connect(path) as connection:
                    mode = connection.execute("PRAGMA journal_mode").fetchone()
                    tables = connection.execute("SELECT name FROM sqlite_master").fetchall()
                assert (mode, tables) == (("wal",), [("keys",), ("sqlite_autoindex_keys_1",)])


def until_both_workers_answer(url: str, acked: set[tuple[str, int]]) -> set[int]:
    """Post one event per new connection until two workers (generations) have answered.

    Each new connection goes to whichever worker accepts it first, so both
    answer sooner or later; the deadline only bounds a server that never
    lets the second one. What is acknowledged is added to `acked`.
    """
    answered_by: set[int] = set()
    deadline = time.monotonic() + 120
    seq = 0
    while len(answered_by) < 2:
        assert time.monotonic() < deadline, f"only generations {answered_by} answered"
        body = {"events": [{"data": {"client": "both", "seq": seq}}]}
        response = httpx.post(url + "/events", json=body, timeout=30)
        assert response.status_code == 200, response.text
        acked.add(("both", seq))
        answered_by.add(parse_event_id(response.json()["first_event_id"])[1])
        seq += 1
    return answered_by


class TestStop:
    """SIGTERM and Ctrl-C answer the requests in flight and flush what was acknowledged."""

    def test_sigterm_flushes(self, tmp_path: Path) -> None:
        server = ServerProcess(tmp_path).start()
        with Clients(server.url, seed=5) as clients:
            time.sleep(1.0)
            code = server.stop(signal.SIGTERM)
        assert code == 0
        assert set(stored_markers(tmp_path)) >= clients.acked

    def test_sigint_flushes(self, tmp_path: Path) -> None:
        server = ServerProcess(tmp_path).start()
        with Clients(server.url, seed=6) as clients:
            wait_acked(clients)
            code = server.stop(signal.SIGINT)
        assert code == 0
        assert server.output() == ("metricstream serve: stopped\n", "")
        assert clients.acked
        assert set(stored_markers(tmp_path)) >= clients.acked

    def test_ctrl_c_stops_every_worker(self, tmp_path: Path) -> None:
        # A terminal's Ctrl-C reaches the whole process group: supervisor and workers.
        server = ServerProcess(tmp_path, "--workers", "2", new_session=True).start()
        with Clients(server.url, seed=7) as clients:
            wait_acked(clients)
            # Both workers serving: a worker still starting has no handler for SIGINT yet.
            until_both_workers_answer(server.url, clients.acked)
            code = server.interrupt_group()
        assert code == 0
        assert server.output() == ("metricstream serve: stopped\n", "")
        with pytest.raises(httpx.ConnectError):  # no worker is left holding the socket
            httpx.get(server.url + "/healthz", timeout=10)
        assert clients.acked
        assert set(stored_markers(tmp_path)) >= clients.acked


def wait_acked(clients: Clients, timeout: float = 60.0) -> None:
    """Wait until the clients have some events acknowledged."""
    deadline = time.monotonic() + timeout
    while not clients.acked:
        assert time.monotonic() < deadline, f"nothing acknowledged in {timeout} s"
        time.sleep(0.05)


class TestForwarding:
    """``--to kafka://...`` sends every accepted event on, through the same spool."""

    @pytest.mark.servers
    def test_events_reach_a_kafka_topic(self, tmp_path: Path) -> None:
        from tests.kafka_helpers import read_events, unique_topic
        from tests.servers import KAFKA_BOOTSTRAP, host_port, require

        require("kafka", *host_port(KAFKA_BOOTSTRAP))
        topic = unique_topic("serve-to")
        url = f"kafka://{KAFKA_BOOTSTRAP}/{topic}"
        body = {"events": [{"data": {"client": "kafka", "seq": i}} for i in range(300)]}
        with ServerProcess(tmp_path, "--to", url) as server:
            answer = httpx.post(server.url + "/events", json=body, timeout=30).json()
            server.stop()
        forwarded = read_events(KAFKA_BOOTSTRAP, topic, 300)
        assert sorted(e.fields["seq"] for e in forwarded) == list(range(300))
        # The topic's partitions are read one beside the other: the first event is the
        # smallest id (the events share their arrival time, so ids follow the counter).
        assert min(str(e.fields["event_id"]) for e in forwarded) == answer["first_event_id"]
        assert len({e.fields["event_id"] for e in forwarded}) == 300
        assert set(stored_markers(tmp_path)) == {("kafka", i) for i in range(300)}
