"""`HealthEndpoint`: a streamer's health server, started on demand, stopped with the streamer.

`EventStreamer.serve_health` delegates here. The endpoint holds the
streamer's health source weakly (`weak_health`), so a streamer nobody
references is still collected, and its server then stops by itself.
"""

from __future__ import annotations

import threading
import weakref
from collections.abc import Callable
from typing import TYPE_CHECKING

from metricstream._options import require_int, require_name
from metricstream.exceptions import ConfigError
from metricstream.streamer.health import READY_POLICIES, StreamerHealth

if TYPE_CHECKING:
    from metricstream.streamer.operations.health_server import HealthServer

__all__ = ["HealthEndpoint", "weak_health"]


def weak_health(health: Callable[[], StreamerHealth]) -> Callable[[], StreamerHealth | None]:
    """Return a health source that calls the bound method `health` without keeping its object alive.

    The source answers None once that object is gone.
    """
    method = weakref.WeakMethod(health)

    def source() -> StreamerHealth | None:
        bound = method()
        return None if bound is None else bound()

    return source


class HealthEndpoint:
    """Starts, stops and forgets one streamer's `HealthServer`.

    Args:
        health: Returns a fresh snapshot, or None once the streamer is gone.
    """

    def __init__(self, health: Callable[[], StreamerHealth | None]) -> None:
        self._health = health
        self._lock = threading.Lock()
        self._closed = False
        self.server: HealthServer | None = None

    def serve(self, host: str, port: int, ready: str | None = None) -> tuple[str, int]:
        """Start serving (see `EventStreamer.serve_health`), or return where it serves.

        Raises:
            ConfigError: If the host, port or readiness policy is invalid, the
                address cannot be listened on, it serves on another port
                already, or once it is closed.
        """
        require_name("host", host)
        require_int("port", port, minimum=0, maximum=65535)
        from metricstream.streamer.operations.health_server import HealthServer

        if ready is not None:
            ready = READY_POLICIES.check("ready", ready)

        with self._lock:
            if self._closed:
                raise ConfigError("serve_health", "the streamer is shut down")
            server = self.server
            if server is not None:
                if port in (0, server.address[1]):
                    server.ready = server.ready if ready is None else ready
                    return server.address
                raise ConfigError("port", f"health is served on {server.url} already")
            server = HealthServer(self._health, host, port, ready=ready or "all")
            server.start()
            self.server = server
            return server.address

    def close(self, deadline: float) -> None:
        """Stop the server, if any, waiting until the monotonic `deadline`; serve nothing more."""
        with self._lock:
            self._closed = True
            server, self.server = self.server, None
        if server is not None:
            server.stop(deadline)

    def after_fork_in_child(self) -> None:
        """Close the socket a forked child inherited; the child serves nothing until asked."""
        self._lock = threading.Lock()
        server, self.server = self.server, None
        if server is not None:
            server.after_fork_in_child()
