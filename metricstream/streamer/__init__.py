"""Everything between `send()` and a sink: batching, lanes, retry, health.

- `EventStreamer` (`metricstream.streamer.streamer`): the facade;
- `StreamerConfig` (`.config`): its validated options;
- the pipeline (`._pipeline`): buffer, batcher thread and one lane per sink
  (`._lane`), each keeping prepared payloads in a `PendingQueue` (`.queue`);
- `RetryConfig` (`.retry`), correlation ids (`.correlation`), health
  snapshots (`.health`), exit and fork handling (`.lifecycle`);
- operations (`._operations`): the health endpoint (`.health_server`, with
  Prometheus metrics from `StreamerCollector` in `.prometheus`),
  self-telemetry (`.self_metrics`), configuration from the environment
  (`.env`) and the asyncio methods.
"""

from __future__ import annotations

from metricstream.codecs.compression import Compression
from metricstream.contract import EventBatch
from metricstream.streamer.config import OverflowPolicy, StreamerConfig
from metricstream.streamer.correlation import (
    correlation,
    current_correlation_id,
    generate_correlation_id,
)
from metricstream.streamer.health import DROP_REASONS, SinkHealth, StreamerHealth
from metricstream.streamer.prometheus import StreamerCollector
from metricstream.streamer.retry import Retrier, RetryConfig
from metricstream.streamer.streamer import EventStreamer

__all__ = [
    "DROP_REASONS",
    "Compression",
    "EventBatch",
    "EventStreamer",
    "OverflowPolicy",
    "Retrier",
    "RetryConfig",
    "SinkHealth",
    "StreamerCollector",
    "StreamerConfig",
    "StreamerHealth",
    "correlation",
    "current_correlation_id",
    "generate_correlation_id",
]
