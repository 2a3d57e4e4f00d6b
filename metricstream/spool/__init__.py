"""The write-ahead spool: batches on disk until every sink is done with them.

- `Spool` (`metricstream.spool.spool`): append, read back by sequence number,
  per-sink acknowledged positions, deletion of what every sink is done with;
- `PositionFiles` (`.positions`): the position files, the registry of sinks,
  and which saved positions can be trusted;
- `SegmentLog` (`.segments`): the segment files, checked at open;
- the on-disk format (`.format`), documented there;
- `inspect_spool` (`.inspect`): what a spool holds, per sink.

`EventStreamer(spool_dir=...)` uses it; `metricstream spool inspect|replay`
reads it.
"""

from __future__ import annotations

from metricstream.spool.inspect import SinkBacklog, SpoolReport, inspect_spool
from metricstream.spool.positions import PositionFiles
from metricstream.spool.segments import FSYNC_MODES, Damage, SegmentLog, StoredBatch
from metricstream.spool.spool import ACK_INTERVAL, UNCLAIMED_RECORD, Spool, rewind

__all__ = [
    "ACK_INTERVAL",
    "FSYNC_MODES",
    "Damage",
    "PositionFiles",
    "SegmentLog",
    "SinkBacklog",
    "Spool",
    "SpoolReport",
    "StoredBatch",
    "UNCLAIMED_RECORD",
    "inspect_spool",
    "rewind",
]
