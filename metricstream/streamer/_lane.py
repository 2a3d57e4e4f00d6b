"""One lane per sink: a preparer thread, a queue of payloads and a writer thread.

The batcher hands a lane raw batches (`Lane.offer`) and returns at once. The
lane's preparer thread turns each batch into the sink's payload
(`Sink.prepare`) and queues it; its writer thread writes the payloads one at
a time, with retry. Both threads run beside the application and beside every
other lane, so a sink whose ``prepare`` or ``write`` hangs, is slow or raises
delays nothing but itself. Pending payloads wait in their prepared (often
compressed) form, however long the writer is stuck.

Everything a lane counts changes under its lock, and for every lane at every
moment::

    offered == written + dropped + raw + preparing + queued + in_flight

``offered`` counts every event the batcher handed the lane (queued, or
dropped on arrival); ``raw`` the events of batches waiting for the preparer;
``preparing`` those of the batch being prepared; ``queued`` those of the
prepared payloads in the `PendingQueue` (of which ``spooled`` are held
outside memory); ``in_flight`` those of the payload being written.
"""

from __future__ import annotations

import logging
import threading
import time
import traceback
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from metricstream._log import RateLimitedLog, logger
from metricstream._secrets import scrub_secrets
from metricstream.contract import EventBatch, Sink
from metricstream.exceptions import PermanentSinkError, TransientSinkError
from metricstream.streamer.health import DROP_REASONS, SinkHealth
from metricstream.streamer.queue import Item, MemoryQueue, PendingQueue
from metricstream.streamer.retry import Retrier, RetryConfig, RetryInterruptedError

__all__ = ["Lane"]

_MAX_ERROR_CHARS = 500


@dataclass(slots=True, eq=False)
class _RawBatch:
    """A batch handed to the lane, waiting for its preparer."""

    batch: EventBatch
    start: int

    @property
    def count(self) -> int:
        return len(self.batch.events)

    @property
    def end(self) -> int:
        return self.start + len(self.batch.events)


def _describe_error(exc: BaseException) -> str:
    return scrub_secrets(f"{type(exc).__name__}: {exc}")[:_MAX_ERROR_CHARS]


class Lane:
    """The threads, queue, retry loop and counters of one sink.

    Args:
        sink: The sink.
        name: Its unique name.
        retry: The retry policy of its writes.
        max_buffer: The most events it may hold (raw, prepared or in flight).
        unhealthy_after: Consecutive failed writes after which it is unhealthy.
        probe_interval: Seconds between probes (`Sink.check`) while it is
            disconnected and idle.
        on_progress: Called after each batch is prepared, written or dropped.
        warnings: Where repeated warnings go, rate-limited.
        queue: Its pending storage; a `MemoryQueue` when None.
    """

    def __init__(
        self,
        sink: Sink,
        name: str,
        *,
        retry: RetryConfig,
        max_buffer: int,
        unhealthy_after: int,
        probe_interval: float,
        on_progress: Callable[[], None],
        warnings: RateLimitedLog,
        queue: PendingQueue | None = None,
    ) -> None:
        self.sink = sink
        self.name = name
        self.max_buffer = max_buffer
        self._retry = retry
        self._unhealthy_after = unhealthy_after
        self._probe_interval = probe_interval
        self._on_progress = on_progress
        self._warnings = warnings
        self._cond = threading.Condition(threading.Lock())
        self._wake = threading.Event()
        self._inbox: deque[_RawBatch] = deque()
        self._raw = 0
        self._preparing: _RawBatch | None = None
        self._queue: PendingQueue = MemoryQueue() if queue is None else queue
        self._in_flight: Item | None = None
        self._offered = 0
        self._written = 0
        self._dropped = dict.fromkeys(DROP_REASONS, 0)
        self._write_errors = 0
        self._retries = 0
        self._consecutive_failures = 0
        self._last_error: str | None = None
        self._last_write_ns: int | None = None
        self._last_latency_ms: float | None = None
        self._connected = True
        self._permanently_unhealthy = False
        self._closing = False
        self._preparer_done = False
        self._aborted = False
        self._dead: str | None = None
        self._logged_unexpected: set[type[BaseException]] = set()
        self._preparer = threading.Thread(
            target=self._guard, args=(self._run_preparer,), name=f"metricstream-prepare-{name}",
            daemon=True,
        )  # fmt: skip
        self._writer = threading.Thread(
            target=self._guard, args=(self._run_writer,), name=f"metricstream-write-{name}",
            daemon=True,
        )  # fmt: skip

    # --- the batcher's side ------------------------------------------------

    def start(self) -> None:
        """Start the preparer and writer threads."""
        self._preparer.start()
        self._writer.start()

    def _backlog_locked(self) -> int:
        preparing = self._preparing.count if self._preparing is not None else 0
        in_flight = self._in_flight.count if self._in_flight is not None else 0
        return self._raw + preparing + self._queue.events + in_flight

    def backlog(self) -> int:
        """Events held: raw, being prepared, queued or being written."""
        with self._cond:
            return self._backlog_locked()

    def offer(self, batch: EventBatch, start: int, overflow: str) -> None:
        """Take a batch for preparation, applying the overflow policy when full.

        Args:
            batch: The batch (shared with the other lanes; never changed).
            start: The sequence number of its first event.
            overflow: ``"block"`` (never drop: the streamer holds `send` back
                instead), ``"drop_oldest"`` or ``"drop_newest"``.
        """
        count = len(batch.events)
        dropped = 0
        with self._cond:
            if self._aborted:
                return  # abort() already counted everything taken before it
            self._offered += count
            room = self.max_buffer - self._backlog_locked()
            if overflow == "block" or room >= count:
                self._inbox.append(_RawBatch(batch, start))
                self._raw += count
            elif overflow == "drop_oldest":
                room += self._evict_oldest_locked(count - room)
                keep = min(count, max(room, 0))
                if keep == count:
                    self._inbox.append(_RawBatch(batch, start))
                elif keep:
                    newest = EventBatch(batch.events[count - keep :], created_ns=batch.created_ns)
                    self._inbox.append(_RawBatch(newest, start + count - keep))
                self._raw += keep
                dropped = count - keep
            else:
                keep = max(room, 0)
                if keep:
                    self._inbox.append(
                        _RawBatch(
                            EventBatch(batch.events[:keep], created_ns=batch.created_ns), start
                        )
                    )
                    self._raw += keep
                dropped = count - keep
            self._dropped["overflow"] += dropped
            self._cond.notify_all()
        if dropped:
            self._warnings.warning(
                (self.name, "overflow"),
                "metricstream: sink %r buffer full (max_buffer=%d): dropped %d new events",
                self.name,
                self.max_buffer,
                dropped,
            )

    def _evict_oldest_locked(self, needed: int) -> int:
        """Drop the oldest waiting payloads, then raw batches, until `needed` events are freed."""
        freed = sum(item.count for item in self._queue.evict_oldest(needed))
        while freed < needed and self._inbox:
            raw = self._inbox.popleft()
            self._raw -= raw.count
            freed += raw.count
        if freed:
            self._dropped["overflow"] += freed
            self._warnings.warning(
                (self.name, "overflow-oldest"),
                "metricstream: sink %r buffer full (max_buffer=%d): dropped the %d oldest events",
                self.name,
                self.max_buffer,
                freed,
            )
        return freed

    def oldest_unfinished(self) -> int | None:
        """The sequence start of the oldest event not yet written or dropped, or None."""
        with self._cond:
            if self._in_flight is not None:
                return self._in_flight.start
            oldest = self._queue.oldest_start()
            if oldest is not None:
                return oldest
            if self._preparing is not None:
                return self._preparing.start
            return self._inbox[0].start if self._inbox else None

    # --- shutdown ----------------------------------------------------------

    def close_input(self) -> None:
        """No more batches will come: the threads exit once everything is written."""
        with self._cond:
            self._closing = True
            self._cond.notify_all()

    def hurry(self) -> None:
        """End the current retry wait at once (shutdown has begun)."""
        self._wake.set()

    def abort(self, taken: int) -> int:
        """Give up: count everything not yet written or dropped as dropped (shutdown).

        Args:
            taken: Events the batcher has taken into batches so far; those
                not offered to this lane yet are given up too, and later
                offers are ignored.

        Returns:
            The number of events given up. A prepare or write still running
            is abandoned; whatever it returns is ignored.
        """
        with self._cond:
            self._aborted = True
            self._closing = True
            lost = self._raw + self._queue.clear() + max(0, taken - self._offered)
            self._offered = max(self._offered, taken)
            self._inbox.clear()
            self._raw = 0
            if self._preparing is not None:
                lost += self._preparing.count
                self._preparing = None
            if self._in_flight is not None:
                lost += self._in_flight.count
                self._in_flight = None
            self._dropped["shutdown"] += lost
            self._cond.notify_all()
        self._wake.set()
        return lost

    def join(self, deadline: float) -> None:
        """Wait until the monotonic `deadline` at most for both threads to exit."""
        for thread in (self._preparer, self._writer):
            if thread.is_alive():
                thread.join(max(0.0, deadline - time.monotonic()))

    # --- health --------------------------------------------------------------

    def snapshot(
        self, accepted: int, upstream: int, taken: int, upstream_dropped: dict[str, int]
    ) -> SinkHealth:
        """Return this sink's `SinkHealth`, adding what the streamer holds for it.

        Args:
            accepted: Events the streamer accepted in total.
            upstream: Events accepted but not yet taken into a batch.
            taken: Events taken into batches so far; those not yet offered
                to this lane are pending for it.
            upstream_dropped: Drops counted before the lanes (by reason).
        """
        with self._cond:
            dropped = dict(self._dropped)
            for reason, count in upstream_dropped.items():
                dropped[reason] = dropped.get(reason, 0) + count
            pending = upstream + (taken - self._offered) + self._backlog_locked()
            connected = self._connected and not self._permanently_unhealthy
            healthy = (
                connected
                and self._dead is None
                and self._consecutive_failures < self._unhealthy_after
            )
            return SinkHealth(
                name=self.name,
                connected=connected,
                healthy=healthy,
                last_write_ns=self._last_write_ns,
                events_accepted=accepted,
                events_written=self._written,
                events_dropped=sum(dropped.values()),
                dropped_by_reason=dropped,
                write_errors=self._write_errors,
                retries=self._retries,
                pending=pending,
                consecutive_failures=self._consecutive_failures,
                last_error=self._dead or self._last_error,
                last_write_latency_ms=self._last_latency_ms,
            )

    # --- the threads -----------------------------------------------------------

    def _guard(self, body: Callable[[], None]) -> None:
        """Run a thread's body; if it dies, say so in health and in the log."""
        try:
            body()
        except BaseException as exc:
            with self._cond:
                self._dead = f"lane thread died: {_describe_error(exc)}"
                self._preparer_done = True
                self._cond.notify_all()
            logger.critical(
                "metricstream: a thread of sink %r died; the sink receives nothing more",
                self.name,
                exc_info=True,
            )
            self._on_progress()

    def _run_preparer(self) -> None:
        while True:
            with self._cond:
                while not self._inbox and not self._closing:
                    self._cond.wait()
                if self._aborted or not self._inbox:
                    self._preparer_done = True
                    self._cond.notify_all()
                    return
                raw = self._inbox.popleft()
                self._raw -= raw.count
                self._preparing = raw
            payload, good, refused, reason = self._prepare(raw.batch)
            with self._cond:
                if self._preparing is not raw:
                    continue  # abandoned by abort(); already counted
                self._preparing = None
                self._dropped[reason] = self._dropped.get(reason, 0) + refused
                if good:
                    self._queue.push(Item(payload, good, raw.start, raw.end, raw.batch.batch_id))
                self._cond.notify_all()
            # Waiting for the next batch must not keep this one's events alive.
            del raw, payload
            self._on_progress()

    def _prepare(self, batch: EventBatch) -> tuple[Any, int, int, str]:
        """Run the sink's `prepare`; isolate the events it cannot encode.

        A sink may name the offending events (`InvalidEventError.indexes`),
        and the reason they are dropped under (`InvalidEventError.reason`);
        otherwise each event is tried alone and dropped as ``invalid``.

        Returns:
            (payload, events in the payload, events dropped, their drop reason).
        """
        try:
            return self.sink.prepare(batch), len(batch.events), 0, "invalid"
        except Exception as exc:
            first_error = exc
        events = batch.events
        named = getattr(first_error, "indexes", None)
        reason = "invalid"
        if named:
            bad = set(named)
            good = [event for i, event in enumerate(events) if i not in bad]
            reason = str(getattr(first_error, "reason", None) or "invalid")
        else:
            good = [event for event in events if self._encodable(event, batch.batch_id)]
        invalid = len(events) - len(good)
        self._warnings.warning(
            (self.name, reason),
            "metricstream: sink %r dropped %d of %d events of batch %s (%s): %s",
            self.name,
            invalid,
            len(events),
            batch.batch_id,
            reason,
            scrub_secrets(str(first_error)),
        )
        if not good:
            return None, 0, invalid, reason
        rest = EventBatch(good, batch_id=batch.batch_id, created_ns=batch.created_ns)
        try:
            payload = self.sink.prepare(rest)
        except Exception:
            if not named:
                return None, 0, len(events), reason
            payload, kept, _, _ = self._prepare(rest)
            return payload, kept, len(events) - kept, reason
        return payload, len(good), invalid, reason

    def _encodable(self, event: Any, batch_id: str) -> bool:
        try:
            self.sink.prepare(EventBatch([event], batch_id=batch_id))
        except Exception:
            return False
        return True

    def _run_writer(self) -> None:
        self._probe()
        last_probe = time.monotonic()
        retrier = Retrier(self._retry, sleep=self._sleep, on_retry=self._count_retry)
        while True:
            with self._cond:
                while True:
                    if self._aborted:
                        return
                    item = self._queue.pop()
                    if item is not None:
                        self._in_flight = item
                        break
                    if self._closing and self._preparer_done:
                        return
                    idle_for = self._probe_interval if not self._connected else None
                    if not self._cond.wait(idle_for) and not self._connected:
                        break
            if item is None:
                if time.monotonic() - last_probe >= self._probe_interval:
                    self._probe()
                    last_probe = time.monotonic()
                continue
            reason, written = self._deliver(retrier, item)
            lost = item.count - written
            with self._cond:
                if self._in_flight is not item:
                    continue  # abandoned by abort(); already counted
                self._in_flight = None
                self._written += written
                if lost:
                    self._dropped[reason] = self._dropped.get(reason, 0) + lost
                self._cond.notify_all()
            if lost:
                self._warnings.warning(
                    (self.name, reason),
                    "metricstream: sink %r dropped %d events of batch %s (%s): %s",
                    self.name,
                    lost,
                    item.batch_id,
                    reason,
                    self._last_error,
                )
            self._on_progress()

    def _deliver(self, retrier: Retrier, item: Item) -> tuple[str, int]:
        """Write one payload with retry.

        Returns:
            (the drop reason for events not written, events written).
        """
        try:
            retrier.call(lambda: self._attempt(item))
        except PermanentSinkError as exc:
            return exc.reason or "rejected", item.written
        except RetryInterruptedError:
            return "shutdown", item.written
        except Exception:
            return "retries_exhausted", item.written
        return "", item.count

    def _attempt(self, item: Item) -> None:
        started = time.perf_counter()
        try:
            self.sink.write(item.payload)
        except (TransientSinkError, PermanentSinkError) as exc:
            reported = exc.written
            if reported.__class__ is int and item.written < reported:
                item.written = min(reported, item.count)
            self._record_failure(exc, permanent=isinstance(exc, PermanentSinkError))
            raise
        except Exception as exc:
            if type(exc) not in self._logged_unexpected:
                self._logged_unexpected.add(type(exc))
                # The traceback is formatted here so that it is scrubbed of
                # credentials like every other message.
                logger.error(
                    "metricstream: sink %r raised an unexpected %s; treating it as transient\n%s",
                    self.name,
                    type(exc).__name__,
                    scrub_secrets("".join(traceback.format_exception(exc))).rstrip(),
                )
            self._record_failure(exc, permanent=False)
            raise
        elapsed_ms = (time.perf_counter() - started) * 1000.0
        with self._cond:
            self._connected = True
            self._permanently_unhealthy = False
            self._consecutive_failures = 0
            self._last_write_ns = time.time_ns()
            self._last_latency_ms = round(elapsed_ms, 3)

    def _record_failure(self, exc: BaseException, *, permanent: bool) -> None:
        message = _describe_error(exc)
        with self._cond:
            self._write_errors += 1
            self._consecutive_failures += 1
            self._last_error = message
            if not permanent:
                self._connected = False
            elif getattr(exc, "unhealthy", False):
                self._permanently_unhealthy = True
                self._connected = False

    def _count_retry(self, retry: int, exc: BaseException, seconds: float) -> None:
        with self._cond:
            self._retries += 1
        self._warnings.log(
            logging.WARNING,
            (self.name, "retry"),
            "metricstream: write to sink %r failed (%s); retry %d in %.2f s",
            self.name,
            _describe_error(exc),
            retry + 1,
            seconds,
        )

    def _sleep(self, seconds: float) -> None:
        if self._wake.wait(seconds):
            self._wake.clear()
            if self._aborted:
                raise RetryInterruptedError

    def _probe(self) -> None:
        try:
            self.sink.check()
        except Exception as exc:
            message = _describe_error(exc)
            with self._cond:
                self._connected = False
                self._last_error = message
        else:
            with self._cond:
                if not self._permanently_unhealthy:
                    self._connected = True
