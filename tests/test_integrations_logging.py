"""The logging handler: log records become events, without recursion or exceptions."""

from __future__ import annotations

import logging
import threading
import uuid
from collections.abc import Callable, Iterator

import pytest

import metricstream as ms
from metricstream.integrations.logging import EventHandler
from metricstream.testing import InMemorySink


@pytest.fixture
def sink() -> InMemorySink:
    return InMemorySink()


@pytest.fixture
def streamer(
    make_streamer: Callable[..., ms.EventStreamer], sink: InMemorySink
) -> ms.EventStreamer:
    return make_streamer([sink], flush_interval=0.05)


@pytest.fixture
def app_logger() -> Iterator[logging.Logger]:
    """A fresh logger of its own (unique name), at DEBUG, not propagating."""
    log = logging.getLogger(f"app{uuid.uuid4().hex[:8]}")
    log.setLevel(logging.DEBUG)
    log.propagate = False
    yield log
    for handler in list(log.handlers):
        log.removeHandler(handler)


def delivered(streamer: ms.EventStreamer, sink: InMemorySink) -> list[ms.MetricEvent]:
    assert streamer.flush(timeout=10)
    return sink.events


class TestRecordsBecomeEvents:
    """Each record at or above the level is one event with level, logger, count, length."""

    def test_a_warning_becomes_one_event_with_the_documented_shape(
        self, streamer: ms.EventStreamer, sink: InMemorySink, app_logger: logging.Logger
    ) -> None:
        records: list[logging.LogRecord] = []
        app_logger.addHandler(EventHandler(streamer))
        app_logger.addFilter(lambda record: records.append(record) or True)  # type: ignore[func-returns-value]
        app_logger.warning("card %s declined", "4242")
        [event] = delivered(streamer, sink)
        assert (event.measurement, dict(event.tags), event.fields) == (
            "log",
            {"level": "WARNING", "logger": app_logger.name},
            {"count": 1, "message_length": len("card 4242 declined")},
        )
        assert event.timestamp_ns == int(records[0].created * 1e9)

    def test_records_below_the_level_are_not_sent(
        self, streamer: ms.EventStreamer, sink: InMemorySink, app_logger: logging.Logger
    ) -> None:
        app_logger.addHandler(EventHandler(streamer, level=logging.ERROR, measurement="app_log"))
        app_logger.debug("d")
        app_logger.info("i")
        app_logger.warning("w")
        app_logger.error("e")
        app_logger.critical("c")
        events = delivered(streamer, sink)
        assert [(e.measurement, e.tags["level"]) for e in events] == [
            ("app_log", "ERROR"),
            ("app_log", "CRITICAL"),
        ]

    def test_the_correlation_id_comes_from_the_record_or_the_active_scope(
        self, streamer: ms.EventStreamer, sink: InMemorySink, app_logger: logging.Logger
    ) -> None:
        app_logger.addHandler(EventHandler(streamer))
        with streamer.correlation("req-7"):
            app_logger.error("in a request")
            app_logger.error("explicit", extra={"correlation_id": "job-3"})
        app_logger.error("outside")
        assert [e.correlation_id for e in delivered(streamer, sink)] == ["req-7", "job-3", None]

    def test_an_invalid_measurement_is_refused_when_the_handler_is_made(
        self, streamer: ms.EventStreamer
    ) -> None:
        with pytest.raises(ms.InvalidEventError, match="measurement"):
            EventHandler(streamer, measurement="")
        with pytest.raises(TypeError, match="EventStreamer"):
            EventHandler(object())  # type: ignore[arg-type]


class TestNoRecursion:
    """metricstream's own records, its threads' records and re-entrant records are not sent."""

    def test_records_of_the_metricstream_logger_and_its_children_are_ignored(
        self, streamer: ms.EventStreamer, sink: InMemorySink
    ) -> None:
        handler = EventHandler(streamer)
        for name in ("metricstream", "metricstream.sinks.influxdb", "metricstreamer"):
            handler.handle(
                logging.makeLogRecord({"name": name, "levelno": 40, "levelname": "ERROR"})
            )
        assert [e.tags["logger"] for e in delivered(streamer, sink)] == ["metricstreamer"]

    def test_records_emitted_on_metricstream_threads_are_ignored(
        self, streamer: ms.EventStreamer, sink: InMemorySink, app_logger: logging.Logger
    ) -> None:
        app_logger.addHandler(EventHandler(streamer))
        for name in ("metricstream-write-influxdb", "worker-1"):
            thread = threading.Thread(target=app_logger.error, args=("x",), name=name)
            thread.start()
            thread.join()
        assert len(delivered(streamer, sink)) == 1

    def test_a_record_logged_while_sending_is_not_sent_again(
        self, streamer: ms.EventStreamer, sink: InMemorySink, app_logger: logging.Logger
    ) -> None:
        """A send() that logs (here through a wrapper) cannot loop back into the handler."""
        seen: list[str] = []

        class LoggingStreamer:
            def send(self, event: ms.MetricEvent) -> bool:
                app_logger.warning("sending %s", event.measurement)
                return streamer.send(event)

        app_logger.addHandler(EventHandler(LoggingStreamer()))  # type: ignore[arg-type]
        app_logger.addFilter(lambda record: seen.append(record.getMessage()) or True)  # type: ignore[func-returns-value]
        app_logger.error("outer")
        assert seen == ["outer", "sending log"]
        assert [e.fields["message_length"] for e in delivered(streamer, sink)] == [len("outer")]


class TestNeverRaises:
    """Failures go to Handler.handleError; the logging call itself never raises."""

    def test_a_message_that_cannot_be_formatted_goes_to_handle_error_and_is_counted(
        self, streamer: ms.EventStreamer, sink: InMemorySink
    ) -> None:
        handler = EventHandler(streamer)
        failed: list[logging.LogRecord] = []
        handler.handleError = failed.append  # type: ignore[method-assign]
        for msg, args in (("%d items", ("many",)), ("%d items", (3,))):
            fields = {"name": "app", "levelno": 40, "levelname": "ERROR", "msg": msg, "args": args}
            handler.handle(logging.makeLogRecord(fields))
        assert [r.args for r in failed] == [("many",)]
        assert [e.fields["message_length"] for e in delivered(streamer, sink)] == [len("3 items")]
        assert handler.records_invalid == 1
        assert streamer.health().sinks["memory"].dropped_by_reason["invalid"] == 1

    @pytest.mark.parametrize(
        "fields",
        [
            {"name": "ends\\"},
            {"name": "two\nlines"},
            {"name": "app", "correlation_id": ""},
            {"name": "app", "correlation_id": "lone \udc80 surrogate"},
            {"name": "app", "correlation_id": "two\nlines"},
        ],
        ids=["trailing-backslash", "newline-in-name", "empty-id", "surrogate-id", "newline-id"],
    )
    def test_a_record_that_cannot_be_an_event_is_counted_invalid_without_a_traceback(
        self,
        streamer: ms.EventStreamer,
        sink: InMemorySink,
        fields: dict[str, object],
        capsys: pytest.CaptureFixture[str],
        caplog: pytest.LogCaptureFixture,
    ) -> None:
        handler = EventHandler(streamer)
        record = logging.makeLogRecord({"levelno": 40, "levelname": "ERROR", "msg": "x", **fields})
        with caplog.at_level(logging.WARNING, logger="metricstream"):
            handler.handle(record)
            handler.handle(logging.makeLogRecord({"name": "ok", "levelno": 40, "msg": "fine"}))
        assert "Logging error" not in capsys.readouterr().err
        assert [e.tags["logger"] for e in delivered(streamer, sink)] == ["ok"]
        assert handler.records_invalid == 1
        health = streamer.health().sinks["memory"]
        assert (health.events_accepted, health.events_written) == (2, 1)
        assert health.dropped_by_reason == {**dict.fromkeys(ms.DROP_REASONS, 0), "invalid": 1}
        [warning] = [r for r in caplog.records if r.name == "metricstream"]
        assert warning.getMessage().startswith(
            f"log record of logger {fields['name']!r} not sent as an event, counted as invalid: "
        )

    def test_logging_after_the_streamer_shut_down_counts_the_drop(
        self, sink: InMemorySink, app_logger: logging.Logger
    ) -> None:
        streamer = ms.EventStreamer([sink], register_atexit=False)
        handler = EventHandler(streamer)
        failed: list[logging.LogRecord] = []
        handler.handleError = failed.append  # type: ignore[method-assign]
        app_logger.addHandler(handler)
        streamer.shutdown(timeout=10)
        app_logger.error("late")
        assert failed == []
        assert streamer.health().sinks["memory"].dropped_by_reason["shutdown"] == 1
