"""Keep-alive connections spread over the workers of ``metricstream serve --workers N``.

Every worker accepts on one shared socket, and a new connection goes to
whichever worker accepts it first. Clients that connect at the same moment
(a pool opening its connections) can all land on one worker while another
sits idle, and keep-alive keeps them there: two workers then serve at the
rate of one.

So each worker publishes how many connections it holds open, in a table of
one byte per slot (``.metricstream/workers/load``: 0 for a slot no worker
holds, else 1 plus the worker's connections), which ``serve`` clears before
the workers start. The connections are counted where uvicorn opens and
loses them (`metricstream.server._protocol.CountedHTTPProtocol`, the HTTP
protocol ``serve`` gives uvicorn).

A worker that holds at least `SPREAD_MARGIN` connections more than the
least busy live worker closes the connection of the request it is answering
(``Connection: close``), and the client's next connection goes to the
worker that accepts first, which is one free to accept: a busy worker is
the last to. A connection told to close no longer counts, so a crowded
worker closes only as many as it has too many; connections stay where they
are once the workers are even, and a worker alone never closes any.
"""

from __future__ import annotations

import mmap
import os
from pathlib import Path

from starlette.types import ASGIApp, Message, Receive, Scope, Send

__all__ = [
    "CONNECTIONS",
    "SPREAD_MARGIN",
    "TABLE_SLOTS",
    "LoadTable",
    "ProcessConnections",
    "SpreadConnections",
    "clear_table",
    "table_path",
]

TABLE_SLOTS = 256
"""Slots in the table: one byte per worker slot (`metricstream.server._worker.MAX_SLOTS`)."""

SPREAD_MARGIN = 2
"""Connections beyond the least busy worker's at which a worker closes one."""

_MOST = 255
_CLOSE = (b"connection", b"close")


def table_path(state_dir: Path) -> Path:
    """Where the table of `state_dir`'s workers is."""
    return state_dir / "workers" / "load"


def clear_table(state_dir: Path) -> None:
    """Mark every slot free (before the workers start), creating the table if needed.

    The file keeps its size (a worker of another server on the same archive
    may have it mapped): it is written over, never cut shorter.

    Raises:
        OSError: If the table cannot be written.
    """
    path = table_path(state_dir)
    path.parent.mkdir(parents=True, exist_ok=True)
    descriptor = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        os.pwrite(descriptor, bytes(TABLE_SLOTS), 0)
    finally:
        os.close(descriptor)


class ProcessConnections:
    """The connections this process holds open, and the table it publishes them in.

    Changed only on the event loop thread (uvicorn's protocol callbacks and
    the middleware run there), so it needs no lock.

    Attributes:
        open: Connections open.
        leaving: Of those, the ones told to close after their answer.
        table: Where they are published, while the worker runs.
    """

    def __init__(self) -> None:
        self.open = 0
        self.leaving = 0
        self.table: LoadTable | None = None

    @property
    def staying(self) -> int:
        """Open connections not about to close."""
        return max(0, self.open - self.leaving)

    def opened(self) -> None:
        """Count a connection uvicorn opened."""
        self.open += 1
        self._publish()

    def lost(self) -> None:
        """Count a connection uvicorn lost (one told to close, if any is)."""
        self.open = max(0, self.open - 1)
        self.leaving = max(0, self.leaving - 1)
        self._publish()

    def leave(self) -> None:
        """Count a connection told to close after its answer."""
        self.leaving += 1
        self._publish()

    def _publish(self) -> None:
        if self.table is not None:
            self.table.publish(self.staying)


CONNECTIONS = ProcessConnections()
"""This process's connections (one uvicorn server per worker process)."""


class LoadTable:
    """One worker's slot in the table, and its view of the others'.

    Reading the others' bytes is a racy glance, which is all a choice of
    where to go next needs; only this worker writes its own byte.

    Args:
        state_dir: The server's state directory (the table is created there
            if it is missing).
        slot: This worker's slot.
        connections: The process's connections, published here from now on.

    Raises:
        ValueError: If `slot` is outside the table.
        OSError: If the table cannot be opened.
    """

    def __init__(
        self, state_dir: Path, slot: int, connections: ProcessConnections = CONNECTIONS
    ) -> None:
        if not 0 <= slot < TABLE_SLOTS:
            raise ValueError(f"slot {slot} is outside the load table (0 to {TABLE_SLOTS - 1})")
        path = table_path(state_dir)
        path.parent.mkdir(parents=True, exist_ok=True)
        descriptor = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            if os.fstat(descriptor).st_size < TABLE_SLOTS:
                os.ftruncate(descriptor, TABLE_SLOTS)  # only ever made longer
            self._table = mmap.mmap(descriptor, TABLE_SLOTS)
        finally:
            os.close(descriptor)
        self._slot = slot
        self.connections = connections
        connections.table = self
        self.publish(connections.staying)

    def publish(self, count: int) -> None:
        """Publish that this worker holds `count` connections."""
        self._table[self._slot] = min(_MOST, count + 1)

    def crowded(self) -> bool:
        """Whether this worker holds `SPREAD_MARGIN` connections more than the least busy one."""
        others = bytearray(self._table[:])
        mine = others[self._slot]
        others[self._slot] = 0
        live = others.translate(None, b"\x00")
        return bool(live) and mine - min(live) >= SPREAD_MARGIN

    def close(self) -> None:
        """Mark the slot free, stop publishing there, and unmap the table."""
        if self.connections.table is self:
            self.connections.table = None
        self._table[self._slot] = 0
        self._table.close()


class SpreadConnections:
    """ASGI middleware: close the connection of a request a crowded worker answers.

    The table is the one of the worker's state (``app.state.server.load``),
    None when the worker runs alone.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        state = getattr(scope["app"].state, "server", None) if scope["type"] == "http" else None
        if state is None or state.load is None or not state.load.crowded():
            await self.app(scope, receive, send)
            return
        table: LoadTable = state.load
        table.connections.leave()
        state.metrics.connections_spread.inc()

        async def closing(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", []), _CLOSE]
            await send(message)

        await self.app(scope, receive, closing)
