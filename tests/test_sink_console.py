"""ConsoleSink: the three formats, writing to streams, errors and console: URLs."""

from __future__ import annotations

import contextlib
import io
import sys

import pytest

import metricstream as ms
from metricstream import EventBatch, MetricEvent, UInt
from metricstream.exceptions import (
    ConfigError,
    InvalidEventError,
    PermanentSinkError,
    SinkError,
    TransientSinkError,
)
from metricstream.sinks import ConsoleSink, Sink, sink_from_url
from metricstream.sinks.console import format_timestamp, from_url

T0 = 1_700_000_000_123_456_789  # 2023-11-14T22:13:20.123456789Z


def http_event() -> MetricEvent:
    return (
        MetricEvent("http_requests")
        .with_tag("status", "200")
        .with_tag("route", "/api")
        .with_field("latency_ms", 12.5)
        .with_field("count", 1)
        .with_correlation_id("req-42")
        .with_timestamp(T0)
    )


def cpu_event() -> MetricEvent:
    return MetricEvent("cpu", tags={"host": "a"}, fields={"usage": 0.5}, timestamp_ns=T0 + 10**9)


class TestPrettyFormat:
    """The pretty format: one aligned, readable line per event."""

    def test_single_event_has_every_column_in_order(self) -> None:
        text = ConsoleSink(format="pretty").prepare(EventBatch([http_event()]))
        assert text == (
            "2023-11-14T22:13:20.123456Z  http_requests  route=/api status=200  "
            "latency_ms=12.5 count=1i  [req-42]\n"
        )

    def test_columns_are_aligned_within_a_batch(self) -> None:
        text = ConsoleSink().prepare(EventBatch([http_event(), cpu_event(), http_event()]))
        assert text == (
            "2023-11-14T22:13:20.123456Z  http_requests  route=/api status=200  "
            "latency_ms=12.5 count=1i  [req-42]\n"
            "2023-11-14T22:13:21.123456Z  cpu            host=a                 usage=0.5\n"
            "2023-11-14T22:13:20.123456Z  http_requests  route=/api status=200  "
            "latency_ms=12.5 count=1i  [req-42]\n"
        )

    def test_tags_column_is_left_out_when_no_event_has_tags(self) -> None:
        events = [
            MetricEvent("a", fields={"x": 1.0}, timestamp_ns=0, before_2001=True),
            MetricEvent(
                "bbb", fields={"y": True}, timestamp_ns=0, before_2001=True, correlation_id="c1"
            ),
        ]
        text = ConsoleSink().prepare(EventBatch(events))
        assert text == (
            "1970-01-01T00:00:00.000000Z  a    x=1.0\n"
            "1970-01-01T00:00:00.000000Z  bbb  y=true  [c1]\n"
        )

    def test_field_values_are_typed_like_line_protocol(self) -> None:
        event = MetricEvent(
            "t",
            fields={"f": 2.0, "i": -3, "u": UInt(7), "b": False, "s": 'say "hi"\n'},
            timestamp_ns=0,
            before_2001=True,
        )
        assert ConsoleSink().prepare(EventBatch([event])) == (
            '1970-01-01T00:00:00.000000Z  t  f=2.0 i=-3i u=7u b=false s="say \\"hi\\"\\n"\n'
        )

    def test_tags_with_spaces_equals_or_quotes_are_quoted(self) -> None:
        event = MetricEvent(
            "t",
            tags={"path": "/a b", "q": "x=y", "plain": "ok"},
            fields={"v": 1},
            timestamp_ns=0,
            before_2001=True,
        )
        assert ConsoleSink().prepare(EventBatch([event])) == (
            '1970-01-01T00:00:00.000000Z  t  path="/a b" plain=ok q="x=y"  v=1i\n'
        )

    def test_empty_batch_renders_nothing(self) -> None:
        assert ConsoleSink().prepare(EventBatch([])) == ""

    def test_event_without_fields_is_refused(self) -> None:
        with pytest.raises(InvalidEventError, match="'cpu' has no fields") as info:
            ConsoleSink().prepare(
                EventBatch([MetricEvent("cpu", timestamp_ns=0, before_2001=True)])
            )
        assert info.value.key == "cpu"


class TestFormatTimestamp:
    """Timestamps render as UTC with microseconds, truncated."""

    @pytest.mark.parametrize(
        ("timestamp_ns", "text"),
        [
            (0, "1970-01-01T00:00:00.000000Z"),
            (T0, "2023-11-14T22:13:20.123456Z"),
            (999, "1970-01-01T00:00:00.000000Z"),
            (-1, "1969-12-31T23:59:59.999999Z"),
            (-(2**63), "1677-09-21T00:12:43.145224Z"),
            (2**63 - 1, "2262-04-11T23:47:16.854775Z"),
        ],
    )
    def test_renders_exact_utc_time(self, timestamp_ns: int, text: str) -> None:
        assert format_timestamp(timestamp_ns) == text


class TestJsonAndLineFormats:
    """The json and line formats reuse the batch's shared encodings."""

    def test_json_is_one_object_per_line(self) -> None:
        text = ConsoleSink(format="json").prepare(EventBatch([http_event(), cpu_event()]))
        assert text == (
            '{"measurement":"http_requests","tags":{"status":"200","route":"/api"},'
            '"fields":{"latency_ms":12.5,"count":1},"timestamp_ns":1700000000123456789,'
            '"schema_version":1,"correlation_id":"req-42"}\n'
            '{"measurement":"cpu","tags":{"host":"a"},"fields":{"usage":0.5},'
            '"timestamp_ns":1700000001123456789,"schema_version":1}\n'
        )

    def test_line_is_line_protocol_with_nanoseconds(self) -> None:
        text = ConsoleSink(format="line").prepare(EventBatch([http_event(), cpu_event()]))
        assert text == (
            "http_requests,route=/api,status=200 latency_ms=12.5,count=1i 1700000000123456789\n"
            "cpu,host=a usage=0.5 1700000001123456789\n"
        )

    def test_format_name_is_case_insensitive(self) -> None:
        assert ConsoleSink(format=" JSON ").format == "json"

    @pytest.mark.parametrize("fmt", ["json", "line"])
    def test_empty_batch_renders_nothing(self, fmt: str) -> None:
        assert ConsoleSink(format=fmt).prepare(EventBatch([])) == ""


class _FailingStream(io.StringIO):
    """A text stream whose write raises the given exception."""

    def __init__(self, error: BaseException) -> None:
        super().__init__()
        self.error = error

    def write(self, text: str) -> int:
        raise self.error


class _FlushCountingStream(io.StringIO):
    """A text stream that counts flushes."""

    flushes = 0

    def flush(self) -> None:
        self.flushes += 1
        super().flush()


class TestWrite:
    """write() puts the text on the stream and flushes it; failures map to sink errors."""

    def test_writes_payload_and_flushes(self) -> None:
        stream = _FlushCountingStream()
        sink = ConsoleSink(stream, format="line")
        sink.write(sink.prepare(EventBatch([cpu_event()])))
        assert stream.getvalue() == "cpu,host=a usage=0.5 1700000001123456789\n"
        assert stream.flushes == 1

    def test_default_stream_is_stdout_as_it_is_at_write_time(self) -> None:
        sink = ConsoleSink(format="line")
        redirected = io.StringIO()
        with contextlib.redirect_stdout(redirected):
            sink.write(sink.prepare(EventBatch([cpu_event()])))
        assert redirected.getvalue() == "cpu,host=a usage=0.5 1700000001123456789\n"

    def test_stderr_by_name(self, capsys: pytest.CaptureFixture[str]) -> None:
        sink = ConsoleSink("stderr", format="line")
        sink.write(sink.prepare(EventBatch([cpu_event()])))
        captured = capsys.readouterr()
        assert (captured.out, captured.err) == ("", "cpu,host=a usage=0.5 1700000001123456789\n")

    def test_stream_property_follows_sys_stdout(self) -> None:
        redirected = io.StringIO()
        with contextlib.redirect_stdout(redirected):
            assert ConsoleSink().stream is redirected
        assert ConsoleSink().stream is sys.stdout

    def test_empty_payload_writes_nothing(self) -> None:
        stream = _FlushCountingStream()
        ConsoleSink(stream).write("")
        assert (stream.getvalue(), stream.flushes) == ("", 0)

    def test_broken_pipe_is_permanent_and_unhealthy(self) -> None:
        sink = ConsoleSink(_FailingStream(BrokenPipeError(32, "Broken pipe")))
        with pytest.raises(PermanentSinkError, match="reader of the stream went away") as info:
            sink.write("x\n")
        assert (info.value.unhealthy, info.value.sink) == (True, "console")

    def test_other_os_error_is_transient(self) -> None:
        sink = ConsoleSink(_FailingStream(OSError(5, "Input/output error")), name="out")
        with pytest.raises(TransientSinkError, match="'out': write failed") as info:
            sink.write("x\n")
        assert info.value.retry_after is None

    def test_closed_stream_is_permanent(self) -> None:
        stream = io.StringIO()
        stream.close()
        with pytest.raises(PermanentSinkError, match="closed file") as info:
            ConsoleSink(stream).write("x\n")
        assert info.value.unhealthy is True

    def test_unencodable_text_is_permanent(self) -> None:
        stream = io.TextIOWrapper(io.BytesIO(), encoding="ascii")
        with pytest.raises(PermanentSinkError, match="cannot encode") as info:
            ConsoleSink(stream).write("é\n")
        assert info.value.unhealthy is False


class TestLifecycle:
    """check() and close(): the sink never closes a stream it does not own."""

    def test_check_passes_on_open_stream(self) -> None:
        ConsoleSink(io.StringIO()).check()

    def test_check_raises_on_closed_stream(self) -> None:
        stream = io.StringIO()
        stream.close()
        with pytest.raises(SinkError, match="its stream is closed"):
            ConsoleSink(stream).check()

    def test_close_flushes_without_closing_and_is_idempotent(self) -> None:
        stream = _FlushCountingStream()
        sink = ConsoleSink(stream)
        sink.close()
        sink.close()
        assert (stream.closed, stream.flushes) == (False, 1)

    def test_write_and_check_after_close_raise(self) -> None:
        sink = ConsoleSink(io.StringIO(), name="c")
        sink.close()
        with pytest.raises(PermanentSinkError, match="'c' is closed"):
            sink.write("x\n")
        with pytest.raises(SinkError, match="'c' is closed"):
            sink.check()


class TestOptions:
    """Constructor options are validated and named in errors."""

    def test_defaults(self) -> None:
        sink = ConsoleSink()
        assert (sink.name, sink.format) == ("console", "pretty")
        assert repr(sink) == "ConsoleSink(name='console', format='pretty', stream='stdout')"

    def test_implements_the_sink_protocol(self) -> None:
        assert isinstance(ConsoleSink(), Sink)

    def test_unknown_format(self) -> None:
        with pytest.raises(ConfigError, match="unknown console format 'xml'") as info:
            ConsoleSink(format="xml")
        assert info.value.option == "format"

    @pytest.mark.parametrize("stream", ["stdin", 42])
    def test_bad_stream(self, stream: object) -> None:
        with pytest.raises(ConfigError) as info:
            ConsoleSink(stream)  # type: ignore[arg-type]
        assert info.value.option == "stream"

    def test_empty_name(self) -> None:
        with pytest.raises(ConfigError) as info:
            ConsoleSink(name="")
        assert info.value.option == "name"


class TestFromUrl:
    """console: URLs, directly and through sink_from_url."""

    @pytest.mark.parametrize(
        ("url", "fmt", "name"),
        [
            ("console:", "pretty", "console"),
            ("console:json", "json", "console"),
            ("console:line", "line", "console"),
            ("console:pretty", "pretty", "console"),
            ("console:?format=json&name=x", "json", "x"),
            ("console:line?name=audit", "line", "audit"),
            ("console://json", "json", "console"),
            ("CONSOLE:JSON", "json", "console"),
        ],
    )
    def test_forms(self, url: str, fmt: str, name: str) -> None:
        sink = sink_from_url(url)
        assert isinstance(sink, ConsoleSink)
        assert (sink.format, sink.name) == (fmt, name)

    def test_stream_option(self, capsys: pytest.CaptureFixture[str]) -> None:
        sink = from_url("console:line?stream=stderr")
        sink.write(sink.prepare(EventBatch([cpu_event()])))
        assert capsys.readouterr().err == "cpu,host=a usage=0.5 1700000001123456789\n"

    def test_overrides_win(self) -> None:
        sink = from_url("console:json?name=a", name="b")
        assert (sink.format, sink.name) == ("json", "b")

    @pytest.mark.parametrize(
        ("url", "option", "message"),
        [
            ("console:xml", "format", "unknown console format 'xml'"),
            ("console:json?format=line", "format", "names two formats"),
            ("console:?colour=yes", "colour", "unknown option"),
            ("console:?name=a&name=b", "name", "more than once"),
            ("console:?name=", "name", "non-empty"),
            ("console:?stream=stdin", "stream", "unknown stream 'stdin'"),
        ],
    )
    def test_invalid(self, url: str, option: str, message: str) -> None:
        with pytest.raises(ConfigError, match=message) as info:
            sink_from_url(url)
        assert info.value.option == option

    def test_unknown_override(self) -> None:
        with pytest.raises(ConfigError) as info:
            from_url("console:", colour=True)
        assert info.value.option == "colour"


class TestThroughStreamer:
    """End to end: a streamer prints each batch through the console sink."""

    def test_events_are_printed_in_order(self) -> None:
        from metricstream.streamer.streamer import EventStreamer

        stream = io.StringIO()
        streamer = EventStreamer(
            [ConsoleSink(stream, format="line")],
            batch_size=2,
            flush_interval=60.0,
            compression="zstd",
            register_atexit=False,
        )
        try:
            for i in range(3):
                assert (
                    streamer.send(
                        MetricEvent("m", fields={"n": i}, timestamp_ns=i, before_2001=True)
                    )
                    is True
                )
            assert streamer.flush(timeout=30) is True
        finally:
            assert streamer.shutdown(timeout=30) is True
        assert stream.getvalue() == "m n=0i 0\nm n=1i 1\nm n=2i 2\n"


class TestMaxEventsPerBatch:
    """max_events_per_batch shows the first events of a batch and counts the rest."""

    def test_line_format_shows_the_first_events_and_a_comment_for_the_rest(self) -> None:
        stream = io.StringIO()
        sink = ConsoleSink(stream, format="line", max_events_per_batch=2)
        events = [
            ms.MetricEvent("m", fields={"v": i}, timestamp_ns=i, before_2001=True) for i in range(5)
        ]
        sink.write(sink.prepare(EventBatch(events, batch_id="b1")))
        assert stream.getvalue() == "m v=0i 0\nm v=1i 1\n# ... and 3 more events in batch b1\n"
        assert ms.parse_lines(stream.getvalue()) == events[:2]

    def test_a_batch_within_the_limit_is_shown_whole(self) -> None:
        stream = io.StringIO()
        sink = ConsoleSink(stream, format="line", max_events_per_batch=2)
        events = [
            ms.MetricEvent("m", fields={"v": i}, timestamp_ns=i, before_2001=True) for i in range(2)
        ]
        sink.write(sink.prepare(EventBatch(events)))
        assert stream.getvalue() == "m v=0i 0\nm v=1i 1\n"

    @pytest.mark.parametrize(
        ("value", "fmt"), [(0, "pretty"), (True, "pretty"), (2.0, "line"), (3, "json")]
    )
    def test_invalid_limits_are_refused(self, value: object, fmt: str) -> None:
        with pytest.raises(ConfigError) as info:
            ConsoleSink(io.StringIO(), format=fmt, max_events_per_batch=value)  # type: ignore[arg-type]
        assert info.value.option == "max_events_per_batch"


class TestOneEventNeverSinksABatch:
    """An event the stream cannot encode is dropped alone, as invalid."""

    @pytest.mark.parametrize("format", ["pretty", "json", "line"])
    def test_an_unencodable_event_costs_only_itself(self, format: str) -> None:
        raw = io.BytesIO()
        stream = io.TextIOWrapper(raw, encoding="ascii", write_through=True)
        sink = ConsoleSink(stream, format=format)
        streamer = ms.EventStreamer([sink], batch_size=100, register_atexit=False)
        events = [
            ms.event_from_sample("m", i, timestamp_ns=i, before_2001=True) for i in range(100)
        ]
        events[42].with_field("note", "caf\u00e9")
        streamer.send_many(events)
        assert streamer.flush(10) is True
        health = streamer.health().sinks["console"]
        assert (health.events_written, health.dropped_by_reason["invalid"]) == (99, 1)
        assert len(raw.getvalue().decode("ascii").splitlines()) == 99
        streamer.shutdown(5)
