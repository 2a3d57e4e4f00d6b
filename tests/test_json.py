"""The JSON form of an event: exact layout, kinds preserved, errors, round trips."""

from __future__ import annotations

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from metricstream import InvalidEventError, MetricEvent, SchemaVersionError, UInt
from metricstream._validate import RESERVED_KEYS
from metricstream.codecs.json import decode_event, encode_batch, encode_event
from metricstream.columns import EventColumns


def encode_events(events: list[MetricEvent]) -> bytes:
    """The batch entry of the encoder, for events."""
    return encode_batch(EventColumns.of_events(events))

INT64_MAX = 2**63 - 1
INT64_MIN = -(2**63)
UINT64_MAX = 2**64 - 1


class TestEncode:
    """to_json writes one object with the documented keys and value kinds."""

    def test_exact_layout_without_correlation_id(self) -> None:
        event = MetricEvent(
            "cpu", tags={"host": "a"}, fields={"usage": 0.5}, timestamp_ns=7, before_2001=True
        )
        assert event.to_json() == (
            '{"measurement":"cpu","tags":{"host":"a"},"fields":{"usage":0.5},'
            '"timestamp_ns":7,"schema_version":1}'
        )

    def test_correlation_id_is_written_when_set(self) -> None:
        event = MetricEvent(
            "cpu", fields={"x": 1}, timestamp_ns=7, before_2001=True, correlation_id="req-42"
        )
        assert orjson.loads(event.to_json()) == {
            "measurement": "cpu",
            "tags": {},
            "fields": {"x": 1},
            "timestamp_ns": 7,
            "schema_version": 1,
            "correlation_id": "req-42",
        }

    def test_value_kinds(self) -> None:
        event = MetricEvent(
            "m",
            fields={
                "float": 1.0,
                "int": 1,
                "neg_zero": -0.0,
                "big": 1e300,
                "bool": True,
                "text": 'q"\\\n',
                "uint": UInt(UINT64_MAX),
                "small_uint": UInt(0),
            },
            timestamp_ns=0,
            before_2001=True,
        )
        fields_json = event.to_json().split('"fields":', 1)[1].split(',"timestamp_ns"', 1)[0]
        assert fields_json == (
            '{"float":1.0,"int":1,"neg_zero":-0.0,"big":1e+300,"bool":true,'
            '"text":"q\\"\\\\\\n","uint":{"uint":18446744073709551615},"small_uint":{"uint":0}}'
        )

    def test_unicode_is_written_as_utf8(self) -> None:
        event = MetricEvent(
            "m😀", tags={"é": "ü"}, fields={"s": "日本"}, timestamp_ns=0, before_2001=True
        )
        assert encode_event(event) == event.to_json().encode()
        assert "m😀" in event.to_json()

    def test_encode_batch_is_json_lines_without_trailing_newline(self) -> None:
        events = [
            MetricEvent("a", fields={"x": 1}, timestamp_ns=1, before_2001=True),
            MetricEvent("b", fields={"y": 2.5}, timestamp_ns=2, before_2001=True),
        ]
        assert encode_events(events) == (events[0].to_json() + "\n" + events[1].to_json()).encode()
        assert encode_events([]) == b""

    def test_event_without_fields_is_refused(self) -> None:
        with pytest.raises(InvalidEventError, match="event 'm' has no fields") as info:
            MetricEvent("m", timestamp_ns=0, before_2001=True).to_json()
        assert info.value.key == "m"
        with pytest.raises(InvalidEventError, match="has no fields"):
            encode_events([MetricEvent("m", timestamp_ns=0, before_2001=True)])


class TestDecode:
    """from_json reads the documented object back, and refuses anything else clearly."""

    def test_reads_str_and_bytes(self) -> None:
        text = (
            '{"measurement":"cpu","tags":{"host":"a"},"fields":{"f":1.0,"i":1,'
            '"u":{"uint":5},"b":false,"s":"x"},"timestamp_ns":7,"schema_version":1,'
            '"correlation_id":"c"}'
        )
        expected = MetricEvent(
            "cpu",
            tags={"host": "a"},
            fields={"f": 1.0, "i": 1, "u": UInt(5), "b": False, "s": "x"},
            timestamp_ns=7,
            before_2001=True,
            correlation_id="c",
        )
        assert MetricEvent.from_json(text) == expected
        assert MetricEvent.from_json(text.encode()) == expected
        assert type(MetricEvent.from_json(text).fields["f"]) is float
        assert type(MetricEvent.from_json(text).fields["i"]) is int

    def test_tags_schema_version_and_correlation_id_are_optional(self) -> None:
        event = decode_event('{"measurement":"m","fields":{"x":1},"timestamp_ns":0}')
        assert event == MetricEvent("m", fields={"x": 1}, timestamp_ns=0, before_2001=True)

    def test_newer_schema_version_is_a_clear_error(self) -> None:
        with pytest.raises(SchemaVersionError) as info:
            decode_event('{"measurement":"m","fields":{"x":1},"timestamp_ns":0,"schema_version":2}')
        assert (info.value.found, info.value.supported) == (2, 1)
        assert str(info.value) == (
            "schema_version 2 is newer than this library supports (1); "
            "upgrade metricstream to read it"
        )
        assert isinstance(info.value, ValueError)

    @pytest.mark.parametrize(
        ("text", "key", "fragment"),
        [
            ("not json", None, "invalid JSON event"),
            (b'{"measurement":"m\xff"}', None, "invalid JSON event"),
            ("[1]", None, "a JSON event must be an object, not list"),
            ('{"fields":{"x":1},"timestamp_ns":0}', None, "JSON event is missing 'measurement'"),
            ('{"measurement":"m","timestamp_ns":0}', None, "JSON event is missing 'fields'"),
            ('{"measurement":"m","fields":{"x":1}}', None, "JSON event is missing 'timestamp_ns'"),
            ('{"measurement":"m","fields":{},"timestamp_ns":0}', "m", "JSON event has no fields"),
            (
                '{"measurement":"m","fields":[],"timestamp_ns":0}',
                None,
                "'fields' must be an object",
            ),
            (
                '{"measurement":"m","tags":[],"fields":{"x":1},"timestamp_ns":0}',
                None,
                "'tags' must be an object",
            ),
            (
                '{"measurement":"m","tags":{"h":1},"fields":{"x":1},"timestamp_ns":0}',
                "h",
                "JSON tag 'h' must be a string",
            ),
            (
                '{"measurement":"m","tags":{"time":"a"},"fields":{"x":1},"timestamp_ns":0}',
                "time",
                "tag key 'time' is reserved",
            ),
            ('{"measurement":"","fields":{"x":1},"timestamp_ns":0}', "", "measurement '' is empty"),
            (
                '{"measurement":1,"fields":{"x":1},"timestamp_ns":0}',
                None,
                "measurement must be a str",
            ),
            (
                '{"measurement":"m","fields":{"x":null},"timestamp_ns":0}',
                "x",
                "has a value of type NoneType",
            ),
            (
                '{"measurement":"m","fields":{"x":[1]},"timestamp_ns":0}',
                "x",
                "has a value of type list",
            ),
            (
                '{"measurement":"m","fields":{"x":9223372036854775808},"timestamp_ns":0}',
                "x",
                "outside the int64 range",
            ),
            (
                '{"measurement":"m","fields":{"x":{"uint":-1}},"timestamp_ns":0}',
                "x",
                '{"uint": N} with 0 <= N < 2**64',
            ),
            (
                '{"measurement":"m","fields":{"x":{"uint":true}},"timestamp_ns":0}',
                "x",
                '{"uint": N}',
            ),
            (
                '{"measurement":"m","fields":{"x":{"uint":1.0}},"timestamp_ns":0}',
                "x",
                '{"uint": N}',
            ),
            (
                '{"measurement":"m","fields":{"x":{"uint":1,"y":2}},"timestamp_ns":0}',
                "x",
                '{"uint": N}',
            ),
            ('{"measurement":"m","fields":{"x":{}},"timestamp_ns":0}', "x", '{"uint": N}'),
            (
                '{"measurement":"m","fields":{"x":1},"timestamp_ns":1.5}',
                None,
                "timestamp must be an int",
            ),
            (
                '{"measurement":"m","fields":{"x":1},"timestamp_ns":true}',
                None,
                "timestamp must be an int",
            ),
            (
                '{"measurement":"m","fields":{"x":1},"timestamp_ns":0,"schema_version":0}',
                None,
                "invalid schema_version 0",
            ),
            (
                '{"measurement":"m","fields":{"x":1},"timestamp_ns":0,"schema_version":"1"}',
                None,
                "invalid schema_version '1'",
            ),
            (
                '{"measurement":"m","fields":{"x":1},"timestamp_ns":0,"correlation_id":""}',
                None,
                "correlation id '' must be a non-empty",
            ),
        ],
    )
    def test_malformed_input(self, text: str | bytes, key: str | None, fragment: str) -> None:
        with pytest.raises(InvalidEventError) as info:
            decode_event(text)
        assert info.value.key == key
        assert fragment in str(info.value)


SPECIALS = " ,=\"\\#'é😀{}[]:\u0085"
name_chars = st.one_of(
    st.sampled_from(SPECIALS),
    st.characters(
        blacklist_categories=("Cs",),
        blacklist_characters="".join(chr(c) for c in range(32)) + "\x7f",
    ),
)
names = st.text(name_chars, min_size=1, max_size=12).filter(lambda name: not name.endswith("\\"))
keys = names.filter(lambda key: key not in RESERVED_KEYS)
field_values = st.one_of(
    st.booleans(),
    st.integers(INT64_MIN, INT64_MAX),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(st.characters(blacklist_categories=("Cs",)), max_size=40),
    st.integers(0, UINT64_MAX).map(UInt),
)
events = st.builds(
    MetricEvent,
    names.filter(lambda name: not name.startswith("#")),
    tags=st.dictionaries(keys, names, max_size=4),
    fields=st.dictionaries(keys, field_values, min_size=1, max_size=5),
    timestamp_ns=st.integers(INT64_MIN, INT64_MAX),
    before_2001=st.just(True),
    correlation_id=st.none() | names,
)


class TestRoundTrip:
    """JSON encoding then decoding is the identity, both ways."""

    @settings(max_examples=300, deadline=None)
    @given(events)
    def test_event_to_json_to_event(self, event: MetricEvent) -> None:
        assert MetricEvent.from_json(event.to_json()) == event

    @settings(max_examples=300, deadline=None)
    @given(events)
    def test_json_to_event_to_json(self, event: MetricEvent) -> None:
        text = event.to_json()
        assert MetricEvent.from_json(text).to_json() == text

    @settings(max_examples=100, deadline=None)
    @given(st.lists(events, max_size=5))
    def test_json_lines(self, batch: list[MetricEvent]) -> None:
        lines = encode_events(batch)
        assert [decode_event(line) for line in lines.splitlines()] == batch
