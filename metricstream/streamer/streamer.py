"""`EventStreamer`: the facade between application threads and the sinks.

`send` validates, stamps the correlation id and appends the event's parts
to a deque; it never performs I/O and never waits for a sink (under
``overflow="block"`` it waits for room). Everything else is delegated:

- to the engine (`metricstream.streamer.engine`): its `Pipeline` cuts
  batches by size or time and hands them to one lane per sink, each with
  its own threads, so a slow or dead sink never delays the application or
  another sink; `send_batch` hands it a batch whole. Those threads run only
  when they hold the interpreter lock, so once per batch `send` lets one
  that fell behind finish a batch (`Pipeline.catch_up`);
- to the operations (`metricstream.streamer.operations`): the instruments
  (`timed`, `count`, `gauge`), the aggregators (`aggregator`), the reports
  of dropped events (``on_drop``, dead letters), the health endpoint, the
  environment, self-telemetry and the process lifecycle (exit, fork,
  collection).
"""

from __future__ import annotations

import dataclasses
import inspect
import os
import threading
import time
import weakref
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from types import TracebackType
from typing import Any, TypeVar

from metricstream._log import logger
from metricstream._options import describe, require_int, require_number, takes_options
from metricstream._validate import no_fields_error
from metricstream.columns import EventColumns
from metricstream.contract import CompressionAware, ForkAware, Sink
from metricstream.event import MetricEvent
from metricstream.exceptions import ConfigError, StreamerClosedError
from metricstream.streamer.config import OverflowPolicy, StreamerArguments, check_sinks
from metricstream.streamer.correlation import correlation as _correlation
from metricstream.streamer.correlation import (
    current_correlation_id,
    generate_correlation_id,
    scopes_entered,
)
from metricstream.streamer.engine.current import CurrentPipeline
from metricstream.streamer.engine.pipeline import Pipeline
from metricstream.streamer.engine.receipts import BatchReceipt
from metricstream.streamer.engine.sampling import weighed
from metricstream.streamer.health import StreamerHealth
from metricstream.streamer.operations import env, lifecycle
from metricstream.streamer.operations.aggregation import Aggregations
from metricstream.streamer.operations.drop_reports import DropReports
from metricstream.streamer.operations.endpoint import HealthEndpoint, weak_health
from metricstream.streamer.operations.recording import Recording
from metricstream.streamer.operations.self_metrics import SelfMetrics

__all__ = ["EventStreamer", "OverflowPolicy"]

_S = TypeVar("_S", bound="EventStreamer")


class EventStreamer(Recording):
    """Batch events and deliver them to several sinks, each in its own lane.

    Takes its sinks and the options of `StreamerConfig`, each declared once
    in `metricstream.streamer.config` (listed below). An invalid option
    raises `ConfigError`, which names it.
    """

    @takes_options(StreamerArguments)
    def __init__(self, arguments: StreamerArguments) -> None:
        self._sinks, self._names = check_sinks(arguments.sinks)
        self.config = arguments.config()
        codec = self.config.codec
        if codec is not None:
            for sink in self._sinks:
                if isinstance(sink, CompressionAware):
                    sink.inherit_compression(codec)
        self._shutdown_lock = threading.Lock()
        self._shutdown_result: bool | None = None
        pipeline = Pipeline.open(self.config, self._sinks, self._names)
        # What a collected streamer leaves behind is stopped in the background;
        # `_current` is updated after a fork, so it always names this process's pipeline.
        self._current = CurrentPipeline(pipeline)
        self._aggregations = Aggregations(self._current)
        self._drop_reports = DropReports(self.config, self._current)
        self._pipeline = self._started(pipeline)
        self._finalizer = weakref.finalize(self, _orphan, self._current, self._aggregations)
        self._finalizer.atexit = False
        self._endpoint = HealthEndpoint(weak_health(self.health))
        lifecycle.track(self, at_exit=self.config.register_atexit)

    def _started(self, pipeline: Pipeline) -> Pipeline:
        """Give `pipeline` its periodic work (self-telemetry, aggregators), then start it."""
        interval = self.config.self_metrics_interval
        if interval is not None:
            telemetry = SelfMetrics(
                interval, pipeline.health, pipeline.send_uncounted, self.config.default_tags
            )
            pipeline.add_periodic(telemetry)
        pipeline.add_periodic(self._aggregations)
        pipeline.start()
        self._drop_reports.start()
        return pipeline

    def before_fork(self) -> None:
        """Hold the aggregators' locks while the process forks (see `Aggregator.before_fork`)."""
        self._aggregations.before_fork()

    def after_fork_in_parent(self) -> None:
        """Release what `before_fork` held."""
        self._aggregations.after_fork(child=False)

    def after_fork_in_child(self) -> None:
        """Start afresh in a forked child: new lanes, threads and sink clients, empty series.

        Called by `metricstream.streamer.operations.lifecycle`; the parent's
        pending events and aggregated figures stay with the parent.
        """
        self._aggregations.after_fork(child=True)
        if self._shutdown_result is not None:
            return
        self._shutdown_lock = threading.Lock()
        for sink in self._sinks:
            if isinstance(sink, ForkAware):
                sink.after_fork()
        pipeline = self._pipeline.for_child()
        self._current.pipeline = pipeline
        self._pipeline = pipeline
        self._drop_reports.after_fork_in_child()
        self._started(pipeline)
        self._endpoint.after_fork_in_child()

    # --- the application's side --------------------------------------------

    def send(self, event: MetricEvent, sample_rate: float | None = None) -> bool:
        """Accept one event for delivery to every sink. Never performs I/O.

        The delivered event carries the correlation id of the active
        `correlation` scope when it has none of its own; default tags are
        added later, off this thread. The event itself is not changed, but
        the streamer keeps its tags and fields: do not change them after
        sending.

        It never waits for a sink. Once per ``batch_size`` events, when the
        batcher, or the preparer of a lane that is making progress, has
        fallen three batches behind, it waits for that thread to finish one
        more batch, at most 10 ms: the pipeline's threads need the
        interpreter lock, which a busy sending thread would otherwise keep
        while events pile up (see `Pipeline.catch_up`).

        Args:
            event: The event.
            sample_rate: 1/N keeps about one such event in N, with the field
                ``samplerate`` = N; one sampled out is counted in health's
                ``sampled_out``, neither accepted nor dropped (see
                `metricstream.streamer.engine.sampling`).

        Returns:
            True if the event was queued (or sampled out); False if it was
            dropped at once (buffer full, or shut down) and counted.

        Raises:
            InvalidEventError: If the event has no fields (it is counted as
                dropped, reason ``invalid``).
            TypeError: If `event` is not a `MetricEvent`.
            ConfigError: If `sample_rate` is not 1/N for a whole N.
        """
        if event.__class__ is not MetricEvent and not isinstance(event, MetricEvent):
            raise TypeError(f"send() takes a MetricEvent, not {type(event).__name__}")
        pipeline = self._pipeline
        fields = event.fields
        if not fields:
            if pipeline.closed:
                return pipeline.drop_upstream("shutdown")
            pipeline.drop_upstream("invalid")
            raise no_fields_error(event.measurement)
        if sample_rate is not None:
            weight = pipeline.sampler.draw(sample_rate)
            if not weight:
                return True
            fields = weighed(fields, weight) if weight > 1 else fields
        cid = event.correlation_id
        if cid is None and scopes_entered[0]:
            cid = current_correlation_id()
        buffer = pipeline.buffer
        if len(buffer) >= pipeline.part_limit:  # full, or closed
            return pipeline.send_when_full(
                (event.measurement, event.tags, fields, event.timestamp_ns, cid)
            )
        # The event is kept as its parts, appended at once (see Pipeline.buffer).
        buffer.extend((event.measurement, event.tags, fields, event.timestamp_ns, cid))
        if not len(buffer) % pipeline.wake_every:
            pipeline.batch_full()
        return True

    def send_many(self, events: Iterable[MetricEvent]) -> int:
        """Send several events; return how many were queued (see `send`).

        Raises:
            InvalidEventError: At the first event with no fields; the events
                before it have been sent.
            TypeError: At the first item that is not a `MetricEvent`.
        """
        accepted = 0
        send = self.send
        for event in events:
            if send(event):
                accepted += 1
        return accepted

    def count_invalid(self, count: int = 1) -> None:
        """Count `count` events that could not be built as dropped, reason ``invalid``.

        For code that turns records of another kind into events (the
        logging handler, an exporter): what cannot become an event is then
        counted in every sink's health, as `send` counts an event without
        fields, and nothing is lost silently.

        Raises:
            ConfigError: If `count` is not an int >= 0.
        """
        self._pipeline.drop_upstream("invalid", require_int("count", count, minimum=0))

    def send_batch(
        self, events: Iterable[MetricEvent] | EventColumns, batch_id: str | None = None
    ) -> BatchReceipt:
        """Accept `events` as one batch, all or none; return its `BatchReceipt`.

        The events are checked as `send` checks them and get the active
        correlation id the same way. Then either all are accepted or none
        is: they travel to every sink as exactly one `EventBatch` with this
        `batch_id`, never mixed with events from `send` (what `send` queued
        before is cut into batches of its own first). Nothing is dropped to
        make room for them, and none of them is dropped for room. The same
        `batch_id` sent twice reaches the sinks twice; a sink that keeps
        batch ids (the Redis counter sink) applies it once.

        Unlike `send`, it may perform I/O and wait: with a spool it appends
        the batch there before returning (forced to disk first under
        ``spool_fsync="batch"``), and under ``overflow="block"`` it waits
        for room up to ``block_timeout``. See `BatchReceipt` for what
        *durable* and *delivered* mean.

        Args:
            events: The events, in order: `MetricEvent` objects, or events
                already checked given as columns (`EventColumns`, kept as
                given: do not change them afterwards), which travel as
                they are, with no object per event.
            batch_id: The batch's id (at most 256 printable characters); a
                random one when None. A deterministic id (say, derived from
                a Kafka offset) lets an idempotent sink apply a batch sent
                again only once.

        Returns:
            The receipt of the batch.

        Raises:
            BackpressureError: If the sinks' buffers (or, with a spool, the
                spool) cannot take every event now; nothing was accepted.
                Its ``retry_after`` says when to try again.
            StreamerClosedError: If the streamer is shut down.
            InvalidEventError: If an event has no fields, or its tags cannot
                take the default tags; nothing was accepted.
            TypeError: If an item is not a `MetricEvent`.
            ConfigError: If `batch_id` is invalid, or the batch holds more
                than ``max_buffer`` events.
        """
        if batch_id is not None:
            _check_batch_id(batch_id)
        pipeline = self._pipeline
        if pipeline.closed:
            raise StreamerClosedError("the streamer is shut down")
        if isinstance(events, EventColumns):
            if not self.config.default_tags:
                return pipeline.send_batch(_checked_columns(events), batch_id)
            events = events.events()
        return pipeline.send_batch(_checked_parts(events), batch_id)

    @contextmanager
    def correlation(self, cid: str | None = None) -> Iterator[str]:
        """Attach `cid` (or a generated id) to events sent in this block without one.

        Works across threads that copy the context and asyncio tasks.

        Yields:
            The correlation id in force.

        Raises:
            InvalidEventError: If `cid` is not a valid correlation id.
        """
        with _correlation(cid, prefix=self.config.correlation_prefix) as active:
            yield active

    def generate_correlation_id(self) -> str:
        """Return a new correlation id with this streamer's prefix (``prefix-pid-n``)."""
        return generate_correlation_id(self.config.correlation_prefix)

    # --- flush, health, shutdown ---------------------------------------------

    def flush(self, timeout: float | None = None) -> bool:
        """Deliver everything accepted before this call, waiting up to `timeout` s.

        The aggregators' windows that have ended are sent first.

        Returns:
            True once every such event is written or dropped on every sink;
            False if the timeout passed first.
        """
        self._aggregations.flush_ended()
        return self._pipeline.flush(timeout)

    def pending_count(self) -> int:
        """Events accepted but not yet written or dropped, on the busiest sink."""
        return max(sink.pending for sink in self.health().sinks.values())

    def health(self) -> StreamerHealth:
        """Return a consistent snapshot of every sink's state and accounting.

        Beside it: the events sampled out, each aggregator's series, the
        ``on_drop`` errors and the dead letters.
        """
        return dataclasses.replace(
            self._pipeline.health(),
            aggregators=self._aggregations.health(),
            on_drop_errors=self._drop_reports.callback_errors,
            dead_letters=self._drop_reports.dead_letters(),
        )

    def is_healthy(self) -> bool:
        """True when running and every sink is connected and below the failure threshold."""
        return self.health().healthy

    @property
    def sinks(self) -> list[Sink]:
        """The sinks, in the order given."""
        return list(self._sinks)

    # --- operations ---------------------------------------------------------------

    def serve_health(
        self, host: str = "127.0.0.1", port: int = 0, *, ready: str | None = None
    ) -> tuple[str, int]:
        """Serve ``/livez``, ``/readyz``, ``/healthz``, ``/metrics`` and a status page over HTTP.

        - ``GET /livez``: 200 while the streamer's threads work, 503 once one
          died (never because a sink is down): for a liveness probe, whose
          failure restarts the process;
        - ``GET /readyz``: 200 while the streamer runs and its sinks are
          healthy (`ready`: all of them, or any one), else 503: for a
          readiness probe, whose failure only takes the process out of
          rotation;
        - ``GET /healthz``: 200 when the streamer is healthy, 503 when not,
          with the health snapshot as JSON (credentials removed): for
          dashboards, monitors and load balancers;
        - ``GET /metrics``: the per-sink counters in the Prometheus text
          format (needs ``prometheus_client``: the ``prometheus`` extra);
        - ``GET /``: a status page that refreshes itself.

        The server runs on its own daemon thread, never touches `send`, and
        stops when the streamer shuts down (or is garbage-collected). Calling
        again returns the running server's address (and sets `ready`, when
        given).

        Args:
            host: The address to listen on; ``"0.0.0.0"`` (or ``"::"``) to
                answer probes from other hosts.
            port: The port; 0 picks a free one.
            ready: ``"all"`` (the default): ``/readyz`` needs every sink
                healthy; ``"any"``: one healthy sink is enough.

        Returns:
            The (host, port) the server listens on.

        Raises:
            ConfigError: If the host, port or `ready` is invalid, the address
                cannot be listened on, another server of this streamer listens
                elsewhere, or the streamer is shut down.
        """
        return self._endpoint.serve(host, port, ready)

    @classmethod
    def from_env(
        cls: type[_S], *, environ: Mapping[str, str] | None = None, **overrides: Any
    ) -> _S:
        """Build a streamer from the ``METRICSTREAM_*`` environment variables.

        ``METRICSTREAM_SINKS`` (comma-separated sink URLs), one variable per
        option (``METRICSTREAM_BATCH_SIZE``...) and ``METRICSTREAM_HEALTH_PORT``
        (calls `serve_health`): see `metricstream.streamer.operations.env`.
        Unset or empty variables leave the defaults.

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
        return env.from_environment(cls, os.environ if environ is None else environ, overrides)

    async def flush_async(self, timeout: float | None = None) -> bool:
        """`flush`, awaited without blocking the event loop.

        The wait runs on a daemon thread of its own, never on the loop's
        default executor, so it starts at once however busy that is; pass a
        `timeout` so that a dead sink cannot keep the thread forever.

        Returns:
            True once everything accepted before the call is written or
            dropped; False if the timeout passed first.
        """
        from metricstream.streamer.operations.awaiting import run_in_thread  # needs asyncio

        return await run_in_thread("metricstream-flush", lambda: self.flush(timeout))

    async def shutdown_async(self, timeout: float = 10.0) -> bool:
        """`shutdown`, awaited without blocking the event loop; it keeps its deadline.

        The wait runs on a daemon thread of its own, never on the loop's
        default executor, whose busy workers would delay it.

        Returns:
            True if every accepted event was written or dropped for another
            reason before the deadline (see `shutdown`).
        """
        from metricstream.streamer.operations.awaiting import run_in_thread

        return await run_in_thread("metricstream-shutdown", lambda: self.shutdown(timeout))

    def shutdown(self, timeout: float = 10.0) -> bool:
        """Stop accepting events, deliver what is pending, close the sinks.

        The aggregators' windows are sent first, the open ones included;
        ``on_drop`` is called one last time for what was dropped since its
        last call. Returns within `timeout` seconds even when a sink is
        down, and even when another thread is shutting the streamer down
        too: retry waits end at once, and what is still undelivered at the
        deadline is counted as dropped (reason ``shutdown``) and logged.
        Idempotent.

        Returns:
            True if every accepted event was written or dropped for another
            reason before the deadline; False if some were given up (or
            another thread's shutdown was still running at the deadline).
        """
        timeout = require_number("timeout", timeout, minimum=0)
        deadline = time.monotonic() + timeout
        if not self._shutdown_lock.acquire(timeout=timeout):
            return False
        try:
            if self._shutdown_result is not None:
                return self._shutdown_result
            self._aggregations.flush_all()
            delivered, given_up = self._pipeline.stop(deadline)
            self._drop_reports.finish(deadline)
            self._endpoint.close(deadline)
            self._finalizer.detach()
            lifecycle.forget(self)
            if given_up:
                logger.error(
                    "shutdown deadline (%.1fs) passed; %d events were not delivered",
                    timeout,
                    given_up,
                )
            self._shutdown_result = delivered
            return self._shutdown_result
        finally:
            self._shutdown_lock.release()

    def close(self) -> None:
        """Shut down with the default deadline (see `shutdown`)."""
        self.shutdown()

    def __enter__(self) -> EventStreamer:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.shutdown()

    async def __aenter__(self) -> EventStreamer:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.shutdown_async()

    def __repr__(self) -> str:
        state = "running" if not self._pipeline.closed else "shut down"
        return f"EventStreamer(sinks={self._names!r}, batch_size={self.config.batch_size}, {state})"


EventStreamer.__doc__ = "\n\n".join(
    (
        inspect.cleandoc(EventStreamer.__doc__ or ""),
        describe(StreamerArguments),
        "Raises:\n    ConfigError: If an option is invalid; it names the option.",
    )
)


def _checked_parts(events: Iterable[MetricEvent]) -> list[Any]:
    """The parts of `events`, checked as `send` checks them, with the active correlation id."""
    scoped = current_correlation_id() if scopes_entered[0] else None
    parts: list[Any] = []
    for index, event in enumerate(events):
        if not isinstance(event, MetricEvent):
            kind = type(event).__name__
            raise TypeError(f"send_batch() takes MetricEvents; item {index} is a {kind}")
        if not event.fields:
            raise no_fields_error(event.measurement)
        cid = event.correlation_id
        parts += (
            event.measurement,
            event.tags,
            event.fields,
            event.timestamp_ns,
            scoped if cid is None else cid,
        )
    return parts


def _checked_columns(columns: EventColumns) -> EventColumns:
    """`columns`, checked as `_checked_parts` checks events, with the active correlation id."""
    if columns.field_keys is None:
        for measurement, fields in zip(columns.measurements, columns.fields, strict=True):
            if not fields:
                raise no_fields_error(measurement)
    scoped = current_correlation_id() if scopes_entered[0] else None
    if scoped is None or None not in columns.correlation_ids:
        return columns
    found = columns.subset(0, len(columns))
    found.correlation_ids = [scoped if cid is None else cid for cid in found.correlation_ids]
    return found


def _check_batch_id(batch_id: object) -> None:
    if not isinstance(batch_id, str) or not batch_id or len(batch_id) > 256:
        raise ConfigError("batch_id", f"must be a str of 1 to 256 characters, not {batch_id!r}")
    if not batch_id.isprintable():
        raise ConfigError("batch_id", f"must be printable, not {batch_id!r}")


def _orphan(current: CurrentPipeline, aggregations: Aggregations) -> None:
    """Called when a streamer that was not shut down is garbage-collected."""
    pipeline = current.pipeline
    if not pipeline.closed:
        aggregations.flush_all()
        lifecycle.orphan(pipeline)
