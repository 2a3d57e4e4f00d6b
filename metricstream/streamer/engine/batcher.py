"""`Batcher`: the thread that cuts batches and hands them to the lanes.

It cuts a batch when ``batch_size`` events wait, when ``flush_interval`` has
passed, on a flush and at shutdown; it drops the events of series beyond
``max_series_per_measurement`` (`SeriesLimit`), adds the default tags, appends the
batch to the spool (applying the overflow policy to a full spool) and offers
it to every lane, which returns at once. `EventStreamer.send_batch` cuts
too, on the caller's thread: every cut holds `Batcher.cutting`, so the
spool and the lanes see batches in one order. Under ``overflow="block"`` a
full spool is waited for before a cut takes events from the intake: the
batcher thread waits without holding `cutting`, and `send_batch`, which
holds it, waits no longer than its deadline.

Between batches it runs the periodic work it was given (`PeriodicTask`),
such as self-telemetry or the spool's ``interval`` sync, when due.
"""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Callable, Sequence
from typing import Literal, Protocol

from metricstream._log import RateLimitedLog, logger
from metricstream.contract import EventBatch
from metricstream.event import PARTS_PER_EVENT
from metricstream.spool import Spool
from metricstream.streamer.config import StreamerConfig
from metricstream.streamer.engine.default_tags import DefaultTags
from metricstream.streamer.engine.intake import Intake
from metricstream.streamer.engine.lane import Lane
from metricstream.streamer.engine.lane.write_state import describe_error
from metricstream.streamer.engine.series_limit import SeriesLimit

__all__ = ["Batcher", "PeriodicTask"]


class PeriodicTask(Protocol):
    """Work the batcher thread runs when due, between batches, while the streamer runs."""

    @property
    def due(self) -> float:
        """The `time.monotonic` moment the task is next due (``math.inf``: never)."""
        ...

    def run(self, now: float) -> None:
        """Do the work (and move `due` on); `now` is the monotonic time."""
        ...


class Batcher:
    """Cuts batches from the intake, spools them and offers them to the lanes.

    Args:
        config: The streamer's options.
        intake: Where the events wait.
        lanes: Where batches go.
        spool: The spool, when the streamer has one.
        warnings: Where repeated warnings go.
        on_cut: Called after each batch is handed over.
        on_progress: Called after each turn of the thread.

    Attributes:
        cutting: Held to cut, spool and offer one batch.
        wake: Set to wake the thread.
        cut: Set after each batch cut (see `Pipeline.catch_up`).
        error: Why the thread died, or None.
    """

    def __init__(
        self,
        config: StreamerConfig,
        intake: Intake,
        *,
        lanes: Sequence[Lane],
        spool: Spool | None,
        warnings: RateLimitedLog,
        on_cut: Callable[[], None],
        on_progress: Callable[[], None],
    ) -> None:
        self._config = config
        self._intake = intake
        self._lanes = lanes
        self._spool = spool
        self._warnings = warnings
        self._on_cut = on_cut
        self._on_progress = on_progress
        self._tags = DefaultTags(config.default_tags, warnings)
        limit = config.max_series_per_measurement
        self._series = None if limit is None else SeriesLimit(limit)
        self._periodic: list[PeriodicTask] = []
        self.cutting = threading.Lock()
        self.wake = threading.Event()
        self.cut = threading.Event()
        self.stopping = False
        self._flush_requested = False
        self.error: str | None = None
        self._thread = threading.Thread(
            target=self._guard, name="metricstream-batcher", daemon=True
        )

    def add_periodic(self, task: PeriodicTask) -> None:
        """Run `task` when it is due (from any thread, before or after `start`)."""
        self._periodic = [*self._periodic, task]
        self.wake.set()

    def start(self) -> None:
        """Start the thread."""
        self._thread.start()

    def alive(self) -> bool:
        """False once the thread died (or exited without being asked to)."""
        return self.error is None and (self._thread.is_alive() or self.stopping)

    def request_flush(self) -> None:
        """Cut what waits now, whatever its size."""
        self._flush_requested = True
        self.wake.set()

    def finish(self) -> None:
        """Cut everything left, then exit (shutdown)."""
        self.stopping = True
        self.wake.set()

    def join(self, deadline: float) -> None:
        """Wait for the thread until the monotonic `deadline` at most."""
        self._thread.join(max(0.0, deadline - time.monotonic()))

    # --- the thread -----------------------------------------------------------

    def _guard(self) -> None:
        """Run the loop; if it ever dies, say so in health, flush and the log."""
        try:
            self._run()
        except BaseException as exc:
            self.error = f"{type(exc).__name__}: {exc}"
            logger.critical(
                "the batcher thread died; events are no longer delivered",
                exc_info=True,
            )
            self._on_progress()

    def _next_flush_delay(self) -> float:
        jitter = self._config.flush_jitter
        return self._config.flush_interval + (random.uniform(0, jitter) if jitter else 0.0)

    def _run(self) -> None:
        next_flush = time.monotonic() + self._next_flush_delay()
        buffer = self._intake.buffer
        full_batch = self._config.batch_size * PARTS_PER_EVENT
        while True:
            timeout = min([next_flush, *(task.due for task in self._periodic)]) - time.monotonic()
            if timeout > 0 and not self.stopping:
                self.wake.wait(timeout)
            self.wake.clear()
            if self._intake.aborted:
                return
            self._intake.admit_deferred()
            now = time.monotonic()
            due = now >= next_flush
            force = due or self._flush_requested or self.stopping
            self._flush_requested = False
            while len(buffer) >= full_batch or (force and buffer):
                if not self._cut_and_distribute():
                    return
            if due or force:
                next_flush = now + self._next_flush_delay()
            self._report_upstream_overflow()
            if not self._intake.closed:
                self._run_periodic(now)
            self._on_progress()
            if self.stopping and not buffer:
                return

    def _run_periodic(self, now: float) -> None:
        for task in self._periodic:
            if now >= task.due:
                try:
                    task.run(now)
                except Exception as exc:
                    self._warnings.error(
                        ("*", "periodic", type(task).__name__),
                        "periodic work %s failed: %s",
                        type(task).__name__,
                        describe_error(exc),
                    )

    def _report_upstream_overflow(self) -> None:
        dropped = self._intake.counts()[2].get("overflow", 0)
        if dropped:
            self._warnings.warning(
                ("*", "overflow-upstream"),
                "send() found the buffer full (max_buffer=%d); "
                "%d events dropped so far (overflow=%r)",
                self._config.max_buffer,
                dropped,
                self._config.overflow,
            )

    # --- cutting ------------------------------------------------------------------

    def _cut_and_distribute(self) -> bool:
        """Cut one batch from the buffer and hand it to every lane; False once aborted."""
        self.spool_has_room(deadline=None)
        with self.cutting:
            if not self.cut_locked(self._config.batch_size):
                return False
        self._on_cut()
        self.cut.set()
        return True

    def cut_locked(self, most: int) -> bool:
        """Cut up to `most` waiting events into a batch and hand it over (hold `cutting`).

        Returns:
            False once aborted (nothing was cut).
        """
        taken = self._intake.take(most)
        if taken is None:
            return False
        parts, start = taken
        if self._series is not None:
            refused, first = self._series.refuse(parts)
            if refused:  # taken into the batch, now dropped before any lane
                self._intake.refuse(refused, "cardinality", first)
                self._warnings.warning(
                    ("*", "cardinality"),
                    "dropped %d events of series beyond max_series_per_measurement=%d "
                    "(the first: %r)",
                    refused,
                    self._series.limit,
                    first[0] if first else None,
                )
        if self._config.default_tags:
            refused = self._tags.merge(parts)
            if refused:  # taken into the batch, now dropped before any lane
                self._intake.refuse(refused, "invalid")
        if parts:
            batch = EventBatch.from_parts(parts)
            seq = self._append(batch) if self._spool is not None else None
            if seq == "dropped":
                for lane in self._lanes:
                    lane.drop_on_arrival(len(batch), "overflow")
            else:
                for lane in self._lanes:
                    lane.offer(batch, start, self._config.overflow, seq)
        self._intake.handed()
        return True

    def spool_has_room(self, deadline: float | None) -> bool:
        """Under ``"block"``, wait until the spool has room (or a shutdown began).

        The other policies never wait: a full spool drops (`_append`).

        Args:
            deadline: The monotonic time to give up at; None waits as long
                as it takes.

        Returns:
            False if the spool was still full at the deadline.
        """
        spool = self._spool
        if spool is None or self._config.overflow != "block":
            return True
        while spool.is_full() and not self.stopping and not self._intake.aborted:
            if deadline is not None and time.monotonic() >= deadline:
                return False
            time.sleep(0.05)  # wait for the sinks to catch up
        return True

    def cut_waiting(self, deadline: float | None) -> Literal["cut", "full", "aborted"]:
        """Cut everything `send` queued so far into batches of its own (hold `cutting`).

        Under ``"block"`` each cut waits for room in the spool, until
        `deadline` at most: what is not cut by then stays in the intake.

        Returns:
            ``"cut"``; ``"full"`` when the spool had no room by the deadline;
            ``"aborted"`` once aborted.
        """
        pending = self._intake.buffered()
        while pending > 0:
            if not self.spool_has_room(deadline):
                return "full"
            if not self.cut_locked(min(pending, self._config.batch_size)):
                return "aborted"
            pending -= self._config.batch_size
        return "cut"

    def hand_over(self, batch: EventBatch) -> tuple[int, tuple[int, int] | None] | None:
        """Give a whole batch its positions, spool it and offer it to every lane (hold `cutting`).

        The caller made sure every lane (or the spool) has room: nothing is
        dropped, whatever the overflow policy.

        Returns:
            (the position of its first event, its spool sequence numbers or
            None when it is not in the spool); None once aborted.
        """
        count = len(batch)
        start = self._intake.take_given(count)
        if start is None:
            return None
        seq = None
        if count:
            seq = self._append_now(batch) if self._spool is not None else None
            for lane in self._lanes:
                lane.offer(batch, start, "block", seq)
        self._intake.handed()
        return start, seq

    def _append(self, batch: EventBatch) -> tuple[int, int] | Literal["dropped"] | None:
        """Append a batch to the spool, applying a drop policy when it is full.

        Under ``"block"`` the cut waited for room before taking the batch
        (`spool_has_room`); the batch is appended whatever the spool holds
        now, so it may pass ``max_bytes`` by a batch.

        Returns:
            Its sequence numbers; ``"dropped"`` when the full spool refused
            it (``drop_newest``); None when it could not be written (the
            batch is then delivered from memory only).
        """
        spool = self._spool
        assert spool is not None
        overflow = self._config.overflow
        while spool.is_full() and not self.stopping:
            if overflow == "drop_newest":
                self._warnings.warning(
                    ("*", "spool-full"),
                    "spool full (spool_max_bytes=%d); dropping new batches",
                    spool.max_bytes,
                )
                return "dropped"
            if overflow == "drop_oldest":
                dropped = spool.drop_oldest()
                if dropped is None:
                    break
                for lane in self._lanes:
                    lane.spool_dropped(dropped[1])
                continue
            break  # "block": the cut waited for room already
        return self._append_now(batch)

    def _append_now(self, batch: EventBatch) -> tuple[int, int] | None:
        """Append a batch to the spool as it is; None (and an error logged) if that fails."""
        assert self._spool is not None
        try:
            seq = self._spool.append(batch)
        except OSError as exc:
            self._warnings.error(
                ("*", "spool-write"),
                "writing the spool failed (%s); the batches it cannot take wait in memory, "
                "up to max_buffer per sink, then the overflow policy applies",
                exc,
            )
            return None
        self._intake.durable_in_hand()
        return seq
