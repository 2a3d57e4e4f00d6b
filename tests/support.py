"""Helpers shared by the streamer tests: sample events, waiting, the accounting identity."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

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


def faulty_scheme(scheme: str, then: str) -> str:
    """Register ``SCHEME:NAME`` URLs for a `FaultySink` named NAME whose writes all end `then`.

    For command-line tests, which take sinks as URLs. Returns the scheme.
    """
    ms.sinks.register_scheme(
        scheme,
        lambda url, **_: ms.testing.FaultySink(then=then, name=url.partition(":")[2] or scheme),
        replace=True,
    )
    return scheme


def spool_left_by_a_dead_sink(directory: Path, count: int) -> Path:
    """A spool in `directory` holding `count` sample events for a sink ``lost`` that never wrote."""
    streamer = ms.EventStreamer(
        [ms.testing.FaultySink(then="transient", name="lost")],
        spool_dir=directory,
        retry=ms.RetryConfig(max_retries=0),
        register_atexit=False,
    )
    streamer.send_many(sample(i) for i in range(count))
    streamer.shutdown(0.5)
    return directory


def assert_balanced(health: ms.StreamerHealth) -> None:
    """Assert accepted == written + dropped + pending + spooled for every sink."""
    for sink in health.sinks.values():
        assert sink.events_dropped == sum(sink.dropped_by_reason.values())
        assert sink.events_accepted == (
            sink.events_written + sink.events_dropped + sink.pending + sink.spooled
        ), sink
