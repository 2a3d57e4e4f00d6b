"""uvicorn's HTTP protocol, counting the connections of the worker (`metricstream.server._spread`).

``metricstream serve --workers N`` gives it to uvicorn as the HTTP protocol
of every worker.
"""

from __future__ import annotations

from typing import Any

from uvicorn.protocols.http.auto import AutoHTTPProtocol

from metricstream.server._spread import CONNECTIONS

__all__ = ["CountedHTTPProtocol"]


class CountedHTTPProtocol(AutoHTTPProtocol):  # type: ignore[misc,valid-type]
    """uvicorn's HTTP protocol, counting the connections it opens and loses in `CONNECTIONS`."""

    def connection_made(self, transport: Any) -> None:
        """Count the connection, then let uvicorn serve it."""
        CONNECTIONS.opened()
        super().connection_made(transport)

    def connection_lost(self, exc: Exception | None) -> None:
        """Let uvicorn end the connection, then stop counting it."""
        try:
            super().connection_lost(exc)
        finally:
            CONNECTIONS.lost()
