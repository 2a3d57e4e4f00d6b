"""The aggregation core: series, windows and sketches, without threads or I/O.

Two things stand on it: the in-process aggregator of the streamer (counters,
gauges, histograms, distributions and sets flushed once per interval) and
the relay's event-time windows. It imports only the event model and the
base modules.

- `Aggregator` records on the application's threads and returns one event
  per series and interval window (`metricstream.aggregate.recorder`);
- `EventTimeWindows` groups and aggregates events per tumbling, sliding or
  session window of event time, closed by a `WatermarkTracker`
  (`metricstream.aggregate.event_time`);
- the accumulators both use (`metricstream.aggregate.accumulators`) and the
  series index with its cardinality limit (`metricstream.aggregate.series`).

Error bounds: counts, sums of ints, histogram buckets, min, max and last are
exact. Quantiles (``p50``, ``p90``, ``p99``, ``p999``) come from a DDSketch
and are each within 1% of the exact value of rank ``floor(q*(n-1))`` among
the sorted values. A set's ``unique`` is exact up to its exact limit (1,000
members by default), then a HyperLogLog estimate with a relative standard
error of about 1.6% (within 4.9% for 99.7% of sets). Both sketches come
with the ``aggregate`` extra: ``pip install 'metricstream[aggregate]'``.
"""

from __future__ import annotations

from metricstream.aggregate._parse import (
    AGGREGATE_FUNCTIONS,
    QUANTILES,
    AggregateSpec,
    parse_aggregates,
    parse_by,
    parse_duration,
)
from metricstream.aggregate.accumulators import (
    DEFAULT_BUCKETS,
    DEFAULT_EXACT_UNIQUE,
    Buckets,
    Quantiles,
    Stats,
    Total,
    Unique,
    bucket_bounds,
)
from metricstream.aggregate.event_time import EventTimeWindows, WindowResult
from metricstream.aggregate.recorder import Aggregator, CountRecorder, HistogramRecorder
from metricstream.aggregate.series import OVERFLOW_TAG
from metricstream.aggregate.watermark import WatermarkTracker
from metricstream.aggregate.windows import (
    Session,
    Sliding,
    Tumbling,
    Window,
    WindowSpec,
    parse_window,
    session,
    sliding,
    tumbling,
)

__all__ = [
    "AGGREGATE_FUNCTIONS",
    "DEFAULT_BUCKETS",
    "DEFAULT_EXACT_UNIQUE",
    "OVERFLOW_TAG",
    "QUANTILES",
    "AggregateSpec",
    "Aggregator",
    "Buckets",
    "CountRecorder",
    "EventTimeWindows",
    "HistogramRecorder",
    "Quantiles",
    "Session",
    "Sliding",
    "Stats",
    "Total",
    "Tumbling",
    "Unique",
    "WatermarkTracker",
    "Window",
    "WindowResult",
    "WindowSpec",
    "bucket_bounds",
    "parse_aggregates",
    "parse_by",
    "parse_duration",
    "parse_window",
    "session",
    "sliding",
    "tumbling",
]
