"""Line protocol: encoding to the reference, parsing the whole grammar, round trips."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from metricstream import (
    ConfigError,
    InvalidEventError,
    LineProtocolError,
    MetricEvent,
    UInt,
    parse_lines,
)
from metricstream._validate import RESERVED_KEYS
from metricstream.codecs.lineprotocol import PRECISIONS, encode_batch, encode_event, parse_line
from metricstream.columns import EventColumns


def encode_lines(events: list[MetricEvent]) -> str:
    """The batch entry of the encoder, for events."""
    return encode_batch(EventColumns.of_events(events)).decode()


INT64_MAX = 2**63 - 1
INT64_MIN = -(2**63)
UINT64_MAX = 2**64 - 1
DEFAULT_TIME = 42_000_000_000
MAX_FLOAT = 1.7976931348623157e308


def parse_one(text: str | bytes, precision: str = "ns") -> MetricEvent:
    """Parse text that must hold exactly one entry, with a fixed default time."""
    events = parse_lines(text, precision=precision, default_time_ns=DEFAULT_TIME)
    assert len(events) == 1
    return events[0]


def parse_error(text: str | bytes) -> LineProtocolError:
    """Parse text that must be rejected and return the error."""
    with pytest.raises(LineProtocolError) as info:
        parse_lines(text, default_time_ns=DEFAULT_TIME)
    return info.value


def event(
    measurement: str = "m",
    tags: dict[str, str] | None = None,
    fields: dict[str, object] | None = None,
    timestamp_ns: int = 0,
    before_2001: bool = True,
) -> MetricEvent:
    return MetricEvent(
        measurement,
        tags=tags,
        fields=fields or {"v": 1.0},
        timestamp_ns=timestamp_ns,
        before_2001=before_2001,
    )


class TestEncodeEscaping:
    """The encoder escapes exactly what the reference lists for each element."""

    @pytest.mark.parametrize(
        ("measurement", "written"),
        [
            ("cpu", "cpu"),
            ("cpu load", "cpu\\ load"),
            ("cpu,main", "cpu\\,main"),
            ("cpu=load", "cpu=load"),
            ('"cpu"', '"cpu"'),
            ("a\\b", "a\\b"),
            ("a\\,b", "a\\\\,b"),
            ("ünïcødé 😀", "ünïcødé\\ 😀"),
        ],
    )
    def test_measurement(self, measurement: str, written: str) -> None:
        assert event(measurement).to_influx_line() == f"{written} v=1 0"

    @pytest.mark.parametrize(
        ("name", "written"),
        [
            ("host", "host"),
            ("A FOO", "A\\ FOO"),
            ("a,b", "a\\,b"),
            ("a=b", "a\\=b"),
            ("reg\\=ion", "reg\\\\=ion"),
            ("\\,,=east", "\\\\,\\,\\=east"),
            ('"quoted"', '"quoted"'),
            ("eas\\t", "eas\\t"),
            ("#not-a-comment", "#not-a-comment"),
        ],
    )
    def test_tag_keys_values_and_field_keys(self, name: str, written: str) -> None:
        line = event(tags={name: name}, fields={name: 1}).to_influx_line()
        assert line == f"m,{written}={written} {written}=1i 0"

    @pytest.mark.parametrize(
        ("value", "written"),
        [
            ("things", '"things"'),
            ('test"', '"test\\""'),
            ('backslash \\ then quote " .', '"backslash \\\\ then quote \\" ."'),
            ("foo\\,bar", '"foo\\\\,bar"'),
            ("foo\\", '"foo\\\\"'),
            ('{Hello"{,}" World}', '"{Hello\\"{,}\\" World}"'),
            ("foo\nbar", '"foo\nbar"'),
            ("tab\tand\rcr", '"tab\tand\rcr"'),
            ("a=b c,d", '"a=b c,d"'),
            ("", '""'),
        ],
    )
    def test_string_field_values(self, value: str, written: str) -> None:
        assert event(fields={"s": value}).to_influx_line() == f"m s={written} 0"


class TestEncodeValues:
    """Field values are written in the reference's forms, fields in insertion order."""

    @pytest.mark.parametrize(
        ("value", "written"),
        [
            (1.0, "1"),
            (42.0, "42"),
            (-0.64, "-0.64"),
            (12.123, "12.123"),
            (0.1, "0.1"),
            (1e-4, "0.0001"),
            (1e-5, "1e-05"),
            (1e16, "1e+16"),
            (-0.0, "-0"),
            (1.7976931348623157e308, "1.7976931348623157e+308"),
            (5e-324, "5e-324"),
            (0.30000000000000004, "0.30000000000000004"),
            (999999.5, "999999.5"),
            (1e6, "1e+06"),
            (6632243.0, "6.632243e+06"),
            (-1234567.891, "-1.234567891e+06"),
            (123456789012345.6, "1.234567890123456e+14"),
            (9999999999999998.0, "9.999999999999998e+15"),
        ],
    )
    def test_floats_in_shortest_round_trip_form(self, value: float, written: str) -> None:
        assert event(fields={"f": value}).to_influx_line() == f"m f={written} 0"
        assert float(written) == value

    @pytest.mark.parametrize(
        ("value", "written"),
        [
            (0, "0i"),
            (-1, "-1i"),
            (INT64_MAX, "9223372036854775807i"),
            (INT64_MIN, "-9223372036854775808i"),
            (UInt(0), "0u"),
            (UInt(UINT64_MAX), "18446744073709551615u"),
            (True, "true"),
            (False, "false"),
        ],
    )
    def test_ints_uints_and_bools(self, value: object, written: str) -> None:
        assert event(fields={"f": value}).to_influx_line() == f"m f={written} 0"

    def test_tags_sorted_by_key_and_fields_in_insertion_order(self) -> None:
        ev = MetricEvent(
            "test",
            tags={"region": "uswest", "host": "serverA", "APPLE": "orange", "A FOO": "bar"},
            fields={"z": 1, "a": "x", "m": 2.5},
            timestamp_ns=1_603_976_386_427_072_239,
        )
        assert ev.to_influx_line() == (
            "test,A\\ FOO=bar,APPLE=orange,host=serverA,region=uswest "
            'z=1i,a="x",m=2.5 1603976386427072239'
        )

    def test_tags_sort_by_code_point_like_go_bytes_compare(self) -> None:
        ev = event(tags={"é": "1", "z": "2", "Z": "3", "😀": "4"})
        assert ev.to_influx_line() == "m,Z=3,z=2,é=1,😀=4 v=1 0"

    def test_tag_order_of_insertion_does_not_matter(self) -> None:
        first = event(tags={"a": "1", "b": "2"}).to_influx_line()
        second = event(tags={"b": "2", "a": "1"}).to_influx_line()
        assert first == second == "m,a=1,b=2 v=1 0"

    def test_negative_and_zero_timestamps(self) -> None:
        assert event(timestamp_ns=0, before_2001=True).to_influx_line() == "m v=1 0"
        assert (
            event(timestamp_ns=-34_526_000_000_000, before_2001=True).to_influx_line()
            == "m v=1 -34526000000000"
        )
        assert event(timestamp_ns=INT64_MIN).to_influx_line() == f"m v=1 {INT64_MIN}"

    def test_no_trailing_newline(self) -> None:
        assert not event().to_influx_line().endswith("\n")

    def test_encode_event_is_to_influx_line(self) -> None:
        ev = event(tags={"h": "a"}, fields={"x": 1, "y": "z"}, timestamp_ns=5, before_2001=True)
        assert encode_event(ev) == ev.to_influx_line() == 'm,h=a x=1i,y="z" 5'

    def test_encode_batch_joins_without_trailing_newline(self) -> None:
        events = [
            event(timestamp_ns=1, before_2001=True),
            event("n", timestamp_ns=2, before_2001=True),
        ]
        assert encode_lines(events) == "m v=1 1\nn v=1 2"
        assert encode_lines([]) == ""

    def test_event_without_fields_is_refused(self) -> None:
        with pytest.raises(InvalidEventError, match="has no fields"):
            encode_event(MetricEvent("m", timestamp_ns=0, before_2001=True))
        with pytest.raises(InvalidEventError, match="has no fields"):
            encode_lines([event(), MetricEvent("m", timestamp_ns=0, before_2001=True)])

    def test_changing_tags_after_encoding_changes_the_next_line(self) -> None:
        ev = event(tags={"host": "a"})
        assert ev.to_influx_line() == "m,host=a v=1 0"
        ev.with_tag("host", "b").with_tag("dc", "x")
        assert ev.to_influx_line() == "m,dc=x,host=b v=1 0"


class TestEncodePrecision:
    """Timestamps are divided by the precision with integer arithmetic only."""

    @pytest.mark.parametrize(
        ("precision", "written"),
        [
            ("ns", "1615196563299053942"),
            ("us", "1615196563299053"),
            ("ms", "1615196563299"),
            ("s", "1615196563"),
        ],
    )
    def test_truncates_to_the_unit(self, precision: str, written: str) -> None:
        ev = event(timestamp_ns=1_615_196_563_299_053_942)
        assert ev.to_influx_line(precision) == f"m v=1 {written}"

    def test_exact_for_the_largest_timestamp(self) -> None:
        ev = event(timestamp_ns=INT64_MAX)
        assert ev.to_influx_line("us") == f"m v=1 {INT64_MAX // 1000}"

    def test_negative_timestamps_truncate_toward_zero(self) -> None:
        assert event(timestamp_ns=-1_500, before_2001=True).to_influx_line("us") == "m v=1 -1"
        assert (
            event(timestamp_ns=-1_999_999_999, before_2001=True).to_influx_line("s") == "m v=1 -1"
        )

    @pytest.mark.parametrize("precision", ["n", "u", "NS", "m", "h", "", None])
    def test_unknown_precision(self, precision: object) -> None:
        with pytest.raises(ConfigError, match="unknown precision") as info:
            event().to_influx_line(precision)  # type: ignore[arg-type]
        assert info.value.option == "precision"
        with pytest.raises(ConfigError):
            encode_batch(EventColumns.of_events([]), precision)  # type: ignore[arg-type]
        with pytest.raises(ConfigError):
            parse_lines("m v=1", precision=precision)  # type: ignore[arg-type]

    def test_precisions_table(self) -> None:
        assert PRECISIONS == {"ns": 1, "us": 1_000, "ms": 1_000_000, "s": 1_000_000_000}


class TestParseEntries:
    """Well-formed text parses to the events the reference decoder reads."""

    def test_all_value_types_with_comment_and_indentation(self) -> None:
        text = (
            "\n   # a comment\n"
            ' box,t1=v1,t2=v2  f=1,s="hi",i=-1i,u=1u,b=true  1602841605822791506\n'
        )
        assert parse_one(text) == MetricEvent(
            "box",
            tags={"t1": "v1", "t2": "v2"},
            fields={"f": 1.0, "s": "hi", "i": -1, "u": UInt(1), "b": True},
            timestamp_ns=1_602_841_605_822_791_506,
        )

    def test_several_entries_with_blank_and_comment_lines(self) -> None:
        text = '\n # first\nm1,a=1 x="one" 11\n\n  m2,b=2  x="two"  22\n # last\n'
        assert parse_lines(text) == [
            MetricEvent(
                "m1", tags={"a": "1"}, fields={"x": "one"}, timestamp_ns=11, before_2001=True
            ),
            MetricEvent(
                "m2", tags={"b": "2"}, fields={"x": "two"}, timestamp_ns=22, before_2001=True
            ),
        ]

    def test_empty_and_comment_only_text(self) -> None:
        assert parse_lines("") == []
        assert parse_lines("\n\n   \n") == []
        assert parse_lines("# only a comment") == []
        assert parse_lines("# one\n#two\r\n") == []

    def test_crlf_line_endings(self) -> None:
        text = "# head\r\nm x=1\r\nn y=2 5\r\n\r\n"
        assert parse_lines(text, default_time_ns=DEFAULT_TIME) == [
            MetricEvent("m", fields={"x": 1.0}, timestamp_ns=DEFAULT_TIME, before_2001=True),
            MetricEvent("n", fields={"y": 2.0}, timestamp_ns=5, before_2001=True),
        ]

    def test_carriage_return_at_end_of_input(self) -> None:
        assert parse_one("m x=1\r") == MetricEvent(
            "m", fields={"x": 1.0}, timestamp_ns=DEFAULT_TIME, before_2001=True
        )

    @pytest.mark.parametrize("text", ["b f=1", "b f=1\n", "b f=1   ", "b f=1 \r\n"])
    def test_missing_timestamp_uses_the_default(self, text: str) -> None:
        assert parse_one(text) == MetricEvent(
            "b", fields={"f": 1.0}, timestamp_ns=DEFAULT_TIME, before_2001=True
        )

    def test_spaces_around_the_timestamp(self) -> None:
        assert parse_one("cpu value=1.0     1257894000000000000   ").timestamp_ns == (
            1_257_894_000_000_000_000
        )

    def test_default_time_is_now_when_not_given(self) -> None:
        import time

        before = time.time_ns()
        (parsed,) = parse_lines("m x=1")
        assert before <= parsed.timestamp_ns <= time.time_ns()

    @pytest.mark.parametrize(
        ("precision", "written"),
        [
            ("s", "946730096"),
            ("ms", "946730096789"),
            ("us", "946730096789012"),
            ("ns", "946730096789012345"),
        ],
    )
    def test_timestamp_precision(self, precision: str, written: str) -> None:
        parsed = parse_one(f"cpu v=1 {written}", precision=precision)
        assert parsed.timestamp_ns == int(written) * PRECISIONS[precision]

    @pytest.mark.parametrize(
        ("precision", "expected"),
        [
            ("ns", 946_730_096_789_012_345),
            ("us", 946_730_096_789_012_000),
            ("ms", 946_730_096_789_000_000),
            ("s", 946_730_096_000_000_000),
        ],
    )
    def test_default_time_is_truncated_to_the_precision(
        self, precision: str, expected: int
    ) -> None:
        (parsed,) = parse_lines(
            "cpu v=1", precision=precision, default_time_ns=946_730_096_789_012_345
        )
        assert parsed.timestamp_ns == expected

    def test_negative_timestamp(self) -> None:
        assert parse_one("cpu value=1 -1").timestamp_ns == -1
        assert parse_one(f"cpu value=1 {INT64_MIN + 2}").timestamp_ns == INT64_MIN + 2

    def test_bytes_input_is_utf8(self) -> None:
        assert parse_one('wè v="wè" 1'.encode()) == MetricEvent(
            "wè", fields={"v": "wè"}, timestamp_ns=1, before_2001=True
        )

    def test_tag_keys_reserved_by_influxdb_are_read(self) -> None:
        parsed = parse_one("cpu,_measurement=v0,_field=v1,time=v2 time=1")
        assert parsed.tags == {"_measurement": "v0", "_field": "v1", "time": "v2"}
        assert parsed.fields == {"time": 1.0}

    def test_repeated_field_key_keeps_the_last_value(self) -> None:
        assert parse_one("m f=1,g=2,f=3i").fields == {"f": 3, "g": 2.0}

    @pytest.mark.parametrize(
        ("text", "column", "problem"),
        [
            (
                "x\x01y v=1",
                2,
                "expected a space before the fields, found a control character (U+0001)",
            ),
            (
                "m,k\x02=v f=1",
                4,
                "expected '=' after tag key 'k', found a control character (U+0002)",
            ),
            (
                "m,k=v\x7f f=1",
                6,
                "expected a space before the fields, found a control character (U+007F)",
            ),
            (
                "m f\x03=1",
                4,
                "expected '=' after field key 'f', found a control character (U+0003)",
            ),
            ("\tm v=1", 1, "expected a measurement name, found a control character (U+0009)"),
            ("# a\x00comment\nm v=1", 4, "a control character (U+0000) in a comment"),
        ],
    )
    def test_control_characters_are_refused_in_names_and_comments(
        self, text: str, column: int, problem: str
    ) -> None:
        error = parse_error(text)
        assert (error.line, error.column, error.problem) == (1, column, problem)

    def test_control_characters_are_allowed_in_string_values(self) -> None:
        assert parse_one('m s="a\tb\x00c" 1').fields == {"s": "a\tb\x00c"}

    def test_parse_line_returns_the_single_event(self) -> None:
        assert parse_line("m x=1i 3") == MetricEvent(
            "m", fields={"x": 1}, timestamp_ns=3, before_2001=True
        )
        assert MetricEvent.from_influx_line("m x=1i 3") == parse_line("m x=1i 3")
        assert parse_line("m x=1 3000", precision="us").timestamp_ns == 3_000_000

    @pytest.mark.parametrize("text", ["", "# nothing", "m x=1 1\nm x=2 2"])
    def test_parse_line_needs_exactly_one_entry(self, text: str) -> None:
        with pytest.raises(LineProtocolError, match="expected exactly one entry"):
            parse_line(text)


class TestParseEscapes:
    """Backslashes escape only the characters listed for their element."""

    @pytest.mark.parametrize(
        ("text", "expected"),
        [
            ("comma\\,1 v=1", "comma,1"),
            ("cpu\\ load v=1", "cpu load"),
            ("cpu=load v=1", "cpu=load"),
            ("cpu\\=load v=1", "cpu\\=load"),
            ('"cpu" v=1', '"cpu"'),
            ("a\\\\b v=1", "a\\\\b"),
            ("a\\\\,b v=1", "a\\,b"),
            ("x\\ v=1", None),
        ],
    )
    def test_measurement(self, text: str, expected: str | None) -> None:
        if expected is None:
            parse_error(text)
        else:
            assert parse_one(text).measurement == expected

    @pytest.mark.parametrize(
        ("text", "tags"),
        [
            ("m,equals\\==e\\,x,two=val2 v=1", {"equals=": "e,x", "two": "val2"}),
            ("m,region\\ zone=east v=1", {"region zone": "east"}),
            ("m,\\ =east v=1", {" ": "east"}),
            ("m,regions=east\\ west v=1", {"regions": "east west"}),
            ("m,reg\\\\=ion=east v=1", {"reg\\=ion": "east"}),
            ("m,regions=\\\\,\\,\\=east v=1", {"regions": "\\,,=east"}),
            ("m,regions=eas\\t v=1", {"regions": "eas\\t"}),
            ("m,host=two\\\\\\ words v=1", {"host": "two\\\\ words"}),
            ("m,regions=east\\\\  v=1", {"regions": "east\\ "}),
            ("m,s=\\t\\r\\n\\v v=1", {"s": "\\t\\r\\n\\v"}),
            ('m,t=1\\"\\",k=v v=1', {"t": '1\\"\\"', "k": "v"}),
        ],
    )
    def test_tags(self, text: str, tags: dict[str, str]) -> None:
        assert parse_one(text).tags == tags

    @pytest.mark.parametrize(
        ("text", "key"),
        [
            ("m field\\=x=1", "field=x"),
            ("m va\\lue=1", "va\\lue"),
            ("m \\a=1", "\\a"),
            ("m value\\ ms=1", "value ms"),
            ("m value\\,ms=1", "value,ms"),
        ],
    )
    def test_field_keys(self, text: str, key: str) -> None:
        assert list(parse_one(text).fields) == [key]

    @pytest.mark.parametrize(
        ("written", "value"),
        [
            ('"fir\\"\n,st\\\\"', 'fir"\n,st\\'),
            ('"\\t\\r\\n\\v"', "\t\r\n\\v"),
            ('"test\\""', 'test"'),
            ('"test\\\\"', "test\\"),
            ('"test\\\\\\""', 'test\\"'),
            ('"a\\\\n"', "a\\n"),
            ('"foo\\,bar"', "foo\\,bar"),
            ('"foo,bar baz=1"', "foo,bar baz=1"),
            ('"{Hello\\"{,}\\" World}"', '{Hello"{,}" World}'),
            ('"line\r\nbreak"', "line\r\nbreak"),
            ('"\\"', None),
            ('"abc\\" 1', None),
        ],
    )
    def test_string_field_values(self, written: str, value: str | None) -> None:
        if value is None:
            assert "unterminated string" in parse_error(f"m s={written}").problem
        else:
            assert parse_one(f"m s={written}").fields == {"s": value}


class TestParseValues:
    """Field values parse with the reference's syntax and ranges."""

    @pytest.mark.parametrize("token", ["t", "T", "true", "True", "TRUE"])
    def test_true_forms(self, token: str) -> None:
        assert parse_one(f"m b={token}").fields == {"b": True}

    @pytest.mark.parametrize("token", ["f", "F", "false", "False", "FALSE"])
    def test_false_forms(self, token: str) -> None:
        assert parse_one(f"m b={token}").fields == {"b": False}

    @pytest.mark.parametrize("token", ["tRUE", "truE", "yes", "FALS", "falsey"])
    def test_other_words_are_not_booleans(self, token: str) -> None:
        parse_error(f"m b={token}")

    @pytest.mark.parametrize(
        ("token", "value"),
        [
            ("1i", 1),
            ("-1i", -1),
            ("0i", 0),
            ("-0i", 0),
            ("9223372036854775807i", INT64_MAX),
            ("-9223372036854775808i", INT64_MIN),
            ("0009223372036854775807i", INT64_MAX),
            ("-0009223372036854775808i", INT64_MIN),
        ],
    )
    def test_integers(self, token: str, value: int) -> None:
        parsed = parse_one(f"m v={token}").fields["v"]
        assert type(parsed) is int
        assert parsed == value

    @pytest.mark.parametrize(
        ("token", "value"),
        [
            ("0u", 0),
            ("0000u", 0),
            ("18446744073709551615u", UINT64_MAX),
            ("00018446744073709551615u", UINT64_MAX),
        ],
    )
    def test_unsigned_integers(self, token: str, value: int) -> None:
        parsed = parse_one(f"m v={token}").fields["v"]
        assert type(parsed) is UInt
        assert parsed == value

    @pytest.mark.parametrize(
        ("token", "value"),
        [
            ("1", 1.0),
            ("-7", -7.0),
            ("1.", 1.0),
            (".1", 0.1),
            ("-.5", -0.5),
            ("-0.64", -0.64),
            ("1e4", 1e4),
            ("1E4", 1e4),
            ("1.0e4", 1e4),
            ("1.0E4", 1e4),
            ("1.0e-4", 1e-4),
            ("-1.0e-4", -1e-4),
            ("1e+4", 1e4),
            ("6.632243e+06", 6632243.0),
            ("1_000", 1000.0),
            ("1_000.000_5", 1000.0005),
            ("1e1_0", 1e10),
            ("0x1p-2", 0.25),
            ("0X1.8P1", 3.0),
            ("-0x_1p4", -16.0),
            ("0x.8p1", 1.0),
            ("1e-400", 0.0),
            (f"{int(MAX_FLOAT)}.0", MAX_FLOAT),
        ],
    )
    def test_floats(self, token: str, value: float) -> None:
        parsed = parse_one(f"m v={token}").fields["v"]
        assert type(parsed) is float
        assert parsed == value

    @pytest.mark.parametrize(
        "token",
        [
            "-",
            "-.",
            ".",
            "1.1.1",
            "0.-1",
            "1a",
            ".1a",
            "42+3",
            "-e-e-e",
            "1ii",
            "1.0i",
            "9e10i",
            "9ie10",
            "--1u",
            "-1u",
            "-123u",
            "-i",
            "1_i",
            "1__0",
            "_1",
            "1_",
            "1_.5",
            "0x1",
            "0x1_p0",
            "0x_.8p1",
            "1e",
            "1e_5",
            "NaN",
            "nAn",
            "-Inf",
            "inf",
            "+1",
            "a",
            "Happy",
        ],
    )
    def test_malformed_values(self, token: str) -> None:
        error = parse_error(f"m v={token}")
        assert (error.line, error.column) == (1, 5)

    @pytest.mark.parametrize(
        ("token", "problem"),
        [
            (
                "9223372036854775808i",
                "integer '9223372036854775808i' for field 'v' is outside int64",
            ),
            (
                "-9223372036854775809i",
                "integer '-9223372036854775809i' for field 'v' is outside int64",
            ),
            (
                "18446744073709551616u",
                "unsigned integer '18446744073709551616u' for field 'v' is outside uint64",
            ),
            ("1e9999999999999", "float '1e9999999999999' for field 'v' is out of range"),
            ("-1e309", "float '-1e309' for field 'v' is out of range"),
            ("0x1p99999", "float '0x1p99999' for field 'v' is out of range"),
        ],
    )
    def test_out_of_range_values(self, token: str, problem: str) -> None:
        assert parse_error(f"m v={token}").problem == problem


class TestParseErrors:
    """Malformed text raises LineProtocolError with the line, column and line text."""

    @pytest.mark.parametrize(
        ("text", "column", "problem"),
        [
            ("cpu", 4, "expected a space before the fields, found end of input"),
            (
                "cpu_load_short,host=server01,region=us-west",
                44,
                "expected a space before the fields",
            ),
            ("cpu,", 5, "expected a tag key, found end of input"),
            ("cpu,,,", 5, "expected a tag key, found ','"),
            ("cpu, value=1", 5, "expected a tag key, found a space"),
            ("cpu, =serverA value=1i", 5, "expected a tag key, found a space"),
            ("cpu,host", 9, "expected '=' after tag key 'host', found end of input"),
            ("cpu,host value=1i", 9, "expected '=' after tag key 'host', found a space"),
            ("cpu,host=", 10, "expected a value for tag key 'host', found end of input"),
            ("cpu,host==", 10, "expected a value for tag key 'host', found '='"),
            ("cpu,host=f=o v=1", 11, "expected a space before the fields, found '='"),
            (
                "cpu,host=a,region value=1i",
                18,
                "expected '=' after tag key 'region', found a space",
            ),
            ("cpu,host=a,region= value=1i", 19, "expected a value for tag key 'region'"),
            ("cpu,host=a,=us-east value=1i", 12, "expected a tag key, found '='"),
            ("cpu,b=2,c=3,b=1 value=1i", 13, "duplicate tag key 'b'"),
            ("cpu ", 5, "expected a field key, found end of input"),
            ("cpu  =1", 6, "expected a field key, found '='"),
            ("cpu v", 6, "expected '=' after field key 'v', found end of input"),
            ("cpu v=", 7, "expected a value for field 'v', found end of input"),
            ("cpu v= 1", 7, "expected a value for field 'v', found a space"),
            ("cpu v=1,", 9, "expected a field key, found end of input"),
            ("cpu v=1, w=2", 9, "expected a field key, found a space"),
            ("cpu v=1,=2", 9, "expected a field key, found '='"),
            ("cpu v=1i,b", 11, "expected '=' after field key 'b', found end of input"),
            ('cpu v="test', 7, "unterminated string value for field 'v'"),
            ('cpu v="test""', 13, "unexpected '\"' after the value of field 'v'"),
            ('m f="blah"=123,r 1', 11, "unexpected '=' after the value of field 'f'"),
            ("cpu v=1 -", 9, "invalid timestamp '-'"),
            ("cpu v=1 1-", 9, "invalid timestamp '1-'"),
            ("cpu v=1 -/", 9, "invalid timestamp '-/'"),
            ("cpu v=1 -1?", 9, "invalid timestamp '-1?'"),
            ("a v=1 0\\", 7, "invalid timestamp '0\\\\'"),
            ("cpu v=1 12a", 9, "invalid timestamp '12a'"),
            ('b s="Happy" f=123.45', 13, "invalid timestamp 'f=123.45'"),
            ("cpu v=1 9223372036854775808", 9, "timestamp 9223372036854775808 is out of range"),
            ("cpu v=1 -92233720368547758078", 9, "timestamp -92233720368547758078 is out of range"),
            ("cpu v=1 9223372036854775807 12", 29, "unexpected text after the timestamp: '1'"),
            ("cpu v=1 1\rx", 10, "unexpected text after the timestamp: end of line"),
            ("m x=1\rn y=2", 6, "carriage return not followed by a newline"),
            ("# c\rxxx\nm x=1", 4, "carriage return not followed by a newline"),
            ("\r\r\n", 1, "carriage return not followed by a newline"),
        ],
    )
    def test_error_position_and_problem(self, text: str, column: int, problem: str) -> None:
        error = parse_error(text)
        assert (error.line, error.column) == (1, column)
        assert problem in error.problem
        assert str(error) == f"line 1, column {column}: {error.problem}"

    def test_error_is_a_value_error_carrying_the_line_text(self) -> None:
        error = parse_error("ok v=1\nbad v=x\nnext v=2")
        assert isinstance(error, ValueError)
        assert (error.line, error.column, error.text) == (2, 7, "bad v=x")
        assert error.problem == "field 'v' has a value of unknown type: 'x'"

    def test_error_on_a_later_line(self) -> None:
        text = "m1 value=12.0\nm2 value=2a.0\nm3 value=32.0\n"
        error = parse_error(text)
        assert (error.line, error.column, error.text) == (2, 10, "m2 value=2a.0")

    def test_lines_are_counted_across_blank_lines_comments_and_crlf(self) -> None:
        text = "# c\r\n\r\nm x=1\r\n  \r\n# d\nm y=?\r\n"
        error = parse_error(text)
        assert (error.line, error.column, error.text) == (6, 5, "m y=?")

    def test_error_after_a_string_with_newlines(self) -> None:
        error = parse_error('m f="hello\ngoodbye\nx",gé=invalid')
        assert (error.line, error.column, error.text) == (3, 7, 'x",gé=invalid')

    def test_unterminated_string_points_at_its_opening_quote(self) -> None:
        error = parse_error('m f="a\nb",g="c\nd')
        assert (error.line, error.column, error.text) == (2, 6, 'b",g="c')

    def test_error_on_the_line_after_a_multiline_string(self) -> None:
        error = parse_error('m f="a\nb" 1\nn g=?')
        assert (error.line, error.column, error.text) == (3, 5, "n g=?")

    def test_invalid_utf8_inside_an_entry(self) -> None:
        error = parse_error(b'm,t=ok f="bad\xff" 1')
        assert (error.line, error.column) == (1, 14)
        assert error.problem == "invalid UTF-8 in the value of field 'f'"
        assert error.text == 'm,t=ok f="bad\ufffd" 1'

    @pytest.mark.parametrize(
        ("raw", "problem"),
        [
            (b"bad\xff v=1", "invalid UTF-8 in the measurement"),
            (b"m,bad\xff=foo v=1", "invalid UTF-8 in the tag key"),
            (b"m,foo=bad\xff v=1", "invalid UTF-8 in the value for tag key 'foo'"),
            (b"m bad\xff=1", "invalid UTF-8 in the field key"),
        ],
    )
    def test_invalid_utf8_in_names(self, raw: bytes, problem: str) -> None:
        assert parse_error(raw).problem == problem

    def test_invalid_utf8_in_a_comment_is_ignored(self) -> None:
        assert parse_one(b"# caf\xe9\nm x=1 1") == MetricEvent(
            "m", fields={"x": 1.0}, timestamp_ns=1, before_2001=True
        )

    def test_lone_surrogate_in_text(self) -> None:
        error = parse_error('m s="a\ud800"')
        assert error.problem == "a lone surrogate (not valid Unicode) in the value of field 's'"
        assert error.column == 7

    def test_no_break_space_is_not_a_separator(self) -> None:
        assert "expected a space before the fields" in parse_error("m\u00a0v=1").problem

    def test_tab_is_not_a_separator(self) -> None:
        assert "expected a space before the fields" in parse_error("m\tv=1").problem


# --- round trips -------------------------------------------------------------

SPECIALS = " ,=\"\\#'é😀ß\u00a0\u0085"
CONTROL = "".join(chr(c) for c in range(32)) + "\x7f"
NAME_CHARS = st.one_of(
    st.sampled_from(SPECIALS),
    st.characters(blacklist_categories=("Cs",), blacklist_characters=CONTROL),
)


def _valid_name(name: str) -> bool:
    return not name.endswith("\\")


names = st.text(NAME_CHARS, min_size=1, max_size=12).filter(_valid_name)
keys = names.filter(lambda key: key not in RESERVED_KEYS)
measurements = names.filter(lambda name: not name.startswith("#"))
strings = st.text(
    st.one_of(st.sampled_from(SPECIALS + "\n\r"), st.characters(blacklist_categories=("Cs",))),
    max_size=40,
)
field_values = st.one_of(
    st.booleans(),
    st.integers(INT64_MIN, INT64_MAX),
    st.floats(allow_nan=False, allow_infinity=False),
    strings,
    st.integers(0, UINT64_MAX).map(UInt),
)
timestamps = st.integers(INT64_MIN, INT64_MAX)
events = st.builds(
    MetricEvent,
    measurements,
    tags=st.dictionaries(keys, names, max_size=4),
    fields=st.dictionaries(keys, field_values, min_size=1, max_size=5),
    timestamp_ns=timestamps,
    before_2001=st.just(True),
)


class TestRoundTrip:
    """Encoding then parsing is the identity, both ways, for every valid event."""

    @settings(max_examples=300, deadline=None)
    @given(events)
    def test_event_to_line_to_event(self, ev: MetricEvent) -> None:
        assert parse_line(ev.to_influx_line()) == ev

    @settings(max_examples=300, deadline=None)
    @given(events)
    def test_line_to_event_to_line(self, ev: MetricEvent) -> None:
        line = ev.to_influx_line()
        assert parse_line(line).to_influx_line() == line

    @settings(max_examples=100, deadline=None)
    @given(st.lists(events, max_size=5))
    def test_many_lines(self, batch: list[MetricEvent]) -> None:
        text = encode_lines(batch)
        assert parse_lines(text) == batch
        assert encode_lines(parse_lines(text)) == text
        crlf = "\r\n".join(encode_event(ev) for ev in batch) + "\r\n"
        assert parse_lines(crlf) == batch

    @settings(max_examples=100, deadline=None)
    @given(events, st.sampled_from(sorted(PRECISIONS)))
    def test_with_a_precision(self, ev: MetricEvent, precision: str) -> None:
        unit = PRECISIONS[precision]
        magnitude = abs(ev.timestamp_ns) // unit * unit
        ev.with_timestamp(magnitude if ev.timestamp_ns >= 0 else -magnitude, before_2001=True)
        line = ev.to_influx_line(precision)
        assert parse_line(line, precision=precision) == ev
        assert parse_line(line, precision=precision).to_influx_line(precision) == line

    @settings(max_examples=100, deadline=None)
    @given(events)
    def test_bytes_round_trip(self, ev: MetricEvent) -> None:
        assert parse_line(ev.to_influx_line().encode()) == ev
