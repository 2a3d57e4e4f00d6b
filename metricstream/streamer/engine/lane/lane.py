"""`Lane`: the preparer and writer threads of one sink, and what the batcher asks of it.

Where events are and how many is the `LaneLedger`'s business; what a write
does to the sink, the `SinkWriter`'s. This module holds the two threads'
loops, each a short loop over typed work, and the warnings, which are
logged outside the ledger's lock; and, when the streamer asks (`Drops`),
which events it dropped.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

from metricstream._log import RateLimitedLog, logger
from metricstream.contract import EventBatch, Sink
from metricstream.streamer.engine.drops import Drops
from metricstream.streamer.engine.lane.ledger import LaneLedger
from metricstream.streamer.engine.lane.prepare import Prepared, prepare_isolated
from metricstream.streamer.engine.lane.retry import RetryConfig
from metricstream.streamer.engine.lane.spill import SpillCursor
from metricstream.streamer.engine.lane.work import (
    PreparedBatch,
    PreparedTelemetry,
    ProbeDue,
    RawBatch,
    SelfTelemetry,
    SettledRange,
    SpilledRange,
    Stop,
)
from metricstream.streamer.engine.lane.write_state import describe_error
from metricstream.streamer.engine.lane.writer import SinkWriter
from metricstream.streamer.health import SinkHealth

__all__ = ["Lane"]


class Lane:
    """The threads, ledger and writer of one sink.

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
        cursor: Its place in the spool, when the streamer has one.
        drops: Where the events it drops are told, when the streamer asks.

    Attributes:
        ledger: Where its events are, counted.
        prepared: Set after each batch is prepared (see `lagging`).
        prepared_at: When (monotonic) a batch was last prepared.
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
        cursor: SpillCursor | None = None,
        drops: Drops | None = None,
    ) -> None:
        self.sink = sink
        self.name = name
        self.max_buffer = max_buffer
        self._unhealthy_after = unhealthy_after
        self._probe_interval = probe_interval
        self._on_progress = on_progress
        self._warnings = warnings
        self._spool = None if cursor is None else cursor.spool
        self._drops = drops
        keep = drops is not None and drops.keeps_batches
        self.ledger = LaneLedger(max_buffer, cursor, keep_batches=keep)
        self._writer = SinkWriter(sink, name, retry=retry, warnings=warnings)
        self.prepared = threading.Event()
        self.prepared_at = 0.0
        self._last_probe = 0.0
        self._threads = [
            threading.Thread(
                target=self._guard, args=(body,), name=f"metricstream-{role}-{name}", daemon=True
            )
            for role, body in (("prepare", self._run_preparer), ("write", self._run_writer))
        ]

    # --- the batcher's side ------------------------------------------------------

    def start(self) -> None:
        """Start the preparer and writer threads."""
        for thread in self._threads:
            thread.start()

    def backlog(self) -> int:
        """Events held in memory: raw, being prepared, queued or being written."""
        return self.ledger.backlog()

    def holding_back(self) -> int:
        """Events that hold `send` back under ``"block"`` (see `LaneLedger.holding_back`)."""
        return self.ledger.holding_back()

    def lagging(self, events: int, since: float) -> bool:
        """True when over `events` wait for a preparer that prepared a batch after `since`.

        A preparer that made no progress lately (a sink whose ``prepare``
        hangs) is never lagging: nothing waits for it. Read without the lock:
        a stale answer only moves one wait of `send` by a batch.
        """
        return self.ledger.raw > events and self.prepared_at > since

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
        dropped = self.ledger.offer(batch, start, overflow, seq)
        if dropped.oldest:
            self._warnings.warning(
                (self.name, "overflow-oldest"),
                "sink %r buffer full (max_buffer=%d): dropped the %d oldest events",
                self.name,
                self.max_buffer,
                dropped.oldest,
            )
        if dropped.newest:
            if self._drops is not None:
                first = len(batch) - dropped.newest if overflow == "drop_newest" else 0
                self._drops.note(self.name, "overflow", batch.select((first,)).events[0])
            self._warnings.warning(
                (self.name, "overflow"),
                "sink %r buffer full (max_buffer=%d): dropped %d new events",
                self.name,
                self.max_buffer,
                dropped.newest,
            )

    def drop_on_arrival(self, count: int, reason: str) -> None:
        """Count `count` events handed to this lane as dropped at once."""
        self.ledger.drop_on_arrival(count, reason)

    def offer_uncounted(self, batch: EventBatch) -> None:
        """Deliver self-telemetry outside the accounting (see `LaneLedger.offer_telemetry`)."""
        self.ledger.offer_telemetry(batch)

    def spool_dropped(self, end_seq: int) -> None:
        """The full spool deleted everything below `end_seq`: count what this lane lost."""
        lost = self.ledger.spool_dropped(end_seq)
        if lost:
            self._warnings.warning(
                (self.name, "spool-full"),
                "spool full: sink %r lost %d events kept on disk for it",
                self.name,
                lost,
            )

    def oldest_unfinished(self) -> int | None:
        """The position of the oldest event not yet written or dropped, or None."""
        return self.ledger.oldest_unfinished()

    # --- shutdown ----------------------------------------------------------------

    def close_input(self) -> None:
        """No more batches will come: the threads exit once everything is written."""
        self.ledger.close_input()

    def hurry(self) -> None:
        """End the current retry wait at once (shutdown has begun)."""
        self._writer.hurry()

    def abort(self, taken: int, in_hand_durable: bool = False) -> int:
        """Give up (see `LaneLedger.abort`); a prepare or write still running is abandoned.

        Returns:
            The number of events dropped.
        """
        under_way = self._writer.abandon()
        return self.ledger.abort(taken, in_hand_durable, write_under_way=under_way)

    def join(self, deadline: float) -> None:
        """Wait until the monotonic `deadline` at most for both threads to exit."""
        for thread in self._threads:
            if thread.is_alive():
                thread.join(max(0.0, deadline - time.monotonic()))

    def snapshot(
        self, accepted: int, buffered: int, popped: int, upstream_dropped: dict[str, int]
    ) -> SinkHealth:
        """Return this sink's `SinkHealth` (see `LaneLedger.snapshot`)."""
        return self.ledger.snapshot(
            self.name,
            accepted=accepted,
            buffered=buffered,
            popped=popped,
            upstream_dropped=upstream_dropped,
            write=self._writer.state.record(),
            unhealthy_after=self._unhealthy_after,
        )

    # --- the threads -------------------------------------------------------------

    def _guard(self, body: Callable[[], None]) -> None:
        """Run a thread's body; if it dies, say so in health and in the log."""
        try:
            body()
        except BaseException as exc:
            self.ledger.thread_died(f"lane thread died: {describe_error(exc)}")
            logger.critical(
                "a thread of sink %r died; the sink receives nothing more",
                self.name,
                exc_info=True,
            )
            self._on_progress()

    def _run_preparer(self) -> None:
        while self._prepare_next():
            pass

    def _prepare_next(self) -> bool:
        """Take one piece of work and do it; False once the preparer must stop.

        A function of its own, so that waiting for the next piece keeps
        nothing of this one alive.
        """
        match self.ledger.next_for_preparer():
            case Stop():
                return False
            case SelfTelemetry(batch=batch):
                self._prepare_telemetry(batch)
            case SpilledRange(seq=seq):
                assert self._spool is not None
                raw = self.ledger.read_back(self._spool.read(seq))
                if raw is not None:
                    self._prepare(raw)
            case RawBatch() as raw:
                self._prepare(raw)
        return True

    def _prepare(self, raw: RawBatch) -> None:
        outcome = prepare_isolated(self.sink, self.name, raw.batch, self._warnings)
        self.ledger.prepared(raw, outcome)
        if outcome.refused and self._drops is not None:
            self._tell_refused(raw.batch, outcome)
        self.prepared_at = time.monotonic()
        self.prepared.set()
        self._on_progress()

    def _tell_refused(self, batch: EventBatch, outcome: Prepared) -> None:
        """Tell `Drops` which events of `batch` the sink could not encode, and why."""
        assert self._drops is not None
        by_reason: dict[str, list[tuple[int, str]]] = {}
        for index, reason, error in outcome.refused:
            by_reason.setdefault(reason, []).append((index, error))
        for reason, events in by_reason.items():
            indexes = [index for index, _ in events]
            errors = [error for _, error in events]
            self._drops.letter(self.name, reason, batch.select(indexes), errors)

    def _prepare_telemetry(self, batch: EventBatch) -> None:
        try:
            payload = self.sink.prepare(batch)
        except Exception as exc:
            self._warnings.warning(
                (self.name, "self-metrics-prepare"),
                "sink %r could not encode the self-telemetry events: %s",
                self.name,
                describe_error(exc),
            )
            return
        self.ledger.telemetry_prepared(PreparedTelemetry(payload, batch.batch_id))

    def _run_writer(self) -> None:
        self._probe()
        while self._write_next():
            pass

    def _write_next(self) -> bool:
        """Take one piece of work and do it; False once the writer must stop."""
        probe_after = None if self._writer.state.connected else self._probe_interval
        match self.ledger.next_for_writer(probe_after):
            case Stop():
                return False
            case ProbeDue():
                if time.monotonic() - self._last_probe >= self._probe_interval:
                    self._probe()
            case PreparedTelemetry() as telemetry:
                self._writer.write_once(telemetry)
            case SettledRange() as settled:
                done = self.ledger.settle(settled)
                if done.counted:
                    self._acknowledge(settled.spool_end)
                    self._on_progress()
            case PreparedBatch() as item:
                self._deliver(item)
        return True

    def _probe(self) -> None:
        self._writer.probe()
        self._last_probe = time.monotonic()

    def _deliver(self, item: PreparedBatch) -> None:
        reason, written = self._writer.deliver(item)
        if reason == "retries_exhausted" and self._spool is not None:
            # Never given up beside a spool: a batch the spool could not take
            # (a full disk) waits in memory, held to max_buffer, as if spooled.
            if self._retry_later(item):
                return
            reason = "shutdown"  # a shutdown gave up on it while it was written
        done = self.ledger.finish(item, reason, written)
        if not done.counted:
            return  # abandoned by an abort, which counted it
        if item.spool_end is not None:
            self._acknowledge(item.spool_end)
        lost = item.count - written
        if lost and self._drops is not None:
            self._tell_dropped(item, reason, written)
        if lost:
            refused = min(item.rejected, lost)
            why = reason if not refused else f"rejected: {refused}, {reason}: {lost - refused}"
            self._warnings.warning(
                (self.name, reason),
                "sink %r dropped %d events of batch %s (%s): %s",
                self.name,
                lost,
                item.batch_id,
                why if refused < lost else "rejected",
                self._writer.state.last_error,
            )
        self._on_progress()

    def _tell_dropped(self, item: PreparedBatch, reason: str, written: int) -> None:
        """Tell `Drops` about the events a write dropped (see `LaneLedger.finish`).

        A destination says how many events it stored and refused, not which:
        when the write stored none, every event of the payload is known to be
        dropped; otherwise all of them are told, marked inexact.
        """
        assert self._drops is not None
        batch = item.batch
        if batch is None:
            return
        lost = item.count - written
        refused = min(item.rejected, lost)
        error = self._writer.state.last_error or reason
        counts: dict[str, int] = {}
        for why, count in (("rejected", refused), (reason, lost - refused)):
            if count:
                counts[why] = counts.get(why, 0) + count
        for why, count in counts.items():
            exact = written == 0 and count == item.count
            self._drops.letter(self.name, why, batch, (error,), exact=exact)

    def _acknowledge(self, spool_end: int) -> None:
        if self._spool is not None:
            self._spool.acknowledge(self.name, spool_end)

    def _retry_later(self, item: PreparedBatch) -> bool:
        """A spooled payload is never given up: wait, then write it again.

        Returns:
            False when a shutdown gave up the lane first (nothing is retried).
        """
        if not self.ledger.retry_later(item):
            return False
        self._warnings.warning(
            (self.name, "spool-retry"),
            "sink %r still failing after every retry; its events stay in the "
            "spool and writing resumes in %.1f s: %s",
            self.name,
            self._probe_interval,
            self._writer.state.last_error,
        )
        self._writer.pause(self._probe_interval)
        return True
