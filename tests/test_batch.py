"""EventBatch: unique ids, encodings computed once per format, batches built from parts."""

from __future__ import annotations

import os
import re
import threading
import time

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from metricstream import ConfigError, EventBatch, InvalidEventError, MetricEvent, UInt
from metricstream.codecs import _columns, json, lineprotocol
from metricstream.codecs._columns import samples
from metricstream.codecs.lineprotocol import encode_lines
from metricstream.event import event_from_sample, event_parts, shared_tags


def sample_events() -> list[MetricEvent]:
    return [
        MetricEvent(
            "cpu", tags={"host": "a b"}, fields={"usage": 0.5}, timestamp_ns=1_500, before_2001=True
        ),
        MetricEvent(
            "mem", fields={"free": UInt(7), "note": 'x"y'}, timestamp_ns=2_000_000, before_2001=True
        ),
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
        batch = EventBatch(
            [*sample_events(), MetricEvent("empty", timestamp_ns=0, before_2001=True)]
        )
        for _ in range(2):
            with pytest.raises(InvalidEventError, match="event 'empty' has no fields"):
                batch.to_influx_batch()
            with pytest.raises(InvalidEventError, match="event 'empty' has no fields"):
                batch.to_json_lines()

    @pytest.mark.parametrize("precision", ["n", "seconds", None])
    def test_unknown_precision(self, precision: object) -> None:
        with pytest.raises(ConfigError, match="unknown precision"):
            EventBatch(sample_events()).to_influx_batch(precision)  # type: ignore[arg-type]


def float_values() -> st.SearchStrategy[float]:
    """Floats of every magnitude, with the values line protocol lays out specially."""
    return st.one_of(
        st.floats(allow_nan=False, allow_infinity=False),
        st.floats(min_value=-1e6, max_value=1e6, allow_nan=False),
        st.sampled_from([0.0, -0.0, 1.0, -2.0, 1e-4, 9.999e-5, 999_999.9, 1e6, 1e16, 5e-324]),
    )


def batches_of_samples() -> st.SearchStrategy[list[MetricEvent]]:
    """Batches of `event_from_sample` events: the shape the column encoders handle."""
    value = st.one_of(
        float_values(),
        st.integers(min_value=-(2**63), max_value=2**63 - 1),
        st.booleans(),
    )
    tag_sets = st.sampled_from([{}, {"host": "a"}, {"host": "b", "a b": "c,d=e"}, {"q": 'x"y'}])
    event = st.builds(
        lambda value, tags, stamp: event_from_sample(
            "m x,y", value, tags, timestamp_ns=stamp, before_2001=True
        ),
        value,
        tag_sets,
        st.integers(min_value=-(2**63), max_value=2**63 - 1),
    )
    return st.one_of(
        st.lists(event, min_size=1, max_size=30),
        st.builds(
            lambda values, tags: [
                event_from_sample("cpu", v, tags, timestamp_ns=i, before_2001=True)
                for i, v in enumerate(values)
            ],
            st.lists(float_values(), min_size=1, max_size=30),
            tag_sets,
        ),
    )


class TestBatchesFromParts:
    """A batch built from its events' parts encodes exactly as one built from the events."""

    def test_parts_and_events_round_trip(self) -> None:
        events = sample_events()
        batch = EventBatch.from_parts(event_parts(events), batch_id="b", created_ns=5)
        assert (batch.batch_id, batch.created_ns, len(batch)) == ("b", 5, 2)
        assert batch.events == events
        assert batch.events is batch.events
        assert EventBatch(events).parts() == event_parts(events)

    def test_subset_keeps_the_events_in_range(self) -> None:
        events = sample_events() * 3
        for batch in (EventBatch(events), EventBatch.from_parts(event_parts(events))):
            part = batch.subset(2, 5)
            assert part.events == events[2:5]
            assert part.created_ns == batch.created_ns
            assert part.batch_id != batch.batch_id

    def test_columns_in_every_form_of_batch(self) -> None:
        plain = [event_from_sample("m", float(i), {"i": str(i)}) for i in range(4)]
        mixed = [
            *plain[:2],
            MetricEvent("n", {"a": "b"}, {"v": 1, "w": "x"}, 7, before_2001=True),
            plain[3],
        ]
        for events in (plain, mixed):
            expected = (
                [e.measurement for e in events],
                [dict(e.tags) for e in events],
                [dict(e.fields) for e in events],
                [e.timestamp_ns for e in events],
            )
            from_parts = EventBatch.from_parts(event_parts(events))
            for batch in (EventBatch(events), from_parts, from_parts.subset(0, 4)):
                columns = batch.columns()
                assert (
                    tuple(
                        list(map(dict, c)) if i in (1, 2) else list(c)
                        for i, c in enumerate(columns)
                    )
                    == expected
                )

    def test_correlation_ids_in_every_form_of_batch(self) -> None:
        plain = [event_from_sample("m", float(i), {"i": str(i)}) for i in range(4)]
        mixed = [*plain[:2], MetricEvent("m", fields={"v": 1}, correlation_id="c-1"), plain[3]]
        for events in (plain, mixed):
            expected = [event.correlation_id for event in events]
            from_parts = EventBatch.from_parts(event_parts(events))
            for batch in (EventBatch(events), from_parts, from_parts.subset(0, 4)):
                assert batch.correlation_ids() == expected
        assert samples(event_parts(plain)) is not None  # the first form held columns

    @settings(max_examples=300, deadline=None)
    @given(batches_of_samples())
    def test_samples_encode_as_event_by_event(self, events: list[MetricEvent]) -> None:
        parts = event_parts(events)
        assert lineprotocol.encode_parts(parts) == encode_lines(events).encode()
        assert json.encode_parts(parts) == b"\n".join(json.encode_event(e) for e in events)
        batch = EventBatch.from_parts(parts)
        assert batch.influx_bytes("ms") == encode_lines(events, "ms").encode()

    def test_the_column_path_is_taken_for_samples(self) -> None:
        events = [event_from_sample("cpu", i * 0.5, {"host": f"h{i % 3}"}) for i in range(10)]
        columns = samples(event_parts(events))
        assert columns is not None
        assert (columns.measurement, columns.key, columns.values) == (
            "cpu",
            "value",
            [i * 0.5 for i in range(10)],
        )

    @pytest.mark.parametrize(
        "odd_one",
        [
            MetricEvent("other", fields={"value": 1.0}, timestamp_ns=0, before_2001=True),
            MetricEvent("cpu", fields={"v": 1.0}, timestamp_ns=0, before_2001=True),
            MetricEvent("cpu", fields={"value": 1.0, "n": 1}, timestamp_ns=0, before_2001=True),
            MetricEvent("cpu", fields={"value": "text"}, timestamp_ns=0, before_2001=True),
            MetricEvent("cpu", fields={"value": UInt(3)}, timestamp_ns=0, before_2001=True),
            MetricEvent(
                "cpu", fields={"value": 1.0}, timestamp_ns=0, before_2001=True, correlation_id="c"
            ),
        ],
    )
    def test_any_other_event_takes_the_event_by_event_path(self, odd_one: MetricEvent) -> None:
        events = [event_from_sample("cpu", 1.5, timestamp_ns=1, before_2001=True), odd_one]
        parts = event_parts(events)
        assert samples(parts) is None
        assert lineprotocol.encode_parts(parts) == encode_lines(events).encode()
        assert json.encode_parts(parts) == b"\n".join(json.encode_event(e) for e in events)

    def test_an_event_without_fields_is_refused_from_parts(self) -> None:
        events = [
            event_from_sample("cpu", 1.5),
            MetricEvent("empty", timestamp_ns=0, before_2001=True),
        ]
        batch = EventBatch.from_parts(event_parts(events))
        for encode in (batch.to_influx_batch, batch.to_json_lines):
            with pytest.raises(InvalidEventError, match="event 'empty' has no fields"):
                encode()

    def test_json_without_any_uint_made_takes_the_fast_path(
        self, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        events = [
            MetricEvent(
                "m",
                tags={"h": "a"},
                fields={"x": 1.5, "n": 2, "s": "t"},
                timestamp_ns=1,
                before_2001=True,
            ),
            MetricEvent(
                "m", fields={"x": -0.0}, timestamp_ns=2, before_2001=True, correlation_id="c-1"
            ),
        ]
        monkeypatch.setattr(UInt, "created", False)
        assert json.encode_parts(event_parts(events)) == b"\n".join(
            json.encode_event(e) for e in events
        )


class TestBatchIds:
    """Batch ids are drawn without a system call, and differ in a forked child."""

    @pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
    def test_a_forked_child_draws_other_ids_than_its_parent(self) -> None:
        read, write = os.pipe()
        pid = os.fork()
        if pid == 0:  # pragma: no cover - the child
            os.write(write, EventBatch([]).batch_id.encode())
            os._exit(0)
        os.close(write)
        parent = EventBatch([]).batch_id
        child = os.read(read, 64).decode()
        os.close(read)
        os.waitpid(pid, 0)
        assert re.fullmatch(r"[0-9a-f]{32}", child)
        assert child != parent


class TestTextsBefore:
    """The column encoders remember the text before a value per shared tag dict, bounded."""

    def test_tags_changed_with_with_tag_are_encoded_as_they_are_now(self) -> None:
        events = [
            event_from_sample(
                "cpu", float(i), {"host": "a"}, timestamp_ns=i, before_2001=True
            ).with_tag("n", i % 3)
            for i in range(9)
        ]
        parts = event_parts(events)
        assert samples(parts) is not None
        for _ in range(2):
            assert lineprotocol.encode_parts(parts) == encode_lines(events).encode()
            assert json.encode_parts(parts) == b"\n".join(json.encode_event(e) for e in events)

    def test_the_texts_remembered_stay_within_the_limit(self) -> None:
        heads = _columns.TextsBefore(lambda m, k, tags: repr(tags).encode(), limit=5)
        for i in range(40):
            tags = shared_tags({"host": f"h{i}"})
            assert heads.texts("m", "v", [tags, tags]) == [repr(tags).encode()] * 2
            assert len(heads._alive) <= 5
            assert sum(len(known) for known in heads._known.values()) <= 5
