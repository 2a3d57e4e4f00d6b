"""EventBatch: unique ids, one column form, encodings computed once per format."""

from __future__ import annotations

import os
import re
import threading
import time
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from metricstream import ConfigError, EventBatch, InvalidEventError, MetricEvent, UInt
from metricstream.codecs import _lines, json, lineprotocol
from metricstream.columns import EventColumns, FieldColumns
from metricstream.event import PARTS_PER_EVENT, event_from_sample, shared_tags
from metricstream.properties import property_columns


def parts_of(events: list[MetricEvent]) -> list[Any]:
    """The flat parts `send()` appends for `events`."""
    parts: list[Any] = []
    for e in events:
        parts.extend((e.measurement, e.tags, e.fields, e.timestamp_ns, e.correlation_id))
    assert len(parts) == PARTS_PER_EVENT * len(events)
    return parts


def one_by_one(events: list[MetricEvent], precision: str = "ns") -> tuple[bytes, bytes]:
    """The reference: each event encoded alone by the one-event entries, newline-joined."""
    lines = "\n".join(lineprotocol.encode_event(e, precision) for e in events).encode()
    return lines, b"\n".join(json.encode_event(e) for e in events)


def both(columns: EventColumns, precision: str = "ns") -> tuple[bytes, bytes]:
    """The batch entries of both encoders."""
    return lineprotocol.encode_batch(columns, precision), json.encode_batch(columns)


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
        assert batch.influx_bytes("us") == one_by_one(sample_events(), "us")[0]
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


NUMBERS = st.one_of(
    float_values(), st.integers(min_value=-(2**63), max_value=2**63 - 1), st.booleans()
)
ANY_VALUE = st.one_of(
    NUMBERS,
    st.text(max_size=12),
    st.sampled_from(['a "q"', "x\\", "a,b", '",",', "}\n{"]),
    st.integers(0, 2**64 - 1).map(UInt),
)
TAG_SETS = st.sampled_from([{}, {"host": "a"}, {"host": "b", "a b": "c,d=e"}, {"q": 'x"y'}])
STAMPS = st.integers(min_value=-(2**63), max_value=2**63 - 1)
CORRELATION_IDS = st.one_of(st.none(), st.sampled_from(["c-1", 'c"2']))


def batches_of_samples() -> st.SearchStrategy[list[MetricEvent]]:
    """Batches of `event_from_sample` events: one key and a number in each."""
    event = st.builds(
        lambda value, tags, stamp: event_from_sample(
            "m x,y", value, tags, timestamp_ns=stamp, before_2001=True
        ),
        NUMBERS,
        TAG_SETS,
        STAMPS,
    )
    return st.one_of(
        st.lists(event, min_size=1, max_size=30),
        st.builds(
            lambda values, tags: [
                event_from_sample("cpu", v, tags, timestamp_ns=i, before_2001=True)
                for i, v in enumerate(values)
            ],
            st.lists(float_values(), min_size=1, max_size=30),
            TAG_SETS,
        ),
    )


@st.composite
def batches_of_events(draw: st.DrawFn, same_keys: bool) -> list[MetricEvent]:
    """Events of a few fields: the same keys in the same order in each, or any keys."""
    keys = draw(st.lists(st.sampled_from(["v", "n", "a b", 'q"', "é"]), min_size=1, unique=True))
    values = ANY_VALUE if draw(st.booleans()) else NUMBERS
    measurements = ["cpu", "m x,y"] if draw(st.booleans()) else ["cpu"]
    events = []
    for _ in range(draw(st.integers(min_value=1, max_value=20))):
        fields = (
            {key: draw(values) for key in keys}
            if same_keys
            else draw(st.dictionaries(st.sampled_from(keys), values, min_size=1))
        )
        events.append(
            MetricEvent(
                draw(st.sampled_from(measurements)),
                draw(TAG_SETS),
                fields,
                draw(STAMPS),
                draw(CORRELATION_IDS),
                before_2001=True,
            )
        )
    return events


class TestColumns:
    """A batch holds its events as columns; its fields too when every event has the same keys."""

    def test_parts_become_columns_and_events_again(self) -> None:
        events = sample_events()
        batch = EventBatch.from_parts(parts_of(events), batch_id="b", created_ns=5)
        assert (batch.batch_id, batch.created_ns, len(batch)) == ("b", 5, 2)
        assert batch.events == events
        assert batch.events is batch.events

    def test_every_reader_gives_the_events_parts(self) -> None:
        plain = [event_from_sample("m", float(i), {"i": str(i)}) for i in range(4)]
        two = [
            MetricEvent("n", {"a": "b"}, {"v": i, "w": "x"}, i, "c", before_2001=True)
            for i in range(3)
        ]
        mixed = [
            *plain[:2],
            MetricEvent("n", {"a": "b"}, {"v": 1, "w": "x"}, 7, "c-1", before_2001=True),
            plain[3],
        ]
        for events in (plain, two, mixed):
            from_parts = EventBatch.from_parts(parts_of(events))
            for batch in (EventBatch(events), from_parts, from_parts.subset(0, 4)):
                columns = batch.columns()
                assert columns.measurements == [e.measurement for e in events]
                assert columns.tags == [e.tags for e in events]
                assert columns.fields == [e.fields for e in events]
                assert columns.timestamps == [e.timestamp_ns for e in events]
                assert columns.correlation_ids == [e.correlation_id for e in events]
                assert batch.correlation_ids() == columns.correlation_ids
                for key in ("v", "w", "value", "missing"):
                    assert columns.field_values(key) == [e.fields.get(key) for e in events]

    def test_the_same_keys_in_the_same_order_are_held_as_columns(self) -> None:
        events = [
            MetricEvent("m", fields={"a": i, "b": i * 0.5}, timestamp_ns=i, before_2001=True)
            for i in range(5)
        ]
        columns = EventColumns.of_parts(parts_of(events))
        found = columns.field_columns()
        assert found is not None
        assert found.keys == ("a", "b") == columns.field_keys
        assert found.values == ([0, 1, 2, 3, 4], [0.0, 0.5, 1.0, 1.5, 2.0])
        assert columns._fields is None  # no dict per event until someone asks
        assert columns.fields == [e.fields for e in events]

    @pytest.mark.parametrize(
        "odd_one",
        [
            {"b": 1.0, "a": 1},  # the same keys in another order
            {"a": 1},  # one missing
            {"a": 1, "b": 1.0, "c": 2},  # one more
            {"a": 1, "c": 1.0},  # another one
        ],
    )
    def test_other_keys_keep_the_field_dicts(self, odd_one: dict[str, Any]) -> None:
        events = [MetricEvent("m", fields={"a": 1, "b": 0.5}), MetricEvent("m", fields=odd_one)]
        columns = EventColumns.of_events(events)
        assert columns.field_columns() is None
        assert columns.field_keys is None
        assert columns.fields == [e.fields for e in events]
        assert both(columns) == one_by_one(events)

    def test_a_subset_and_a_selection_keep_the_form(self) -> None:
        events = [
            event_from_sample("m", float(i), timestamp_ns=i, before_2001=True) for i in range(6)
        ]
        batch = EventBatch.from_parts(parts_of(events), batch_id="b", created_ns=3)
        part = batch.subset(1, 4)
        assert part.events == events[1:4]
        assert part.columns().field_keys == ("value",)
        assert (part.batch_id != "b", part.created_ns) == (True, 3)
        chosen = batch.select([5, 0])
        assert chosen.events == [events[5], events[0]]
        assert (chosen.batch_id, chosen.created_ns) == ("b", 3)
        empty = batch.subset(2, 2)
        assert (len(empty), empty.events, empty.to_json_lines()) == (0, [], "")

    @pytest.mark.parametrize(
        "own",
        [
            [{"a": 1, "b": "x"}, {"a": 2, "b": "y"}, {"a": 3, "b": "z"}],  # one form: columns
            [{"a": 1}, {"b": "y", "a": 2}, {"c": True}],  # keys that differ: dicts
        ],
    )
    def test_more_fields(self, own: list[dict[str, Any]]) -> None:
        columns = EventColumns(["m"] * 3, [{}] * 3, [dict(f) for f in own], [1, 2, 3], [None] * 3)
        more = FieldColumns(("rate", "id"), ([1, 5, 1], ["i1", "i2", "i3"]))
        found = columns.with_fields(more)
        expected = [
            MetricEvent("m", fields={**f, "rate": r, "id": i}, timestamp_ns=t, before_2001=True)
            for f, r, i, t in zip(own, [1, 5, 1], ["i1", "i2", "i3"], [1, 2, 3], strict=True)
        ]
        assert found.fields == [e.fields for e in expected]
        assert [list(f) for f in found.fields] == [[*f, "rate", "id"] for f in own]
        assert found.field_keys == (("a", "b", "rate", "id") if own[0].keys() == own[1].keys()
                                    else None)  # fmt: skip
        assert both(found) == one_by_one(expected)
        assert columns.fields == own  # the events it was made from keep their fields

    def test_more_fields_replace_a_field_of_the_same_key(self) -> None:
        columns = EventColumns(["m"] * 2, [{}] * 2, [{"a": 1, "b": 2}] * 2, [1, 2], [None] * 2)
        found = columns.with_fields(FieldColumns(("a", "c"), ([7, 8], [0, 0])))
        assert found.field_keys is None
        assert [list(f.items()) for f in found.fields] == [
            [("a", 7), ("b", 2), ("c", 0)],
            [("a", 8), ("b", 2), ("c", 0)],
        ]

    def test_more_fields_of_no_event_or_no_key(self) -> None:
        empty = EventColumns([], [], [], [], [])
        assert empty.with_fields(FieldColumns(("a",), ([],))).fields == []
        columns = EventColumns(["m"], [{}], [{"a": 1}], [1], [None])
        assert columns.with_fields(FieldColumns((), ())).fields == [{"a": 1}]
        with pytest.raises(ValueError, match="differ in length"):
            columns.with_fields(FieldColumns(("b",), ([1, 2],)))

    def test_the_columns_differ_in_length(self) -> None:
        with pytest.raises(ValueError, match="differ in length"):
            EventColumns(["m"], [{}], [{"v": 1}], [1, 2], [None])

    def test_properties_read_field_columns_without_dicts(self) -> None:
        events = [
            MetricEvent(
                "buy", {"user": f"u{i % 2}"}, {"amount": i, "event": "x"}, i, before_2001=True
            )
            for i in range(4)
        ]
        columns = EventColumns.of_events(events)
        found = property_columns(columns, ("user", "amount", "event", "measurement", "nope"))
        assert found == {
            "user": ["u0", "u1", "u0", "u1"],
            "amount": [0, 1, 2, 3],
            "event": ["x"] * 4,
            "measurement": ["buy"] * 4,
            "nope": [None] * 4,
        }
        assert columns._fields is None


class TestBatchEncoders:
    """Each codec's batch entry writes the bytes of its one-event entry, for every form of batch."""

    @settings(max_examples=300, deadline=None)
    @given(batches_of_samples())
    def test_samples(self, events: list[MetricEvent]) -> None:
        columns = EventColumns.of_parts(parts_of(events))
        assert columns.field_keys is not None
        assert both(columns) == one_by_one(events)
        assert lineprotocol.encode_batch(columns, "ms") == one_by_one(events, "ms")[0]

    @settings(max_examples=300, deadline=None)
    @given(batches_of_events(same_keys=True))
    def test_events_with_the_same_keys(self, events: list[MetricEvent]) -> None:
        columns = EventColumns.of_parts(parts_of(events))
        assert columns.field_keys == tuple(events[0].fields)
        assert both(columns) == one_by_one(events)
        assert lineprotocol.encode_batch(columns, "s") == one_by_one(events, "s")[0]

    @settings(max_examples=300, deadline=None)
    @given(batches_of_events(same_keys=False))
    def test_events_with_any_keys(self, events: list[MetricEvent]) -> None:
        columns = EventColumns.of_parts(parts_of(events))
        assert both(columns) == one_by_one(events)
        assert lineprotocol.encode_batch(columns, "us") == one_by_one(events, "us")[0]

    @pytest.mark.parametrize(
        "texts",
        [
            ["a", "b", "", "é", "x y"],
            [",", "a"],
            ["a", ","],
            ["a,", ",b", '","', "c"],
            ['q"uote', "b"],
            ["back\\slash", "b"],
            ["new\nline", "tab\t", "nul\x00", "del\x7f"],
            ["\u2028", "\U0001f600"],
        ],
    )
    def test_string_columns(self, texts: list[str]) -> None:
        events = [
            MetricEvent(
                "m",
                fields={"s": text, "n": i, "t": text[::-1]},
                timestamp_ns=1_700_000_000_000_000_000 + i,
            )
            for i, text in enumerate(texts)
        ]
        columns = EventColumns.of_events(events)
        assert columns.field_keys == ("s", "n", "t")
        assert both(columns) == one_by_one(events)

    def test_an_event_without_fields_is_refused(self) -> None:
        events = [
            event_from_sample("cpu", 1.5),
            MetricEvent("empty", timestamp_ns=0, before_2001=True),
        ]
        for batch in (EventBatch.from_parts(parts_of(events)), EventBatch(events[::-1])):
            for encode in (batch.to_influx_batch, batch.to_json_lines):
                with pytest.raises(InvalidEventError, match="event 'empty' has no fields"):
                    encode()

    def test_tags_changed_with_with_tag_are_encoded_as_they_are_now(self) -> None:
        events = [
            event_from_sample(
                "cpu", float(i), {"host": "a"}, timestamp_ns=i, before_2001=True
            ).with_tag("n", i % 3)
            for i in range(9)
        ]
        for _ in range(2):
            assert both(EventColumns.of_parts(parts_of(events))) == one_by_one(events)

    def test_values_assigned_directly_are_written_as_one_by_one(self) -> None:
        class Count(int):
            pass

        events = [
            MetricEvent("m", fields={"v": 1}, timestamp_ns=i, before_2001=True) for i in range(3)
        ]
        events[1].fields = {"v": Count(7)}
        events[2].fields = {"w": UInt(3)}
        assert both(EventColumns.of_events(events)) == one_by_one(events)

    def test_a_value_no_encoder_can_write_fails_the_batch(self) -> None:
        event = MetricEvent("m", fields={"v": 1}, timestamp_ns=0, before_2001=True)
        event.fields = {"v": object()}  # type: ignore[dict-item]
        with pytest.raises(TypeError):
            json.encode_batch(EventColumns.of_events([event]))


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
    """The batch encoders remember the text before a value per shared tag dict, bounded."""

    def test_the_texts_remembered_stay_within_the_limit(self) -> None:
        heads = _lines.TextsBefore(lambda m, k, tags: repr(tags).encode(), limit=5)
        for i in range(40):
            tags = shared_tags({"host": f"h{i}"})
            assert heads.texts(["m", "m"], "v", [tags, tags]) == [repr(tags).encode()] * 2
            assert len(heads._alive) <= 5
            assert sum(len(known) for known in heads._known.values()) <= 5

    def test_each_measurement_gets_its_own_text(self) -> None:
        heads = _lines.TextsBefore(lambda m, k, tags: f"{m}{k}{tags}".encode(), limit=5)
        tags = shared_tags({"h": "a"})
        texts = heads.texts(["a", "b", "a"], None, [tags, {}, tags])
        assert texts == [b"aNone{'h': 'a'}", b"bNone{}", b"aNone{'h': 'a'}"]
