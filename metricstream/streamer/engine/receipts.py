"""`BatchReceipt`: what became of a batch that `EventStreamer.send_batch` accepted.

A service that acknowledges writes (the event store) or commits offsets (the
Kafka relay) hands each request or each polled batch to ``send_batch`` and
answers from the receipt::

    receipt = streamer.send_batch(events, batch_id="orders-3-18230")
    if receipt.wait_durable(timeout=5):      # on disk, per spool_fsync
        acknowledge()
    if receipt.wait_delivered(timeout=30):   # every sink wrote or dropped it
        commit_offset()

- *durable*: the batch is in the spool and synced as ``spool_fsync`` says
  (``batch``: forced to disk before `send_batch` returned; ``interval``:
  at the next sync, about a second later; ``never``: appended, left to the
  operating system). Without a spool nothing is durable, and asking raises
  `ConfigError`: a service must not acknowledge what a crash would lose.
  A batch the spool could not write (a disk error, logged) is delivered
  from memory and never durable.
- *delivered*: every sink has written or dropped (counted, with a reason)
  every event of the batch. Dropped counts: health tells which it was. A
  shutdown that leaves the batch in the spool for the next streamer does
  not deliver it.

The waits end early when the streamer's shutdown is over (the answer is
then final). A receipt belongs to the process that sent the batch: in a
forked child it answers what it last learned in the parent and never waits,
since the threads that deliver the batch stayed in the parent.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Protocol

from metricstream.exceptions import ConfigError

__all__ = ["BatchReceipt", "ReceiptSource"]


class ReceiptSource(Protocol):
    """What a receipt asks of the pipeline that took its batch."""

    def done_through(self, marker: int) -> bool:
        """Every event before position `marker` is written or dropped on every sink."""
        ...

    def durable_through(self, spool_end: int) -> bool:
        """Every spool event below `spool_end` is synced as the fsync mode says."""
        ...

    def wait_for(self, predicate: Callable[[], bool], timeout: float | None) -> bool:
        """Wait until `predicate` holds, `timeout` passes or the pipeline is finished."""
        ...


class _Answer:
    """One question about a batch whose answer, once yes, stays yes.

    In another process than the one that sent the batch (a forked child),
    it answers what it last learned and never asks again.
    """

    __slots__ = ("_check", "_pid", "_source", "yes")

    def __init__(self, source: ReceiptSource, check: Callable[[], bool]) -> None:
        self._source = source
        self._check = check
        self._pid = os.getpid()
        self.yes = False

    def now(self) -> bool:
        if not self.yes and os.getpid() == self._pid and self._check():
            self.yes = True
        return self.yes

    def wait(self, timeout: float | None) -> bool:
        if self.now() or os.getpid() != self._pid:
            return self.yes
        if self._source.wait_for(self._check, timeout):
            self.yes = True
        return self.yes


class BatchReceipt:
    """Tells whether a batch given to `EventStreamer.send_batch` is durable and delivered.

    Made by `send_batch`; see the module documentation for what the answers
    mean.

    Attributes:
        batch_id: The batch's id, as the sinks received it.
        events: How many events it holds.
    """

    __slots__ = (
        "_delivered",
        "_durable",
        "_end",
        "_source",
        "_spool_end",
        "_spooled",
        "batch_id",
        "events",
    )

    def __init__(
        self,
        source: ReceiptSource,
        batch_id: str,
        events: int,
        end: int,
        *,
        spooled: bool,
        spool_end: int | None,
    ) -> None:
        self.batch_id = batch_id
        self.events = events
        self._end = end
        self._spooled = spooled
        self._spool_end = spool_end
        self._durable = _Answer(source, self._is_durable)
        self._delivered = _Answer(source, self._is_delivered)
        self._source = source

    def __repr__(self) -> str:
        return f"BatchReceipt(batch_id={self.batch_id!r}, events={self.events})"

    def _is_durable(self) -> bool:
        if not self.events:
            return True
        spool_end = self._spool_end
        return spool_end is not None and self._source.durable_through(spool_end)

    def _is_delivered(self) -> bool:
        return not self.events or self._source.done_through(self._end)

    def _require_spool(self) -> None:
        if not self._spooled:
            raise ConfigError(
                "spool_dir",
                "durable() needs a spool: without spool_dir= a batch lives in memory "
                "until it is delivered (use delivered() instead)",
            )

    def durable(self) -> bool:
        """True once the batch is in the spool, synced as ``spool_fsync`` says. Never waits.

        Raises:
            ConfigError: If the streamer has no spool (nothing is ever durable).
        """
        self._require_spool()
        return self._durable.now()

    def wait_durable(self, timeout: float | None = None) -> bool:
        """Wait until the batch is durable, at most `timeout` seconds (None: no limit).

        Returns:
            True once durable; False if the timeout passed first, if the
            spool could not write it, or if the shutdown ended first.

        Raises:
            ConfigError: If the streamer has no spool.
        """
        self._require_spool()
        if self._spool_end is None and self.events:
            return False  # the spool failed to write it: it never will be durable
        return self._durable.wait(timeout)

    def delivered(self) -> bool:
        """True once every sink has written or dropped every event of the batch. Never waits."""
        return self._delivered.now()

    def wait_delivered(self, timeout: float | None = None) -> bool:
        """Wait until the batch is delivered, at most `timeout` seconds (None: no limit).

        Returns:
            True once delivered; False if the timeout passed first or the
            shutdown ended with the batch undelivered (for example left in
            the spool for the next streamer).
        """
        return self._delivered.wait(timeout)
