"""`EventHandler`: log records become events, to chart and alert on log volume.

::

    import logging
    from metricstream.integrations.logging import EventHandler

    logging.getLogger().addHandler(EventHandler(streamer))   # WARNING and above
    logging.getLogger("payments").error("card declined")
    # -> log,level=ERROR,logger=payments count=1i,message_length=13i <time>

Each record at or above the handler's level becomes one event: measurement
``log`` (or the one given), tags ``level`` (the level name) and ``logger``
(the logger's name), fields ``count`` (1) and ``message_length`` (of the
formatted message, in characters), the record's creation time, and the
correlation id: the record's ``correlation_id`` attribute when it has one
(``logger.error(..., extra={"correlation_id": cid})``), else the one active
where the record is emitted (`EventStreamer.correlation`). The message text
itself is not sent: it is unbounded and may hold personal data.

Recursion and feedback are cut at three places, so a failing sink that
logs cannot feed events about its own failure back into itself:

- records of the ``metricstream`` logger and its children are ignored (the
  streamer's health already counts what they report);
- records emitted on metricstream's own threads (lanes, batcher, shutdown;
  for example a client library logging while a sink writes) are ignored;
- a record emitted while this handler is already emitting on the same thread
  is ignored.

The handler never raises into the logging system, and never prints a
traceback for a record that cannot become an event: a logger name that
cannot be a tag value (a newline in it) or a correlation id that is not a
usable one (empty, a lone surrogate) makes the record not sent, counted as
dropped with reason ``invalid`` in the streamer's health (and in the
handler's `records_invalid`), with a warning at most once a minute on the
``metricstream`` logger. A message that cannot be formatted with its
arguments is the logging call's own bug: it is counted the same way and
also goes to `logging.Handler.handleError`, as with every standard handler.
"""

from __future__ import annotations

import logging
import threading
from typing import TYPE_CHECKING

from metricstream._log import RateLimitedLog
from metricstream._validate import check_measurement
from metricstream.event import MetricEvent
from metricstream.exceptions import InvalidEventError

if TYPE_CHECKING:
    from metricstream.streamer.streamer import EventStreamer

__all__ = ["EventHandler"]

_OWN_LOGGER = "metricstream"
_OWN_THREAD_PREFIX = "metricstream-"


def _is_internal(record: logging.LogRecord) -> bool:
    """True for records metricstream itself logged, or that came from its threads."""
    name = record.name
    if name == _OWN_LOGGER or name.startswith(_OWN_LOGGER + "."):
        return True
    thread_name = record.threadName
    return thread_name is not None and thread_name.startswith(_OWN_THREAD_PREFIX)


class EventHandler(logging.Handler):
    """A logging handler that sends one event per log record.

    Args:
        streamer: Where the events go.
        level: The lowest level sent (`logging.WARNING` by default).
        measurement: The events' measurement.

    Raises:
        InvalidEventError: If the measurement is not a valid name.
        TypeError: If `streamer` has no ``send`` method.

    Attributes:
        records_invalid: Records that could not become an event (counted as
            ``invalid`` in the streamer's health too).

    The handler does not own the streamer: closing the handler leaves it
    running.
    """

    def __init__(
        self,
        streamer: EventStreamer,
        level: int | str = logging.WARNING,
        measurement: str = "log",
    ) -> None:
        if not callable(getattr(streamer, "send", None)):
            raise TypeError(f"streamer must be an EventStreamer, not {type(streamer).__name__}")
        super().__init__(level)
        self.streamer = streamer
        self.measurement: str = check_measurement(measurement)
        self.records_invalid = 0
        self._emitting = threading.local()
        self._warnings = RateLimitedLog()

    def emit(self, record: logging.LogRecord) -> None:
        """Send the record as an event (see the module docstring); never raises."""
        if _is_internal(record) or getattr(self._emitting, "active", False):
            return
        self._emitting.active = True
        try:
            try:
                event = self.event_for(record)
            except InvalidEventError as exc:  # a logger name or id that cannot be in an event
                self._refuse(record, str(exc))
                return
            except Exception as exc:  # the message cannot be formatted: the call's own bug
                self._refuse(record, f"{type(exc).__name__}: {exc}")
                self.handleError(record)
                return
            self.streamer.send(event)
        except Exception:
            self.handleError(record)
        finally:
            self._emitting.active = False

    def _refuse(self, record: logging.LogRecord, problem: str) -> None:
        """Count a record that cannot become an event as ``invalid``, and say so (rate-limited)."""
        self.records_invalid += 1
        count_invalid = getattr(self.streamer, "count_invalid", None)
        if callable(count_invalid):
            count_invalid()
        self._warnings.warning(
            ("logging-handler", "invalid"),
            "log record of logger %r not sent as an event, counted as invalid: %s",
            record.name,
            problem,
        )

    def event_for(self, record: logging.LogRecord) -> MetricEvent:
        """Return the event a record becomes (without sending it).

        Raises:
            InvalidEventError: If the level or logger name cannot be a tag
                value, or the record's ``correlation_id`` is invalid.
            TypeError: If the message cannot be formatted with its arguments.
        """
        correlation_id = getattr(record, "correlation_id", None)
        return MetricEvent(
            self.measurement,
            tags={"level": record.levelname, "logger": record.name},
            fields={"count": 1, "message_length": len(record.getMessage())},
            timestamp_ns=int(record.created * 1e9),
            correlation_id=correlation_id if isinstance(correlation_id, str) else None,
        )

    def __repr__(self) -> str:
        level = logging.getLevelName(self.level)
        return f"<EventHandler {self.measurement} ({level})>"
