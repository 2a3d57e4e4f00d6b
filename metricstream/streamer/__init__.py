"""Everything between `send()` and a sink: batching, lanes, retry, health.

- `EventStreamer` (`metricstream.streamer.streamer`): the facade;
- `StreamerConfig` (`.config`): its options, each declared once there;
- the engine (`.engine`): buffer, batcher thread and one lane per sink,
  with retry (`RetryConfig`), and the receipts of whole batches
  (`BatchReceipt`);
- correlation ids (`.correlation`) and health snapshots (`.health`);
- the operations (`.operations`): instruments, the health endpoint (with
  Prometheus metrics from `StreamerCollector`), self-telemetry,
  configuration from the environment, exit and fork handling, asyncio.
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
from metricstream.streamer.engine.lane.retry import Retrier, RetryConfig
from metricstream.streamer.engine.receipts import BatchReceipt
from metricstream.streamer.health import DROP_REASONS, SinkHealth, SpoolHealth, StreamerHealth
from metricstream.streamer.operations.prometheus import StreamerCollector
from metricstream.streamer.streamer import EventStreamer

__all__ = [
    "DROP_REASONS",
    "BatchReceipt",
    "Compression",
    "EventBatch",
    "EventStreamer",
    "OverflowPolicy",
    "Retrier",
    "RetryConfig",
    "SinkHealth",
    "SpoolHealth",
    "StreamerCollector",
    "StreamerConfig",
    "StreamerHealth",
    "correlation",
    "current_correlation_id",
    "generate_correlation_id",
]
