"""What a relay reports: counters, `RelayHealth` (``/healthz``), `RelayCollector` (``/metrics``).

The relay's loop changes `RelayCounters` (under one lock) and the health
server's thread reads them through `RelayCounters.snapshot`, so a scrape
never touches the consumer. ``/healthz`` serves a `RelayHealth`: the
streamer's document (the sinks' accounting, which ``metricstream health``
shows as a table) with a ``relay`` section: the source, per partition the
committed offset, the position, the end of the log and the lag, the
watermark, the open windows and the counts below.

``/metrics`` adds, beside the streamer's series (`StreamerCollector`):

- counters ``metricstream_relay_messages_total``, ``_events_read_total``,
  ``_invalid_messages_total``, ``_dead_letters_total`` (label ``outcome``:
  ``delivered`` or ``failed``), ``_late_events_total``,
  ``_replayed_events_total``, ``_batches_total``, ``_windows_emitted_total``,
  ``_commits_total``, ``_commit_errors_total``, ``_rebalances_total``,
  ``_backpressure_total``;
- gauges ``metricstream_relay_consumer_lag`` and
  ``metricstream_relay_committed_offset`` (labels ``topic``,
  ``partition``), ``metricstream_relay_partitions_assigned``,
  ``metricstream_relay_partitions_paused``,
  ``metricstream_relay_watermark_seconds``,
  ``metricstream_relay_open_windows``, ``metricstream_relay_held_events``
  (read, not yet delivered) and ``metricstream_relay_running``.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from metricstream._validate import INT64_MIN
from metricstream.streamer.health import StreamerHealth
from metricstream.streamer.operations.prometheus import StreamerCollector

if TYPE_CHECKING:
    from prometheus_client.metrics_core import Metric

__all__ = ["COUNTS", "RelayCollector", "RelayCounters", "RelayHealth", "render_relay_metrics"]

COUNTS: dict[str, str] = {
    "messages": "Kafka messages read.",
    "events_read": "Events decoded from them.",
    "invalid_messages": "Messages that could not be decoded (counted, moved past).",
    "dead_letters_delivered": "Undecodable messages delivered to the dead-letter topic.",
    "dead_letters_failed": "Undecodable messages the dead-letter topic refused (counted).",
    "late_events": "Events for windows already closed (delivered raw to late-to, if any).",
    "replayed_events": "Events read again after a restart whose windows were emitted before.",
    "batches": "Batches handed to the sinks.",
    "windows_emitted": "Window results emitted.",
    "commits": "Offset commits.",
    "commit_errors": "Offset commits (or marks) the broker refused.",
    "rebalances": "Partition assignments received.",
    "backpressure": "Times the sinks could not take a batch (the partitions were paused).",
}
"""Every counter of a relay, with its meaning."""


@dataclass
class PartitionStatus:
    """One partition as the relay last saw it (``end`` and ``lag`` when known)."""

    committed: int | None = None
    position: int | None = None
    end: int | None = None
    paused: bool = False

    def to_dict(self) -> dict[str, Any]:
        """Return it as plain data, with the lag (end of the log minus committed offset)."""
        lag = None
        if self.end is not None and self.committed is not None:
            lag = max(0, self.end - self.committed)
        return {
            "committed": self.committed,
            "position": self.position,
            "end": self.end,
            "lag": lag,
            "paused": self.paused,
        }


class RelayCounters:
    """The relay's counts and state, changed by its loop and read by the health server.

    Args:
        source: The source, described without credentials.
    """

    def __init__(self, source: str) -> None:
        self.source = source
        self._lock = threading.Lock()
        self._counts = dict.fromkeys(COUNTS, 0)
        self._partitions: dict[tuple[str, int], PartitionStatus] = {}
        self.watermark_ns = INT64_MIN
        self.open_windows = 0
        self.held_events = 0
        self.held_events_peak = 0
        self.running = False
        self.error: str | None = None

    def add(self, name: str, count: int = 1) -> None:
        """Add `count` to the counter `name` (one of `COUNTS`)."""
        with self._lock:
            self._counts[name] += count

    def count(self, name: str) -> int:
        """The value of counter `name`."""
        with self._lock:
            return self._counts[name]

    def held(self, events: int) -> None:
        """Events read and not yet delivered now (the peak is kept too)."""
        self.held_events = events
        self.held_events_peak = max(self.held_events_peak, events)

    def assigned(self, keys: list[tuple[str, int]]) -> None:
        """The partitions read now (the others are forgotten)."""
        with self._lock:
            self._partitions = {key: self._partitions.get(key, PartitionStatus()) for key in keys}

    def update(self, key: tuple[str, int], **values: Any) -> None:
        """Set what is known of partition `key` (committed, position, end, paused)."""
        with self._lock:
            status = self._partitions.get(key)
            if status is not None:
                for name, value in values.items():
                    setattr(status, name, value)

    def snapshot(self) -> dict[str, Any]:
        """The relay's state as plain data (the ``relay`` section of ``/healthz``)."""
        with self._lock:
            partitions = {
                f"{topic}/{number}": status.to_dict()
                for (topic, number), status in sorted(self._partitions.items())
            }
            return {
                "source": self.source,
                "running": self.running,
                "error": self.error,
                "partitions": partitions,
                "watermark_ns": None if self.watermark_ns == INT64_MIN else self.watermark_ns,
                "open_windows": self.open_windows,
                "held_events": self.held_events,
                "held_events_peak": self.held_events_peak,
                "process_cpu_seconds": round(time.process_time(), 6),
                "counts": dict(self._counts),
            }


@dataclass(frozen=True)
class RelayHealth(StreamerHealth):
    """A streamer's health with the relay's own state (see the module doc).

    Attributes:
        relay: `RelayCounters.snapshot`: source, partitions, watermark, counts.
    """

    relay: Mapping[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """Return the snapshot as plain data (JSON-ready), the relay's state under ``relay``."""
        return {**super().to_dict(), "relay": dict(self.relay)}


class RelayCollector:
    """A ``prometheus_client`` collector of a relay's own series (see the module doc).

    Args:
        relay: Returns the relay's state (`RelayCounters.snapshot`).
    """

    def __init__(self, relay: Callable[[], Mapping[str, Any]]) -> None:
        self._relay = relay

    def collect(self) -> Iterator[Metric]:
        """Yield the metric families of a fresh snapshot."""
        from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

        state = self._relay()
        counts = state["counts"]
        for name, doc in COUNTS.items():
            if name.startswith("dead_letters_"):
                continue
            yield CounterMetricFamily(f"metricstream_relay_{name}", doc, value=counts[name])
        letters = CounterMetricFamily(
            "metricstream_relay_dead_letters", "Dead letters, by outcome.", labels=["outcome"]
        )
        for outcome in ("delivered", "failed"):
            letters.add_metric([outcome], counts[f"dead_letters_{outcome}"])
        yield letters
        lag = GaugeMetricFamily(
            "metricstream_relay_consumer_lag",
            "Messages after the committed offset.",
            labels=["topic", "partition"],
        )
        committed = GaugeMetricFamily(
            "metricstream_relay_committed_offset",
            "The committed offset.",
            labels=["topic", "partition"],
        )
        paused = 0
        for name, status in state["partitions"].items():
            topic, _, number = name.rpartition("/")
            if status["lag"] is not None:
                lag.add_metric([topic, number], status["lag"])
            if status["committed"] is not None:
                committed.add_metric([topic, number], status["committed"])
            paused += bool(status["paused"])
        yield lag
        yield committed
        watermark = state["watermark_ns"]
        for name, doc, value in (
            ("partitions_assigned", "Partitions this relay reads.", len(state["partitions"])),
            ("partitions_paused", "Partitions paused for backpressure.", paused),
            ("open_windows", "Windows open (not yet complete).", state["open_windows"]),
            ("held_events", "Events read and not yet delivered.", state["held_events"]),
            ("running", "1 while the relay reads.", int(state["running"])),
        ):
            yield GaugeMetricFamily(f"metricstream_relay_{name}", doc, value=value)
        if watermark is not None:
            yield GaugeMetricFamily(
                "metricstream_relay_watermark_seconds",
                "The event-time watermark (Unix seconds).",
                value=watermark / 1e9,
            )


def render_relay_metrics(health: StreamerHealth) -> tuple[bytes, str]:
    """Render a relay's health (`RelayHealth`) in the Prometheus text format.

    Returns:
        (the body, its content type).

    Raises:
        ConfigError: If ``prometheus_client`` is not installed.
    """
    collector = StreamerCollector(lambda: health)  # checks that prometheus_client is there
    from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest

    registry = CollectorRegistry(auto_describe=False)
    registry.register(collector)
    relay = health.relay if isinstance(health, RelayHealth) else {}
    if relay:
        registry.register(RelayCollector(lambda: relay))
    return generate_latest(registry), CONTENT_TYPE_LATEST
