"""What ``/metrics`` shows (Prometheus text) and what ``/stats`` counts.

- ``metricstream_server_requests_total{route, method, status}``: requests answered;
- ``metricstream_server_events_ingested_total{endpoint}``: events stored;
- ``metricstream_server_query_seconds``: how long queries took (a histogram);
- ``metricstream_server_connections_spread_total``: keep-alive connections a
  worker closed after an answer because it was busier than another
  (`metricstream.server._spread`).

With several workers (``PROMETHEUS_MULTIPROC_DIR`` set before they start),
each writes its figures there and ``/metrics`` adds them up, as
prometheus_client's multiprocess mode does.
"""

from __future__ import annotations

import collections
import os
import threading
import time

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest, multiprocess

__all__ = ["IngestRate", "ServerMetrics"]

QUERY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)


class ServerMetrics:
    """The counters and histogram of one server (see the module documentation)."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.requests = Counter(
            "metricstream_server_requests",
            "HTTP requests answered, by route, method and status.",
            ["route", "method", "status"],
            registry=self.registry,
        )
        self.events = Counter(
            "metricstream_server_events_ingested",
            "Events stored, by the endpoint that received them.",
            ["endpoint"],
            registry=self.registry,
        )
        self.connections_spread = Counter(
            "metricstream_server_connections_spread",
            "Keep-alive connections closed after an answer to spread requests over the workers.",
            registry=self.registry,
        )
        self.query_seconds = Histogram(
            "metricstream_server_query_seconds",
            "How long queries took, in seconds.",
            buckets=QUERY_BUCKETS,
            registry=self.registry,
        )

    def render(self) -> bytes:
        """The Prometheus text of every figure (all workers' when there are several)."""
        if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
            registry = CollectorRegistry()
            multiprocess.MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
            return generate_latest(registry)
        return generate_latest(self.registry)


class IngestRate:
    """Events stored per second over the last minute, by whole seconds."""

    def __init__(self, window: int = 60) -> None:
        self._window = window
        self._counts: collections.deque[list[int]] = collections.deque()
        self._lock = threading.Lock()

    def add(self, count: int, now: float | None = None) -> None:
        """Count `count` events stored now."""
        second = int(time.time() if now is None else now)
        with self._lock:
            if self._counts and self._counts[-1][0] == second:
                self._counts[-1][1] += count
            else:
                self._counts.append([second, count])
            self._trim(second)

    def per_second(self, now: float | None = None) -> float:
        """The events stored over the last minute, per second."""
        second = int(time.time() if now is None else now)
        with self._lock:
            self._trim(second)
            return sum(count for _, count in self._counts) / self._window

    def _trim(self, second: int) -> None:
        while self._counts and self._counts[0][0] <= second - self._window:
            self._counts.popleft()
