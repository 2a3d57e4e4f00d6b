"""`EventStreamer`: the facade between application threads and the sinks.

Data flows one way::

    send() -> shared buffer -> batcher thread -> EventBatch -> sink.prepare()
           -> lane queue (one per sink) -> lane worker -> sink.write() with retry

`send` validates, stamps the correlation id and appends to a deque; it never
performs I/O and never waits (except under ``overflow="block"``). The batcher
thread cuts batches by size or time and hands each sink its prepared payload;
each sink's lane has its own bounded queue and worker, so a slow or dead sink
never delays the application or another sink.

Accounting: events leave the shared buffer in order, and each gets a position
in that sequence. A lane knows the positions of what it holds, which is how
`flush` knows when everything accepted before it is done.
"""

from __future__ import annotations

import atexit
import functools
import logging
import math
import os
import random
import threading
import time
import weakref
from collections import deque
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from types import TracebackType
from typing import Any, Literal

from metricstream.event import MetricEvent, check_tags, shared_tags
from metricstream.exceptions import ConfigError, InvalidEventError
from metricstream.sinks.base import Sink
from metricstream.streamer._lane import Item, Lane
from metricstream.streamer.batch import EventBatch
from metricstream.streamer.compression import Compression
from metricstream.streamer.correlation import correlation as _correlation
from metricstream.streamer.correlation import current_correlation_id
from metricstream.streamer.health import StreamerHealth
from metricstream.streamer.retry import RetryConfig

__all__ = ["EventStreamer", "OverflowPolicy"]

logger = logging.getLogger("metricstream")

OverflowPolicy = Literal["drop_oldest", "drop_newest", "block"]
_OVERFLOW_POLICIES = ("drop_oldest", "drop_newest", "block")


def _require_number(option: str, value: object, *, minimum: float, inclusive: bool) -> float:
    number = value if isinstance(value, (int, float)) and not isinstance(value, bool) else None
    if (
        number is None
        or not math.isfinite(number)
        or (number < minimum if inclusive else number <= minimum)
    ):
        bound = f">= {minimum}" if inclusive else f"> {minimum}"
        raise ConfigError(option, f"must be a finite number {bound}, not {value!r}")
    return float(number)


def _require_int(option: str, value: object, *, minimum: int) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or value < minimum:
        raise ConfigError(option, f"must be an integer >= {minimum}, not {value!r}")
    return value


def _sink_name(sink: object) -> str:
    name = getattr(sink, "name", None)
    if name is None:
        return type(sink).__name__
    if not isinstance(name, str) or not name:
        raise ConfigError("sinks", f"sink {sink!r} has an invalid name {name!r}")
    return name


class EventStreamer:
    """Batch events and deliver them to several sinks, each in its own lane.

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
        register_atexit: Shut down (2 s deadline) when the interpreter exits.
        unhealthy_after: Consecutive failed writes after which a sink counts
            as unhealthy.
        probe_interval: Seconds between health probes (`Sink.check`) of a
            disconnected, idle sink.

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
    ) -> None:
        if isinstance(sinks, (str, bytes)) or not isinstance(sinks, Iterable):
            raise ConfigError("sinks", "must be a list of sinks")
        sink_list = list(sinks)
        if not sink_list:
            raise ConfigError("sinks", "at least one sink is required")
        names: list[str] = []
        for sink in sink_list:
            missing = [
                m
                for m in ("prepare", "write", "check", "close")
                if not callable(getattr(sink, m, None))
            ]
            if missing:
                lacks = ", ".join(f"{member}()" for member in missing)
                raise ConfigError("sinks", f"{sink!r} is not a sink: it lacks {lacks}")
            name = _sink_name(sink)
            if name in names:
                raise ConfigError(
                    "sinks", f"two sinks are named {name!r}; give each a unique name="
                )
            names.append(name)
        self._batch_size = _require_int("batch_size", batch_size, minimum=1)
        self._max_buffer = _require_int("max_buffer", max_buffer, minimum=1)
        if batch_size > max_buffer:
            raise ConfigError("batch_size", f"{batch_size} exceeds max_buffer={max_buffer}")
        self._flush_interval = _require_number(
            "flush_interval", flush_interval, minimum=0, inclusive=False
        )
        self._flush_jitter = _require_number(
            "flush_jitter", flush_jitter, minimum=0, inclusive=True
        )
        if overflow not in _OVERFLOW_POLICIES:
            raise ConfigError(
                "overflow",
                f"unknown policy {overflow!r}; use one of {', '.join(_OVERFLOW_POLICIES)}",
            )
        self._overflow: OverflowPolicy = overflow
        self._block_timeout = (
            None
            if block_timeout is None
            else _require_number("block_timeout", block_timeout, minimum=0, inclusive=True)
        )
        if retry is None:
            retry = RetryConfig()
        elif not isinstance(retry, RetryConfig):
            raise ConfigError("retry", f"must be a RetryConfig, not {type(retry).__name__}")
        self._retry = retry
        self._compression = None if compression is None else Compression.from_str(compression)
        try:
            self._default_tags = check_tags(default_tags) if default_tags else {}
        except InvalidEventError as exc:
            raise ConfigError("default_tags", str(exc)) from None
        if correlation_prefix is not None and (
            not isinstance(correlation_prefix, str) or not correlation_prefix.strip()
        ):
            raise ConfigError(
                "correlation_prefix", f"must be a non-empty str, not {correlation_prefix!r}"
            )
        self._correlation_prefix = correlation_prefix
        self._unhealthy_after = _require_int("unhealthy_after", unhealthy_after, minimum=1)
        self._probe_interval = _require_number(
            "probe_interval", probe_interval, minimum=0, inclusive=False
        )
        self._sinks = sink_list
        self._names = names
        if self._compression is not None:
            for sink in sink_list:
                inherit = getattr(sink, "inherit_compression", None)
                if callable(inherit):
                    inherit(self._compression)
        self._shutdown_lock = threading.Lock()
        self._shutdown_result: bool | None = None
        self._setup()
        self._atexit_hook: functools.partial[None] | None = None
        if register_atexit:
            self._atexit_hook = functools.partial(_shutdown_at_exit, weakref.ref(self))
            atexit.register(self._atexit_hook)
        _track_for_fork(self)

    # --- state ----------------------------------------------------------------

    def _setup(self) -> None:
        """Create the buffer, counters, lanes and threads (again, after a fork)."""
        self._buffer: deque[MetricEvent] = deque()
        self._lock = threading.Lock()
        self._progress = threading.Condition(threading.Lock())
        self._space = threading.Condition(threading.Lock())
        self._wake = threading.Event()
        self._closed = False
        self._stopping = False
        self._aborted = False
        self._flush_requested = False
        self._popped = 0  # events taken into batches
        self._taken = 0  # events that left the shared buffer: popped or evicted
        self._in_hand_start: int | None = None
        self._upstream_dropped: dict[str, int] = {}
        self._limit = self._max_buffer
        self._lanes = [
            Lane(
                sink,
                name,
                retry=self._retry,
                max_buffer=self._max_buffer,
                unhealthy_after=self._unhealthy_after,
                probe_interval=self._probe_interval,
                on_progress=self._on_progress,
            )
            for sink, name in zip(self._sinks, self._names, strict=True)
        ]
        self._batcher = threading.Thread(
            target=self._run_batcher, name="metricstream-batcher", daemon=True
        )
        for lane in self._lanes:
            lane.start()
        self._batcher.start()

    def _after_fork_in_child(self) -> None:
        if self._shutdown_result is not None:
            return
        self._shutdown_lock = threading.Lock()
        for sink in self._sinks:
            hook = getattr(sink, "after_fork", None)
            if callable(hook):
                hook()
        self._setup()

    # --- the application's side --------------------------------------------

    def send(self, event: MetricEvent) -> bool:
        """Accept one event for delivery to every sink. Never performs I/O.

        The event's correlation id is set from the active `correlation` scope
        when it has none; default tags are added later, off this thread. The
        streamer owns the event from here on: do not change it after sending.

        Returns:
            True if the event was queued; False if it was dropped at once
            (buffer full, or the streamer is shut down) and counted.

        Raises:
            InvalidEventError: If the event has no fields (it is counted as
                dropped, reason ``invalid``).
            TypeError: If `event` is not a `MetricEvent`.
        """
        if self._closed:
            return self._drop_upstream("shutdown")
        if event.__class__ is not MetricEvent and not isinstance(event, MetricEvent):
            raise TypeError(f"send() takes a MetricEvent, not {type(event).__name__}")
        if not event.fields:
            self._drop_upstream("invalid")
            raise InvalidEventError(
                event.measurement,
                f"event {event.measurement!r} has no fields; at least one is required",
            )
        if event.correlation_id is None:
            event.correlation_id = current_correlation_id()
        buffer = self._buffer
        if len(buffer) >= self._limit:
            return self._send_when_full(event)
        buffer.append(event)
        if not len(buffer) % self._batch_size:
            self._wake.set()
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

    def _drop_upstream(self, reason: str, count: int = 1) -> bool:
        with self._lock:
            self._upstream_dropped[reason] = self._upstream_dropped.get(reason, 0) + count
        return False

    def _send_when_full(self, event: MetricEvent) -> bool:
        buffer = self._buffer
        if self._overflow == "drop_newest":
            return self._drop_upstream("overflow")
        if self._overflow == "drop_oldest":
            with self._lock:
                if len(buffer) >= self._limit:
                    buffer.popleft()
                    self._taken += 1
                    self._upstream_dropped["overflow"] = (
                        self._upstream_dropped.get("overflow", 0) + 1
                    )
            buffer.append(event)
            self._wake.set()
            return True
        deadline = None if self._block_timeout is None else time.monotonic() + self._block_timeout
        self._wake.set()
        with self._space:
            while len(buffer) >= self._limit:
                if self._closed:
                    break
                remaining = None if deadline is None else deadline - time.monotonic()
                if remaining is not None and remaining <= 0:
                    break
                self._space.wait(remaining if remaining is not None else 0.5)
        if self._closed:
            return self._drop_upstream("shutdown")
        if len(buffer) >= self._limit:
            logger.warning(
                "metricstream: send() blocked for %.3fs; dropping the event", self._block_timeout
            )
            return self._drop_upstream("overflow")
        buffer.append(event)
        if not len(buffer) % self._batch_size:
            self._wake.set()
        return True

    @contextmanager
    def correlation(self, cid: str | None = None) -> Iterator[str]:
        """Attach `cid` (or a generated id) to events sent in this block without one.

        Works across threads that copy the context and asyncio tasks.

        Yields:
            The correlation id in force.
        """
        with _correlation(cid, prefix=self._correlation_prefix) as active:
            yield active

    # --- the batcher thread ------------------------------------------------

    def _next_flush_delay(self) -> float:
        jitter = random.uniform(0, self._flush_jitter) if self._flush_jitter else 0.0
        return self._flush_interval + jitter

    def _run_batcher(self) -> None:
        next_flush = time.monotonic() + self._next_flush_delay()
        buffer = self._buffer
        while True:
            timeout = next_flush - time.monotonic()
            if timeout > 0 and not self._stopping:
                self._wake.wait(timeout)
            self._wake.clear()
            if self._aborted:
                return
            now = time.monotonic()
            due = now >= next_flush
            force = due or self._flush_requested or self._stopping
            self._flush_requested = False
            while len(buffer) >= self._batch_size or (force and buffer):
                if not self._cut_and_distribute():
                    return
            if due or force:
                next_flush = now + self._next_flush_delay()
            self._on_progress()
            if self._stopping and not buffer:
                return

    def _cut_and_distribute(self) -> bool:
        buffer = self._buffer
        with self._lock:
            if self._aborted:
                return False
            count = min(len(buffer), self._batch_size)
            events = [buffer.popleft() for _ in range(count)]
            start = self._taken
            self._taken += count
            self._popped += count
            self._in_hand_start = start
        if self._default_tags:
            defaults = self._default_tags
            for event in events:
                if not defaults.keys() <= event.tags.keys():
                    event.tags = shared_tags({**defaults, **event.tags})
        batch = EventBatch(events)
        for lane in self._lanes:
            self._hand_to_lane(lane, batch, start)
        with self._lock:
            self._in_hand_start = None
        self._update_limit()
        return True

    def _hand_to_lane(self, lane: Lane, batch: EventBatch, start: int) -> None:
        count = len(batch)
        room = lane.room()
        if self._overflow == "block" or room >= count:
            self._offer(lane, batch, start)
            return
        if self._overflow == "drop_oldest":
            room += lane.evict_oldest(count - room)
            if room >= count:
                self._offer(lane, batch, start)
                return
            keep = max(room, 0)
            lane.drop_on_arrival(count - keep, "overflow")
            if keep:
                self._offer(lane, EventBatch(batch.events[count - keep :]), start + count - keep)
            return
        keep = max(room, 0)
        if keep:
            self._offer(lane, EventBatch(batch.events[:keep]), start)
        lane.drop_on_arrival(count - keep, "overflow")
        logger.warning(
            "metricstream: sink %r buffer full: dropped %d new events", lane.name, count - keep
        )

    def _offer(self, lane: Lane, batch: EventBatch, start: int) -> None:
        payload, good, invalid = self._prepare(lane, batch)
        lane.drop_on_arrival(invalid, "invalid")
        if good:
            lane.offer(Item(payload, good, start, start + len(batch), batch.batch_id))

    def _prepare(self, lane: Lane, batch: EventBatch) -> tuple[Any, int, int]:
        """Run the sink's `prepare`; isolate events it cannot encode.

        A sink may name the offending events (`InvalidEventError.indexes`);
        otherwise each event is tried alone.

        Returns:
            (payload, events in the payload, events dropped as invalid).
        """
        try:
            return lane.sink.prepare(batch), len(batch), 0
        except Exception as exc:
            first_error = exc
        events = batch.events
        named = getattr(first_error, "indexes", None)
        if named:
            bad = set(named)
            good = [event for i, event in enumerate(events) if i not in bad]
        else:
            good = [event for event in events if self._encodable(lane, event, batch.batch_id)]
        invalid = len(events) - len(good)
        logger.warning(
            "metricstream: sink %r could not encode %d of %d events of batch %s: %s",
            lane.name,
            invalid,
            len(events),
            batch.batch_id,
            first_error,
        )
        if not good:
            return None, 0, invalid
        try:
            payload = lane.sink.prepare(EventBatch(good, batch_id=batch.batch_id))
        except Exception:
            if not named:
                return None, 0, len(events)
            payload, kept, _ = self._prepare(lane, EventBatch(good, batch_id=batch.batch_id))
            return payload, kept, len(events) - kept
        return payload, len(good), invalid

    @staticmethod
    def _encodable(lane: Lane, event: MetricEvent, batch_id: str) -> bool:
        try:
            lane.sink.prepare(EventBatch([event], batch_id=batch_id))
        except Exception:
            return False
        return True

    def _update_limit(self) -> None:
        if self._overflow != "block":
            return
        backlog = max((lane.backlog() for lane in self._lanes), default=0)
        self._limit = max(0, self._max_buffer - backlog)
        with self._space:
            self._space.notify_all()

    def _on_progress(self) -> None:
        self._update_limit()
        with self._progress:
            self._progress.notify_all()

    # --- flush, health, shutdown ---------------------------------------------

    def _done_through(self, marker: int) -> bool:
        with self._lock:
            if self._taken < marker:
                return False
            if self._in_hand_start is not None and self._in_hand_start < marker:
                return False
        for lane in self._lanes:
            oldest = lane.oldest_unfinished()
            if oldest is not None and oldest < marker:
                return False
        return True

    def flush(self, timeout: float | None = None) -> bool:
        """Deliver everything accepted before this call, waiting up to `timeout` s.

        Returns:
            True once every such event is written or dropped on every sink;
            False if the timeout passed first.
        """
        with self._lock:
            marker = self._taken + len(self._buffer)
        self._flush_requested = True
        self._wake.set()
        deadline = None if timeout is None else time.monotonic() + max(0.0, timeout)
        with self._progress:
            while not self._done_through(marker):
                if self._aborted:
                    return False
                remaining = None if deadline is None else deadline - time.monotonic()
                if remaining is not None and remaining <= 0:
                    return False
                self._progress.wait(min(remaining, 0.2) if remaining is not None else 0.2)
        return True

    def pending_count(self) -> int:
        """Events accepted but not yet written or dropped, on the busiest sink."""
        return max(sink.pending for sink in self.health().sinks.values())

    def health(self) -> StreamerHealth:
        """Return a consistent snapshot of every sink's state and accounting."""
        with self._lock:
            buffered = len(self._buffer)
            popped = self._popped
            upstream = dict(self._upstream_dropped)
            accepted = popped + buffered + sum(upstream.values())
            sinks = {
                lane.name: lane.snapshot(accepted, buffered + popped - lane.offered, upstream)
                for lane in self._lanes
            }
        running = not self._closed
        return StreamerHealth(
            healthy=running and all(s.healthy for s in sinks.values()),
            running=running,
            events_accepted=accepted,
            sinks=sinks,
        )

    def is_healthy(self) -> bool:
        """True when running and every sink is connected and below the failure threshold."""
        return self.health().healthy

    @property
    def sinks(self) -> list[Sink]:
        """The sinks, in the order given."""
        return list(self._sinks)

    def shutdown(self, timeout: float = 10.0) -> bool:
        """Stop accepting events, deliver what is pending, close the sinks.

        Returns within `timeout` seconds even when a sink is down: retry waits
        end at once, and what is still undelivered at the deadline is counted
        as dropped (reason ``shutdown``) and logged. Idempotent.

        Returns:
            True if every accepted event was written or dropped for another
            reason before the deadline; False if some were given up.
        """
        timeout = _require_number("timeout", timeout, minimum=0, inclusive=True)
        with self._shutdown_lock:
            if self._shutdown_result is not None:
                return self._shutdown_result
            deadline = time.monotonic() + timeout
            self._closed = True
            with self._space:
                self._space.notify_all()
            for lane in self._lanes:
                lane.hurry()
            delivered = self.flush(timeout)
            self._stopping = True
            self._wake.set()
            given_up = 0
            if not delivered:
                given_up = self._abort()
            for lane in self._lanes:
                lane.close_input()
            for lane in self._lanes:
                lane.join(deadline - time.monotonic())
            self._batcher.join(max(0.0, deadline - time.monotonic()))
            self._close_sinks(deadline)
            if self._atexit_hook is not None:
                atexit.unregister(self._atexit_hook)
                self._atexit_hook = None
            if given_up:
                logger.error(
                    "metricstream: shutdown deadline (%.1fs) passed; %d events were not delivered",
                    timeout,
                    given_up,
                )
            self._shutdown_result = delivered
            return delivered

    def _abort(self) -> int:
        """Give up everything still pending; return how many events (max over sinks)."""
        with self._lock:
            self._aborted = True
            stranded = len(self._buffer)
            self._buffer.clear()
            if stranded:
                self._taken += stranded
                self._upstream_dropped["shutdown"] = (
                    self._upstream_dropped.get("shutdown", 0) + stranded
                )
            popped = self._popped
        self._wake.set()
        worst = 0
        for lane in self._lanes:
            worst = max(worst, stranded + lane.abort(popped))
        with self._progress:
            self._progress.notify_all()
        return worst

    def _close_sinks(self, deadline: float) -> None:
        for lane in self._lanes:
            closer = threading.Thread(
                target=_close_quietly, args=(lane.sink, lane.name), daemon=True
            )
            closer.start()
            closer.join(max(0.1, deadline - time.monotonic()))

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
        state = "running" if not self._closed else "shut down"
        return f"EventStreamer(sinks={self._names!r}, batch_size={self._batch_size}, {state})"


def _close_quietly(sink: Sink, name: str) -> None:
    try:
        sink.close()
    except Exception:
        logger.exception("metricstream: closing sink %r failed", name)


def _shutdown_at_exit(ref: weakref.ref[EventStreamer]) -> None:
    streamer = ref()
    if streamer is not None:
        streamer.shutdown(timeout=2.0)


_live_streamers: weakref.WeakSet[EventStreamer] = weakref.WeakSet()


def _track_for_fork(streamer: EventStreamer) -> None:
    _live_streamers.add(streamer)


def _reset_after_fork() -> None:
    for streamer in list(_live_streamers):
        streamer._after_fork_in_child()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_reset_after_fork)
