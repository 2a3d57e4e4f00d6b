"""`EventStreamer`: the facade between application threads and the sinks.

`send` validates, stamps the correlation id and appends the event's parts
to a deque; it never performs I/O and never waits for a sink (under
``overflow="block"`` it waits for room). Everything else happens in the
`Pipeline` (`metricstream.streamer.engine.pipeline`): a batcher thread cuts
batches by size or time and hands them to one lane per sink, each with its
own threads, so a slow or dead sink never delays the application or another
sink. Those threads run only when they hold the interpreter lock, so once
per batch `send` lets one that fell behind finish a batch (`Pipeline.catch_up`).
"""

from __future__ import annotations

import os
import threading
import time
import weakref
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from types import TracebackType
from typing import Any

from metricstream._log import logger
from metricstream._options import require_number
from metricstream._validate import no_fields_error
from metricstream.codecs.compression import Compression
from metricstream.contract import CompressionAware, ForkAware, Sink
from metricstream.event import MetricEvent
from metricstream.exceptions import ConfigError
from metricstream.spool import Spool
from metricstream.streamer.config import OverflowPolicy, SpoolFsync, StreamerConfig
from metricstream.streamer.correlation import correlation as _correlation
from metricstream.streamer.correlation import (
    current_correlation_id,
    generate_correlation_id,
    scopes_entered,
)
from metricstream.streamer.engine.pipeline import Pipeline
from metricstream.streamer.engine.retry import RetryConfig
from metricstream.streamer.health import StreamerHealth
from metricstream.streamer.operations import lifecycle
from metricstream.streamer.operations.facade import StreamerOperations
from metricstream.streamer.operations.instruments import Instruments

__all__ = ["EventStreamer", "OverflowPolicy"]

_SINK_METHODS = ("prepare", "write", "check", "close")


def _check_sinks(sinks: object) -> tuple[list[Sink], list[str]]:
    """Return the sinks and their unique names, or raise `ConfigError`."""
    if isinstance(sinks, (str, bytes)) or not isinstance(sinks, Iterable):
        raise ConfigError("sinks", "must be a list of sinks")
    sink_list: list[Sink] = list(sinks)
    if not sink_list:
        raise ConfigError("sinks", "at least one sink is required")
    names: list[str] = []
    for sink in sink_list:
        missing = [m for m in _SINK_METHODS if not callable(getattr(sink, m, None))]
        if missing:
            lacks = ", ".join(f"{member}()" for member in missing)
            raise ConfigError("sinks", f"{sink!r} is not a sink: it lacks {lacks}")
        name = getattr(sink, "name", None)
        if name is None:
            name = type(sink).__name__
        elif not isinstance(name, str) or not name:
            raise ConfigError("sinks", f"sink {sink!r} has an invalid name {name!r}")
        if name in names:
            raise ConfigError("sinks", f"two sinks are named {name!r}; give each a unique name=")
        names.append(name)
    return sink_list, names


class EventStreamer(Instruments, StreamerOperations):
    """Batch events and deliver them to several sinks, each in its own lane.

    Besides the methods below: `serve_health` (an HTTP health endpoint with
    Prometheus metrics and a status page), `from_env` (configuration from
    ``METRICSTREAM_*`` variables), `flush_async`, `shutdown_async` and
    ``async with`` (see `metricstream.streamer.operations.facade`).

    Args:
        sinks: The destinations (objects following `metricstream.sinks.Sink`);
            names must be unique.
        batch_size: Events per batch; a batch is cut when this many are waiting.
        flush_interval: Seconds after which waiting events are sent even if
            fewer than `batch_size`.
        flush_jitter: Up to this many random seconds added to each interval,
            so many processes do not flush in step.
        max_buffer: The most events one sink may have waiting (queued or being
            written), and the most waiting to be batched.
        overflow: What a full buffer does to new events: ``"drop_oldest"``
            (make room by dropping the oldest waiting batch), ``"drop_newest"``
            (drop the new events) or ``"block"`` (`send` waits for room, up to
            `block_timeout`, then drops the new event).
        block_timeout: Seconds `send` may wait under ``"block"``; None waits
            as long as it takes.
        retry: The retry policy for failed writes.
        compression: Default codec for sinks that compress (``"zstd"``,
            ``"gzip"``, ``"none"`` or a `Compression`); a sink's own setting wins.
        default_tags: Tags added to every event that does not set them itself.
        correlation_prefix: Prefix of generated correlation ids (default: the
            program name).
        register_atexit: Shut down when the interpreter exits (all streamers
            together get 2 s).
        unhealthy_after: Consecutive failed writes after which a sink counts
            as unhealthy.
        probe_interval: Seconds between health probes (`Sink.check`) of a
            disconnected, idle sink.
        spool_dir: A directory for the write-ahead spool (see README,
            "Delivery guarantees"): each batch is appended there once before
            delivery, batches a sink cannot take yet stay on disk instead of
            being dropped, and a streamer opened on the same directory later
            delivers what was left. None (the default) keeps everything in
            memory.
        spool_max_bytes: The most bytes the spool may hold; when full, the
            `overflow` policy applies to it.
        spool_fsync: When appended batches are forced to disk: ``"batch"``
            (each one), ``"interval"`` (at most once a second) or ``"never"``
            (the operating system decides).
        self_metrics_interval: Every this many seconds, send every sink one
            ``metricstream_internal`` event per sink with its counters
            (`metricstream.streamer.operations.self_metrics`); never counted in the
            accounting. None (the default) sends none.

    Raises:
        ConfigError: If an option is invalid; it names the option.
    """

    def __init__(
        self,
        sinks: Sequence[Sink],
        *,
        batch_size: int = 1000,
        flush_interval: float = 1.0,
        flush_jitter: float = 0.0,
        max_buffer: int = 100_000,
        overflow: OverflowPolicy = "drop_oldest",
        block_timeout: float | None = None,
        retry: RetryConfig | None = None,
        compression: str | Compression | None = None,
        default_tags: Mapping[str, object] | None = None,
        correlation_prefix: str | None = None,
        register_atexit: bool = True,
        unhealthy_after: int = 3,
        probe_interval: float = 5.0,
        spool_dir: str | os.PathLike[str] | None = None,
        spool_max_bytes: int = 1 << 30,
        spool_fsync: SpoolFsync = "batch",
        self_metrics_interval: float | None = None,
    ) -> None:
        self._sinks, self._names = _check_sinks(sinks)
        self.config = StreamerConfig(
            batch_size=batch_size,
            flush_interval=flush_interval,
            flush_jitter=flush_jitter,
            max_buffer=max_buffer,
            overflow=overflow,
            block_timeout=block_timeout,
            retry=RetryConfig() if retry is None else retry,
            compression=compression,  # type: ignore[arg-type]
            default_tags=default_tags or {},  # type: ignore[arg-type]
            correlation_prefix=correlation_prefix,
            register_atexit=register_atexit,
            unhealthy_after=unhealthy_after,
            probe_interval=probe_interval,
            spool_dir=spool_dir,  # type: ignore[arg-type]
            spool_max_bytes=spool_max_bytes,
            spool_fsync=spool_fsync,
            self_metrics_interval=self_metrics_interval,
        )
        if self.config.compression is not None:
            for sink in self._sinks:
                if isinstance(sink, CompressionAware):
                    sink.inherit_compression(self.config.compression)
        self._shutdown_lock = threading.Lock()
        self._shutdown_result: bool | None = None
        self._spool = self._open_spool(self.config.spool_dir)
        self._pipeline = Pipeline(self.config, self._sinks, self._names, self._spool)
        # What a collected streamer leaves behind is stopped in the background;
        # the holder is updated after a fork, so it always names this process's pipeline.
        self._pipeline_holder = [self._pipeline]
        self._finalizer = weakref.finalize(self, _orphan, self._pipeline_holder)
        self._finalizer.atexit = False
        lifecycle.track(self, at_exit=register_atexit)

    def after_fork_in_child(self) -> None:
        """Start afresh in a forked child: new lanes, threads and sink clients.

        Called by `metricstream.streamer.operations.lifecycle`; the parent's pending
        events stay with the parent.
        """
        if self._shutdown_result is not None:
            return
        self._shutdown_lock = threading.Lock()
        for sink in self._sinks:
            if isinstance(sink, ForkAware):
                sink.after_fork()
        if self._spool is not None and self.config.spool_dir is not None:
            # The parent's spool stays the parent's: the child spools apart.
            self._spool.forget_in_child()
            child_dir = os.path.join(self.config.spool_dir, "forks", str(os.getpid()))
            self._spool = self._open_spool(child_dir, ephemeral=True)
        self._pipeline = Pipeline(self.config, self._sinks, self._names, self._spool)
        self._pipeline_holder[0] = self._pipeline
        self._health_server_after_fork()

    def _open_spool(self, directory: str | None, *, ephemeral: bool = False) -> Spool | None:
        if directory is None:
            return None
        return Spool(
            directory,
            sinks=self._names,
            max_bytes=self.config.spool_max_bytes,
            fsync=self.config.spool_fsync,
            ephemeral=ephemeral,
        )

    # --- the application's side --------------------------------------------

    def send(self, event: MetricEvent) -> bool:
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

        Returns:
            True if the event was queued; False if it was dropped at once
            (buffer full, or the streamer is shut down) and counted.

        Raises:
            InvalidEventError: If the event has no fields (it is counted as
                dropped, reason ``invalid``).
            TypeError: If `event` is not a `MetricEvent`.
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
            pipeline.wake.set()
            pipeline.catch_up()
        return True

    def _send_parts(
        self, measurement: str, tags: dict[str, str], fields: dict[str, Any], timestamp_ns: int
    ) -> bool:
        """`send` an event given as parts already validated (the instruments' path)."""
        pipeline = self._pipeline
        cid = current_correlation_id() if scopes_entered[0] else None
        buffer = pipeline.buffer
        if len(buffer) >= pipeline.part_limit:  # full, or closed
            return pipeline.send_when_full((measurement, tags, fields, timestamp_ns, cid))
        buffer.extend((measurement, tags, fields, timestamp_ns, cid))
        if not len(buffer) % pipeline.wake_every:
            pipeline.wake.set()
            pipeline.catch_up()
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

        Returns:
            True once every such event is written or dropped on every sink;
            False if the timeout passed first.
        """
        return self._pipeline.flush(timeout)

    def pending_count(self) -> int:
        """Events accepted but not yet written or dropped, on the busiest sink."""
        return max(sink.pending for sink in self.health().sinks.values())

    def health(self) -> StreamerHealth:
        """Return a consistent snapshot of every sink's state and accounting."""
        return self._pipeline.health()

    def is_healthy(self) -> bool:
        """True when running and every sink is connected and below the failure threshold."""
        return self.health().healthy

    @property
    def sinks(self) -> list[Sink]:
        """The sinks, in the order given."""
        return list(self._sinks)

    def shutdown(self, timeout: float = 10.0) -> bool:
        """Stop accepting events, deliver what is pending, close the sinks.

        Returns within `timeout` seconds even when a sink is down, and even
        when another thread is shutting the streamer down too: retry waits
        end at once, and what is still undelivered at the deadline is counted
        as dropped (reason ``shutdown``) and logged. Idempotent.

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
            delivered, given_up = self._pipeline.stop(deadline)
            self._stop_health_server(deadline)
            self._finalizer.detach()
            lifecycle.forget(self)
            if given_up:
                logger.error(
                    "metricstream: shutdown deadline (%.1fs) passed; %d events were not delivered",
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

    def __repr__(self) -> str:
        state = "running" if not self._pipeline.closed else "shut down"
        return f"EventStreamer(sinks={self._names!r}, batch_size={self.config.batch_size}, {state})"


def _orphan(holder: list[Pipeline]) -> None:
    """Called when a streamer that was not shut down is garbage-collected."""
    pipeline = holder[0]
    if not pipeline.closed:
        lifecycle.orphan(pipeline)
