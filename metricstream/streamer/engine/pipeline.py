"""The pipeline of one streamer in one process: buffer, batcher thread, lanes.

Data flows one way::

    send() -> shared buffer -> batcher thread -> EventBatch -> one lane per sink
           (lane: preparer thread -> PendingQueue -> writer thread -> sink.write())

Accounting: events leave the shared buffer in order, and each gets a position
in that sequence (``taken``). A lane knows the positions of what it holds,
which is how `Pipeline.flush` knows when everything accepted before it is
done. For every sink at every moment::

    accepted == written + dropped + pending

where ``accepted = buffered + popped + upstream_dropped`` is counted here and
the rest by the sink's lane (see `metricstream.streamer.engine.lane`).

A forked child builds a new `Pipeline`; the parent's is never touched there.
"""

from __future__ import annotations

import random
import threading
import time
from collections import deque
from collections.abc import Sequence
from itertools import repeat
from typing import Any, Literal

from metricstream._log import RateLimitedLog, logger
from metricstream.contract import EventBatch, Sink
from metricstream.event import PARTS_PER_EVENT, EventRow, shared_tags
from metricstream.exceptions import InvalidEventError
from metricstream.spool import Spool
from metricstream.streamer.config import StreamerConfig
from metricstream.streamer.engine.lane import Lane
from metricstream.streamer.engine.spill import SpillCursor
from metricstream.streamer.health import StreamerHealth
from metricstream.streamer.operations.self_metrics import SelfMetrics

__all__ = ["CATCH_UP_BATCHES", "CATCH_UP_SECONDS", "PROGRESS_WINDOW", "Pipeline"]

CATCH_UP_BATCHES = 3
"""Full batches waiting for the batcher from which `send` lets it run."""
CATCH_UP_SECONDS = 0.01
"""The longest `send` waits for a thread of the pipeline that is behind to finish a batch."""
PROGRESS_WINDOW = 0.1
"""A preparer that prepared no batch for this many seconds is never waited for."""

_popleft = deque.popleft


class Pipeline:
    """The buffer, counters, batcher thread and lanes behind an `EventStreamer`.

    Args:
        config: The streamer's options.
        sinks: The sinks, in order.
        names: Their unique names.
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
        self._in_hand_durable = False
        # The events waiting for the batcher, as their parts (`PARTS_PER_EVENT`
        # per event). `send` appends an event's parts with one `extend`, which
        # no other thread can interleave; only holders of `lock` take from the left.
        self.buffer: deque[Any] = deque()
        self.lock = threading.Lock()
        self._progress = threading.Condition(threading.Lock())
        self._space = threading.Condition(threading.Lock())
        self.wake = threading.Event()
        self.cut = threading.Event()  # set after each batch cut (see `catch_up`)
        self.batch_size = config.batch_size
        self.wake_every = config.batch_size * PARTS_PER_EVENT  # parts in a full batch
        self.behind = CATCH_UP_BATCHES * self.wake_every  # the batcher is behind from here
        self.limit = config.max_buffer  # events send() may leave waiting
        # Parts send() may append without the overflow path; -1 once closed.
        self.part_limit = self.limit * PARTS_PER_EVENT
        self.closed = False
        self._stopping = False
        self._aborted = False
        self._flush_requested = False
        self._popped = 0  # events taken into batches
        self._taken = 0  # events that left the shared buffer: popped or evicted
        self._in_hand_start: int | None = None
        self._upstream_dropped: dict[str, int] = {}
        self.warnings = RateLimitedLog(logger)
        self._stop_lock = threading.Lock()
        self._stopped: tuple[bool, int] | None = None
        self.lanes = [
            Lane(
                sink,
                name,
                retry=config.retry,
                max_buffer=config.max_buffer,
                unhealthy_after=config.unhealthy_after,
                probe_interval=config.probe_interval,
                on_progress=self._on_progress,
                warnings=self.warnings,
                cursor=None if spool is None else SpillCursor(spool, name),
            )
            for sink, name in zip(sinks, names, strict=True)
        ]
        slots = [lane.uncounted for lane in self.lanes]
        self.self_metrics = SelfMetrics(config.self_metrics_interval, config.default_tags, slots)
        self._batcher_error: str | None = None
        self._batcher = threading.Thread(
            target=self._guard_batcher, name="metricstream-batcher", daemon=True
        )
        for lane in self.lanes:
            lane.start()
        self._batcher.start()

    # --- the application's side ------------------------------------------------

    def drop_upstream(self, reason: str, count: int = 1) -> bool:
        """Count `count` events dropped before reaching any lane; return False."""
        with self.lock:
            self._upstream_dropped[reason] = self._upstream_dropped.get(reason, 0) + count
        return False

    def buffered(self) -> int:
        """Events waiting for the batcher."""
        return len(self.buffer) // PARTS_PER_EVENT

    def send_when_full(self, row: EventRow) -> bool:
        """Apply the overflow policy to an event (its parts) that found the buffer full.

        Also called for every event once the streamer is closed (it drops them).
        """
        if self.closed:
            return self.drop_upstream("shutdown")
        buffer = self.buffer
        overflow = self.config.overflow
        if overflow == "drop_newest":
            return self.drop_upstream("overflow")
        if overflow == "drop_oldest":
            with self.lock:
                if len(buffer) >= self.part_limit:
                    for _ in range(PARTS_PER_EVENT):
                        buffer.popleft()
                    self._taken += 1
                    self._upstream_dropped["overflow"] = (
                        self._upstream_dropped.get("overflow", 0) + 1
                    )
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
            return self.drop_upstream("shutdown")
        if len(buffer) >= self.part_limit:
            return self.drop_upstream("overflow")
        buffer.extend(row)
        if not len(buffer) % self.wake_every:
            self.wake.set()
        return True

    # --- the batcher thread --------------------------------------------------

    def _next_flush_delay(self) -> float:
        jitter = self.config.flush_jitter
        return self.config.flush_interval + (random.uniform(0, jitter) if jitter else 0.0)

    def _guard_batcher(self) -> None:
        """Run the batcher; if it ever dies, say so in health, flush and the log."""
        try:
            self._run_batcher()
        except BaseException as exc:
            self._batcher_error = f"{type(exc).__name__}: {exc}"
            logger.critical(
                "metricstream: the batcher thread died; events are no longer delivered",
                exc_info=True,
            )
            with self._progress:
                self._progress.notify_all()

    def _run_batcher(self) -> None:
        next_flush = time.monotonic() + self._next_flush_delay()
        buffer = self.buffer
        full_batch = self.wake_every
        while True:
            timeout = min(next_flush, self.self_metrics.due) - time.monotonic()
            if timeout > 0 and not self._stopping:
                self.wake.wait(timeout)
            self.wake.clear()
            if self._aborted:
                return
            now = time.monotonic()
            due = now >= next_flush
            force = due or self._flush_requested or self._stopping
            self._flush_requested = False
            while len(buffer) >= full_batch or (force and buffer):
                if not self._cut_and_distribute():
                    return
            if due or force:
                next_flush = now + self._next_flush_delay()
            self._report_upstream_overflow()
            if not self.closed:
                self.self_metrics.emit_if_due(now, self.health)
            self._on_progress()
            if self._stopping and not buffer:
                return

    def _cut_and_distribute(self) -> bool:
        buffer = self.buffer
        with self.lock:
            if self._aborted:
                return False
            count = min(len(buffer) // PARTS_PER_EVENT, self.batch_size)
            parts = list(map(_popleft, repeat(buffer, count * PARTS_PER_EVENT)))
            start = self._taken
            self._taken += count
            self._popped += count
            self._in_hand_start = start
        if self.config.default_tags:
            parts = self._with_default_tags(parts)
        batch = EventBatch.from_parts(parts)
        overflow = self.config.overflow
        seq = self._append(batch) if self.spool is not None else None
        if seq == "dropped":
            for lane in self.lanes:
                lane.drop_on_arrival(len(batch), "overflow")
        else:
            for lane in self.lanes:
                lane.offer(batch, start, overflow, seq)
        with self.lock:
            self._in_hand_start = None
            self._in_hand_durable = False
        self._update_limit()
        self.cut.set()
        return True

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
        if self._stopping or self._batcher_error is not None:
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

    def _append(self, batch: EventBatch) -> tuple[int, int] | Literal["dropped"] | None:
        """Append a batch to the spool, applying the overflow policy when it is full.

        Returns:
            Its sequence numbers; ``"dropped"`` when the full spool refused
            it (``drop_newest``); None when it could not be written (the
            batch is then delivered from memory only).
        """
        spool = self.spool
        assert spool is not None
        if not len(batch):
            return None
        while spool.is_full() and not self._stopping:
            if self.config.overflow == "drop_newest":
                self.warnings.warning(
                    ("*", "spool-full"),
                    "metricstream: spool full (spool_max_bytes=%d); dropping new batches",
                    spool.max_bytes,
                )
                return "dropped"
            if self.config.overflow == "drop_oldest":
                dropped = spool.drop_oldest()
                if dropped is None:
                    break
                for lane in self.lanes:
                    lane.spool_dropped(dropped[1])
                continue
            time.sleep(0.05)  # "block": wait for the sinks to catch up
        try:
            seq = spool.append(batch)
        except OSError as exc:
            self.warnings.error(
                ("*", "spool-write"),
                "metricstream: writing the spool failed (%s); delivering from memory only",
                exc,
            )
            return None
        with self.lock:
            self._in_hand_durable = True
        return seq

    def _with_default_tags(self, parts: list[Any]) -> list[Any]:
        """Add the default tags each event lacks; drop (as invalid) events whose tags break.

        The tags of each distinct tag dict of the batch are merged once. Tags
        assigned to ``event.tags`` directly skip validation; one such event
        costs only itself, never its batch or the batcher.
        """
        merged: dict[int, Any] = {}
        bad: list[int] = []
        for index in range(1, len(parts), PARTS_PER_EVENT):
            tags = parts[index]
            key = id(tags)  # every tag dict of the batch is alive, so ids are unique
            if key in merged:
                new = merged[key]
            else:
                new = merged[key] = self._tags_with_defaults(tags, parts[index - 1])
            if new is None:
                bad.append(index - 1)
            elif new is not tags:
                parts[index] = new
        if not bad:
            return parts
        for first in reversed(bad):
            del parts[first : first + PARTS_PER_EVENT]
        with self.lock:  # taken into the batch, now dropped before any lane
            self._popped -= len(bad)
            self._upstream_dropped["invalid"] = self._upstream_dropped.get("invalid", 0) + len(bad)
        return parts

    def _tags_with_defaults(self, tags: Any, measurement: object) -> dict[str, str] | None:
        """`tags` with the default tags it lacks; None (and a warning) if they are invalid."""
        defaults = self.config.default_tags
        try:
            if defaults.keys() <= tags.keys():
                return tags  # type: ignore[no-any-return]
            return shared_tags({**defaults, **tags})
        except (InvalidEventError, TypeError, AttributeError) as exc:
            self.warnings.warning(
                ("*", "invalid-tags"),
                "metricstream: dropped event %r: its tags are invalid: %s",
                measurement,
                exc,
            )
            return None

    def _report_upstream_overflow(self) -> None:
        with self.lock:
            dropped = self._upstream_dropped.get("overflow", 0)
        if dropped:
            self.warnings.warning(
                ("*", "overflow-upstream"),
                "metricstream: send() found the buffer full (max_buffer=%d); "
                "%d events dropped so far (overflow=%r)",
                self.config.max_buffer,
                dropped,
                self.config.overflow,
            )

    def _update_limit(self) -> None:
        if self.config.overflow != "block":
            return
        backlog = max((lane.backlog() for lane in self.lanes), default=0)
        self.limit = max(0, self.config.max_buffer - backlog)
        self.part_limit = -1 if self.closed else self.limit * PARTS_PER_EVENT
        with self._space:
            self._space.notify_all()

    def _on_progress(self) -> None:
        self._update_limit()
        with self._progress:
            self._progress.notify_all()

    # --- flush and health ------------------------------------------------------

    def _done_through(self, marker: int) -> bool:
        with self.lock:
            if self._taken < marker:
                return False
            if self._in_hand_start is not None and self._in_hand_start < marker:
                return False
        for lane in self.lanes:
            oldest = lane.oldest_unfinished()
            if oldest is not None and oldest < marker:
                return False
        return True

    def flush(self, timeout: float | None) -> bool:
        """Wait until everything accepted before the call is written or dropped.

        Returns:
            True once done; False if `timeout` seconds passed first.
        """
        with self.lock:
            marker = self._taken + len(self.buffer) // PARTS_PER_EVENT
        self._flush_requested = True
        self.wake.set()
        deadline = None if timeout is None else time.monotonic() + max(0.0, timeout)
        with self._progress:
            while not self._done_through(marker):
                if self._aborted or self._batcher_error is not None:
                    return False
                remaining = None if deadline is None else deadline - time.monotonic()
                if remaining is not None and remaining <= 0:
                    return False
                self._progress.wait(min(remaining, 0.2) if remaining is not None else 0.2)
        return True

    def health(self) -> StreamerHealth:
        """Return a consistent snapshot of every sink's state and accounting."""
        with self.lock:
            buffered = len(self.buffer) // PARTS_PER_EVENT
            popped = self._popped
            upstream = dict(self._upstream_dropped)
            accepted = popped + buffered + sum(upstream.values())
            sinks = {
                lane.name: lane.snapshot(accepted, buffered, popped, upstream)
                for lane in self.lanes
            }
        running = not self.closed
        return StreamerHealth(
            healthy=running and self._batcher_alive() and all(s.healthy for s in sinks.values()),
            running=running,
            events_accepted=accepted,
            sinks=sinks,
            error=None if self._batcher_error is None else f"batcher died: {self._batcher_error}",
        )

    def _batcher_alive(self) -> bool:
        return self._batcher_error is None and (self._batcher.is_alive() or self._stopping)

    # --- shutdown ----------------------------------------------------------------

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
        self.closed = True
        self.part_limit = -1
        with self._space:
            self._space.notify_all()
        for lane in self.lanes:
            lane.hurry()
        delivered = self.flush(deadline - time.monotonic())
        self._stopping = True
        self.wake.set()
        given_up = 0 if delivered else self._abort()
        for lane in self.lanes:
            lane.close_input()
        for lane in self.lanes:
            lane.join(deadline)
        self._batcher.join(max(0.0, deadline - time.monotonic()))
        self._close_sinks(deadline)
        if self.spool is not None:
            self.spool.close()
        return delivered, given_up

    def _abort(self) -> int:
        """Give up everything still pending; return how many events (max over sinks)."""
        with self.lock:
            self._aborted = True
            stranded = len(self.buffer) // PARTS_PER_EVENT
            self.buffer.clear()
            if stranded:
                self._taken += stranded
                self._upstream_dropped["shutdown"] = (
                    self._upstream_dropped.get("shutdown", 0) + stranded
                )
            popped = self._popped
            durable = self._in_hand_durable
        self.wake.set()
        worst = 0
        for lane in self.lanes:
            worst = max(worst, stranded + lane.abort(popped, durable))
        with self._progress:
            self._progress.notify_all()
        return worst

    def _close_sinks(self, deadline: float) -> None:
        """Close every sink at once, each on its own thread, waiting until `deadline`.

        A sink whose `close` hangs is left to finish on its own. Past the
        deadline, the sinks still get 0.1 s together, so that quick closes
        (files, connection pools) complete.
        """
        deadline = max(deadline, time.monotonic() + 0.1)
        closers = [
            threading.Thread(
                target=_close_quietly,
                args=(lane.sink, lane.name),
                name=f"metricstream-close-{lane.name}",
                daemon=True,
            )
            for lane in self.lanes
        ]
        for closer in closers:
            closer.start()
        for closer in closers:
            closer.join(max(0.0, deadline - time.monotonic()))


def _close_quietly(sink: Sink, name: str) -> None:
    try:
        sink.close()
    except Exception:
        logger.exception("metricstream: closing sink %r failed", name)
