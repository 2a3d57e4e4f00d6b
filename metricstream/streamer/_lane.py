"""One lane per sink: a bounded queue of prepared payloads and a worker thread.

The worker writes one payload at a time with retry. Everything a lane counts
changes under its lock, and for every lane at every moment::

    offered == written + dropped + queued + in_flight

where ``offered`` counts every event the batcher handed it (queued or
dropped on arrival).
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from metricstream.exceptions import PermanentSinkError, TransientSinkError
from metricstream.sinks.base import Sink
from metricstream.streamer.health import DROP_REASONS, SinkHealth, scrub_secrets
from metricstream.streamer.retry import Retrier, RetryConfig, RetryInterruptedError

__all__ = ["Item", "Lane"]

logger = logging.getLogger("metricstream")

_MAX_ERROR_CHARS = 500


@dataclass
class Item:
    """A prepared payload waiting in a lane.

    ``start``/``end`` locate its events in the streamer's sequence of events
    taken from the shared buffer, which is how `flush` knows what is done.
    """

    payload: Any
    count: int
    start: int
    end: int
    batch_id: str
    written: int = 0
    """Events the sink reported stored so far (a batch written in parts)."""


class Lane:
    """The queue, worker thread, retry loop and counters of one sink."""

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
    ) -> None:
        self.sink = sink
        self.name = name
        self.max_buffer = max_buffer
        self._retry = retry
        self._unhealthy_after = unhealthy_after
        self._probe_interval = probe_interval
        self._on_progress = on_progress
        self._cond = threading.Condition(threading.Lock())
        self._wake = threading.Event()
        self._queue: deque[Item] = deque()
        self._in_flight: Item | None = None
        self._queued = 0
        self.offered = 0
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
        self._aborted = False
        self._logged_unexpected: set[type[BaseException]] = set()
        self._thread = threading.Thread(
            target=self._run, name=f"metricstream-lane-{name}", daemon=True
        )

    # --- the batcher's side ------------------------------------------------

    def start(self) -> None:
        """Start the worker thread."""
        self._thread.start()

    def backlog(self) -> int:
        """Events queued or being written."""
        in_flight = self._in_flight
        return self._queued + (in_flight.count if in_flight is not None else 0)

    def room(self) -> int:
        """Events that can still be queued under ``max_buffer``."""
        return self.max_buffer - self.backlog()

    def offer(self, item: Item) -> None:
        """Queue a prepared payload (the caller has made room for it)."""
        with self._cond:
            if self._aborted:
                return  # abort() already counted everything taken before it
            self.offered += item.count
            self._queue.append(item)
            self._queued += item.count
            self._cond.notify()

    def drop_on_arrival(self, count: int, reason: str) -> None:
        """Count `count` events handed to this lane as dropped at once."""
        if count <= 0:
            return
        with self._cond:
            if self._aborted:
                return
            self.offered += count
            self._dropped[reason] = self._dropped.get(reason, 0) + count

    def evict_oldest(self, needed: int) -> int:
        """Drop whole queued payloads, oldest first, until `needed` events are freed.

        Returns:
            The number of events freed (may be less when the queue empties).
        """
        freed = 0
        with self._cond:
            while freed < needed and self._queue:
                item = self._queue.popleft()
                self._queued -= item.count
                self._dropped["overflow"] += item.count
                freed += item.count
        if freed:
            logger.warning(
                "metricstream: sink %r buffer full: dropped the %d oldest events", self.name, freed
            )
            self._on_progress()
        return freed

    def oldest_unfinished(self) -> int | None:
        """The sequence start of the oldest event not yet written or dropped, or None."""
        with self._cond:
            if self._in_flight is not None:
                return self._in_flight.start
            if self._queue:
                return self._queue[0].start
            return None

    # --- shutdown ----------------------------------------------------------

    def close_input(self) -> None:
        """No more payloads will come: the worker exits once the queue is empty."""
        with self._cond:
            self._closing = True
            self._cond.notify()

    def hurry(self) -> None:
        """End the current retry wait at once (shutdown has begun)."""
        self._wake.set()

    def abort(self, taken: int) -> int:
        """Give up: count everything not yet written or dropped as dropped (shutdown).

        Args:
            taken: Events the batcher has taken so far; those not offered to
                this lane yet are given up too, and later offers are ignored.

        Returns:
            The number of events given up. A write still running is
            abandoned; whatever it returns is ignored.
        """
        with self._cond:
            self._aborted = True
            self._closing = True
            lost = self._queued + max(0, taken - self.offered)
            self.offered = max(self.offered, taken)
            self._queue.clear()
            self._queued = 0
            if self._in_flight is not None:
                lost += self._in_flight.count
                self._in_flight = None
            self._dropped["shutdown"] += lost
            self._cond.notify()
        self._wake.set()
        return lost

    def join(self, timeout: float) -> None:
        """Wait up to `timeout` seconds for the worker to exit."""
        if self._thread.is_alive():
            self._thread.join(max(0.0, timeout))

    # --- health --------------------------------------------------------------

    def snapshot(
        self, accepted: int, upstream_pending: int, upstream_dropped: dict[str, int]
    ) -> SinkHealth:
        """Return this sink's `SinkHealth`, adding what the streamer holds for it.

        Args:
            accepted: Events the streamer accepted in total.
            upstream_pending: Events not yet handed to any lane plus, for this
                lane, those taken but not yet offered to it.
            upstream_dropped: Drops counted before the lanes (by reason).
        """
        with self._cond:
            dropped = dict(self._dropped)
            for reason, count in upstream_dropped.items():
                dropped[reason] = dropped.get(reason, 0) + count
            in_flight = self._in_flight.count if self._in_flight is not None else 0
            pending = upstream_pending + self._queued + in_flight
            connected = self._connected and not self._permanently_unhealthy
            return SinkHealth(
                name=self.name,
                connected=connected,
                healthy=connected and self._consecutive_failures < self._unhealthy_after,
                last_write_ns=self._last_write_ns,
                events_accepted=accepted,
                events_written=self._written,
                events_dropped=sum(dropped.values()),
                dropped_by_reason=dropped,
                write_errors=self._write_errors,
                retries=self._retries,
                pending=pending,
                consecutive_failures=self._consecutive_failures,
                last_error=self._last_error,
                last_write_latency_ms=self._last_latency_ms,
            )

    # --- the worker ----------------------------------------------------------

    def _run(self) -> None:
        self._probe()
        last_probe = time.monotonic()
        retrier = Retrier(self._retry, sleep=self._sleep, on_retry=self._count_retry)
        while True:
            with self._cond:
                while not self._queue and not self._closing:
                    idle_for = self._probe_interval if not self._connected else None
                    if not self._cond.wait(idle_for) and not self._connected:
                        break
                if self._aborted or (self._closing and not self._queue):
                    return
                item = self._queue.popleft() if self._queue else None
                if item is not None:
                    self._queued -= item.count
                    self._in_flight = item
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
            if lost:
                logger.warning(
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
                logger.exception(
                    "metricstream: sink %r raised an unexpected %s; treating it as transient",
                    self.name,
                    type(exc).__name__,
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
        message = scrub_secrets(f"{type(exc).__name__}: {exc}")[:_MAX_ERROR_CHARS]
        with self._cond:
            self._write_errors += 1
            self._consecutive_failures += 1
            self._last_error = message
            if not permanent:
                self._connected = False
            elif getattr(exc, "unhealthy", False):
                self._permanently_unhealthy = True
                self._connected = False

    def _count_retry(self, _retry: int, _exc: BaseException, _seconds: float) -> None:
        with self._cond:
            self._retries += 1

    def _sleep(self, seconds: float) -> None:
        if self._wake.wait(seconds):
            self._wake.clear()
            if self._aborted:
                raise RetryInterruptedError

    def _probe(self) -> None:
        try:
            self.sink.check()
        except Exception as exc:
            message = scrub_secrets(f"{type(exc).__name__}: {exc}")[:_MAX_ERROR_CHARS]
            with self._cond:
                self._connected = False
                self._last_error = message
        else:
            with self._cond:
                if not self._permanently_unhealthy:
                    self._connected = True
