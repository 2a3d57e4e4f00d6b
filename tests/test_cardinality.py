"""max_series_per_measurement: the first N series of a measurement pass, the rest are counted.

Each test computes which events should pass from the stream it sends (the
first N distinct tag sets of each measurement, in the order the batcher
sees them: the order of `send`) and compares with what the sink received
and with the accounting, where they are dropped as ``cardinality``.
"""

from __future__ import annotations

import subprocess
import urllib.request
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import metricstream as ms
from metricstream.streamer.engine.series_limit import SeriesLimit
from metricstream.testing import InMemorySink

from .servers import require_promtool
from .support import FAST_RETRY, assert_balanced

T0 = 1_700_000_000_000_000_000


def reference(stream: list[tuple[str, dict[str, str]]], limit: int) -> list[bool]:
    """Whether each event of `stream` passes: its series is among its measurement's first."""
    admitted: dict[str, list[frozenset[tuple[str, str]]]] = {}
    passes = []
    for measurement, tags in stream:
        series = admitted.setdefault(measurement, [])
        key = frozenset(tags.items())
        if key not in series and len(series) < limit:
            series.append(key)
        passes.append(key in series)
    return passes


TAG_SETS = st.dictionaries(st.sampled_from(["user", "route"]), st.sampled_from("abcdef"))


class TestTheLimit:
    """Random streams, batches cut at random sizes, compared with the reference."""

    @settings(max_examples=40, deadline=None)
    @given(
        st.lists(st.tuples(st.sampled_from(["login", "view"]), TAG_SETS), max_size=120),
        st.integers(1, 6),
        st.integers(1, 50),
    )
    def test_the_first_series_pass_and_the_rest_are_dropped_as_cardinality(
        self, stream: list[tuple[str, dict[str, str]]], limit: int, batch_size: int
    ) -> None:
        sink = InMemorySink()
        streamer = ms.EventStreamer(
            [sink],
            max_series_per_measurement=limit,
            batch_size=batch_size,
            register_atexit=False,
            retry=FAST_RETRY,
        )
        for position, (measurement, tags) in enumerate(stream):
            if position % 3:  # equal tags share one dict (SharedTags), as the instruments' do
                event = ms.event_from_sample(measurement, position, tags, timestamp_ns=T0)
            else:  # a dict of its own
                event = ms.MetricEvent(measurement, dict(tags), {"value": position}, T0)
            streamer.send(event)
        assert streamer.shutdown(10)
        passes = reference(stream, limit)
        assert [e.fields["value"] for e in sink.events] == [
            position for position, passed in enumerate(passes) if passed
        ]
        health = streamer.health()
        assert_balanced(health, len(stream))
        assert health.sinks["memory"].dropped_by_reason["cardinality"] == passes.count(False)

    def test_off_by_default(self) -> None:
        sink = InMemorySink()
        streamer = ms.EventStreamer([sink], register_atexit=False)
        streamer.send_many(
            ms.event_from_sample("m", i, {"user": str(i)}, timestamp_ns=T0) for i in range(5000)
        )
        assert streamer.shutdown(10)
        assert len(sink.events) == 5000

    def test_the_identity_cache_follows_a_dict_reused_with_other_contents(self) -> None:
        """A cached dict id never stands for other tags: the cache holds the dict itself."""
        limit = SeriesLimit(1)
        parts: list[Any] = []
        for i in range(3):
            tags = {"user": str(i)}  # each dict dies after its batch; its id may come back
            parts = ["m", tags, {"value": i}, T0, None]
            refused, _ = limit.refuse(parts)
            assert refused == (0 if i == 0 else 1)
            del tags, parts


@pytest.mark.servers
class TestReported:
    """The drops show in health, /metrics (checked by promtool) and the log."""

    def test_metrics_and_the_warning(self, caplog: Any) -> None:
        sink = InMemorySink()
        streamer = ms.EventStreamer([sink], max_series_per_measurement=2, register_atexit=False)
        try:
            streamer.send_many(
                ms.event_from_sample("signup", 1, {"user": f"u{i}"}, timestamp_ns=T0)
                for i in range(10)
            )
            assert streamer.flush(10)
            host, port = streamer.serve_health()
            with urllib.request.urlopen(f"http://{host}:{port}/metrics", timeout=10) as reply:
                body = reply.read()
        finally:
            streamer.shutdown(10)
        line = b'metricstream_events_dropped_total{reason="cardinality",sink="memory"} 8.0'
        assert line in body.splitlines()
        checked = subprocess.run(
            [require_promtool(), "check", "metrics"], input=body, capture_output=True, check=False
        )
        assert checked.returncode == 0, checked.stdout + checked.stderr
        assert any(
            "dropped 8 events of series beyond max_series_per_measurement=2" in r.getMessage()
            for r in caplog.records
        )
