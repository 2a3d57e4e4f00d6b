"""The pipeline of one streamer in one process: intake, batcher thread, lanes.

Data flows one way::

    send() -> Intake.buffer -> Batcher -> EventBatch -> one Lane per sink
    send_batch() -----------------^
           (lane: preparer thread -> queue -> writer thread -> sink.write())

The intake (`metricstream.streamer.engine.intake`) counts what has not
reached a lane; each lane counts the rest (`metricstream.streamer.engine.lane`);
the batcher (`metricstream.streamer.engine.batcher`) moves batches from one
to the other. `Pipeline` builds them, answers flush and health, and stops
them. A forked child builds a new `Pipeline`; the parent's is never touched
there.
"""

from __future__ import annotations

import math
import os
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any, Literal

from metricstream._log import RateLimitedLog, logger
from metricstream._threads import start_daemon
from metricstream.columns import EventColumns
from metricstream.contract import EventBatch, Sink
from metricstream.event import PARTS_PER_EVENT
from metricstream.exceptions import BackpressureError, ConfigError, StreamerClosedError
from metricstream.spool import Spool
from metricstream.streamer.config import StreamerConfig
from metricstream.streamer.engine.batcher import Batcher, PeriodicTask
from metricstream.streamer.engine.default_tags import DefaultTags
from metricstream.streamer.engine.drops import Drops
from metricstream.streamer.engine.intake import Intake
from metricstream.streamer.engine.lane import Lane, SpillCursor
from metricstream.streamer.engine.receipts import BatchReceipt
from metricstream.streamer.engine.reentry import section as _section
from metricstream.streamer.engine.sampling import Sampler
from metricstream.streamer.engine.spooling import SpoolUpkeep, open_spool, spool_health
from metricstream.streamer.health import StreamerHealth

__all__ = ["CATCH_UP_BATCHES", "CATCH_UP_SECONDS", "PROGRESS_WINDOW", "Pipeline"]

CATCH_UP_BATCHES = 3
"""Full batches waiting for the batcher from which `send` lets it run."""
CATCH_UP_SECONDS = 0.01
"""The longest `send` waits for a thread of the pipeline that is behind to finish a batch."""
PROGRESS_WINDOW = 0.1
"""A preparer that prepared no batch for this many seconds is never waited for."""


class Pipeline:
    """The intake, batcher thread and lanes behind an `EventStreamer`.

    Built stopped: add periodic work with `add_periodic`, then `start` it.

    Args:
        config: The streamer's options.
        sinks: The sinks, in order.
        names: Their unique names.
        spool: The spool, when the streamer has one.

    Attributes:
        buffer: The intake's buffer (`send` appends to it directly).
        part_limit: Parts `send` may append without the overflow path; -1
            once closed.
        wake_every: Parts in a full batch: `send` wakes the batcher at each multiple.
        wake: Set to wake the batcher.
        cut: Set after each batch cut (see `catch_up`).
        closed: True once a shutdown began.
        sampler: The draws of ``sample_rate``, and the count of events sampled out.
        drops: What is kept of dropped events for ``on_drop`` and dead letters.
    """

    def __init__(
        self,
        config: StreamerConfig,
        sinks: Sequence[Sink],
        names: Sequence[str],
        spool: Spool | None = None,
    ) -> None:
        self.config = config
        self.spool = spool
        self.pid = os.getpid()
        self.sampler = Sampler(config.sample_seed)
        self.drops = Drops(
            first_events=config.on_drop is not None,
            dead_letters=config.dead_letter_dir is not None,
            max_events=config.max_buffer,
        )
        self.intake = Intake(config.max_buffer * PARTS_PER_EVENT, config.overflow, self.drops)
        self.buffer = self.intake.buffer
        self._progress = threading.Condition(threading.Lock())
        self._space = threading.Condition(threading.Lock())
        self.batch_size = config.batch_size
        self.wake_every = config.batch_size * PARTS_PER_EVENT
        self.behind = CATCH_UP_BATCHES * self.wake_every  # the batcher is behind from here
        self.limit = config.max_buffer  # events send() may leave waiting
        self.part_limit = self.limit * PARTS_PER_EVENT
        self.finished = False  # the shutdown is over: nothing changes any more
        self.warnings = RateLimitedLog(logger)
        self._tags = DefaultTags(config.default_tags, self.warnings)
        self._stop_lock = threading.Lock()
        self._stopped: tuple[bool, int] | None = None
        self.lanes = [
            Lane(
                sink,
                name,
                retry=config.retry_policy,
                max_buffer=config.max_buffer,
                unhealthy_after=config.unhealthy_after,
                probe_interval=config.probe_interval,
                on_progress=self._on_progress,
                warnings=self.warnings,
                cursor=None if spool is None else SpillCursor(spool, name),
                drops=self.drops if self.drops.keeps_batches else None,
            )
            for sink, name in zip(sinks, names, strict=True)
        ]
        self.batcher = Batcher(
            config,
            self.intake,
            lanes=self.lanes,
            spool=spool,
            warnings=self.warnings,
            on_cut=self._update_limit,
            on_progress=self._on_progress,
        )
        self.wake = self.batcher.wake
        self.cut = self.batcher.cut
        if spool is not None:
            self.batcher.add_periodic(SpoolUpkeep(spool, self._on_progress))

    @classmethod
    def open(cls, config: StreamerConfig, sinks: Sequence[Sink], names: Sequence[str]) -> Pipeline:
        """Build a pipeline with the spool that ``config.spool_dir`` names, if any.

        Raises:
            ConfigError: If the spool directory cannot be used.
        """
        spool = open_spool(config, names, config.spool_dir)
        return cls(config, sinks, names, spool)

    def for_child(self) -> Pipeline:
        """Return a new pipeline for a forked child (fresh intake, lanes and threads).

        The parent's spool stays the parent's: the child spools apart, in
        ``SPOOL_DIR/forks/<pid>``, removed once delivered.
        """
        sinks = [lane.sink for lane in self.lanes]
        names = [lane.name for lane in self.lanes]
        spool = None
        if self.spool is not None and self.config.spool_dir is not None:
            self.spool.forget_in_child()
            child_dir = os.path.join(self.config.spool_dir, "forks", str(os.getpid()))
            spool = open_spool(self.config, names, child_dir, ephemeral=True)
        return Pipeline(self.config, sinks, names, spool)

    @property
    def closed(self) -> bool:
        """True once a shutdown began: nothing more is accepted."""
        return self.intake.closed

    def add_periodic(self, task: PeriodicTask) -> None:
        """Have the batcher thread run `task` when it is due (call before `start`)."""
        self.batcher.add_periodic(task)

    def start(self) -> None:
        """Start the lanes' threads and the batcher."""
        for lane in self.lanes:
            lane.start()
        self.batcher.start()

    def send_uncounted(self, batch: EventBatch) -> None:
        """Hand every lane a batch outside the accounting (self-telemetry)."""
        for lane in self.lanes:
            lane.offer_uncounted(batch)

    # --- the application's side ------------------------------------------------

    def drop_upstream(self, reason: str, count: int = 1) -> bool:
        """Count `count` events dropped before any lane (put aside from a signal handler); False."""
        reentry = self.intake.reentry
        if reentry.inside():
            for _ in range(count):
                reentry.put_aside(reason)
            return False
        return self.intake.drop(reason, count)

    def buffered(self) -> int:
        """Events waiting for the batcher."""
        return self.intake.buffered()

    def send_when_full(self, row: tuple[Any, ...]) -> bool:
        """Apply the overflow policy to an event (its parts) that found the buffer full.

        Also called for every event once the streamer is closed (it drops
        them). From a signal handler that interrupted the pipeline it never
        waits nor takes a lock: the event is put aside (see
        `metricstream.streamer.engine.reentry`).
        """
        reentry = self.intake.reentry
        if reentry.inside():
            if self.closed:
                reentry.put_aside("shutdown")
                return False
            reentry.put_aside(row)
            return True
        ident = reentry.enter()
        try:
            return self._admit(row)
        finally:
            reentry.leave(ident)

    def _admit(self, row: tuple[Any, ...]) -> bool:
        intake = self.intake
        if self.closed:
            return intake.drop("shutdown", row=row)
        buffer = self.buffer
        overflow = self.config.overflow
        if overflow == "drop_newest":
            return intake.drop("overflow", row=row)
        if overflow == "drop_oldest":
            intake.evict_oldest(self.part_limit)
            buffer.extend(row)
            self.wake.set()
            return True
        timeout = self.config.block_timeout
        deadline = None if timeout is None else time.monotonic() + timeout
        self.wake.set()
        with self._space:
            while len(buffer) >= self.part_limit:
                if self.closed:
                    break
                remaining = None if deadline is None else deadline - time.monotonic()
                if remaining is not None and remaining <= 0:
                    break
                self._space.wait(remaining if remaining is not None else 0.5)
        if self.closed:
            return intake.drop("shutdown", row=row)
        if len(buffer) >= self.part_limit:
            return intake.drop("overflow", row=row)
        buffer.extend(row)
        if not len(buffer) % self.wake_every:
            self.wake.set()
        return True

    def batch_full(self) -> None:
        """A batch is complete: wake the batcher, and let it or a preparer catch up (`catch_up`).

        From a signal handler that interrupted the pipeline, nothing: the
        code it interrupted, or the batcher's own clock, cuts the batch.
        """
        reentry = self.intake.reentry
        if reentry.inside():
            return
        ident = reentry.enter()
        try:
            self.wake.set()
            self.catch_up()
        finally:
            reentry.leave(ident)

    def catch_up(self) -> None:
        """Let the batcher, or a lane's preparer, run when it has fallen behind.

        `send` calls it once per batch. The pipeline's threads run only when
        they hold the interpreter lock; a sending thread that never lets go of
        it gives each of them a turn every switch interval (5 ms), and one
        more for each time it lets go itself (to compress, write or sync). A
        fast sender thus starves them: events pile up, in the buffer (dropped
        at ``max_buffer``) or waiting for a preparer, while they have capacity
        to spare. So when the batcher is `CATCH_UP_BATCHES` batches behind, or
        a preparer that is making progress (one that prepared a batch in the
        last `PROGRESS_WINDOW` seconds: never a hanging one) is, the sender
        waits until that thread has finished one more batch, at most
        `CATCH_UP_SECONDS`.
        """
        if self.batcher.stopping or self.batcher.error is not None:
            return
        if len(self.buffer) >= self.behind:
            self.cut.clear()
            self.cut.wait(CATCH_UP_SECONDS)
            return
        backlog = CATCH_UP_BATCHES * self.batch_size
        since = time.monotonic() - PROGRESS_WINDOW
        for lane in self.lanes:
            if lane.lagging(backlog, since):
                lane.prepared.clear()
                lane.prepared.wait(CATCH_UP_SECONDS)
                return

    # --- batches given whole ------------------------------------------------------

    @_section
    def send_batch(self, parts: list[Any] | EventColumns, batch_id: str | None) -> BatchReceipt:
        """Take the events of `parts` as one batch, all or none (see `EventStreamer.send_batch`).

        `parts`: the flat parts `send` appends, or events as columns already
        checked. What `send` queued before is cut into batches of its own
        first; the batch is spooled (if any) and offered to every lane.

        Raises:
            BackpressureError: If the lanes (or the spool) cannot take it
                all, at once or, under ``overflow="block"``, within
                ``block_timeout``.
            StreamerClosedError: If the streamer is shut down.
            ConfigError: If it holds more than ``max_buffer`` events.
            InvalidEventError: If an event's tags cannot take the default tags.
        """
        count = len(parts) // PARTS_PER_EVENT if isinstance(parts, list) else len(parts)
        if count > self.config.max_buffer:
            raise ConfigError(
                "max_buffer",
                f"send_batch() got {count} events, more than max_buffer="
                f"{self.config.max_buffer} can ever hold; send smaller batches",
            )
        if isinstance(parts, list) and self.config.default_tags:
            self._tags.merge_all(parts)
        columns = EventColumns.of_parts(parts) if isinstance(parts, list) else parts
        batch = EventBatch.from_columns(columns, batch_id=batch_id)
        block = self.config.overflow == "block"
        timeout = self.config.block_timeout if block else 0.0
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            self._wait_for_room(count, deadline)
            handed = self._hand_over(batch, count, deadline if block else None)
            if handed is not False:
                break
        if handed is None:
            raise StreamerClosedError("the streamer is shut down")
        self._on_progress()
        self.cut.set()
        start, seq = handed
        return BatchReceipt(
            self,
            batch.batch_id,
            count,
            start + count,
            spooled=self.spool is not None,
            spool_end=None if seq is None else seq[1],
        )

    def _hand_over(
        self, batch: EventBatch, count: int, deadline: float | None
    ) -> tuple[int, tuple[int, int] | None] | Literal[False] | None:
        """Cut what `send` queued, then hand `batch` over, all under `Batcher.cutting`.

        Under ``"block"`` (`deadline` set) neither `cutting` nor room in the
        spool for the events queued before is waited for past `deadline`.

        Returns:
            What `Batcher.hand_over` returns; False when there was no room
            after all (what was cut first may have taken it): wait again.

        Raises:
            BackpressureError: If `cutting` or room in the spool for the
                events queued before was not had by `deadline`.
            StreamerClosedError: If the streamer is shut down.
        """
        cutting = self.batcher.cutting
        wait = -1.0 if deadline is None else max(0.0, deadline - time.monotonic())
        if not cutting.acquire(timeout=wait):
            raise self._no_room(count)
        try:
            if self.closed:
                raise StreamerClosedError("the streamer is shut down")
            cut = self.batcher.cut_waiting(deadline)
            if cut == "aborted":
                raise StreamerClosedError("the streamer is shut down")
            if cut == "full":
                raise self._no_room(count)
            if not self._has_room(count):
                return False
            return self.batcher.hand_over(batch)
        finally:
            cutting.release()

    def _no_room(self, count: int) -> BackpressureError:
        where = (
            f"the spool is full (spool_max_bytes={self.config.spool_max_bytes})"
            if self.spool is not None
            else f"a sink's buffer has no room for them (max_buffer={self.config.max_buffer})"
        )
        return BackpressureError(
            f"cannot take {count} events now: {where}",
            retry_after=self.config.flush_interval,
            events=count,
        )

    def _has_room(self, count: int) -> bool:
        if self.spool is not None:
            return not self.spool.is_full()
        return all(lane.max_buffer - lane.backlog() >= count for lane in self.lanes)

    def _wait_for_room(self, count: int, deadline: float | None) -> None:
        with self._progress:
            while not self._has_room(count):
                if self.closed:
                    raise StreamerClosedError("the streamer is shut down")
                remaining = math.inf if deadline is None else deadline - time.monotonic()
                if remaining <= 0:
                    raise self._no_room(count)
                self._progress.wait(min(remaining, 0.05))

    def durable_through(self, spool_end: int) -> bool:
        """Every spool event below `spool_end` is synced as ``spool_fsync`` says."""
        return self.spool is not None and self.spool.synced_seq >= spool_end

    def _update_limit(self) -> None:
        if self.config.overflow != "block":
            return
        backlog = max((lane.holding_back() for lane in self.lanes), default=0)
        self.limit = max(0, self.config.max_buffer - backlog)
        self.part_limit = -1 if self.closed else self.limit * PARTS_PER_EVENT
        with self._space:
            self._space.notify_all()

    def _on_progress(self) -> None:
        self._update_limit()
        with self._progress:
            self._progress.notify_all()

    # --- flush, waits and health -------------------------------------------------

    @_section
    def done_through(self, marker: int) -> bool:
        """Every event before position `marker` is written or dropped on every sink."""
        if not self.intake.taken_through(marker):
            return False
        for lane in self.lanes:
            oldest = lane.oldest_unfinished()
            if oldest is not None and oldest < marker:
                return False
        return True

    @_section
    def flush(self, timeout: float | None) -> bool:
        """Wait until everything accepted before the call is written or dropped.

        Returns:
            True once done; False if `timeout` seconds passed first.
        """
        self.intake.admit_deferred()
        marker = self.intake.marker()
        self.batcher.request_flush()
        deadline = None if timeout is None else time.monotonic() + max(0.0, timeout)
        with self._progress:
            while not self.done_through(marker):
                if self.intake.aborted or self.batcher.error is not None:
                    return False
                remaining = None if deadline is None else deadline - time.monotonic()
                if remaining is not None and remaining <= 0:
                    return False
                self._progress.wait(min(remaining, 0.2) if remaining is not None else 0.2)
        return True

    @_section
    def wait_for(self, predicate: Callable[[], bool], timeout: float | None) -> bool:
        """Wait until `predicate` holds, `timeout` seconds pass or the pipeline is finished.

        In a forked child (where the pipeline's threads do not exist) it
        does not wait: it answers what `predicate` says (see `BatchReceipt`).

        Returns:
            What `predicate` says at the end.
        """
        if self.pid != os.getpid():
            return False
        deadline = None if timeout is None else time.monotonic() + max(0.0, timeout)
        with self._progress:
            while not predicate():
                remaining = math.inf if deadline is None else deadline - time.monotonic()
                if self.finished or self.batcher.error is not None or remaining <= 0:
                    return predicate()
                self._progress.wait(min(remaining, 0.2))
        return True

    @_section
    def health(self) -> StreamerHealth:
        """Return a consistent snapshot of every sink's state and accounting."""
        self.intake.admit_deferred()
        with self.intake.lock:
            intake = self.intake
            buffered = len(intake.buffer) // PARTS_PER_EVENT
            popped = intake.popped
            upstream = dict(intake.dropped)
            accepted = popped + buffered + sum(upstream.values())
            sinks = {
                lane.name: lane.snapshot(accepted, buffered, popped, upstream)
                for lane in self.lanes
            }
        running = not self.closed
        live = self.batcher.alive() and all(lane.ledger.dead is None for lane in self.lanes)
        return StreamerHealth(
            healthy=running and live and all(s.healthy for s in sinks.values()),
            running=running,
            events_accepted=accepted,
            sinks=sinks,
            error=None if self.batcher.error is None else f"batcher died: {self.batcher.error}",
            spool=spool_health(self.spool),
            live=live,
            sampled_out=self.sampler.sampled_out,
        )

    # --- shutdown ----------------------------------------------------------------

    @_section
    def stop(self, deadline: float) -> tuple[bool, int]:
        """Deliver what is pending until `deadline` (monotonic), then give up the rest.

        Idempotent: a second call waits (until its own deadline) for the first.

        Returns:
            (whether everything was delivered in time, how many events were
            given up, the most of any sink).
        """
        if not self._stop_lock.acquire(timeout=max(0.0, deadline - time.monotonic())):
            return False, 0
        try:
            if self._stopped is None:
                self._stopped = self._stop(deadline)
            return self._stopped
        finally:
            self._stop_lock.release()

    def _stop(self, deadline: float) -> tuple[bool, int]:
        self.intake.closed = True
        self.part_limit = -1
        with self._space:
            self._space.notify_all()
        for lane in self.lanes:
            lane.hurry()
        delivered = self.flush(deadline - time.monotonic())
        self.batcher.finish()
        given_up = 0 if delivered else self._abort()
        for lane in self.lanes:
            lane.close_input()
        for lane in self.lanes:
            lane.join(deadline)
        self.batcher.join(deadline)
        grace = max(deadline, time.monotonic() + 0.1)
        self._close_sinks(grace)
        for lane in self.lanes:  # a write a close ended is counted before the end
            lane.join(grace)
        if self.spool is not None:
            self.spool.close()
        self.intake.admit_deferred()  # counted: the streamer is closed
        with self._progress:
            self.finished = True
            self._progress.notify_all()
        return delivered, given_up

    def _abort(self) -> int:
        """Give up everything still pending; return how many events (max over sinks)."""
        stranded, popped, durable = self.intake.abort()
        self.wake.set()
        worst = 0
        for lane in self.lanes:
            worst = max(worst, stranded + lane.abort(popped, durable))
        with self._progress:
            self._progress.notify_all()
        return worst

    def _close_sinks(self, deadline: float) -> None:
        """Close every sink at once, each on its own thread, waiting until `deadline`.

        A sink whose `close` hangs is left to finish on its own. `_stop`
        gives the sinks 0.1 s together past the shutdown deadline, so that
        quick closes (files, connection pools) complete.
        """
        closers = [
            start_daemon(
                _close_quietly, lane.sink, lane.name, name=f"metricstream-close-{lane.name}"
            )
            for lane in self.lanes
        ]
        for closer in closers:
            if closer is not None:
                closer.join(max(0.0, deadline - time.monotonic()))


def _close_quietly(sink: Sink, name: str) -> None:
    try:
        sink.close()
    except Exception:
        logger.exception("closing sink %r failed", name)
