"""One lane per sink: a preparer thread, a queue of payloads and a writer thread.

The batcher hands a lane raw batches (`Lane.offer`) and returns at once. The
lane's preparer thread turns each batch into the sink's payload
(`Sink.prepare`) and queues it; its writer thread writes the payloads one at
a time, with retry. Both threads run beside the application and beside every
other lane, so a sink whose ``prepare`` or ``write`` hangs, is slow or raises
delays nothing but itself. Pending payloads wait in their prepared (often
compressed) form, however long the writer is stuck.

The invariant. Everything a lane counts lives in its `LaneLedger` and
changes under the ledger's one lock, and for every lane at every moment::

    offered + recovered == written + dropped + raw + preparing + queued
                           + in_flight + spilled + left_in_spool

``offered`` counts every event the batcher handed the lane (kept, or
dropped on arrival); ``raw`` the events of batches waiting for the
preparer; ``preparing`` those of the batch being prepared; ``queued`` those
of the prepared payloads waiting for the writer; ``in_flight`` those of the
payload being written. With a spool, ``recovered`` counts the events an
earlier run left for this sink, ``spilled`` those kept only on disk until
there is room in memory (`SpillCursor`), and ``left_in_spool`` what a
shutdown left on disk for the next streamer. Health shows ``spilled +
left_in_spool`` as ``spooled``. Self-telemetry is in no term.

The room, and who owns what:

- `work`: the work the threads hand each other, one class per kind
  (`RawBatch`, `SpilledRange`, `SelfTelemetry`, `PreparedBatch`,
  `PreparedTelemetry`, `DamagedRange`, `RefusedRange`, `ProbeDue`, `Stop`);
- `ledger`: `LaneLedger`, the owner of the lock, of every term above and of
  the `SpillCursor`; overflow (``max_buffer``, the three policies) is its
  `LaneLedger.offer`;
- `lane`: `Lane`, the two threads' loops and the warnings;
- `writer`: `SinkWriter`, the owner of the `WriteState` (health of the
  writes) and of the waits a shutdown interrupts; retry is its
  `SinkWriter.deliver` under `RetryConfig` (`retry`);
- `prepare`: `prepare_isolated`, which drops only the events a sink cannot
  encode;
- `spill`: `SpillCursor`, where the lane stands in the spool.

The queue of prepared payloads is a deque inside the ledger, not a pluggable
seam: storage that outlives the process (the spool) plugs in before the
queue, through the `SpillCursor`, because what it must keep is the batch as
accepted, not a sink's payload.
"""

from __future__ import annotations

from metricstream.streamer.engine.lane.lane import Lane
from metricstream.streamer.engine.lane.ledger import LaneLedger
from metricstream.streamer.engine.lane.retry import Retrier, RetryConfig
from metricstream.streamer.engine.lane.spill import SpillCursor

__all__ = ["Lane", "LaneLedger", "Retrier", "RetryConfig", "SpillCursor"]
