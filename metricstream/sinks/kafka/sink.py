"""`KafkaSink`: events produced to a Kafka topic through confluent-kafka (librdkafka).

Accounting follows the delivery reports: ``write`` produces a payload's
messages, then serves the producer until every message of the payload has
its delivery report (or a deadline a little past ``delivery_timeout_ms``,
after which what is left is purged and so reported too; or until `close`
has delivered or purged everything, reports that count however late). Only a report
without error counts an event as written. Failed messages are judged by
`metricstream.sinks.kafka.errors`; the payload remembers what became of each
message, so a retry sends again only the messages that failed transiently
(the idempotent producer keeps librdkafka's own retries from duplicating
them), and events refused for good are dropped as ``rejected`` once the
rest is settled.
"""

from __future__ import annotations

import os
import threading
import time
from typing import Any

from metricstream._log import logger
from metricstream._options import takes_options
from metricstream.codecs.compression import Compression
from metricstream.contract import EventBatch
from metricstream.exceptions import ConfigError, PermanentSinkError, SinkError, TransientSinkError
from metricstream.sinks.kafka.config import (
    KafkaOptions,
    compression_name,
    secret_masker,
    url_arguments,
)
from metricstream.sinks.kafka.delivery import (
    ClientEvents,
    DeliveryReports,
    KafkaPayload,
    forsake,
)
from metricstream.sinks.kafka.encode import Message, MessageEncoder, Messages
from metricstream.sinks.kafka.errors import UNKNOWN_FATE, Verdict, describe, judge

__all__ = ["KafkaSink", "from_url"]

_GRACE_S = 5.0
"""Seconds past ``delivery_timeout_ms`` that a write waits before purging what is left."""
_WAIT_SLICE_S = 0.2
"""Longest single wait while serving delivery reports (a close is noticed this fast)."""
_ROOM_WAIT_S = 0.05
"""How long to serve the producer before trying again when its local queue is full."""
_PURGE_WAIT_S = 1.0

_log = logger.getChild("kafka")


class KafkaSink:
    """Produce events to a Kafka topic: one message per event, or per batch.

    Takes the options of `KafkaOptions` (each documented there) as its
    parameters: ``KafkaSink(bootstrap_servers, topic, *, format="json",
    message="event", key=None, compression=None, ...)``; they are kept,
    checked, as `options`.

    Raises:
        ConfigError: Naming the option, if one is invalid or librdkafka
            refuses the configuration; ``ImportError`` without confluent-kafka
            (``pip install 'metricstream[kafka]'``).
    """

    @takes_options(KafkaOptions)
    def __init__(self, options: KafkaOptions) -> None:
        self.options = options
        self.name: str = options.name
        self._encoder = MessageEncoder(
            options.format, options.message, options.key, options.max_message_bytes
        )
        self._mask = secret_masker(self.options.extra)
        self._events = ClientEvents(self.name, self._mask)
        self._write_timeout = options.delivery_timeout_ms / 1000.0 + _GRACE_S
        self._compression = self.options.compression or "none"
        self._lock = threading.Lock()
        self._closed = False
        self._close_done = threading.Event()
        self._pid = os.getpid()
        self._kafka: Any = _import_client()
        self._producer: Any = self._new_producer()

    def __repr__(self) -> str:
        key = self.options.key
        shown_key = key if key is None or isinstance(key, str) else getattr(key, "__name__", "fn")
        return self._mask(
            f"KafkaSink(name={self.name!r}, topic={self.options.topic!r}, "
            f"bootstrap_servers={self.options.bootstrap_servers!r}, "
            f"format={self.options.format!r}, message={self.options.message!r}, "
            f"key={shown_key!r}, compression={self._compression!r}, "
            f"producer_config={self.options.redacted_extra()!r})"
        )

    @property
    def compression(self) -> str:
        """The ``compression.type`` in use."""
        return self._compression

    # --- the producer ------------------------------------------------------------

    def _new_producer(self) -> Any:
        config = self.options.librdkafka(self._compression)
        config["error_cb"] = self._events.on_error
        config["logger"] = self._events
        try:
            return self._kafka.Producer(config)
        except (self._kafka.KafkaException, ValueError, TypeError) as exc:
            detail = describe(exc.args[0]) if _has_kafka_error(exc) else str(exc)
            raise ConfigError(
                "producer_config", self._mask(f"librdkafka refused the configuration: {detail}")
            ) from None

    def _client(self) -> Any:
        """The producer to use now (a new one in a forked child)."""
        if self._pid != os.getpid():
            self.after_fork()
        producer = self._producer
        if producer is None or self._closed:
            raise PermanentSinkError(
                f"Kafka sink {self.name!r} is closed", reason="shutdown", sink=self.name
            )
        return producer

    def after_fork(self) -> None:
        """Give a forked child its own producer (a librdkafka client does not survive fork).

        Does nothing in the process that made the current producer, so a
        sink shared by two streamers is renewed once.
        """
        if self._pid == os.getpid():
            return
        if self._producer is not None:
            forsake(self._producer)
        self._pid = os.getpid()
        self._lock = threading.Lock()
        self._close_done = threading.Event()
        self._events = ClientEvents(self.name, self._mask)
        self._producer = None if self._closed else self._new_producer()

    def inherit_compression(self, compression: Compression | str | None) -> None:
        """Adopt the streamer's codec when ``compression=None`` was given.

        Raises:
            ConfigError: If the codec is not one librdkafka knows.
        """
        if self.options.compression is not None:
            return
        chosen = compression_name(Compression.from_str(compression)) or "none"
        with self._lock:
            if chosen == self._compression or self._closed:
                return
            self._compression = chosen
            old, self._producer = self._producer, self._new_producer()
        if old is not None:
            old.flush(self.options.close_timeout)

    # --- the sink protocol -----------------------------------------------------------

    def prepare(self, batch: EventBatch) -> KafkaPayload:
        """Encode the batch into its Kafka messages (CPU only).

        Raises:
            InvalidEventError: If an event has no fields or its key cannot be computed.
        """
        messages, counts = self._encoder.encode(batch)
        return KafkaPayload(messages, counts, len(batch))

    def write(self, payload: KafkaPayload) -> None:
        """Produce the payload's pending messages and wait for all their delivery reports.

        Raises:
            TransientSinkError: Some messages failed in a way that may pass
                (``written`` counts the events delivered so far); a retry
                sends only those.
            PermanentSinkError: Some events were refused for good (reason
                ``rejected``, the broker's message included), or the sink
                was closed (reason ``shutdown``).
        """
        pending = payload.pending
        if pending.values:
            producer = self._client()
            reports = DeliveryReports(payload.counts, pending.shared)
            deadline = reports.started + self._write_timeout
            unsent = self._produce_all(producer, pending, reports, deadline)
            sent = len(pending) - len(unsent)
            self._await_reports(producer, reports, sent, deadline)
            self._settle(payload, reports, sent, unsent)
        if payload.rejected:
            raise PermanentSinkError(
                payload.rejection,
                reason="rejected",
                unhealthy=payload.misconfigured,
                written=payload.delivered,
                sink=self.name,
            )

    def _produce_all(
        self, producer: Any, messages: Messages, reports: DeliveryReports, deadline: float
    ) -> Messages:
        """Hand every message to the producer; return those it could not take in time."""
        produce = producer.produce
        topic = self.options.topic
        callback = reports.callback
        kafka_exception = self._kafka.KafkaException
        if messages.keys is None and messages.headers is None:
            # The common case, kept free of per-message objects.
            shared = messages.shared
            for value in messages.values:
                try:
                    produce(topic, value, None, on_delivery=callback, headers=shared)
                except BufferError:
                    held: Message = (value, None, shared)
                    if not self._produce_when_room(producer, held, reports, deadline):
                        return messages.tail(_position(messages.values, value))
                except kafka_exception as exc:
                    reports.refused(exc.args[0], (value, None, shared))
            return messages.tail(len(messages))
        own = messages.headers is not None
        for message in messages:
            value, key, headers = message
            try:
                on_delivery = reports.callback_for(headers) if own else callback
                produce(topic, value, key, on_delivery=on_delivery, headers=headers)
            except BufferError:
                if not self._produce_when_room(producer, message, reports, deadline):
                    return messages.tail(_position(messages.values, value))
            except kafka_exception as exc:
                reports.refused(exc.args[0], message)
        return messages.tail(len(messages))

    def _produce_when_room(
        self, producer: Any, message: Message, reports: DeliveryReports, deadline: float
    ) -> bool:
        """Serve the producer until its full local queue takes `message`; False at the deadline."""
        value, key, headers = message
        while not self._closed and time.monotonic() < deadline:
            producer.poll(_ROOM_WAIT_S)
            try:
                producer.produce(
                    self.options.topic,
                    value,
                    key,
                    on_delivery=reports.callback_for(headers),
                    headers=headers,
                )
            except BufferError:
                continue
            except self._kafka.KafkaException as exc:
                reports.refused(exc.args[0], message)
            return True
        return False

    def _await_reports(
        self, producer: Any, reports: DeliveryReports, sent: int, deadline: float
    ) -> None:
        """Serve the producer until `sent` reports are in, the sink closes or the deadline.

        Once the sink closes, `close` serves the producer: it delivers what
        it can within ``close_timeout`` and purges the rest, which reports
        every message, so the write waits for it and counts what the reports
        say, however late.
        """
        while reports.reported < sent:
            if self._closed:
                self._close_done.wait(self.options.close_timeout + 2 * _PURGE_WAIT_S)
                return
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                # Purged messages are reported at once (as _PURGE_QUEUE or
                # _PURGE_INFLIGHT), so every message gets its report.
                producer.purge(in_queue=True, in_flight=True)
                producer.flush(_PURGE_WAIT_S)
                return
            producer.flush(min(remaining, _WAIT_SLICE_S))

    def _settle(
        self, payload: KafkaPayload, reports: DeliveryReports, sent: int, unsent: Messages
    ) -> None:
        """Record what the reports say; raise for what must be retried."""
        payload.delivered += reports.delivered_events()
        retry: list[Message] = list(unsent)
        last = "the producer's local queue stayed full" if unsent.values else ""
        rebuild = False
        for error, message in reports.failed:
            verdict = judge(error)
            if verdict is Verdict.RETRY or verdict is Verdict.REBUILD:
                retry.append(message)
                last = describe(error)
                rebuild = rebuild or verdict is Verdict.REBUILD
                continue
            payload.rejected += payload.count(message[0])
            payload.misconfigured = payload.misconfigured or verdict is Verdict.MISCONFIGURED
            payload.rejection = self._mask(
                f"Kafka sink {self.name!r}: topic {self.options.topic!r} refused "
                f"{payload.rejected} event(s): {describe(error)}"
            )
        payload.pending = Messages.of(retry)
        if reports.reported < sent or (retry and self._closed):
            unknown = reports.reported < sent or any(
                error.name() in UNKNOWN_FATE for error, _ in reports.failed
            )
            self._give_up(payload, reports, sent, unknown=unknown)
        if rebuild:
            self._replace_producer(self._mask(last))
        if retry:
            if self._events.last_error_at >= reports.started:
                last += f"; meanwhile the client reported {self._events.last_error}"
            waiting = sum(payload.count(message[0]) for message in retry)
            raise TransientSinkError(
                self._mask(
                    f"Kafka sink {self.name!r}: {waiting} event(s) not delivered to topic "
                    f"{self.options.topic!r} yet: {last}"
                ),
                written=payload.delivered,
                rejected=payload.rejected,
                sink=self.name,
            )

    def _give_up(
        self, payload: KafkaPayload, reports: DeliveryReports, sent: int, *, unknown: bool
    ) -> None:
        """The sink closed, or reports are missing even after a purge: drop the rest.

        After a close, what was never sent is dropped as ``shutdown``; when
        some messages may have reached the broker (purged in flight, timed
        out, no report), the rest is ``unconfirmed``.
        """
        payload.pending = Messages.of(())
        if self._closed:
            raise PermanentSinkError(
                f"Kafka sink {self.name!r} was closed before every message was delivered",
                reason="unconfirmed" if unknown else "shutdown",
                written=payload.delivered,
                rejected=payload.rejected,
                sink=self.name,
            )
        raise PermanentSinkError(
            f"Kafka sink {self.name!r}: {sent - reports.reported} message(s) got no delivery "
            f"report within {self._write_timeout:.0f} s, even after purging",
            reason="retries_exhausted",
            written=payload.delivered,
            rejected=payload.rejected,
            sink=self.name,
        )

    def _replace_producer(self, cause: str) -> None:
        """Start a new producer after a fatal error or a timeout (see `Verdict.REBUILD`)."""
        with self._lock:
            if self._closed:
                return
            self._producer = self._new_producer()
        self._events.warnings.warning(
            (self.name, "rebuild"),
            "Kafka sink %r: a new producer replaces the old one after %s",
            self.name,
            cause,
        )

    def check(self) -> None:
        """Fetch the topic's metadata within ``check_timeout`` seconds.

        Raises:
            SinkError: If the sink is closed, no broker answers in time, or
                the topic has an error or no partitions.
        """
        try:
            producer = self._client()
        except PermanentSinkError as exc:
            raise SinkError(str(exc), sink=self.name) from None
        try:
            metadata = producer.list_topics(self.options.topic, timeout=self.options.check_timeout)
        except self._kafka.KafkaException as exc:
            raise SinkError(
                self._mask(
                    f"Kafka sink {self.name!r}: no metadata for topic {self.options.topic!r} "
                    f"within {self.options.check_timeout:g} s: {describe(exc.args[0])}"
                ),
                sink=self.name,
            ) from None
        found = metadata.topics.get(self.options.topic)
        problem = None if found is None else found.error
        if found is None or problem is not None or not found.partitions:
            detail = "no partitions" if problem is None else describe(problem)
            raise SinkError(
                self._mask(f"Kafka sink {self.name!r}: topic {self.options.topic!r}: {detail}"),
                sink=self.name,
            )

    def close(self) -> None:
        """Deliver what is queued within ``close_timeout`` seconds, then purge the rest.

        A write still waiting for its reports waits for this too, then
        counts what they say: delivered events as written, messages purged
        before they were sent as ``shutdown``, those whose fate is unknown
        (purged in flight) as ``unconfirmed``. Idempotent.
        """
        with self._lock:
            if self._closed:
                return
            self._closed = True
            producer, self._producer = self._producer, None
        try:
            if producer is not None and self._pid == os.getpid():
                self._drain(producer)
        finally:
            self._close_done.set()

    def _drain(self, producer: Any) -> None:
        left = producer.flush(self.options.close_timeout)
        if left:
            producer.purge(in_queue=True, in_flight=True)
            producer.flush(min(self.options.close_timeout, _PURGE_WAIT_S))
            _log.warning(
                "Kafka sink %r closed with %d message(s) undelivered; purged",
                self.name,
                left,
            )

    @property
    def last_client_error(self) -> str | None:
        """The last client-wide error librdkafka reported (credentials removed), or None."""
        return self._events.last_error


def _position(values: list[bytes], value: bytes) -> int:
    """The position of `value` (this very object) in `values`."""
    return next(i for i, candidate in enumerate(values) if candidate is value)


def _has_kafka_error(exc: BaseException) -> bool:
    return bool(exc.args) and callable(getattr(exc.args[0], "name", None))


def _import_client() -> Any:
    """Import confluent-kafka, with the modules its C code imports lazily."""
    try:
        import confluent_kafka

        # The client imports this module the first time it returns topic
        # metadata. Imported here, on the constructing thread, it can never be
        # half-imported by a lane thread when the process forks, which would
        # leave its import lock held for good in the child.
        import confluent_kafka.admin
    except ImportError as exc:
        raise ImportError(
            "KafkaSink needs confluent-kafka: pip install 'metricstream[kafka]'"
        ) from exc
    return confluent_kafka


def from_url(url: str, **overrides: Any) -> KafkaSink:
    """Build a `KafkaSink` from a ``kafka://`` URL (see `url_arguments`); keyword arguments win.

    Raises:
        ConfigError: If the URL or an option is invalid.
    """
    return KafkaSink(**url_arguments(url, overrides))
