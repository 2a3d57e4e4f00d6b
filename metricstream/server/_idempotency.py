"""``Idempotency-Key``: a retried write is answered as the first time and stores nothing again.

Keys live in an SQLite database under the archive's state directory
(``.metricstream/idempotency.sqlite3``), shared by the workers, synced on
every change (``synchronous=FULL``), kept `ServerConfig.idempotency_hours`
and at most `ServerConfig.idempotency_max_keys` of them (the oldest go
first).

A key is first *claimed*, with the request's fingerprint (a digest of its
route and body) and the ids it will give its events, then *answered* once
its events are durable, before the answer is sent. A retry with the same
key and body gets the stored answer; with another body, 422; while the
first request is still running, 409. A claim whose worker died before
answering is settled by the next request with its key: if the archive
holds the claimed first event id, the events were stored and the stored
answer is rebuilt from the claim; otherwise the claim is dropped and the
retry stores the events.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import sqlite3
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import orjson

from metricstream.server._errors import ApiError

__all__ = ["Claim", "IdempotencyStore", "Replay", "fingerprint"]

MAX_KEY_LENGTH = 255
"""The longest ``Idempotency-Key`` accepted."""


def fingerprint(route: str, body: bytes) -> str:
    """A digest of a request: its route and body."""
    return hashlib.sha256(route.encode() + b"\0" + body).hexdigest()


@dataclass(frozen=True)
class Replay:
    """The stored answer to a key seen before."""

    status: int
    body: dict[str, object]


@dataclass(frozen=True)
class Claim:
    """A key this worker now holds: the request goes on, then `IdempotencyStore.answer`."""

    key: str


_SCHEMA = """
CREATE TABLE IF NOT EXISTS keys (
    key TEXT PRIMARY KEY,
    fingerprint TEXT NOT NULL,
    created REAL NOT NULL,
    owner INTEGER NOT NULL,
    first_event_id TEXT,
    planned TEXT,
    status INTEGER,
    answer TEXT
)
"""


def _connect(path: Path) -> sqlite3.Connection:
    """Open the database in WAL mode, with its table, once no other worker is setting it up.

    SQLite answers "database is locked" at once, without waiting out the busy
    timeout, to a connection that switches a new database to WAL while
    another does the same: workers that start together take turns here.
    """
    descriptor = os.open(path.with_name(path.name + ".lock"), os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(descriptor, fcntl.LOCK_EX)
        connection = sqlite3.connect(
            path, timeout=30.0, isolation_level=None, check_same_thread=False
        )
        try:
            connection.execute("PRAGMA journal_mode=WAL")
            connection.execute("PRAGMA synchronous=FULL")
            connection.execute(_SCHEMA)
        except BaseException:
            connection.close()
            raise
    finally:
        os.close(descriptor)  # closing the file releases the lock
    return connection


class IdempotencyStore:
    """The keys of one archive (see the module documentation).

    Args:
        path: The database file.
        generation: This worker's generation (the owner of its claims).
        ttl_seconds: How long a key is kept.
        max_keys: The most keys kept.
        alive: Tells whether the worker of a generation still runs.
        stored: Tells whether the archive holds an event id.
    """

    def __init__(
        self,
        path: Path,
        generation: int,
        ttl_seconds: float,
        max_keys: int,
        *,
        alive: Callable[[int], bool],
        stored: Callable[[str], bool],
    ) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        os.close(os.open(path, os.O_RDWR | os.O_CREAT, 0o600))  # answers stay the owner's
        self._connection = _connect(path)
        self._generation = generation
        self._ttl = ttl_seconds
        self._max_keys = max_keys
        self._alive = alive
        self._stored = stored
        self._lock = threading.Lock()

    def close(self) -> None:
        """Close the database."""
        with self._lock:
            self._connection.close()

    def claim(
        self, key: str, digest: str, first_event_id: str | None, planned: dict[str, object]
    ) -> Claim | Replay:
        """Claim `key` for a request, or return the answer it got before.

        Args:
            key: The ``Idempotency-Key``.
            digest: The request's `fingerprint`.
            first_event_id: The id the request's first event will have.
            planned: The answer the request will give once its events are durable.

        Raises:
            ApiError: 400 for a malformed key, 422 when the key came with
                another request, 409 while that request is still running.
        """
        if not key or len(key) > MAX_KEY_LENGTH or not key.isprintable():
            raise ApiError(400, f"an Idempotency-Key is 1 to {MAX_KEY_LENGTH} printable characters")
        with self._lock, self._transaction() as db:
            self._expire(db)
            row = db.execute(
                "SELECT fingerprint, owner, first_event_id, planned, status, answer "
                "FROM keys WHERE key = ?",
                (key,),
            ).fetchone()
            if row is not None:
                found = self._settle(db, key, digest, row)
                if found is not None:
                    return found
            db.execute(
                "INSERT INTO keys VALUES (?, ?, ?, ?, ?, ?, NULL, NULL)",
                (key, digest, time.time(), self._generation, first_event_id,
                 orjson.dumps(planned).decode()),
            )  # fmt: skip
        return Claim(key)

    def _settle(
        self, db: sqlite3.Connection, key: str, digest: str, row: tuple[object, ...]
    ) -> Replay | None:
        """What a key seen before means now: its answer, or None when the claim was dropped."""
        known, owner, first, planned, status, answer = row
        if known != digest:
            raise ApiError(422, "this Idempotency-Key was used with another request")
        if status is not None:
            assert isinstance(status, int)
            assert isinstance(answer, str)
            return Replay(status, orjson.loads(answer))
        assert isinstance(owner, int)
        if owner == self._generation or self._alive(owner):
            raise ApiError(
                409,
                "a request with this Idempotency-Key is in progress",
                headers={"Retry-After": "1"},
            )
        if isinstance(first, str) and self._stored(first):
            assert isinstance(planned, str)
            db.execute("UPDATE keys SET status = 200, answer = ? WHERE key = ?", (planned, key))
            return Replay(200, orjson.loads(planned))
        db.execute("DELETE FROM keys WHERE key = ?", (key,))
        return None

    def answer(self, claim: Claim, status: int, body: dict[str, object]) -> None:
        """Store the answer to a claimed key (before it is sent)."""
        with self._lock, self._transaction() as db:
            db.execute(
                "UPDATE keys SET status = ?, answer = ? WHERE key = ?",
                (status, orjson.dumps(body).decode(), claim.key),
            )

    def release(self, claim: Claim) -> None:
        """Drop a claim whose request stored nothing (a retry may store its events)."""
        with self._lock, self._transaction() as db:
            db.execute("DELETE FROM keys WHERE key = ? AND status IS NULL", (claim.key,))

    def _expire(self, db: sqlite3.Connection) -> None:
        db.execute("DELETE FROM keys WHERE created < ?", (time.time() - self._ttl,))
        db.execute(
            "DELETE FROM keys WHERE key IN (SELECT key FROM keys ORDER BY created DESC "
            "LIMIT -1 OFFSET ?)",
            (self._max_keys - 1,),
        )

    def _transaction(self) -> _Transaction:
        return _Transaction(self._connection)


class _Transaction:
    """``BEGIN IMMEDIATE`` ... ``COMMIT`` (``ROLLBACK`` on an error)."""

    def __init__(self, connection: sqlite3.Connection) -> None:
        self._connection = connection

    def __enter__(self) -> sqlite3.Connection:
        self._connection.execute("BEGIN IMMEDIATE")
        return self._connection

    def __exit__(self, kind: object, *_: object) -> None:
        self._connection.execute("COMMIT" if kind is None else "ROLLBACK")
