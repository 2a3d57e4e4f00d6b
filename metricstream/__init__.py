"""metricstream: record tagged measurements cheaply; deliver them everywhere.

import metricstream as ms

ev = ms.event_from_sample("http.latency_ms", 12.5, {"route": "/api"})
ev.to_influx_line()
"""

from __future__ import annotations

import importlib.metadata

from metricstream import codecs, sinks, testing
from metricstream.codecs.compression import Compression
from metricstream.codecs.lineprotocol import parse_lines
from metricstream.contract import CompressionAware, EventBatch, ForkAware, Sink
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
from metricstream.streamer import (
    DROP_REASONS,
    EventStreamer,
    RetryConfig,
    SinkHealth,
    StreamerHealth,
    correlation,
    current_correlation_id,
    generate_correlation_id,
)

__version__: str = importlib.metadata.version("metricstream")
"""The installed version of metricstream (from the package metadata)."""

__all__ = [
    "Compression",
    "CompressionAware",
    "ConfigError",
    "DROP_REASONS",
    "EventBatch",
    "EventStreamer",
    "FieldValue",
    "ForkAware",
    "InvalidEventError",
    "LineProtocolError",
    "MetricEvent",
    "MetricStreamError",
    "PermanentSinkError",
    "RetryConfig",
    "SCHEMA_VERSION",
    "SchemaVersionError",
    "SharedTags",
    "Sink",
    "SinkError",
    "SinkHealth",
    "StreamerHealth",
    "TransientSinkError",
    "UInt",
    "__version__",
    "codecs",
    "correlation",
    "current_correlation_id",
    "event_from_sample",
    "generate_correlation_id",
    "parse_lines",
    "sinks",
    "testing",
]
