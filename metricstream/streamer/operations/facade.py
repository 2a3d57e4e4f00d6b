"""The operational face of `EventStreamer`: health endpoint, environment, asyncio.

`StreamerOperations` is a mixin of `EventStreamer`; it keeps these methods
out of the facade's module. It relies on the facade's ``health``, ``flush``
and ``shutdown`` methods and its ``_shutdown_lock`` and ``_shutdown_result``.

- `serve_health` starts a `HealthServer` (`metricstream.streamer.operations.health_server`);
  the facade's shutdown stops it (`_stop_health_server`), and a forked child
  closes the socket it inherited (`_health_server_after_fork`).
- `from_env` builds a streamer from the ``METRICSTREAM_*`` variables
  (`metricstream.streamer.operations.env`).
- `flush_async`, `shutdown_async` and ``async with`` run the blocking waits
  on a worker thread (`asyncio.to_thread`), so the event loop never waits.
"""

from __future__ import annotations

import os
import threading
import weakref
from collections.abc import Callable, Mapping
from types import TracebackType
from typing import TYPE_CHECKING, Any, TypeVar

from metricstream._options import require_int, require_name
from metricstream.exceptions import ConfigError
from metricstream.streamer.health import StreamerHealth
from metricstream.streamer.operations import env

if TYPE_CHECKING:
    from metricstream.streamer.operations.health_server import HealthServer

__all__ = ["StreamerOperations"]

_S = TypeVar("_S", bound="StreamerOperations")


class StreamerOperations:
    """Health endpoint, configuration from the environment and asyncio (a mixin)."""

    _health_server: HealthServer | None = None
    _shutdown_lock: threading.Lock
    _shutdown_result: bool | None

    if TYPE_CHECKING:

        def health(self) -> StreamerHealth:
            """Provided by `EventStreamer`."""
            ...

        def flush(self, timeout: float | None = None) -> bool:
            """Provided by `EventStreamer`."""
            ...

        def shutdown(self, timeout: float = 10.0) -> bool:
            """Provided by `EventStreamer`."""
            ...

    # --- the health endpoint -------------------------------------------------

    def serve_health(self, host: str = "127.0.0.1", port: int = 0) -> tuple[str, int]:
        """Serve ``/healthz``, ``/metrics`` and a live status page over HTTP.

        ``GET /healthz`` answers 200 when the streamer is healthy and 503
        when not, with the health snapshot as JSON (credentials removed);
        ``GET /metrics`` gives the per-sink counters in the Prometheus text
        format (needs ``prometheus_client``: the ``prometheus`` extra);
        ``GET /`` is a status page that refreshes itself. The server runs on
        its own daemon thread, never touches `send`, and stops when the
        streamer shuts down (or is garbage-collected). Calling again returns
        the running server's address.

        Args:
            host: The address to listen on; ``"0.0.0.0"`` (or ``"::"``) to
                answer probes from other hosts.
            port: The port; 0 picks a free one.

        Returns:
            The (host, port) the server listens on.

        Raises:
            ConfigError: If the host or port is invalid or cannot be listened
                on, if another server of this streamer listens elsewhere, or
                if the streamer is shut down.
        """
        require_name("host", host)
        require_int("port", port, minimum=0, maximum=65535)
        from metricstream.streamer.operations.health_server import HealthServer

        with self._shutdown_lock:
            if self._shutdown_result is not None:
                raise ConfigError("serve_health", "the streamer is shut down")
            server = self._health_server
            if server is not None:
                if port in (0, server.address[1]):
                    return server.address
                raise ConfigError("port", f"health is served on {server.url} already")
            server = HealthServer(_weak_health(self), host, port)
            server.start()
            self._health_server = server
            return server.address

    def _stop_health_server(self, deadline: float) -> None:
        server, self._health_server = self._health_server, None
        if server is not None:
            server.stop(deadline)

    def _health_server_after_fork(self) -> None:
        server, self._health_server = self._health_server, None
        if server is not None:
            server.after_fork_in_child()

    # --- configuration from the environment ---------------------------------

    @classmethod
    def from_env(
        cls: type[_S], *, environ: Mapping[str, str] | None = None, **overrides: Any
    ) -> _S:
        """Build a streamer from the ``METRICSTREAM_*`` environment variables.

        ``METRICSTREAM_SINKS`` (comma-separated sink URLs, resolved by
        `metricstream.sinks.sink_from_url`), ``METRICSTREAM_DEFAULT_TAGS``
        (``k=v,k=v``), ``METRICSTREAM_BATCH_SIZE``,
        ``METRICSTREAM_FLUSH_INTERVAL``, ``METRICSTREAM_MAX_BUFFER``,
        ``METRICSTREAM_OVERFLOW``, ``METRICSTREAM_COMPRESSION``,
        ``METRICSTREAM_SELF_METRICS_INTERVAL`` and ``METRICSTREAM_HEALTH_PORT``
        (with ``METRICSTREAM_HEALTH_HOST``, default ``127.0.0.1``: calls
        `serve_health`); see `metricstream.streamer.operations.env`. Unset or empty
        variables leave the defaults.

        Args:
            environ: Where to read the variables; `os.environ` when None.
            **overrides: `EventStreamer` arguments, which win over the
                environment (``sinks=[...]`` replaces ``METRICSTREAM_SINKS``).

        Returns:
            The running streamer.

        Raises:
            ConfigError: If a variable's value is invalid; it names the
                variable and the value (credentials removed).
        """
        settings = env.read_environment(os.environ if environ is None else environ, overrides)
        options = {**settings.options, **overrides}
        given_sinks = options.pop("sinks", None)
        sinks = env.build_sinks(settings.sink_urls) if given_sinks is None else given_sinks
        build: Callable[..., _S] = cls
        try:
            streamer = build(sinks, **options)
        except ConfigError as exc:
            if given_sinks is None:
                env.close_quietly(sinks)
            raise settings.explain(exc) from None
        if settings.health is not None:
            try:
                streamer.serve_health(*settings.health)
            except ConfigError as exc:
                streamer.shutdown(timeout=1.0)
                problem = str(exc).removeprefix(f"{exc.option}: ")
                raise settings.explain(ConfigError("health_port", problem)) from None
        return streamer

    # --- asyncio ----------------------------------------------------------------

    async def flush_async(self, timeout: float | None = None) -> bool:
        """`flush`, awaited without blocking the event loop.

        The wait runs on a worker thread of the loop's default executor;
        pass a `timeout` so that a dead sink cannot hold that thread forever.

        Returns:
            True once everything accepted before the call is written or
            dropped; False if the timeout passed first.
        """
        import asyncio  # loaded already wherever a coroutine runs; not by `import metricstream`

        return await asyncio.to_thread(self.flush, timeout)

    async def shutdown_async(self, timeout: float = 10.0) -> bool:
        """`shutdown`, awaited without blocking the event loop.

        Returns:
            True if every accepted event was written or dropped for another
            reason before the deadline (see `shutdown`).
        """
        import asyncio

        return await asyncio.to_thread(self.shutdown, timeout)

    async def __aenter__(self: _S) -> _S:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.shutdown_async()


def _weak_health(streamer: StreamerOperations) -> Callable[[], StreamerHealth | None]:
    """Return a health source that does not keep `streamer` alive."""
    method = weakref.WeakMethod(streamer.health)

    def health() -> StreamerHealth | None:
        bound = method()
        return None if bound is None else bound()

    return health
