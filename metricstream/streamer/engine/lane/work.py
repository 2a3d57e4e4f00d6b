"""The work a lane's threads hand each other: one small class per kind, never a sentinel.

The batcher gives the lane raw batches. The preparer takes, from the
`LaneLedger`, one of::

    RawBatch          a batch to prepare (the sink's ``prepare``)
    SpilledRange      events kept only in the spool, to read back first
    SelfTelemetry     self-telemetry to prepare, outside the accounting
    Stop              nothing more will come: the thread exits

and the writer one of::

    PreparedBatch     a payload to write, with retry, and count
    PreparedTelemetry self-telemetry to write once, never counted
    SettledRange      events of the spool already counted as dropped: acknowledge
                      their range in its turn (a `DamagedRange` read back
                      damaged, a `RefusedRange` whose every event ``prepare``
                      refused)
    ProbeDue          the sink is disconnected and idle: run its health probe
    Stop              nothing more will come: the thread exits

Positions (``start``, ``end``) locate events in the streamer's sequence of
events taken from its buffer, which is how a flush knows what is done; spool
sequence numbers (``spool_end``) locate them in the spool, which is how the
lane acknowledges what it is done with there.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Final

from metricstream.contract import EventBatch

__all__ = [
    "PROBE_DUE",
    "STOP",
    "DamagedRange",
    "PreparedBatch",
    "PreparedTelemetry",
    "PreparerWork",
    "ProbeDue",
    "Queued",
    "RawBatch",
    "RefusedRange",
    "SelfTelemetry",
    "SettledRange",
    "SpilledRange",
    "Stop",
    "WriterWork",
]


@dataclass(slots=True, eq=False)
class RawBatch:
    """A batch handed to the lane, waiting for its preparer.

    Attributes:
        batch: The events (shared with the other lanes; never changed).
        start: The position of its first event.
        end: The position after its last event.
        spool_end: The spool sequence number after its last event when it
            is in the spool; None when it lives in memory only.
    """

    batch: EventBatch
    start: int
    end: int
    spool_end: int | None = None

    @property
    def count(self) -> int:
        """Events in the batch."""
        return len(self.batch)


@dataclass(slots=True, frozen=True)
class SpilledRange:
    """Events kept only in the spool: read the record holding sequence number `seq` back.

    Attributes:
        seq: The spool sequence number to read from.
    """

    seq: int


@dataclass(slots=True, frozen=True)
class SelfTelemetry:
    """A batch of self-telemetry to prepare; no term of the lane's identity counts it.

    Attributes:
        batch: The ``metricstream_internal`` events.
    """

    batch: EventBatch


@dataclass(slots=True, eq=False)
class PreparedBatch:
    """A prepared payload waiting for the writer (``queued``), or being written (``in_flight``).

    Attributes:
        payload: What the sink's ``prepare`` returned.
        count: Events in the payload.
        start: The position of the batch's first event.
        end: The position after its last event.
        batch_id: The batch's id.
        spool_end: The spool sequence number after its last event when it
            is in the spool (acknowledged there once done); None otherwise.
        written: Events the sink reported stored so far (a batch written in parts).
        rejected: Events the sink reported refused for good so far.
        batch: The events of the payload, kept only when the streamer must
            know which events a write dropped (``on_drop``, dead letters).
    """

    payload: Any
    count: int
    start: int
    end: int
    batch_id: str
    spool_end: int | None = None
    written: int = 0
    rejected: int = 0
    batch: EventBatch | None = None


@dataclass(slots=True, frozen=True)
class PreparedTelemetry:
    """Self-telemetry prepared for the sink: written once, never retried or counted.

    Attributes:
        payload: What the sink's ``prepare`` returned.
        batch_id: The batch's id.
    """

    payload: Any
    batch_id: str


@dataclass(slots=True, frozen=True)
class SettledRange:
    """Events of the spool already counted as dropped, with nothing to write.

    The range waits in the queue so that the spool acknowledges it only
    after every payload before it.

    Attributes:
        start: The position of its first event (`RECOVERED` for what an earlier run left).
        end: The position after its last event.
        spool_end: The spool sequence number after its last event.
    """

    start: int
    end: int
    spool_end: int


@dataclass(slots=True, frozen=True)
class DamagedRange(SettledRange):
    """Spool records that could not be read back (their events are dropped as ``corrupt``)."""


@dataclass(slots=True, frozen=True)
class RefusedRange(SettledRange):
    """A spooled batch whose every event ``prepare`` refused (dropped under its reason)."""


class ProbeDue:
    """The sink is disconnected and nothing waits to be written: time to probe it."""

    __slots__ = ()

    def __repr__(self) -> str:
        return "PROBE_DUE"


class Stop:
    """The lane is closing or gave up, and its thread has nothing left to do."""

    __slots__ = ()

    def __repr__(self) -> str:
        return "STOP"


PROBE_DUE: Final = ProbeDue()
"""The one `ProbeDue`."""

STOP: Final = Stop()
"""The one `Stop`."""

PreparerWork = RawBatch | SpilledRange | SelfTelemetry | Stop
"""What the preparer thread takes from the ledger."""

WriterWork = PreparedBatch | PreparedTelemetry | SettledRange | ProbeDue | Stop
"""What the writer thread takes from the ledger."""

Queued = PreparedBatch | SettledRange
"""What waits in a lane's queue for the writer, oldest first."""
