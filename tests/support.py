"""Helpers shared by the streamer tests: sample events, waiting, the accounting identity."""

from __future__ import annotations

import time
from collections.abc import Callable

import metricstream as ms

FAST_RETRY = ms.RetryConfig(max_retries=3, initial_delay_ms=1, max_delay_ms=5, jitter=False)
NO_REASONS = dict.fromkeys(ms.DROP_REASONS, 0)


def sample(i: int, **tags: str) -> ms.MetricEvent:
    """An event whose value (and timestamp offset) is `i`."""
    return ms.event_from_sample("m", i, tags, timestamp_ns=1_700_000_000_000_000_000 + i)


def values(events: list[ms.MetricEvent]) -> list[object]:
    """The ``value`` fields of `events`, in order."""
    return [e.fields["value"] for e in events]


def wait_until(predicate: Callable[[], bool], timeout: float = 5.0) -> bool:
    """Poll `predicate` until it holds or `timeout` seconds pass; return its last answer."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.002)
    return predicate()


def assert_balanced(health: ms.StreamerHealth) -> None:
    """Assert accepted == written + dropped + pending + spooled for every sink."""
    for sink in health.sinks.values():
        assert sink.events_dropped == sum(sink.dropped_by_reason.values())
        assert sink.events_accepted == (
            sink.events_written + sink.events_dropped + sink.pending + sink.spooled
        ), sink
