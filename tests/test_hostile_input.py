"""Hostile input to the public API: every value is accepted and round-trips, or is refused at once.

Hypothesis builds events from arbitrary objects (wrong types, huge strings,
NaN, nested containers, surrogates, bytes) and sends whatever it builds
through a streamer with a JSON Lines file and an in-memory sink. Nothing may
kill a lane, and everything accepted must come back unchanged.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import metricstream as ms
from metricstream.sinks import JsonLinesSink
from metricstream.sinks.jsonl import read_events
from metricstream.testing import FaultySink, InMemorySink

from .support import NO_REASONS, assert_balanced

anything = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats()
    | st.text()
    | st.binary(max_size=20)
    | st.text(alphabet=st.characters(min_codepoint=0xD800, max_codepoint=0xDFFF), min_size=1)
    | st.integers(65_530, 65_540).map(lambda n: "x" * n),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3)
    ),
    max_leaves=5,
)
names = st.text(max_size=12) | anything
keys = (
    st.text(max_size=12)
    | st.integers()
    | st.floats()
    | st.none()
    | st.binary(max_size=5)
    | st.text(alphabet=st.characters(min_codepoint=0, max_codepoint=31), min_size=1, max_size=3)
)
field_values = st.booleans() | st.integers() | st.floats() | st.text(max_size=40) | anything


def build(measurement: Any, tags: Any, fields: Any, cid: Any) -> ms.MetricEvent | str:
    """The event, or the error that refused it (which must name what was wrong)."""
    try:
        event = ms.MetricEvent(measurement, tags=tags, fields=fields)
        return event.with_correlation_id(cid) if cid is not None else event
    except (ms.InvalidEventError, ms.ConfigError) as exc:
        message = str(exc)
        assert message, "an error without a message"
        return message


class TestHostileEvents:
    """Arbitrary values: accepted and round-tripped, or refused at once with a clear error."""

    @settings(
        max_examples=150,
        deadline=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
    )
    @given(
        st.lists(
            st.tuples(
                names,
                st.dictionaries(keys, names, max_size=3) | anything,
                st.dictionaries(keys, field_values, max_size=3) | anything,
                st.none() | names,
            ),
            min_size=1,
            max_size=8,
        )
    )
    def test_every_event_round_trips_or_is_refused(self, tmp_path_factory: Any, specs: Any) -> None:
        path = Path(tmp_path_factory.mktemp("hostile")) / "events.jsonl.zst"
        memory = InMemorySink()
        streamer = ms.EventStreamer(
            [memory, JsonLinesSink(path)], batch_size=5, register_atexit=False
        )
        sent: list[ms.MetricEvent] = []
        refused = 0
        for spec in specs:
            built = build(*spec)
            if isinstance(built, str):
                continue
            if not built.fields:
                with pytest.raises(ms.InvalidEventError, match="has no fields"):
                    streamer.send(built)
                refused += 1
                continue
            assert streamer.send(built) is True
            sent.append(built)
        assert streamer.flush(30) is True
        health = streamer.health()
        assert health.healthy, health
        # send() counts what it refuses as dropped (reason invalid), so offered = accepted.
        assert_balanced(health, sent=len(sent) + refused)
        for sink in health.sinks.values():
            assert sink.dropped_by_reason == {**NO_REASONS, "invalid": refused}
        assert memory.events == sent
        stored = list(read_events(path)) if sent else []
        assert stored == sent
        streamer.shutdown(5)

    @settings(max_examples=60, deadline=None)
    @given(anything)
    def test_send_refuses_what_is_not_an_event(self, thing: Any) -> None:
        streamer = ms.EventStreamer([InMemorySink()], register_atexit=False)
        with pytest.raises(TypeError, match=r"send\(\) takes a MetricEvent"):
            streamer.send(thing)
        streamer.shutdown(1)

    def test_nan_and_infinity_are_refused_naming_the_field(self) -> None:
        for bad in (math.nan, math.inf, -math.inf):
            message = build("m", {}, {"temperature": bad}, None)
            assert isinstance(message, str)
            assert "'temperature'" in message


class TestHostileSinks:
    """A sink whose code raises anything is contained and counted; other sinks go on."""

    def test_unexpected_exceptions_in_write_are_retried_then_counted(self) -> None:
        broken = FaultySink(then="raise", name="broken")
        memory = InMemorySink()
        streamer = ms.EventStreamer(
            [broken, memory],
            batch_size=10,
            retry=ms.RetryConfig(max_retries=2, initial_delay_ms=1, max_delay_ms=2),
            register_atexit=False,
        )
        streamer.send_many(ms.event_from_sample("m", i) for i in range(50))
        assert streamer.flush(30) is True
        health = streamer.health()
        assert health.sinks["broken"].dropped_by_reason["retries_exhausted"] == 50
        assert health.sinks["memory"].events_written == 50
        assert_balanced(health, sent=50)
        streamer.shutdown(5)
