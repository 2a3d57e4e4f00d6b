"""The self-telemetry slot of a lane: batches a sink receives but nobody counts.

Self-telemetry (``self_metrics_interval``) describes the streamer's
accounting, so it must not change it: its events are never accepted,
written, dropped or pending. They still travel on the lane's own threads
(the preparer prepares, the writer writes), because a sink is never used
from two threads at once; they only bypass the lane's counters and its
`PendingQueue`:

- a lane holds at most one such batch raw and one prepared; a newer batch
  replaces an older one, which loses only resolution, since every batch
  carries cumulative totals. Behind a dead sink they take constant memory;
- the prepared payload is an `Item` with no events (``count == 0``), so
  every term of the lane's identity is unchanged by it, and a flush never
  waits for it;
- its write is tried once: no retry, no counter, no change of health. A
  failure is logged (rate-limited, at DEBUG level, since the user's own
  writes report a failing sink) and the batch is gone;
- once the lane is closing, a prepared batch is discarded, so self-telemetry
  never delays a shutdown.
"""

from __future__ import annotations

import logging
import threading

from metricstream._log import RateLimitedLog
from metricstream._secrets import scrub_secrets
from metricstream.contract import EventBatch, Sink
from metricstream.streamer.engine.queue import Item

__all__ = ["UncountedSlot"]


class UncountedSlot:
    """One lane's self-telemetry batch, raw and prepared (see the module doc).

    Args:
        sink: The lane's sink.
        name: Its name, for the log.
        cond: The lane's condition; every state change happens under it and
            wakes the lane's threads.
        warnings: The lane's rate-limited log.
    """

    def __init__(
        self, sink: Sink, name: str, cond: threading.Condition, warnings: RateLimitedLog
    ) -> None:
        self._sink = sink
        self._name = name
        self._cond = cond
        self._warnings = warnings
        self._raw: EventBatch | None = None
        self._ready: Item | None = None

    @property
    def waiting(self) -> bool:
        """A raw batch waits for the preparer (read with the lane's lock held)."""
        return self._raw is not None

    def offer(self, batch: EventBatch) -> None:
        """Hand over a batch for the sink, replacing one not yet prepared."""
        with self._cond:
            self._raw = batch
            self._cond.notify_all()

    def prepare(self) -> None:
        """Prepare the raw batch, if any (the preparer thread, without the lock)."""
        with self._cond:
            batch, self._raw = self._raw, None
        if batch is None:
            return
        try:
            payload = self._sink.prepare(batch)
        except Exception as exc:
            self._warnings.warning(
                (self._name, "self-metrics-prepare"),
                "metricstream: sink %r could not encode the self-telemetry events: %s",
                self._name,
                scrub_secrets(str(exc)),
            )
            return
        with self._cond:
            self._ready = Item(payload, 0, -1, -1, batch.batch_id)
            self._cond.notify_all()

    def take_locked(self, closing: bool) -> Item | None:
        """Return the prepared payload for the writer, or None (lock held).

        Args:
            closing: The lane is closing: the payload is discarded instead.
        """
        item, self._ready = self._ready, None
        return None if closing else item

    def write(self, item: Item) -> None:
        """Write a payload once; a failure is logged and forgotten."""
        try:
            self._sink.write(item.payload)
        except Exception as exc:
            self._warnings.log(
                logging.DEBUG,
                (self._name, "self-metrics-write"),
                "metricstream: writing self-telemetry to sink %r failed: %s",
                self._name,
                scrub_secrets(f"{type(exc).__name__}: {exc}"),
            )
