"""What a write hears back: the payload's state, the delivery reports, the client's events."""

from __future__ import annotations

import ctypes
import functools
import threading
import time
from collections.abc import Callable
from typing import Any

from metricstream._log import RateLimitedLog, logger
from metricstream.sinks.kafka.encode import Headers, Message, Messages
from metricstream.sinks.kafka.errors import KafkaErrorLike, describe

__all__ = ["ClientEvents", "DeliveryReports", "KafkaPayload", "forsake"]

_log = logger.getChild("kafka")


class KafkaPayload:
    """The messages of one batch, and what became of them so far.

    Attributes:
        events: The number of events in the payload.
        pending: The messages still to send (all at first; then those that
            failed transiently).
        delivered: Events confirmed by a delivery report, over all attempts.
        rejected: Events refused for good.
        rejection: What refused them (the broker's message).
    """

    __slots__ = (
        "counts",
        "delivered",
        "events",
        "misconfigured",
        "pending",
        "rejected",
        "rejection",
    )

    def __init__(self, messages: Messages, counts: dict[bytes, int] | None, events: int):
        self.pending = messages
        self.counts = counts
        self.events = events
        self.delivered = 0
        self.rejected = 0
        self.rejection = ""
        self.misconfigured = False

    def __len__(self) -> int:
        return self.events

    def __repr__(self) -> str:
        return (
            f"KafkaPayload(events={self.events}, pending_messages={len(self.pending)}, "
            f"delivered={self.delivered}, rejected={self.rejected})"
        )

    def count(self, value: bytes | None) -> int:
        """The number of events in a message with this value."""
        return 1 if self.counts is None else self.counts.get(value or b"", 1)


class DeliveryReports:
    """The delivery reports of one write attempt (the producer's callbacks).

    In ``event`` mode every message holds one event; in ``batch`` mode
    `counts` gives the events of each value. A delivery report carries no
    headers (confluent-kafka leaves them out), so a failed message is kept
    with the headers it was produced with: `shared`, or its own, bound to
    its callback by `callback_for`.
    """

    __slots__ = ("counts", "delivered", "failed", "lock", "reported", "shared", "started")

    def __init__(self, counts: dict[bytes, int] | None, shared: Headers | None = None) -> None:
        # A close serving the producer on its own thread takes reports too.
        self.lock = threading.Lock()
        self.started = time.monotonic()
        self.counts = counts
        self.shared: Headers = [] if shared is None else shared
        self.delivered = 0
        self.reported = 0
        self.failed: list[tuple[KafkaErrorLike, Message]] = []

    @property
    def callback(self) -> Any:
        """The delivery callback to pass to ``produce``."""
        return self.on_event_delivery if self.counts is None else self.on_batch_delivery

    def callback_for(self, headers: Headers) -> Any:
        """The delivery callback of a message produced with `headers` of its own."""
        return functools.partial(self.callback, headers=headers)

    def on_event_delivery(
        self, error: KafkaErrorLike | None, message: Any, headers: Headers | None = None
    ) -> None:
        """Take the report of a one-event message."""
        with self.lock:
            self.reported += 1
            if error is not None:
                self._fail(error, message, headers)

    def on_batch_delivery(
        self, error: KafkaErrorLike | None, message: Any, headers: Headers | None = None
    ) -> None:
        """Take the report of a message holding `counts[value]` events."""
        with self.lock:
            self.reported += 1
            if error is None:
                self.delivered += self.counts[message.value()]  # type: ignore[index]
            else:
                self._fail(error, message, headers)

    def _fail(self, error: KafkaErrorLike, message: Any, headers: Headers | None) -> None:
        kept = self.shared if headers is None else headers
        self.failed.append((error, (message.value(), message.key(), kept)))

    def refused(self, error: KafkaErrorLike, message: Message) -> None:
        """`produce` refused a message at once: report it as failed."""
        with self.lock:
            self.reported += 1
            self.failed.append((error, message))

    def delivered_events(self) -> int:
        """Events confirmed by a report without error."""
        if self.counts is None:
            return self.reported - len(self.failed)
        return self.delivered


class ClientEvents:
    """librdkafka's log lines and client-wide errors, masked, into the package logger.

    Kept apart from the sink so that the producer's callbacks do not hold
    the sink (no reference cycle through the C extension).
    """

    def __init__(self, name: str, mask: Callable[[str], str]) -> None:
        self.name = name
        self.mask = mask
        self.last_error: str | None = None
        self.last_error_at = float("-inf")
        self.warnings = RateLimitedLog(_log, interval=30.0)

    def log(self, level: int, message: str, *args: object) -> None:
        """Take one librdkafka log line (the producer's ``logger``)."""
        text = self.mask(message % args if args else message)
        facility = args[0] if args else ""
        self.warnings.log(level, (self.name, "librdkafka", facility, level), "%s", text)

    def on_error(self, error: Any) -> None:
        """Take a client-wide error (the producer's ``error_cb``)."""
        self.last_error = self.mask(describe(error))
        self.last_error_at = time.monotonic()
        self.warnings.warning(
            (self.name, "client"), "Kafka sink %r: %s", self.name, self.last_error
        )


def forsake(producer: Any) -> None:
    """Keep a producer inherited through ``fork`` alive for good.

    Its librdkafka threads do not exist in the child: using it there would
    hang, and so would destroying it, so the child never releases it.
    """
    ctypes.pythonapi.Py_IncRef(ctypes.py_object(producer))
