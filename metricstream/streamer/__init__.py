"""Everything between `send()` and a sink: batching, lanes, retry, health."""

from __future__ import annotations

from metricstream.streamer.batch import EventBatch
from metricstream.streamer.compression import Compression
from metricstream.streamer.correlation import (
    correlation,
    current_correlation_id,
    generate_correlation_id,
)
from metricstream.streamer.health import DROP_REASONS, SinkHealth, StreamerHealth
from metricstream.streamer.retry import Retrier, RetryConfig
from metricstream.streamer.streamer import EventStreamer, OverflowPolicy

__all__ = [
    "DROP_REASONS",
    "Compression",
    "EventBatch",
    "EventStreamer",
    "OverflowPolicy",
    "Retrier",
    "RetryConfig",
    "SinkHealth",
    "StreamerHealth",
    "correlation",
    "current_correlation_id",
    "generate_correlation_id",
]
