"""metricstream: record tagged measurements cheaply; deliver them everywhere.

import metricstream as ms

ev = ms.event_from_sample("http.latency_ms", 12.5, {"route": "/api"})
ev.to_influx_line()
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

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
    BackpressureError,
    ConfigError,
    InvalidEventError,
    LineProtocolError,
    MetricStreamError,
    PermanentSinkError,
    SchemaVersionError,
    SinkError,
    StreamerClosedError,
    TransientSinkError,
)
from metricstream.streamer import (
    DROP_REASONS,
    BatchReceipt,
    EventStreamer,
    RetryConfig,
    SinkHealth,
    StreamerHealth,
    correlation,
    current_correlation_id,
    generate_correlation_id,
)

if TYPE_CHECKING:
    __version__: str
    """The installed version of metricstream (from the package metadata)."""


def __getattr__(name: str) -> Any:
    """``__version__``: the installed version, read from the package metadata on first use.

    Reading the metadata imports `importlib.metadata` (and with it the email
    parser), which ``import metricstream`` does not need.
    """
    if name == "__version__":
        import importlib.metadata

        version = importlib.metadata.version("metricstream")
        globals()["__version__"] = version
        return version
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "BackpressureError",
    "BatchReceipt",
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
    "StreamerClosedError",
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
