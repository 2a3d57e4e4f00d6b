"""Helpers shared by the streamer tests: sample events, waiting, deadlines, the accounting."""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Callable, Mapping
from pathlib import Path

import metricstream as ms

FAST_RETRY = ms.RetryConfig(max_retries=3, initial_delay_ms=1, max_delay_ms=5, jitter=False)
NO_REASONS = dict.fromkeys(ms.DROP_REASONS, 0)

DEADLINE_MARGIN = 20.0
"""Seconds by which a call may overrun the deadline under test before the test fails.

Far more than a loaded 2-core machine delays a thread, and far less than
the failure each such test guards against would take (each test says how
long that is): a deadline is the behaviour under test there, never speed.
"""


def sample(i: int, **tags: str) -> ms.MetricEvent:
    """An event whose value (and timestamp offset) is `i`."""
    return ms.event_from_sample("m", i, tags, timestamp_ns=1_700_000_000_000_000_000 + i)


def values(events: list[ms.MetricEvent]) -> list[object]:
    """The ``value`` fields of `events`, in order."""
    return [e.fields["value"] for e in events]


def wait_until(predicate: Callable[[], bool], timeout: float = DEADLINE_MARGIN) -> bool:
    """Poll `predicate` until it holds or `timeout` seconds pass; return its last answer.

    It returns as soon as `predicate` holds: a long `timeout` costs nothing
    when the test passes, and keeps a loaded machine from failing it.
    """
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


def assert_identity(health: ms.StreamerHealth) -> None:
    """Assert accepted == written + dropped + pending + spooled for every sink.

    For snapshots taken while events are still being sent; once the test
    knows how many it sent, `assert_balanced` checks that too.
    """
    for sink in health.sinks.values():
        assert sink.events_dropped == sum(sink.dropped_by_reason.values())
        assert sink.events_accepted == (
            sink.events_written + sink.events_dropped + sink.pending + sink.spooled
        ), sink


def assert_balanced(health: ms.StreamerHealth, sent: int | Mapping[str, int]) -> None:
    """Assert every sink accepted exactly what the test sent, and the accounting identity.

    Args:
        health: The snapshot.
        sent: The events the test handed over, the same for every sink or
            by sink name: every `send` call (one it refuses for having no
            fields is counted as dropped), and every event of a batch that
            `send_batch` took (a batch it refuses counts nothing). A sink
            recovering a spool also accepts what an earlier streamer left.
    """
    expected = dict.fromkeys(health.sinks, sent) if isinstance(sent, int) else dict(sent)
    assert {name: sink.events_accepted for name, sink in health.sinks.items()} == expected
    assert_identity(health)


def spool_command(*args: str) -> subprocess.CompletedProcess[str]:
    """Run ``metricstream spool ARGS...`` in a new interpreter; its output as text."""
    return subprocess.run(
        [sys.executable, "-m", "metricstream", "spool", *args],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
