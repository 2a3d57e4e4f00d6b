"""`Relay`: read Kafka topics as a consumer group, optionally aggregate, deliver to sinks.

::

    from metricstream.relay import Relay

    with Relay("kafka://127.0.0.1:9092/metrics?group=metrics-relay",
               ["redis://127.0.0.1:6379/0?mapping=..."]) as relay:
        ...                      # reads on a thread of its own until the block ends

    Relay(source, sinks, windows="tumbling 60s", name="http_1m", by="route",
          aggregates="count,quantiles:latency_ms").run()   # until stop() (or SIGTERM in the CLI)

The relay owns an `EventStreamer` for its sinks (and one for ``late_to``)
and hands it every batch with ``send_batch``; a `GroupReader` runs the
consumer. `Relay.stop` ends reading, delivers what was read (at most
``stop_timeout``), commits what every sink has, and leaves the group.
"""

from __future__ import annotations

import os
import threading
import time
from types import TracebackType

from metricstream._log import logger
from metricstream._options import takes_options
from metricstream.contract import Sink
from metricstream.registry import sink_from_url
from metricstream.relay.config import RelayOptions
from metricstream.relay.delivery import Outlet
from metricstream.relay.group import GroupReader, Mode, ReaderSettings
from metricstream.relay.passthrough import PassThrough
from metricstream.relay.stats import RelayCounters, RelayHealth, render_relay_metrics
from metricstream.relay.windowing import Windowed
from metricstream.streamer.engine.lane.retry import RetryConfig
from metricstream.streamer.operations.health_server import HealthServer
from metricstream.streamer.streamer import EventStreamer

__all__ = ["Relay"]


class Relay:
    """Kafka topics, read as a consumer group, delivered to sinks (see the module doc).

    An offset is committed only once every sink has written or dropped
    (counted) every event before it, so every sink gets every event at
    least once across crashes and rebalances, and each batch carries an id
    derived from its partition and offsets (or, with windows, from the
    window), so the Redis counter sink applies it exactly once.

    Attributes:
        source: What it reads.
        streamer: The streamer of its sinks (``late_streamer``: of ``late_to``).
        windows: Its event-time windows, or None.
        counters: Its counts and state (see `health`).
        error: What ended a relay run by `start`, if anything did.
        delivered_everything: After a run, whether everything read was
            delivered before the relay left its group (None before).
    """

    @takes_options(RelayOptions)
    def __init__(self, options: RelayOptions) -> None:
        self.options = options
        self.source = options.source
        self.counters = RelayCounters(options.source.describe())
        self.windows = options.build_windows()
        retry = options.retry or RetryConfig()  # retries without end by default
        self.streamer = self._streamer(options.sinks, "to", retry)
        self.late_streamer = (
            self._streamer(options.late_to, "late-to", retry) if options.late_to else None
        )
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._server: HealthServer | None = None
        self._ran = False
        self.error: BaseException | None = None
        self.delivered_everything: bool | None = None

    def _streamer(
        self, sinks: tuple[Sink | str, ...], name: str, retry: RetryConfig
    ) -> EventStreamer:
        built = [sink_from_url(sink) if isinstance(sink, str) else sink for sink in sinks]
        spool = self.options.spool_dir
        return EventStreamer(
            built,
            max_buffer=self.options.max_buffer,
            retry=retry,
            spool_dir=None if spool is None else os.path.join(spool, name),
            register_atexit=False,
        )

    def __repr__(self) -> str:
        return f"Relay({self.source.describe()!r})"

    # --- running -------------------------------------------------------------------------

    def run(self) -> None:
        """Read and deliver until `stop` is called; then deliver, commit and leave the group.

        Raises:
            MetricStreamError: If the consumer fails for good (a fatal Kafka
                error) or the relay was run before.
            ConfigError: If the health port cannot be listened on.
        """
        if self._ran:
            from metricstream.exceptions import MetricStreamError

            raise MetricStreamError("a relay runs once; build a new one")
        self._ran = True
        if self.options.health_port is not None and self._server is None:
            self.serve_health(self.options.health_host, self.options.health_port)
        reader = GroupReader(self.source, self._mode(), self.counters, self._settings())
        self.counters.running = True
        try:
            reader.open()
            while not self._stop.is_set():
                reader.step()
            delivered = self.delivered_everything = reader.drain(self.options.stop_timeout)
            if not delivered:
                logger.warning(
                    "relay: stopped with events undelivered; their offsets are "
                    "not committed and the next relay of the group reads them again"
                )
        except BaseException as exc:
            self.counters.error = f"{type(exc).__name__}: {exc}"
            raise
        finally:
            self.counters.running = False
            try:
                reader.close(self.options.stop_timeout)
            finally:
                self._shut_down()

    def _mode(self) -> Mode:
        outlet = Outlet(self.streamer, self.counters)
        group = self.source.group
        if self.windows is None:
            return PassThrough(
                outlet,
                group,
                grid=self.options.batch_messages,
                max_events=self.options.max_batch_events,
                linger=self.options.linger,
                counters=self.counters,
            )
        late = None if self.late_streamer is None else Outlet(self.late_streamer, self.counters)
        return Windowed(self.windows, outlet, late, group, counters=self.counters)

    def _settings(self) -> ReaderSettings:
        return ReaderSettings(
            max_held=self.options.max_buffer,
            commit_interval=self.options.commit_interval,
            revoke_timeout=self.options.revoke_timeout,
        )

    def _shut_down(self) -> None:
        timeout = min(5.0, self.options.stop_timeout)
        for streamer in (self.streamer, self.late_streamer):
            if streamer is not None:
                streamer.shutdown(timeout=timeout)
        server, self._server = self._server, None
        if server is not None:
            server.stop(time.monotonic() + 1.0)

    def start(self) -> Relay:
        """Run on a daemon thread of its own (`run`); return the relay.

        An error that ends the thread is kept as `error`.
        """

        def target() -> None:
            try:
                self.run()
            except BaseException as exc:
                self.error = exc
                logger.exception("relay: stopped by an error")

        self._thread = threading.Thread(target=target, name="metricstream-relay", daemon=True)
        self._thread.start()
        return self

    def stop(self, timeout: float | None = None) -> bool:
        """Stop reading; with a thread of its own (`start`), wait up to `timeout` seconds for it.

        Safe to call from a signal handler (it only sets a flag then).

        Returns:
            True once the relay's thread has ended (always True without one).
        """
        self._stop.set()
        thread = self._thread
        if thread is None or thread is threading.current_thread():
            return True
        thread.join(timeout)
        return not thread.is_alive()

    @property
    def running(self) -> bool:
        """True while the relay reads (from joining the group until it stops)."""
        return self.counters.running

    def __enter__(self) -> Relay:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    # --- health ---------------------------------------------------------------------------

    def health(self) -> RelayHealth:
        """The sinks' accounting (late sinks named ``late:NAME``) with the relay's state.

        ``running`` is the relay's (True before `run` too), ``live`` is
        False once the relay's loop or a streamer thread has died, and
        ``healthy`` needs both and every sink healthy.
        """
        streamers = [self.streamer.health()]
        if self.late_streamer is not None:
            streamers.append(self.late_streamer.health())
        main = streamers[0]
        sinks = dict(main.sinks)
        for late in streamers[1:]:
            sinks.update({f"late:{name}": sink for name, sink in late.sinks.items()})
        relay = self.counters.snapshot()
        running = all(h.running for h in streamers) and (relay["running"] or not self._ran)
        live = all(h.live for h in streamers) and relay["error"] is None
        errors = [h.error for h in streamers if h.error] + [relay["error"]]
        return RelayHealth(
            healthy=running and live and all(h.healthy for h in streamers),
            running=running,
            events_accepted=sum(h.events_accepted for h in streamers),
            sinks=sinks,
            error=next((error for error in errors if error), None),
            live=live,
            relay=relay,
        )

    def serve_health(self, host: str = "127.0.0.1", port: int = 0) -> tuple[str, int]:
        """Serve ``/healthz``, ``/metrics`` and the status page; return (host, port).

        Raises:
            ConfigError: If the address cannot be listened on.
        """
        if self._server is None:
            server = HealthServer(self.health, host, port, metrics=render_relay_metrics)
            server.start()
            self._server = server
        return self._server.address
