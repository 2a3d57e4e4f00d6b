"""metricstream: record tagged measurements cheaply; deliver them everywhere.

import metricstream as ms

ev = ms.event_from_sample("http.latency_ms", 12.5, {"route": "/api"})
ev.to_influx_line()
"""

from __future__ import annotations

from metricstream import sinks, testing
from metricstream.event import (
    SCHEMA_VERSION,
    FieldValue,
    MetricEvent,
    SharedTags,
    UInt,
    event_from_sample,
)
from metricstream.exceptions import (
    ConfigError,
    InvalidEventError,
    LineProtocolError,
    MetricStreamError,
    PermanentSinkError,
    SchemaVersionError,
    SinkError,
    TransientSinkError,
)
from metricstream.lineprotocol import parse_lines
from metricstream.streamer import (
    DROP_REASONS,
    Compression,
    EventBatch,
    EventStreamer,
    RetryConfig,
    SinkHealth,
    StreamerHealth,
    correlation,
    current_correlation_id,
    generate_correlation_id,
)

__version__ = "0.1.0"

__all__ = [
    "Compression",
    "ConfigError",
    "DROP_REASONS",
    "EventBatch",
    "EventStreamer",
    "FieldValue",
    "InvalidEventError",
    "LineProtocolError",
    "MetricEvent",
    "MetricStreamError",
    "PermanentSinkError",
    "RetryConfig",
    "SCHEMA_VERSION",
    "SchemaVersionError",
    "SharedTags",
    "SinkError",
    "SinkHealth",
    "StreamerHealth",
    "TransientSinkError",
    "UInt",
    "__version__",
    "correlation",
    "current_correlation_id",
    "event_from_sample",
    "generate_correlation_id",
    "parse_lines",
    "sinks",
    "testing",
]
