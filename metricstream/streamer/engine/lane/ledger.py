"""`LaneLedger`: the state, counters and lock of one lane, in one place.

Every term of the lane's identity (see `metricstream.streamer.engine.lane`)
is held here and changes only here, under the ledger's one condition; each
method moves events from one term to another and says so. The lane's
threads ask it for typed work (`metricstream.streamer.engine.lane.work`) and
report what became of it; they never hold its lock while they call the sink
or read the disk.

Self-telemetry passes through here too, outside every term: the ledger holds
at most one such batch raw and one prepared, the newest (each carries
cumulative totals, so a newer one only loses resolution), and drops the
prepared one once the lane is closing, so it never delays a shutdown.
"""

from __future__ import annotations

import threading
from collections import deque
from typing import NamedTuple

from metricstream.contract import EventBatch
from metricstream.spool import StoredBatch
from metricstream.streamer.engine.lane.prepare import Prepared, in_payload
from metricstream.streamer.engine.lane.spill import SpillCursor
from metricstream.streamer.engine.lane.work import (
    PROBE_DUE,
    STOP,
    DamagedRange,
    PreparedBatch,
    PreparedTelemetry,
    PreparerWork,
    Queued,
    RawBatch,
    RefusedRange,
    SelfTelemetry,
    SettledRange,
    SpilledRange,
    WriterWork,
)
from metricstream.streamer.engine.lane.write_state import WriteRecord
from metricstream.streamer.health import DROP_REASONS, SinkHealth

__all__ = ["Done", "LaneLedger", "Overflowed"]


class Overflowed(NamedTuple):
    """What an offer dropped to respect ``max_buffer`` (for the warnings)."""

    newest: int
    """Events of the offered batch dropped (``overflow``)."""
    oldest: int
    """Older waiting events dropped to make room (``drop_oldest``)."""


class Done(NamedTuple):
    """What the ledger made of a finished payload or range."""

    counted: bool
    """False when an abort had counted it already (its outcome is ignored)."""


class LaneLedger:
    """Where a lane's events are, counted exactly, under one condition.

    Args:
        max_buffer: The most events the lane may hold in memory (raw,
            being prepared, queued or in flight).
        cursor: The lane's place in the spool, when the streamer has one.
        keep_batches: Keep each prepared payload's events beside it (see
            `PreparedBatch.batch`).

    Attributes:
        offered: Events the batcher handed the lane (kept or dropped on arrival).
        written: Events the sink stored.
        dropped: Events dropped, by reason.
        raw: Events of the batches waiting for the preparer.
        queued: Events of the prepared payloads waiting for the writer.
        left_in_spool: Events a shutdown left in the spool for the next streamer.
        dead: Why a thread of the lane died, or None.
    """

    def __init__(
        self, max_buffer: int, cursor: SpillCursor | None = None, keep_batches: bool = False
    ) -> None:
        self.max_buffer = max_buffer
        self._keep_batches = keep_batches
        self._cond = threading.Condition(threading.Lock())
        self._cursor = cursor
        self.offered = 0
        self.written = 0
        self.dropped = dict.fromkeys(DROP_REASONS, 0)
        self.raw = 0
        self._inbox: deque[RawBatch] = deque()
        self._preparing: RawBatch | None = None
        self.queued = 0
        self._queue: deque[Queued] = deque()
        self._in_flight: PreparedBatch | SettledRange | None = None
        self.left_in_spool = 0
        self._closing = False
        self._preparer_done = False
        self._aborted = False
        self._left_from: int | None = None  # the oldest position an abort left in the spool
        self._unconfirmed: PreparedBatch | None = None  # in flight when an abort came
        self.dead: str | None = None
        self._telemetry: SelfTelemetry | None = None
        self._telemetry_ready: PreparedTelemetry | None = None

    def _drop(self, reason: str, count: int) -> None:
        self.dropped[reason] = self.dropped.get(reason, 0) + count

    def _backlog(self) -> int:
        preparing = self._preparing.count if self._preparing is not None else 0
        in_flight = self._in_flight
        flying = in_flight.count if isinstance(in_flight, PreparedBatch) else 0
        return self.raw + preparing + self.queued + flying

    def backlog(self) -> int:
        """Events held in memory: raw, being prepared, queued or in flight."""
        with self._cond:
            return self._backlog()

    def holding_back(self) -> int:
        """Events of this lane that count against `send` under ``overflow="block"``.

        Without a spool, its whole backlog. With one, only what it holds in
        memory beyond ``max_buffer`` (batches the spool could not take): the
        rest of a spooled lane's backlog is on disk, or can go there, so a
        sink that is down never holds the application, or the other sinks,
        back; a full spool does (the batcher waits for room).
        """
        with self._cond:
            backlog = self._backlog()
            return backlog if self._cursor is None else max(0, backlog - self.max_buffer)

    # --- the batcher's side: offered -> raw | spilled | dropped --------------------

    def offer(
        self, batch: EventBatch, start: int, overflow: str, spool_range: tuple[int, int] | None
    ) -> Overflowed:
        """Take a batch into ``raw``; when it does not fit, spill it or apply `overflow`."""
        count = len(batch)
        end = start + count
        with self._cond:
            if self._aborted:
                return Overflowed(0, 0)  # the abort counted everything taken before it
            self.offered += count
            room = self.max_buffer - self._backlog()
            cursor = self._cursor
            outcome = Overflowed(0, 0)
            if spool_range is not None and cursor is not None:
                if cursor.spilling or room < count:
                    cursor.spill(spool_range[0], spool_range[1], start, end)
                else:
                    self._inbox.append(RawBatch(batch, start, end, spool_range[1]))
                    self.raw += count
                    cursor.offered(spool_range[1])
            elif overflow == "block" or room >= count:
                self._inbox.append(RawBatch(batch, start, end))
                self.raw += count
            else:
                outcome = self._overflow(batch, start, overflow, room)
            self._cond.notify_all()
            return outcome

    def _overflow(self, batch: EventBatch, start: int, overflow: str, room: int) -> Overflowed:
        """Keep what fits of a batch that does not (``drop_oldest`` makes room first)."""
        count = len(batch)
        evicted = 0
        if overflow == "drop_oldest":
            evicted = self._evict_oldest(count - room)
            keep = min(count, max(room + evicted, 0))
            first = start + count - keep
        else:
            keep = max(room, 0)
            first = start
        if keep == count:
            self._inbox.append(RawBatch(batch, start, start + count))
        elif keep:
            part = batch.subset(first - start, first - start + keep)
            self._inbox.append(RawBatch(part, first, first + keep))
        self.raw += keep
        self._drop("overflow", count - keep)
        return Overflowed(count - keep, evicted)

    def _evict_oldest(self, needed: int) -> int:
        """Drop whole queued payloads, then raw batches, oldest first, until `needed` are freed."""
        freed = 0
        while freed < needed and self._queue:
            item = self._queue.popleft()
            if isinstance(item, PreparedBatch):
                self.queued -= item.count
                freed += item.count
        while freed < needed and self._inbox:
            raw = self._inbox.popleft()
            self.raw -= raw.count
            freed += raw.count
        self._drop("overflow", freed)
        return freed

    def drop_on_arrival(self, count: int, reason: str) -> None:
        """Count `count` events handed to the lane as ``offered`` and dropped at once."""
        with self._cond:
            if not self._aborted:
                self.offered += count
                self._drop(reason, count)

    def spool_dropped(self, end_seq: int) -> int:
        """The full spool deleted everything below `end_seq`: ``spilled`` -> dropped; how many."""
        with self._cond:
            if self._cursor is None:
                return 0
            lost = self._cursor.drop_through(end_seq)
            self._drop("overflow", lost)
            return lost

    def offer_telemetry(self, batch: EventBatch) -> None:
        """Hold self-telemetry for the preparer, replacing what it has not taken yet."""
        with self._cond:
            self._telemetry = SelfTelemetry(batch)
            self._cond.notify_all()

    def oldest_unfinished(self) -> int | None:
        """The position of the oldest event neither written nor dropped, or None.

        After an abort: the oldest event it left in the spool, or None.
        """
        with self._cond:
            if self._aborted:
                return self._left_from
            if self._in_flight is not None:
                return self._in_flight.start
            if self._queue:
                return self._queue[0].start
            if self._preparing is not None:
                return self._preparing.start
            if self._inbox:
                return self._inbox[0].start
            return self._cursor.oldest_position() if self._cursor is not None else None

    # --- the preparer's side: raw -> preparing -> queued -------------------------------

    def next_for_preparer(self) -> PreparerWork:
        """Wait for the preparer's next work; self-telemetry first, then batches oldest first."""
        with self._cond:
            while not self._aborted:
                telemetry, self._telemetry = self._telemetry, None
                if telemetry is not None:
                    return telemetry
                if self._inbox:
                    raw = self._inbox.popleft()
                    self.raw -= raw.count
                    self._preparing = raw
                    return raw
                due = self._cursor.due() if self._cursor is not None else None
                if due is not None and self._backlog() < self.max_buffer:
                    return SpilledRange(due)
                if self._closing and due is None:
                    break
                self._cond.wait(0.5 if due is not None else None)
            self._preparer_done = True
            self._cond.notify_all()
            return STOP

    def read_back(self, stored: StoredBatch | None) -> RawBatch | None:
        """Apply what reading a `SpilledRange` found: ``spilled`` -> ``preparing`` or dropped.

        Args:
            stored: The record read, or None when nothing is left on disk.

        Returns:
            The batch to prepare, or None when there is none (the records
            were gone or damaged: counted as ``corrupt``).
        """
        with self._cond:
            cursor = self._cursor
            if self._aborted or cursor is None:
                return None
            if stored is None:  # gone from disk: nothing left to read back
                self._drop("corrupt", cursor.discard_rest())
                return None
            spilled = cursor.take(stored)
            self._drop("corrupt", spilled.missing)
            if stored.batch is None:
                self._drop("corrupt", stored.end_seq - stored.first_seq)
                self._queue.append(DamagedRange(spilled.start, spilled.end, stored.end_seq))
                self._cond.notify_all()
                return None
            raw = RawBatch(stored.batch, spilled.start, spilled.end, stored.end_seq)
            self._preparing = raw
            return raw

    def prepared(self, raw: RawBatch, outcome: Prepared) -> None:
        """``preparing`` -> ``queued``, and the events ``prepare`` refused -> dropped."""
        with self._cond:
            if self._preparing is not raw:
                return  # abandoned by an abort, which counted it
            self._preparing = None
            for reason, count in outcome.dropped:
                self._drop(reason, count)
            if outcome.good:
                item = PreparedBatch(
                    outcome.payload,
                    outcome.good,
                    raw.start,
                    raw.end,
                    raw.batch.batch_id,
                    raw.spool_end,
                    batch=in_payload(raw.batch, outcome) if self._keep_batches else None,
                )
                self._queue.append(item)
                self.queued += outcome.good
            elif raw.spool_end is not None:
                self._queue.append(RefusedRange(raw.start, raw.end, raw.spool_end))
            self._cond.notify_all()

    def telemetry_prepared(self, telemetry: PreparedTelemetry) -> None:
        """Hold prepared self-telemetry for the writer, replacing what it has not taken yet."""
        with self._cond:
            self._telemetry_ready = telemetry
            self._cond.notify_all()

    # --- the writer's side: queued -> in_flight -> written | dropped -------------------

    def next_for_writer(self, probe_after: float | None) -> WriterWork:
        """Wait for the writer's next work, oldest first.

        Args:
            probe_after: Seconds of idleness after which a probe is due
                (the sink is disconnected), or None to wait without end.
        """
        with self._cond:
            while not self._aborted:
                telemetry, self._telemetry_ready = self._telemetry_ready, None
                if telemetry is not None and not self._closing:
                    return telemetry
                if self._queue:
                    item = self._queue.popleft()
                    if isinstance(item, PreparedBatch):
                        self.queued -= item.count
                    self._in_flight = item
                    return item
                if self._closing and self._preparer_done:
                    break
                if not self._cond.wait(probe_after) and probe_after is not None:
                    return PROBE_DUE
            return STOP

    def finish(self, item: PreparedBatch, reason: str, written: int) -> Done:
        """``in_flight`` -> written, and the rest dropped as ``rejected`` or for `reason`.

        A write an abort counted as ``unconfirmed`` while it was in flight is
        counted again when it ends after all: what it wrote moves to written,
        the rest to its reason.
        """
        lost = item.count - written
        refused = min(item.rejected, lost) if reason else 0
        with self._cond:
            if item is self._unconfirmed:
                self._unconfirmed = None
                self.dropped["unconfirmed"] -= item.count
            elif self._in_flight is not item:
                return Done(counted=False)
            else:
                self._in_flight = None
            self.written += written
            self._drop("rejected", refused)
            if lost - refused:
                self._drop(reason, lost - refused)
            self._cond.notify_all()
            return Done(counted=True)

    def settle(self, item: SettledRange) -> Done:
        """A range with nothing to write has had its turn; it leaves ``in_flight``."""
        with self._cond:
            if self._in_flight is not item:
                return Done(counted=False)
            self._in_flight = None
            self._cond.notify_all()
            return Done(counted=True)

    def retry_later(self, item: PreparedBatch) -> bool:
        """``in_flight`` -> ``queued`` again, first in line (a spooled payload is never dropped)."""
        with self._cond:
            if self._in_flight is not item:
                return False
            self._in_flight = None
            self._queue.appendleft(item)
            self.queued += item.count
            return True

    # --- the end --------------------------------------------------------------------

    def thread_died(self, why: str) -> None:
        """A thread of the lane died: health says `why`, and the writer stops once idle."""
        with self._cond:
            self.dead = why
            self._preparer_done = True
            self._cond.notify_all()

    def close_input(self) -> None:
        """No more batches will come: the threads stop once everything is done."""
        with self._cond:
            self._closing = True
            self._cond.notify_all()

    def abort(self, taken: int, in_hand_durable: bool, *, write_under_way: bool = True) -> int:
        """Give up: every unfinished event -> ``left_in_spool`` when spooled, else dropped.

        Dropped as ``shutdown``, but for the payload being written (not
        spooled) while a write of it is under way, whose fate the sink alone
        knows: ``unconfirmed``, until that write ends (`finish`).

        Args:
            taken: Events the batcher has taken into batches so far; those
                not offered to this lane yet are given up too, and later
                offers are ignored.
            in_hand_durable: Whether the batch the batcher holds is in the spool.
            write_under_way: Whether the writer may be inside the sink's
                ``write`` (False: it was waiting to retry after a failure).

        Returns:
            The number of events dropped (``shutdown`` and ``unconfirmed``).
        """
        with self._cond:
            self._aborted = True
            self._closing = True
            held: list[RawBatch | PreparedBatch] = [*self._inbox]
            if self._preparing is not None:
                held.append(self._preparing)
            flying = self._in_flight
            unspooled = isinstance(flying, PreparedBatch) and (
                flying.spool_end is None or not self._cursor
            )
            if write_under_way and unspooled and isinstance(flying, PreparedBatch):
                # Handed to the sink, its fate unknown: counted again if the write ends.
                self._unconfirmed = flying
                self._drop("unconfirmed", flying.count)
                flying = None
            held += [i for i in (flying, *self._queue) if isinstance(i, PreparedBatch)]
            unfinished = [(item.start, item.count, item.spool_end is not None) for item in held]
            cursor = self._cursor
            kept_from = [start for start, count, durable in unfinished if durable and count]
            oldest = None if cursor is None else cursor.oldest_position()
            if oldest is not None:
                kept_from.append(oldest)
            unfinished.append((-1, max(0, taken - self.offered), in_hand_durable))
            lost = sum(count for _, count, durable in unfinished if not durable)
            kept = sum(count for _, count, durable in unfinished if durable)
            if cursor is not None:
                kept += cursor.give_up()
                self._left_from = min(kept_from, default=None)
            else:
                lost, kept = lost + kept, 0
            self.offered = max(self.offered, taken)
            self._inbox.clear()
            self._queue.clear()
            self.raw = self.queued = 0
            self._preparing = self._in_flight = None
            self._drop("shutdown", lost)
            self.left_in_spool += kept
            self._cond.notify_all()
            unconfirmed = self._unconfirmed
            return lost + (0 if unconfirmed is None else unconfirmed.count)

    # --- health ----------------------------------------------------------------------

    def snapshot(
        self,
        name: str,
        *,
        accepted: int,
        buffered: int,
        popped: int,
        upstream_dropped: dict[str, int],
        write: WriteRecord,
        unhealthy_after: int,
    ) -> SinkHealth:
        """Return the sink's `SinkHealth`, adding what the streamer holds for it.

        Args:
            name: The sink's name.
            accepted: Events the streamer accepted in total.
            buffered: Events accepted but not yet taken into a batch.
            popped: Events taken into batches so far; those not yet offered
                to this lane are pending for it.
            upstream_dropped: Drops counted before the lanes (by reason).
            write: The lane's record of writes and probes.
            unhealthy_after: Consecutive failures after which it is unhealthy.
        """
        with self._cond:
            dropped = dict(self.dropped)
            for reason, count in upstream_dropped.items():
                dropped[reason] = dropped.get(reason, 0) + count
            cursor = self._cursor
            recovered = cursor.recovered if cursor is not None else 0
            spilled = cursor.spilled if cursor is not None else 0
            return SinkHealth(
                name=name,
                connected=write.connected,
                healthy=write.connected
                and self.dead is None
                and write.consecutive_failures < unhealthy_after,
                last_write_ns=write.last_write_ns,
                events_accepted=accepted + recovered,
                events_written=self.written,
                events_dropped=sum(dropped.values()),
                dropped_by_reason=dropped,
                write_errors=write.write_errors,
                retries=write.retries,
                pending=buffered + (popped - self.offered) + self._backlog(),
                consecutive_failures=write.consecutive_failures,
                last_error=self.dead or write.last_error,
                last_write_latency_ms=write.last_latency_ms,
                spooled=self.left_in_spool + spilled,
            )
