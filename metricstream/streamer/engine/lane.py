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

    offered + recovered == written + dropped + raw + preparing + queued
                           + in_flight + spilled + left_in_spool

``offered`` counts every event the batcher handed the lane (queued, or
dropped on arrival); ``raw`` the events of batches waiting for the
preparer; ``preparing`` those of the batch being prepared; ``queued`` those
of the prepared payloads in the `PendingQueue`; ``in_flight`` those of the
payload being written. With a spool, ``recovered`` counts the events an
earlier run left for this sink, ``spilled`` those kept only on disk until
there is room in memory (see `metricstream.streamer.engine.spill`), and
``left_in_spool`` what a shutdown left on disk for the next streamer. Health
shows ``spilled + left_in_spool`` as ``spooled``.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

from metricstream._log import RateLimitedLog, logger
from metricstream.contract import EventBatch, Sink
from metricstream.streamer.engine.prepare import prepare_isolated
from metricstream.streamer.engine.queue import Item, MemoryQueue, PendingQueue
from metricstream.streamer.engine.retry import RetryConfig
from metricstream.streamer.engine.spill import SpillCursor
from metricstream.streamer.engine.uncounted import UncountedSlot
from metricstream.streamer.engine.write_state import WriteState, describe_error
from metricstream.streamer.engine.writer import SinkWriter
from metricstream.streamer.health import DROP_REASONS, SinkHealth

__all__ = ["Lane"]


@dataclass(slots=True, eq=False)
class _RawBatch:
    """A batch handed to the lane, waiting for its preparer."""

    batch: EventBatch
    start: int
    end: int
    seq_end: int | None = None

    @property
    def count(self) -> int:
        return len(self.batch)


class Lane:
    """The threads, queue, retry loop and counters of one sink.

    Args:
        sink: The sink.
        name: Its unique name.
        retry: The retry policy of its writes.
        max_buffer: The most events it may hold in memory (raw, prepared or
            in flight).
        unhealthy_after: Consecutive failed writes after which it is unhealthy.
        probe_interval: Seconds between probes (`Sink.check`) while it is
            disconnected and idle.
        on_progress: Called after each batch is prepared, written or dropped.
        warnings: Where repeated warnings go, rate-limited.
        queue: Its pending storage; a `MemoryQueue` when None.
        cursor: Its place in the spool, when the streamer has one.
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
        cursor: SpillCursor | None = None,
    ) -> None:
        self.sink = sink
        self.name = name
        self.max_buffer = max_buffer
        self._unhealthy_after = unhealthy_after
        self._probe_interval = probe_interval
        self._on_progress = on_progress
        self._warnings = warnings
        self._cursor = cursor
        self._cond = threading.Condition(threading.Lock())
        self._inbox: deque[_RawBatch] = deque()
        self._raw = 0
        self._preparing: _RawBatch | None = None
        self._queue: PendingQueue = MemoryQueue() if queue is None else queue
        self._in_flight: Item | None = None
        self._offered = 0
        self._written = 0
        self._left_in_spool = 0
        self._dropped = dict.fromkeys(DROP_REASONS, 0)
        self._closing = False
        self._preparer_done = False
        self._aborted = False
        self._state = WriteState()
        self._writer = SinkWriter(
            sink,
            name,
            retry=retry,
            lock=self._cond,
            state=self._state,
            warnings=warnings,
            aborted=lambda: self._aborted,
        )
        self._dead: str | None = None
        # Set after each batch is prepared, when (monotonic) it last was: see `lagging`.
        self.prepared = threading.Event()
        self.prepared_at = 0.0
        # Self-telemetry: written on this lane's threads, outside its accounting.
        self.uncounted = UncountedSlot(sink, name, self._cond, warnings)
        self._threads = [
            threading.Thread(
                target=self._guard, args=(body,), name=f"metricstream-{role}-{name}", daemon=True
            )
            for role, body in (("prepare", self._run_preparer), ("write", self._run_writer))
        ]

    # --- the batcher's side ------------------------------------------------

    def start(self) -> None:
        """Start the preparer and writer threads."""
        for thread in self._threads:
            thread.start()

    def _backlog_locked(self) -> int:
        preparing = self._preparing.count if self._preparing is not None else 0
        in_flight = self._in_flight.count if self._in_flight is not None else 0
        return self._raw + preparing + self._queue.events + in_flight

    def backlog(self) -> int:
        """Events held in memory: raw, being prepared, queued or being written."""
        with self._cond:
            return self._backlog_locked()

    def lagging(self, events: int, since: float) -> bool:
        """True when over `events` wait for a preparer that prepared a batch after `since`.

        A preparer that made no progress lately (a sink whose ``prepare``
        hangs) is never lagging: nothing waits for it. Read without the lock:
        a stale answer only moves one wait of `send` by a batch.
        """
        return self._raw > events and self.prepared_at > since

    def offer(
        self, batch: EventBatch, start: int, overflow: str, seq: tuple[int, int] | None = None
    ) -> None:
        """Take a batch for preparation, applying the overflow policy when full.

        Args:
            batch: The batch (shared with the other lanes; never changed).
            start: The position of its first event in the streamer's sequence.
            overflow: ``"block"`` (never drop: the streamer holds `send` back
                instead), ``"drop_oldest"`` or ``"drop_newest"``.
            seq: The batch's (first, end) sequence numbers in the spool, when
                it is there: a full lane then keeps it on disk instead of
                dropping anything.
        """
        count = len(batch)
        end = start + count
        dropped = 0
        with self._cond:
            if self._aborted:
                return  # abort() already counted everything taken before it
            self._offered += count
            room = self.max_buffer - self._backlog_locked()
            cursor = self._cursor
            if seq is not None and cursor is not None:
                if cursor.spilling or room < count:
                    cursor.spill(seq[0], seq[1], start, end)
                else:
                    self._inbox.append(_RawBatch(batch, start, end, seq[1]))
                    self._raw += count
                    cursor.offered(seq[1])
            elif overflow == "block" or room >= count:
                self._inbox.append(_RawBatch(batch, start, end))
                self._raw += count
            else:
                dropped = self._overflow(batch, start, overflow, room)
            self._cond.notify_all()
        if dropped:
            self._warnings.warning(
                (self.name, "overflow"),
                "metricstream: sink %r buffer full (max_buffer=%d): dropped %d new events",
                self.name,
                self.max_buffer,
                dropped,
            )

    def drop_on_arrival(self, count: int, reason: str) -> None:
        """Count `count` events handed to this lane as dropped at once."""
        with self._cond:
            if not self._aborted:
                self._offered += count
                self._dropped[reason] += count

    def _overflow(self, batch: EventBatch, start: int, overflow: str, room: int) -> int:
        """Keep what fits of a batch that does not; return how many new events were dropped."""
        count = len(batch)
        if overflow == "drop_oldest":
            room += self._evict_oldest_locked(count - room)
            keep = min(count, max(room, 0))
            first = start + count - keep
        else:
            keep = max(room, 0)
            first = start
        if keep == count:
            self._inbox.append(_RawBatch(batch, start, start + count))
        elif keep:
            part = batch.subset(first - start, first - start + keep)
            self._inbox.append(_RawBatch(part, first, first + keep))
        self._raw += keep
        self._dropped["overflow"] += count - keep
        return count - keep

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

    def spool_dropped(self, end_seq: int) -> None:
        """The full spool deleted everything below `end_seq`: count what this lane lost."""
        with self._cond:
            if self._cursor is None:
                return
            lost = self._cursor.drop_through(end_seq)
            self._dropped["overflow"] += lost
        if lost:
            self._warnings.warning(
                (self.name, "spool-full"),
                "metricstream: spool full: sink %r lost %d events kept on disk for it",
                self.name,
                lost,
            )

    def oldest_unfinished(self) -> int | None:
        """The position of the oldest event not yet written or dropped, or None."""
        with self._cond:
            if self._in_flight is not None and self._in_flight.start >= 0:
                return self._in_flight.start
            oldest = self._queue.oldest_start()
            if oldest is not None:
                return oldest
            if self._preparing is not None:
                return self._preparing.start
            if self._inbox:
                return self._inbox[0].start
            return self._cursor.oldest_position() if self._cursor is not None else None

    # --- shutdown ----------------------------------------------------------

    def close_input(self) -> None:
        """No more batches will come: the threads exit once everything is written."""
        with self._cond:
            self._closing = True
            self._cond.notify_all()

    def hurry(self) -> None:
        """End the current retry wait at once (shutdown has begun)."""
        self._writer.wake.set()

    def abort(self, taken: int, in_hand_durable: bool = False) -> int:
        """Give up: count everything not yet written or dropped (shutdown).

        Events that are in the spool stay there for the next streamer
        (``left_in_spool``); the others are dropped with reason ``shutdown``.

        Args:
            taken: Events the batcher has taken into batches so far; those
                not offered to this lane yet are given up too, and later
                offers are ignored.
            in_hand_durable: Whether the batch the batcher holds is in the spool.

        Returns:
            The number of events dropped. A prepare or write still running
            is abandoned; whatever it returns is ignored.
        """
        with self._cond:
            self._aborted = True
            self._closing = True
            unfinished: list[tuple[int, bool]] = [
                (raw.count, raw.seq_end is not None) for raw in self._inbox
            ]
            if self._preparing is not None:
                unfinished.append((self._preparing.count, self._preparing.seq_end is not None))
            if self._in_flight is not None:
                unfinished.append((self._in_flight.count, self._in_flight.seq_end is not None))
            unfinished += [(item.count, item.seq_end is not None) for item in self._queue.drain()]
            unfinished.append((max(0, taken - self._offered), in_hand_durable))
            lost = sum(count for count, durable in unfinished if not durable)
            kept = sum(count for count, durable in unfinished if durable)
            if self._cursor is not None:
                kept += self._cursor.give_up()
            else:
                lost, kept = lost + kept, 0
            self._offered = max(self._offered, taken)
            self._inbox.clear()
            self._raw = 0
            self._preparing = None
            self._in_flight = None
            self._dropped["shutdown"] += lost
            self._left_in_spool += kept
            self._cond.notify_all()
        self._writer.wake.set()
        return lost

    def join(self, deadline: float) -> None:
        """Wait until the monotonic `deadline` at most for both threads to exit."""
        for thread in self._threads:
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
            cursor = self._cursor
            spooled = self._left_in_spool + (cursor.spilled if cursor is not None else 0)
            state = self._state
            connected = state.is_connected()
            return SinkHealth(
                name=self.name,
                connected=connected,
                healthy=connected
                and self._dead is None
                and state.consecutive_failures < self._unhealthy_after,
                last_write_ns=state.last_write_ns,
                events_accepted=accepted + (cursor.recovered if cursor is not None else 0),
                events_written=self._written,
                events_dropped=sum(dropped.values()),
                dropped_by_reason=dropped,
                write_errors=state.write_errors,
                retries=state.retries,
                pending=upstream + (taken - self._offered) + self._backlog_locked(),
                consecutive_failures=state.consecutive_failures,
                last_error=self._dead or state.last_error,
                last_write_latency_ms=state.last_latency_ms,
                spooled=spooled,
            )

    # --- the preparer ------------------------------------------------------------

    def _guard(self, body: Callable[[], None]) -> None:
        """Run a thread's body; if it dies, say so in health and in the log."""
        try:
            body()
        except BaseException as exc:
            with self._cond:
                self._dead = f"lane thread died: {describe_error(exc)}"
                self._preparer_done = True
                self._cond.notify_all()
            logger.critical(
                "metricstream: a thread of sink %r died; the sink receives nothing more",
                self.name,
                exc_info=True,
            )
            self._on_progress()

    def _next_raw(self) -> _RawBatch | int | None:
        """Wait for work: a raw batch, a spool position to read, or None to stop."""
        self.uncounted.prepare()
        with self._cond:
            while True:
                if self._aborted:
                    break
                if self.uncounted.waiting:
                    self._cond.release()
                    try:
                        self.uncounted.prepare()
                    finally:
                        self._cond.acquire()
                    continue
                if self._inbox:
                    raw = self._inbox.popleft()
                    self._raw -= raw.count
                    self._preparing = raw
                    return raw
                cursor = self._cursor
                due = cursor.due() if cursor is not None else None
                if due is not None and self._backlog_locked() < self.max_buffer:
                    return due
                if self._closing and due is None:
                    break
                self._cond.wait(0.5 if due is not None else None)
            self._preparer_done = True
            self._cond.notify_all()
            return None

    def _read_back(self, seq: int) -> _RawBatch | None:
        """Read the spilled batch at `seq` from the spool and account for it."""
        assert self._cursor is not None
        stored = self._cursor.spool.read(seq)
        with self._cond:
            if self._aborted:
                return None
            if stored is None:  # gone from disk: nothing left to read back
                self._dropped["corrupt"] += self._cursor.discard_rest()
                return None
            spilled = self._cursor.take(stored)
            self._dropped["corrupt"] += spilled.missing
            batch = stored.batch
            if batch is None:
                self._dropped["corrupt"] += stored.end_seq - stored.first_seq
                # An empty marker acknowledges the damaged range in its turn.
                self._queue.push(
                    Item(None, 0, spilled.start, spilled.end, "", seq_end=stored.end_seq)
                )
                self._cond.notify_all()
                return None
            raw = _RawBatch(batch, spilled.start, spilled.end, stored.end_seq)
            self._preparing = raw
            return raw

    def _run_preparer(self) -> None:
        while True:
            work = self._next_raw()
            if work is None:
                return
            raw = self._read_back(work) if isinstance(work, int) else work
            if raw is None:
                continue
            payload, good, refused, reason = prepare_isolated(
                self.sink, self.name, raw.batch, self._warnings
            )
            with self._cond:
                if self._preparing is not raw:
                    continue  # abandoned by abort(); already counted
                self._preparing = None
                self._dropped[reason] = self._dropped.get(reason, 0) + refused
                if good or raw.seq_end is not None:
                    item = Item(payload, good, raw.start, raw.end, raw.batch.batch_id)
                    item.seq_end = raw.seq_end
                    self._queue.push(item)
                self._cond.notify_all()
            # Waiting for the next batch must not keep this one's events alive.
            del raw, payload, work
            self.prepared_at = time.monotonic()
            self.prepared.set()
            self._on_progress()

    # --- the writer ----------------------------------------------------------------

    def _next_item(self) -> Item | bool:
        """Wait for a payload to write; True when it is time to probe, False to stop."""
        with self._cond:
            while True:
                if self._aborted:
                    return False
                item = self.uncounted.take_locked(self._closing) or self._queue.pop()
                if item is not None:
                    self._in_flight = item
                    return item
                if self._closing and self._preparer_done:
                    return False
                connected = self._state.connected
                if not self._cond.wait(None if connected else self._probe_interval) and (
                    not connected
                ):
                    return True

    def _run_writer(self) -> None:
        self._writer.probe()
        last_probe = time.monotonic()
        while True:
            item = self._next_item()
            if item is False:
                return
            if item is True:
                if time.monotonic() - last_probe >= self._probe_interval:
                    self._writer.probe()
                    last_probe = time.monotonic()
                continue
            if item.count:
                reason, written = self._writer.deliver(item)
            else:  # self-telemetry, or the marker of a damaged spool record
                if item.seq_end is None:
                    self.uncounted.write(item)
                reason, written = "", 0
            if reason == "retries_exhausted" and item.seq_end is not None:
                self._wait_before_retrying(item)
                continue
            self._finish(item, reason, written)

    def _wait_before_retrying(self, item: Item) -> None:
        """A spooled payload is never given up: wait, then write it again."""
        with self._cond:
            if self._in_flight is not item:
                return
            self._in_flight = None
            self._queue.push_front(item)
        self._warnings.warning(
            (self.name, "spool-retry"),
            "metricstream: sink %r still failing after every retry; its events stay in the "
            "spool and writing resumes in %.1f s: %s",
            self.name,
            self._probe_interval,
            self._state.last_error,
        )
        self._writer.pause(self._probe_interval)

    def _finish(self, item: Item, reason: str, written: int) -> None:
        lost = item.count - written
        # Events the sink said it refused are "rejected", whatever ended the write.
        refused = min(item.rejected, lost) if reason else 0
        with self._cond:
            if self._in_flight is not item:
                return  # abandoned by abort(); already counted
            self._in_flight = None
            self._written += written
            self._dropped["rejected"] += refused
            if lost - refused:
                self._dropped[reason] = self._dropped.get(reason, 0) + lost - refused
            caught_up = self._backlog_locked() == 0
            self._cond.notify_all()
        if item.seq_end is not None and self._cursor is not None:
            self._cursor.spool.acknowledge(self.name, item.seq_end, now=caught_up)
        if lost:
            why = reason if not refused else f"rejected: {refused}, {reason}: {lost - refused}"
            self._warnings.warning(
                (self.name, reason),
                "metricstream: sink %r dropped %d events of batch %s (%s): %s",
                self.name,
                lost,
                item.batch_id,
                why if refused < lost else "rejected",
                self._state.last_error,
            )
        self._on_progress()
