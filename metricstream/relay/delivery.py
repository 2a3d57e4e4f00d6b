"""Where a relay's batches go: `Outlet` (a streamer's ``send_batch``) and `DeadLetters`.

An `Outlet` hands one batch to a streamer as one `EventBatch` with a
deterministic id and returns its receipt, or None when the streamer pushes
back (`BackpressureError`): the caller keeps the batch, pauses its
partition and offers it again later. `DeadLetters` produces the messages
that could not be decoded, as they were (value, key, headers) with two
headers more (``metricstream-error``, ``metricstream-source``), to the
dead-letter topic, and settles each one's `DeadLetter` on its delivery
report.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Mapping, Sequence
from typing import Any

from metricstream._log import RateLimitedLog, logger
from metricstream.event import MetricEvent
from metricstream.exceptions import BackpressureError
from metricstream.relay.batches import DeadLetter
from metricstream.relay.stats import RelayCounters
from metricstream.streamer.engine.receipts import BatchReceipt
from metricstream.streamer.streamer import EventStreamer

__all__ = ["MAX_ID_LENGTH", "DeadLetters", "Outlet", "batch_id"]

MAX_ID_LENGTH = 256
"""The longest batch id a streamer takes; longer ones are hashed."""

_warnings = RateLimitedLog(logger)


def batch_id(*parts: object) -> str:
    """A batch id: `parts` joined by ``:``, hashed when too long or unprintable."""
    text = ":".join(str(part) for part in parts)
    if len(text) <= MAX_ID_LENGTH and text.isprintable():
        return text
    return "h:" + hashlib.blake2b(text.encode(), digest_size=20).hexdigest()


class Outlet:
    """Hands batches to one streamer (see the module doc).

    Args:
        streamer: The streamer of this outlet's sinks.
        counters: Where batches and pushbacks are counted.
    """

    def __init__(self, streamer: EventStreamer, counters: RelayCounters) -> None:
        self.streamer = streamer
        self._counters = counters
        self._refused_until = 0.0

    def send(self, events: Sequence[MetricEvent], batch_id: str) -> BatchReceipt | None:
        """Hand over one batch; return its receipt, or None if the sinks have no room now."""
        now = time.monotonic()
        if now < self._refused_until:
            return None
        try:
            receipt = self.streamer.send_batch(events, batch_id=batch_id)
        except BackpressureError as exc:
            self._counters.add("backpressure")
            self._refused_until = now + min(exc.retry_after, 0.1)
            return None
        self._counters.add("batches")
        return receipt


class DeadLetters:
    """Produces undecodable messages to the dead-letter topic (see the module doc).

    Args:
        settings: librdkafka settings shared by the relay's clients.
        topic: The dead-letter topic.
        counters: Where deliveries and failures are counted.
    """

    def __init__(self, settings: Mapping[str, Any], topic: str, counters: RelayCounters) -> None:
        from confluent_kafka import Producer

        self.topic = topic
        self._counters = counters
        self._producer = Producer(
            {**settings, "enable.idempotence": True, "acks": "all", "linger.ms": 5}
        )

    def send(self, message: Any, error: str) -> DeadLetter:
        """Produce `message` (a confluent-kafka ``Message``) with the reason it was refused."""
        letter = DeadLetter(message.offset())
        source = f"{message.topic()}/{message.partition()}/{message.offset()}"
        headers = [
            *(message.headers() or ()),
            ("metricstream-error", error[:1000].encode()),
            ("metricstream-source", source.encode()),
        ]

        def delivered(failure: Any, _message: Any) -> None:
            if failure is None:
                self._counters.add("dead_letters_delivered")
                letter.settle(None)
                return
            self._counters.add("dead_letters_failed")
            _warnings.warning(
                ("relay", "dead-letter"),
                "relay: the dead-letter topic %r refused %s: %s",
                self.topic,
                source,
                failure,
            )
            letter.settle(str(failure))

        while True:
            try:
                self._producer.produce(
                    self.topic,
                    message.value(),
                    key=message.key(),
                    headers=headers,
                    on_delivery=delivered,
                )
                return letter
            except BufferError:
                self._producer.poll(0.05)

    def poll(self) -> None:
        """Serve delivery reports that arrived."""
        self._producer.poll(0)

    def close(self, timeout: float) -> int:
        """Wait up to `timeout` seconds for the delivery reports; return how many are missing."""
        return int(self._producer.flush(timeout))
