"""The write-ahead spool: batches on disk until every sink is done with them.

- `Spool` (`metricstream.spool.spool`): append, read back by sequence number,
  per-sink acknowledged positions, deletion of what every sink is done with;
- `SegmentLog` (`.segments`): the segment files, checked at open;
- the on-disk format (`.format`), documented there.

`EventStreamer(spool_dir=...)` uses it; `metricstream spool inspect|replay`
reads it.
"""

from __future__ import annotations

from metricstream.spool.segments import FSYNC_MODES, Damage, SegmentLog, StoredBatch
from metricstream.spool.spool import Spool

__all__ = ["FSYNC_MODES", "Damage", "SegmentLog", "Spool", "StoredBatch"]
