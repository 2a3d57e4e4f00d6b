"""MetricEvent, UInt and event_from_sample: building, validation, equality."""

from __future__ import annotations

import datetime as dt
import enum
import time
from pathlib import Path

import pytest

import metricstream as ms
from metricstream import InvalidEventError, MetricEvent, UInt, event_from_sample

INT64_MAX = 2**63 - 1
INT64_MIN = -(2**63)
UINT64_MAX = 2**64 - 1


class Color(enum.IntEnum):
    RED = 7


class Env(str, enum.Enum):
    PROD = "prod"


class TestBuilder:
    """The constructor and the fluent builder produce the same validated event."""

    def test_fluent_builder_sets_every_part_and_returns_the_same_event(self) -> None:
        event = MetricEvent("http_requests")
        returned = (
            event.with_tag("route", "/api")
            .with_tag("status", "200")
            .with_field("latency_ms", 12.5)
            .with_field("count", 1)
            .with_correlation_id("req-42")
            .with_timestamp(1_700_000_000_000_000_000)
        )
        assert returned is event
        assert event.measurement == "http_requests"
        assert event.tags == {"route": "/api", "status": "200"}
        assert event.fields == {"latency_ms": 12.5, "count": 1}
        assert event.timestamp_ns == 1_700_000_000_000_000_000
        assert event.correlation_id == "req-42"
        assert event.schema_version == 1

    def test_constructor_equals_fluent_builder(self) -> None:
        built = MetricEvent(
            "cpu",
            tags={"host": "a"},
            fields={"usage": 0.5},
            timestamp_ns=5,
            before_2001=True,
            correlation_id="c",
        )
        fluent = (
            MetricEvent("cpu", timestamp_ns=5, before_2001=True)
            .with_tag("host", "a")
            .with_field("usage", 0.5)
            .with_correlation_id("c")
        )
        assert built == fluent

    def test_tags_and_fields_accept_key_value_pairs(self) -> None:
        event = MetricEvent(
            "m", tags=[("b", "2"), ("a", "1")], fields=[("x", 1)], timestamp_ns=0, before_2001=True
        )
        assert event.tags == {"b": "2", "a": "1"}
        assert event.fields == {"x": 1}

    def test_timestamp_defaults_to_now_at_construction(self) -> None:
        before = time.time_ns()
        event = MetricEvent("m")
        after = time.time_ns()
        assert before <= event.timestamp_ns <= after

    def test_aware_datetime_timestamp_is_converted_to_nanoseconds(self) -> None:
        moment = dt.datetime(2023, 11, 14, 22, 13, 20, 123456, tzinfo=dt.timezone.utc)
        event = MetricEvent("m", timestamp_ns=moment)
        assert event.timestamp_ns == 1_700_000_000_123_456_000

    def test_constructor_copies_the_callers_tag_and_field_dicts(self) -> None:
        tags = {"host": "a"}
        fields: dict[str, object] = {"x": 1}
        event = MetricEvent("m", tags=tags, fields=fields)
        tags["host"] = "b"
        fields["y"] = 2
        assert event.tags == {"host": "a"}
        assert event.fields == {"x": 1}

    def test_event_with_no_fields_can_be_built(self) -> None:
        event = MetricEvent("m", tags={"host": "a"}, timestamp_ns=1, before_2001=True)
        assert event.fields == {}

    def test_int_float_and_bool_tag_values_become_strings(self) -> None:
        event = MetricEvent("m").with_tag("a", 1).with_tag("b", 1.5).with_tag("c", True)
        assert event.tags == {"a": "1", "b": "1.5", "c": "True"}

    def test_enum_members_give_their_plain_values(self) -> None:
        event = MetricEvent(Env.PROD, tags={Env.PROD: Env.PROD, "color": Color.RED})
        event.with_field(Env.PROD, Env.PROD).with_correlation_id(Env.PROD)
        assert event.measurement == "prod"
        assert event.tags == {"prod": "prod", "color": "7"}
        assert event.fields == {"prod": "prod"}
        assert event.correlation_id == "prod"
        parts = [event.measurement, *event.tags, *event.tags.values(), *event.fields]
        parts += [event.fields["prod"], event.correlation_id]
        assert {type(part) for part in parts} == {str}

    def test_with_correlation_id_none_clears_it(self) -> None:
        event = MetricEvent("m", correlation_id="x").with_correlation_id(None)
        assert event.correlation_id is None

    def test_events_use_slots(self) -> None:
        event = MetricEvent("m")
        assert not hasattr(event, "__dict__")
        with pytest.raises(AttributeError):
            event.extra = 1  # type: ignore[attr-defined]

    def test_schema_version_is_the_module_constant(self) -> None:
        assert ms.SCHEMA_VERSION == 1
        assert MetricEvent.schema_version == ms.SCHEMA_VERSION

    def test_copy_is_independent(self) -> None:
        event = MetricEvent("m", tags={"a": "1"}, fields={"x": 1}, timestamp_ns=3, before_2001=True)
        clone = event.copy()
        clone.with_tag("b", "2").with_field("y", 2)
        assert clone is not event
        assert event.tags == {"a": "1"}
        assert event.fields == {"x": 1}
        assert clone == MetricEvent(
            "m",
            tags={"a": "1", "b": "2"},
            fields={"x": 1, "y": 2},
            timestamp_ns=3,
            before_2001=True,
        )


class TestFieldValues:
    """Field values keep their kind: bool, int, float, str and UInt are distinct."""

    def test_bool_is_never_treated_as_an_int(self) -> None:
        event = MetricEvent("m", fields={"flag": True, "n": 1}, timestamp_ns=0, before_2001=True)
        assert type(event.fields["flag"]) is bool
        assert type(event.fields["n"]) is int
        assert event.to_influx_line() == "m flag=true,n=1i 0"

    def test_uint_keeps_its_kind(self) -> None:
        event = MetricEvent("m", fields={"u": UInt(5)}, timestamp_ns=0, before_2001=True)
        assert type(event.fields["u"]) is UInt
        assert event.fields["u"] == 5
        assert repr(event.fields["u"]) == "UInt(5)"

    def test_uint_accepts_the_whole_uint64_range(self) -> None:
        assert UInt(0) == 0
        assert UInt(UINT64_MAX) == UINT64_MAX

    def test_int_and_float_subclasses_become_plain_types(self) -> None:
        class Ratio(float):
            pass

        event = MetricEvent("m", fields={"color": Color.RED, "ratio": Ratio(0.5)})
        assert type(event.fields["color"]) is int
        assert event.fields["color"] == 7
        assert type(event.fields["ratio"]) is float

    def test_int64_bounds_are_accepted(self) -> None:
        event = MetricEvent(
            "m", fields={"lo": INT64_MIN, "hi": INT64_MAX}, timestamp_ns=0, before_2001=True
        )
        assert event.fields == {"lo": INT64_MIN, "hi": INT64_MAX}

    def test_string_of_exactly_64_kib_is_accepted(self) -> None:
        event = MetricEvent("m").with_field("s", "é" * (32 * 1024))
        assert len(str(event.fields["s"]).encode()) == 64 * 1024


class TestValidationErrors:
    """Each invalid part raises InvalidEventError naming the key and the problem."""

    @pytest.mark.parametrize(
        ("measurement", "fragment"),
        [
            ("", "measurement '' is empty"),
            ("a\nb", "contains a newline or carriage return"),
            ("a\rb", "contains a newline or carriage return"),
            ("#cpu", "starts with '#'"),
            ("cpu\\", "ends with a backslash"),
            ("cpu\ud800", "lone surrogate"),
        ],
    )
    def test_bad_measurement(self, measurement: str, fragment: str) -> None:
        with pytest.raises(InvalidEventError) as info:
            MetricEvent(measurement)
        assert info.value.key == measurement
        assert fragment in str(info.value)

    def test_measurement_that_is_not_a_string(self) -> None:
        with pytest.raises(InvalidEventError, match="measurement must be a str, not int") as info:
            MetricEvent(5)  # type: ignore[arg-type]
        assert info.value.key is None

    @pytest.mark.parametrize(
        ("key", "fragment"),
        [
            ("", "tag key '' is empty"),
            ("a\nb", "tag key 'a\\nb' contains a newline or carriage return"),
            ("a\rb", "tag key 'a\\rb' contains a newline or carriage return"),
            ("k\\", "ends with a backslash"),
            ("time", "tag key 'time' is reserved"),
            ("_measurement", "tag key '_measurement' is reserved"),
            ("_field", "tag key '_field' is reserved"),
        ],
    )
    def test_bad_tag_key(self, key: str, fragment: str) -> None:
        with pytest.raises(InvalidEventError) as info:
            MetricEvent("m").with_tag(key, "v")
        assert info.value.key == key
        assert fragment in str(info.value)
        with pytest.raises(InvalidEventError) as info:
            MetricEvent("m", tags={key: "v"})
        assert info.value.key == key

    @pytest.mark.parametrize(
        ("value", "fragment"),
        [
            ("", "tag value '' for key 'host' is empty"),
            ("a\nb", "for key 'host' contains a newline or carriage return"),
            ("a\rb", "for key 'host' contains a newline or carriage return"),
            ("v\\", "for key 'host' ends with a backslash"),
            (None, "tag value for key 'host' must be a str (or int, float, bool), not NoneType"),
            (["a"], "tag value for key 'host' must be a str (or int, float, bool), not list"),
            (b"a", "tag value for key 'host' must be a str (or int, float, bool), not bytes"),
        ],
    )
    def test_bad_tag_value(self, value: object, fragment: str) -> None:
        with pytest.raises(InvalidEventError) as info:
            MetricEvent("m").with_tag("host", value)  # type: ignore[arg-type]
        assert info.value.key == "host"
        assert fragment in str(info.value)
        with pytest.raises(InvalidEventError) as info:
            MetricEvent("m", tags={"host": value})
        assert info.value.key == "host"

    @pytest.mark.parametrize(
        ("key", "fragment"),
        [
            ("", "field key '' is empty"),
            ("a\nb", "field key 'a\\nb' contains a newline or carriage return"),
            ("a\rb", "field key 'a\\rb' contains a newline or carriage return"),
            ("f\\", "ends with a backslash"),
            ("time", "field key 'time' is reserved"),
            ("_measurement", "field key '_measurement' is reserved"),
            ("_field", "field key '_field' is reserved"),
        ],
    )
    def test_bad_field_key(self, key: str, fragment: str) -> None:
        with pytest.raises(InvalidEventError) as info:
            MetricEvent("m").with_field(key, 1)
        assert info.value.key == key
        assert fragment in str(info.value)
        with pytest.raises(InvalidEventError) as info:
            MetricEvent("m", fields={key: 1})
        assert info.value.key == key

    def test_key_that_is_not_a_string(self) -> None:
        with pytest.raises(InvalidEventError, match="field key must be a str, not int"):
            MetricEvent("m", fields={1: 1})  # type: ignore[dict-item]
        with pytest.raises(InvalidEventError, match="tag key must be a str, not int"):
            MetricEvent("m", tags={1: "a"})  # type: ignore[dict-item]

    @pytest.mark.parametrize(
        ("value", "fragment"),
        [
            (float("nan"), "field 'x' is nan; NaN and infinity are not allowed"),
            (float("inf"), "field 'x' is inf; NaN and infinity are not allowed"),
            (float("-inf"), "field 'x' is -inf; NaN and infinity are not allowed"),
            (INT64_MAX + 1, "field 'x' = 9223372036854775808 is outside the int64 range"),
            (INT64_MIN - 1, "field 'x' = -9223372036854775809 is outside the int64 range"),
            ("a" * (64 * 1024 + 1), "field 'x' is a string of 65537 bytes; the limit is 65536"),
            ("é" * (32 * 1024 + 1), "field 'x' is a string of 65538 bytes; the limit is 65536"),
            ("a\ud800", "field 'x' is not valid Unicode"),
            (None, "field 'x' has a value of type NoneType"),
            ([1], "field 'x' has a value of type list"),
            (b"raw", "field 'x' has a value of type bytes"),
        ],
    )
    def test_bad_field_value(self, value: object, fragment: str) -> None:
        with pytest.raises(InvalidEventError) as info:
            MetricEvent("m").with_field("x", value)  # type: ignore[arg-type]
        assert info.value.key == "x"
        assert fragment in str(info.value)
        with pytest.raises(InvalidEventError) as info:
            MetricEvent("m", fields={"x": value})
        assert info.value.key == "x"
        with pytest.raises(InvalidEventError) as info:
            event_from_sample("m", value, field="x")  # type: ignore[arg-type]
        assert info.value.key == "x"

    @pytest.mark.parametrize(
        ("value", "fragment"),
        [
            (-1, "UInt value -1 is outside 0..18446744073709551615"),
            (UINT64_MAX + 1, "UInt value 18446744073709551616 is outside 0..18446744073709551615"),
            (True, "UInt value must be an integer, not bool"),
            (1.5, "UInt value must be an integer, not float"),
        ],
    )
    def test_bad_uint(self, value: object, fragment: str) -> None:
        with pytest.raises(InvalidEventError) as info:
            UInt(value)
        assert info.value.key is None
        assert fragment in str(info.value)

    @pytest.mark.parametrize(
        ("timestamp", "fragment"),
        [
            (True, "timestamp must be an int of nanoseconds, not bool"),
            (1.5, "timestamp must be an int of nanoseconds, not float"),
            ("1", "timestamp must be an int of nanoseconds, not str"),
            (INT64_MAX + 1, "timestamp 9223372036854775808 ns is outside the int64 range"),
            (dt.datetime(2020, 1, 1), "timestamp datetime must be timezone-aware"),
        ],
    )
    def test_bad_timestamp(self, timestamp: object, fragment: str) -> None:
        with pytest.raises(InvalidEventError) as info:
            MetricEvent("m", timestamp_ns=timestamp)  # type: ignore[arg-type]
        assert fragment in str(info.value)
        with pytest.raises(InvalidEventError):
            MetricEvent("m").with_timestamp(timestamp)  # type: ignore[arg-type]

    @pytest.mark.parametrize(
        ("correlation_id", "fragment"),
        [
            ("", "correlation id '' must be a non-empty one-line str"),
            ("a\nb", "correlation id 'a\\nb' must be a non-empty one-line str"),
            ("a\x00b", "it contains a control character (U+0000)"),
            ("a\x1bb", "it contains a control character (U+001B)"),
            ("a\ud800b", "it is not valid Unicode (it contains a lone surrogate)"),
            (5, "correlation id must be a str, not int"),
        ],
    )
    def test_bad_correlation_id(self, correlation_id: object, fragment: str) -> None:
        with pytest.raises(InvalidEventError) as info:
            MetricEvent("m").with_correlation_id(correlation_id)  # type: ignore[arg-type]
        assert fragment in str(info.value)

    @pytest.mark.parametrize("tags", ["host=a", 5, [("a",)]])
    def test_tags_that_are_not_a_mapping_or_pairs(self, tags: object) -> None:
        with pytest.raises(InvalidEventError, match="tags must be a mapping or"):
            MetricEvent("m", tags=tags)  # type: ignore[arg-type]

    def test_fields_that_are_not_a_mapping_or_pairs(self) -> None:
        with pytest.raises(InvalidEventError, match="fields must be a mapping or"):
            MetricEvent("m", fields="x=1")  # type: ignore[arg-type]

    def test_validation_errors_are_value_errors(self) -> None:
        with pytest.raises(ValueError, match="is empty"):
            MetricEvent("")

    def test_failed_builder_step_leaves_the_event_unchanged(self) -> None:
        event = MetricEvent("m", fields={"x": 1})
        with pytest.raises(InvalidEventError):
            event.with_field("x", float("nan"))
        assert event.fields == {"x": 1}

    def test_event_without_fields_is_rejected_when_encoded(self) -> None:
        event = MetricEvent("cpu", tags={"host": "a"})
        with pytest.raises(InvalidEventError, match="event 'cpu' has no fields") as info:
            event.to_influx_line()
        assert info.value.key == "cpu"
        with pytest.raises(InvalidEventError, match="event 'cpu' has no fields"):
            event.to_json()


class TestEventFromSample:
    """event_from_sample builds a one-field event from a metric name and a value."""

    def test_equals_the_long_form(self) -> None:
        event = event_from_sample(
            "cpu.usage", 0.73, {"host": "a"}, timestamp_ns=9, before_2001=True
        )
        assert event == MetricEvent(
            "cpu.usage",
            tags={"host": "a"},
            fields={"value": 0.73},
            timestamp_ns=9,
            before_2001=True,
        )

    def test_tags_as_pairs_and_custom_field_key(self) -> None:
        event = event_from_sample(
            "q", 3, [("db", "main")], field="rows", timestamp_ns=1, before_2001=True
        )
        assert event.tags == {"db": "main"}
        assert event.fields == {"rows": 3}
        assert event.correlation_id is None

    def test_without_tags(self) -> None:
        event = event_from_sample("q", True, timestamp_ns=1, before_2001=True)
        assert event.tags == {}
        assert event.fields == {"value": True}

    def test_timestamp_defaults_to_now(self) -> None:
        before = time.time_ns()
        event = event_from_sample("q", 1)
        assert before <= event.timestamp_ns <= time.time_ns()

    def test_uint_and_subclass_values(self) -> None:
        assert type(event_from_sample("q", UInt(2)).fields["value"]) is UInt
        assert type(event_from_sample("q", Color.RED).fields["value"]) is int

    def test_validates_every_part(self) -> None:
        with pytest.raises(InvalidEventError, match="measurement '' is empty"):
            event_from_sample("", 1)
        with pytest.raises(InvalidEventError, match="tag key 'time' is reserved"):
            event_from_sample("q", 1, {"time": "x"})
        with pytest.raises(InvalidEventError, match="field key '_field' is reserved"):
            event_from_sample("q", 1, field="_field")
        with pytest.raises(InvalidEventError, match="NaN and infinity are not allowed"):
            event_from_sample("q", float("inf"))
        with pytest.raises(InvalidEventError, match="outside the int64 range"):
            event_from_sample("q", 2**63)
        with pytest.raises(InvalidEventError, match="timestamp must be an int"):
            event_from_sample("q", 1, timestamp_ns=1.0)  # type: ignore[arg-type]

    def test_tags_are_copied(self) -> None:
        tags = {"host": "a"}
        event = event_from_sample("q", 1, tags)
        tags["host"] = "b"
        assert event.tags == {"host": "a"}


class TestEqualityAndRepr:
    """Equality compares every part including the kind of each field value."""

    def test_int_and_float_fields_differ(self) -> None:
        assert MetricEvent("m", fields={"x": 1}, timestamp_ns=0, before_2001=True) != MetricEvent(
            "m", fields={"x": 1.0}, timestamp_ns=0, before_2001=True
        )

    def test_uint_and_int_fields_differ(self) -> None:
        assert MetricEvent(
            "m", fields={"x": UInt(1)}, timestamp_ns=0, before_2001=True
        ) != MetricEvent("m", fields={"x": 1}, timestamp_ns=0, before_2001=True)

    def test_bool_and_int_fields_differ(self) -> None:
        assert MetricEvent(
            "m", fields={"x": True}, timestamp_ns=0, before_2001=True
        ) != MetricEvent("m", fields={"x": 1}, timestamp_ns=0, before_2001=True)

    def test_negative_zero_differs_from_zero(self) -> None:
        assert MetricEvent(
            "m", fields={"x": -0.0}, timestamp_ns=0, before_2001=True
        ) != MetricEvent("m", fields={"x": 0.0}, timestamp_ns=0, before_2001=True)

    @pytest.mark.parametrize(
        "other",
        [
            MetricEvent("n", fields={"x": 1}, timestamp_ns=0, before_2001=True),
            MetricEvent("m", tags={"a": "b"}, fields={"x": 1}, timestamp_ns=0, before_2001=True),
            MetricEvent("m", fields={"x": 1}, timestamp_ns=1, before_2001=True),
            MetricEvent("m", fields={"x": 1}, timestamp_ns=0, before_2001=True, correlation_id="c"),
            MetricEvent("m", fields={"y": 1}, timestamp_ns=0, before_2001=True),
            MetricEvent("m", fields={"x": 2}, timestamp_ns=0, before_2001=True),
        ],
    )
    def test_any_differing_part_makes_events_unequal(self, other: MetricEvent) -> None:
        assert MetricEvent("m", fields={"x": 1}, timestamp_ns=0, before_2001=True) != other

    def test_field_order_does_not_affect_equality(self) -> None:
        assert MetricEvent(
            "m", fields={"a": 1, "b": 2}, timestamp_ns=0, before_2001=True
        ) == MetricEvent("m", fields={"b": 2, "a": 1}, timestamp_ns=0, before_2001=True)

    def test_comparison_with_other_types(self) -> None:
        event = MetricEvent("m", timestamp_ns=0, before_2001=True)
        assert event != "m"
        assert (event == object()) is False

    def test_events_are_unhashable(self) -> None:
        with pytest.raises(TypeError):
            hash(MetricEvent("m"))

    def test_repr_shows_every_part(self) -> None:
        event = MetricEvent(
            "cpu",
            tags={"host": "a"},
            fields={"u": 0.5, "n": UInt(3)},
            timestamp_ns=7,
            before_2001=True,
            correlation_id="req-1",
        )
        assert repr(event) == (
            "MetricEvent('cpu', tags={'host': 'a'}, fields={'u': 0.5, 'n': UInt(3)}, "
            "timestamp_ns=7, correlation_id='req-1')"
        )

    def test_repr_omits_empty_tags_and_missing_correlation_id(self) -> None:
        assert repr(MetricEvent("cpu", fields={"x": 1}, timestamp_ns=7, before_2001=True)) == (
            "MetricEvent('cpu', fields={'x': 1}, timestamp_ns=7)"
        )


class TestSharedTags:
    """event_from_sample shares one read-only tag dict between events with equal tags."""

    def test_events_with_equal_tags_share_one_read_only_dict(self) -> None:
        first = event_from_sample("m", 1, {"host": "a", "dc": "x"})
        second = event_from_sample("m", 2, {"host": "a", "dc": "x"})
        assert first.tags is second.tags
        assert first.tags == {"host": "a", "dc": "x"}
        with pytest.raises(TypeError, match=r"use event\.with_tag"):
            first.tags["host"] = "b"  # type: ignore[index]
        with pytest.raises(TypeError, match="read-only"):
            first.tags.update(host="b")
        assert second.tags == {"host": "a", "dc": "x"}

    def test_with_tag_gives_the_event_its_own_copy(self) -> None:
        first = event_from_sample("m", 1, {"host": "a"})
        second = event_from_sample("m", 2, {"host": "a"})
        first.with_tag("host", "b").with_tag("rack", 7)
        assert first.tags == {"host": "b", "rack": "7"}
        assert type(first.tags) is dict
        assert second.tags == {"host": "a"}

    def test_non_string_tag_values_are_converted_and_not_confused(self) -> None:
        assert event_from_sample("m", 1, {"code": 1}).tags == {"code": "1"}
        assert event_from_sample("m", 1, {"code": True}).tags == {"code": "True"}
        assert event_from_sample("m", 1, {"code": 1.0}).tags == {"code": "1.0"}

    def test_shared_tags_encode_copy_and_pickle_as_plain_dicts(self) -> None:
        import pickle

        event = event_from_sample("m", 1, {"host": "a"}, timestamp_ns=5, before_2001=True)
        assert event.to_influx_line() == "m,host=a value=1i 5"
        assert ms.MetricEvent.from_json(event.to_json()) == event
        assert type(event.copy().tags) is dict
        restored = pickle.loads(pickle.dumps(event.tags))
        assert (type(restored), restored) == (dict, {"host": "a"})

    def test_invalid_tags_are_still_refused(self) -> None:
        with pytest.raises(InvalidEventError) as info:
            event_from_sample("m", 1, {"host": ""})
        assert info.value.key == "host"
        with pytest.raises(InvalidEventError):
            event_from_sample("m", 1, {"host": ["a"]})


NS_2023 = 1_700_000_000_000_000_000
"""2023-11-14T22:13:20Z in nanoseconds."""


class TestTimestampsBefore2001:
    """A number before 2001 is refused where an event is built, naming the unit it looks like."""

    @pytest.mark.parametrize(
        ("number", "unit", "keyword"),
        [
            (1_700_000_000, "seconds", "seconds"),
            (1_700_000_000_123, "milliseconds", "ms"),
            (1_700_000_000_123_456, "microseconds", "us"),
        ],
    )
    def test_a_time_in_another_unit_is_refused_naming_that_unit(
        self, number: int, unit: str, keyword: str
    ) -> None:
        as_ns = number * {"seconds": 10**9, "ms": 10**6, "us": 10**3}[keyword]
        expected = (
            f"timestamp {number} ns is before 2001 (below 10**18 ns): it looks like {unit}; "
            f"give nanoseconds ({as_ns}) or with_timestamp({keyword}={number}), "
            "or pass before_2001=True for a time before 2001"
        )
        builders = (
            lambda: MetricEvent("m", fields={"x": 1}).with_timestamp(number),
            lambda: MetricEvent("m", fields={"x": 1}, timestamp_ns=number),
            lambda: event_from_sample("m", 1, timestamp_ns=number),
        )
        for build in builders:
            with pytest.raises(InvalidEventError) as info:
                build()
            assert str(info.value) == expected
        event = MetricEvent("m", fields={"x": 1}).with_timestamp(**{keyword: number})
        assert event.timestamp_ns == as_ns

    @pytest.mark.parametrize("number", [0, 5, -1, 10**18 - 1, INT64_MIN])
    def test_a_time_before_2001_in_no_unit_is_refused_unless_meant(self, number: int) -> None:
        with pytest.raises(InvalidEventError) as info:
            MetricEvent("m", fields={"x": 1}, timestamp_ns=number)
        assert str(info.value) == (
            f"timestamp {number} ns is before 2001 (below 10**18 ns); "
            "pass before_2001=True if that time is meant"
        )
        meant = [
            MetricEvent("m", fields={"x": 1}, timestamp_ns=number, before_2001=True),
            MetricEvent("m", fields={"x": 1}).with_timestamp(number, before_2001=True),
            event_from_sample("m", 1, timestamp_ns=number, before_2001=True),
        ]
        assert [event.timestamp_ns for event in meant] == [number] * 3

    def test_the_earliest_time_taken_as_it_is_is_2001_09_09(self) -> None:
        earliest = dt.datetime(2001, 9, 9, 1, 46, 40, tzinfo=dt.timezone.utc)
        assert MetricEvent("m", timestamp_ns=10**18).timestamp_ns == 10**18
        assert MetricEvent("m").with_timestamp(earliest).timestamp_ns == 10**18

    def test_a_datetime_says_its_date_and_is_taken_as_it_is(self) -> None:
        moon = dt.datetime(1969, 7, 20, 20, 17, tzinfo=dt.timezone.utc)
        expected = int((moon - dt.datetime(1970, 1, 1, tzinfo=dt.timezone.utc)).total_seconds())
        assert MetricEvent("m", timestamp_ns=moon).timestamp_ns == expected * 10**9

    @pytest.mark.parametrize(
        ("given", "expected"),
        [
            ({"seconds": 1_700_000_000}, NS_2023),
            ({"seconds": 1_700_000_000.123456}, NS_2023 + 123_456_000),
            ({"ms": 1_700_000_000_123}, NS_2023 + 123_000_000),
            ({"ms": 1_700_000_000_123.5}, NS_2023 + 123_500_000),
            ({"us": 1_700_000_000_123_456}, NS_2023 + 123_456_000),
            ({"timestamp_ns": NS_2023 + 7}, NS_2023 + 7),
        ],
    )
    def test_with_timestamp_takes_one_unit(self, given: dict[str, float], expected: int) -> None:
        event = MetricEvent("m").with_timestamp(**given)  # type: ignore[arg-type]
        assert event.timestamp_ns == expected

    @pytest.mark.parametrize(
        ("given", "problem"),
        [
            ({}, "with_timestamp() takes one time: timestamp_ns, seconds=, ms= or us=, not 0"),
            (
                {"timestamp_ns": NS_2023, "seconds": 1},
                "with_timestamp() takes one time: timestamp_ns, seconds=, ms= or us=, not 2",
            ),
            ({"seconds": 5}, "timestamp 5 seconds is before 2001; pass before_2001=True"),
            ({"ms": float("inf")}, "timestamp in ms must be finite, not inf"),
            ({"us": "1"}, "timestamp in us must be an int or float, not str"),
            ({"seconds": True}, "timestamp in seconds must be an int or float, not bool"),
            ({"seconds": 10**11}, "outside the int64 range of nanoseconds"),
        ],
    )
    def test_with_timestamp_refuses_what_is_not_one_time(
        self, given: dict[str, object], problem: str
    ) -> None:
        with pytest.raises(InvalidEventError) as info:
            MetricEvent("m").with_timestamp(**given)  # type: ignore[arg-type]
        assert problem in str(info.value)


class TestStoredTimesReadBackAsTheyAre:
    """Decoders read what was written, whatever its time: the 2001 check is for building only."""

    def test_json_before_2001_is_decoded(self, tmp_path: Path) -> None:
        from metricstream.sinks.jsonl import read_events

        text = '{"measurement":"m","fields":{"x":1},"timestamp_ns":5,"schema_version":1}'
        assert MetricEvent.from_json(text).timestamp_ns == 5
        (tmp_path / "old.jsonl").write_text(text + "\n")
        assert [e.timestamp_ns for e in read_events(tmp_path / "old.jsonl")] == [5]

    @pytest.mark.parametrize(("precision", "expected"), [("ns", 1_700), ("s", 1_700 * 10**9)])
    def test_line_protocol_before_2001_is_parsed(self, precision: str, expected: int) -> None:
        assert MetricEvent.from_influx_line("m x=1 1700", precision).timestamp_ns == expected
        assert [e.timestamp_ns for e in ms.parse_lines("m x=1 1700\n", precision)] == [expected]

    def test_a_spool_of_old_events_replays_them(self, tmp_path: Path) -> None:
        from metricstream.contract import EventBatch
        from metricstream.spool import Spool, rewind
        from metricstream.testing import InMemorySink

        spool = Spool(tmp_path, sinks=["memory"], max_bytes=1 << 20, fsync="never")
        old = MetricEvent("m", fields={"x": 1}, timestamp_ns=5, before_2001=True)
        spool.append(EventBatch([old]))
        spool.close()
        rewind(tmp_path, "memory")
        sink = InMemorySink()
        streamer = ms.EventStreamer([sink], spool_dir=tmp_path, register_atexit=False)
        try:
            assert sink.wait_for(1, timeout=30)  # flush() does not wait for recovered events
            assert [e.timestamp_ns for e in sink.events] == [5]
        finally:
            streamer.shutdown(5)
