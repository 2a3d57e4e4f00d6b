"""EventBatch: unique ids and encodings computed once per format."""

from __future__ import annotations

import re
import threading
import time

import pytest

from metricstream import ConfigError, EventBatch, InvalidEventError, MetricEvent, UInt
from metricstream.codecs.lineprotocol import encode_lines


def sample_events() -> list[MetricEvent]:
    return [
        MetricEvent("cpu", tags={"host": "a b"}, fields={"usage": 0.5}, timestamp_ns=1_500),
        MetricEvent("mem", fields={"free": UInt(7), "note": 'x"y'}, timestamp_ns=2_000_000),
    ]


class TestIdentity:
    """Every batch has an id, unique unless one is given."""

    def test_generated_ids_are_unique_hex(self) -> None:
        ids = {EventBatch([]).batch_id for _ in range(2_000)}
        assert len(ids) == 2_000
        assert all(re.fullmatch(r"[0-9a-f]{32}", batch_id) for batch_id in ids)

    def test_given_id_is_kept(self) -> None:
        assert EventBatch([], batch_id="b-1").batch_id == "b-1"

    def test_events_length_and_repr(self) -> None:
        events = sample_events()
        batch = EventBatch(iter(events), batch_id="b")
        assert batch.events == events
        assert len(batch) == 2
        assert repr(batch) == "EventBatch(batch_id='b', events=2)"

    def test_created_ns_is_when_the_batch_was_made_unless_given(self) -> None:
        before = time.time_ns()
        batch = EventBatch([])
        after = time.time_ns()
        assert before <= batch.created_ns <= after
        assert EventBatch([], created_ns=1_700_000_000_000_000_000).created_ns == (
            1_700_000_000_000_000_000
        )

    def test_a_list_is_kept_as_given(self) -> None:
        events = sample_events()
        assert EventBatch(events).events is events


class TestEncodings:
    """The batch encodes to line protocol and JSON Lines, newline-joined."""

    def test_line_protocol(self) -> None:
        batch = EventBatch(sample_events())
        assert batch.to_influx_batch() == (
            'cpu,host=a\\ b usage=0.5 1500\nmem free=7u,note="x\\"y" 2000000'
        )
        assert batch.influx_bytes() == batch.to_influx_batch().encode()

    def test_line_protocol_with_precision(self) -> None:
        batch = EventBatch(sample_events())
        assert batch.to_influx_batch("us") == encode_lines(sample_events(), "us")
        assert batch.to_influx_batch("ms") == (
            'cpu,host=a\\ b usage=0.5 0\nmem free=7u,note="x\\"y" 2'
        )

    def test_json_lines(self) -> None:
        events = sample_events()
        batch = EventBatch(events)
        assert batch.to_json_lines() == events[0].to_json() + "\n" + events[1].to_json()
        assert batch.json_lines_bytes() == batch.to_json_lines().encode()

    def test_empty_batch(self) -> None:
        batch = EventBatch([])
        assert batch.to_influx_batch() == ""
        assert batch.to_json_lines() == ""

    def test_encodings_are_computed_once_and_shared(self) -> None:
        batch = EventBatch(sample_events())
        assert batch.influx_bytes() is batch.influx_bytes()
        assert batch.json_lines_bytes() is batch.json_lines_bytes()
        assert batch.influx_bytes("s") is batch.influx_bytes("s")
        assert batch.influx_bytes("s") != batch.influx_bytes("ns")

    def test_concurrent_callers_get_the_same_bytes(self) -> None:
        batch = EventBatch(sample_events() * 200)
        results: list[bytes] = []
        lock = threading.Lock()

        def encode() -> None:
            data = batch.influx_bytes()
            with lock:
                results.append(data)

        threads = [threading.Thread(target=encode) for _ in range(8)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert len(results) == 8
        assert all(data is results[0] for data in results)

    def test_event_without_fields_is_refused_every_time(self) -> None:
        batch = EventBatch([*sample_events(), MetricEvent("empty", timestamp_ns=0)])
        for _ in range(2):
            with pytest.raises(InvalidEventError, match="event 'empty' has no fields"):
                batch.to_influx_batch()
            with pytest.raises(InvalidEventError, match="event 'empty' has no fields"):
                batch.to_json_lines()

    @pytest.mark.parametrize("precision", ["n", "seconds", None])
    def test_unknown_precision(self, precision: object) -> None:
        with pytest.raises(ConfigError, match="unknown precision"):
            EventBatch(sample_events()).to_influx_batch(precision)  # type: ignore[arg-type]
