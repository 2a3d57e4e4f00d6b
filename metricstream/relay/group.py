"""`GroupReader`: the relay's member of the consumer group, and the loop around it.

One thread does everything Kafka asks of a consumer: `GroupReader.step`
reads a few thousand messages, decodes them (`decode_message`: every message
`KafkaSink` writes, and plain line protocol; one that cannot be decoded is
counted and, with a dead-letter topic, produced there, and its offset moves
on), gives them to the mode (`PassThrough` or `Windowed`), then:

1. hands what is ready to the sinks (``send_batch``; when a sink has no
   room the partition is paused, ``consumer.pause``, and resumed once the
   batch is taken, so what the relay holds stays bounded whatever the lag);
2. acknowledges what every sink has delivered;
3. every ``commit_interval``, writes the marks, then commits each
   partition's offset (synchronously) up to the oldest event still needed.

Rebalances come through the consumer's callbacks, on the same thread: on
revocation a partition's deliveries are awaited (at most
``revoke_timeout``) and its offsets committed before it is handed over; on
assignment reading resumes from the committed offset, with the marks.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping
from typing import Any, Protocol

from metricstream._log import RateLimitedLog, logger
from metricstream.event import MetricEvent
from metricstream.exceptions import MetricStreamError
from metricstream.relay.batches import DeadLetter
from metricstream.relay.delivery import DeadLetters
from metricstream.relay.marks import Marks, PartitionKey
from metricstream.relay.passthrough import Decoded
from metricstream.relay.source import KafkaSource
from metricstream.relay.stats import RelayCounters
from metricstream.sinks.kafka.reader import decode_message

__all__ = ["GroupReader", "Mode", "ReaderSettings"]

_warnings = RateLimitedLog(logger)


class Mode(Protocol):
    """What the reader drives: `PassThrough` or `Windowed`."""

    marks: tuple[str, ...]

    def assign(self, key: PartitionKey, start: int | None, marks: Mapping[str, int]) -> None:
        """Read `key` from `start` with its marks."""

    def revoke(self, keys: Iterable[PartitionKey]) -> None:
        """Forget `keys`."""

    def take(self, key: PartitionKey, messages: list[Decoded]) -> None:
        """Add one partition's messages."""

    def pump(self) -> None:
        """Hand what is ready to the sinks."""

    def collect(self) -> None:
        """Acknowledge what is delivered."""

    def positions(self) -> dict[PartitionKey, int]:
        """The offsets to commit."""

    def mark_values(self) -> dict[str, dict[PartitionKey, int]]:
        """The marks the offsets rely on."""

    def committed(self, offsets: Mapping[PartitionKey, int]) -> None:
        """The broker has `offsets`."""

    def blocked(self) -> set[PartitionKey]:
        """Partitions to pause."""

    def held_events(self) -> int:
        """Events held, not yet delivered."""

    def settled(self, keys: Iterable[PartitionKey]) -> bool:
        """Nothing taken by the sinks is undelivered for `keys`."""

    def read_positions(self) -> dict[PartitionKey, int]:
        """The next offset of each partition."""

    def close_windows(self) -> None:
        """Emit the windows the watermark completed (windows only)."""

    def waiting_tails(self) -> list[PartitionKey]:
        """Partitions with a batch being filled (without windows only)."""

    def tails_due(
        self, log_ends: Mapping[PartitionKey, int | None], linger: float | None = None
    ) -> dict[PartitionKey, int]:
        """Where to cut batches that waited long enough at the end of the log."""

    def cut_tails(self, cuts: Mapping[PartitionKey, int]) -> None:
        """Cut those batches, their offsets written down."""


class ReaderSettings:
    """The reader's timing and bounds (from `RelayOptions`).

    Args:
        max_held: Events held (read, not delivered) above which every
            partition is paused until half of them are delivered.
        commit_interval: Seconds between commits.
        revoke_timeout: Seconds a revoked partition's deliveries are awaited.
        poll_messages: Messages read at most per step.
        broker_timeout: Seconds to wait for the broker's answers.
    """

    def __init__(
        self,
        max_held: int,
        commit_interval: float,
        revoke_timeout: float,
        poll_messages: int = 2000,
        broker_timeout: float = 30.0,
    ) -> None:
        self.max_held = max_held
        self.commit_interval = commit_interval
        self.revoke_timeout = revoke_timeout
        self.poll_messages = poll_messages
        self.broker_timeout = broker_timeout


class GroupReader:
    """The relay's consumer in the group and the loop that drives the mode (see the module doc).

    Args:
        source: The topics and the group.
        mode: What happens to the messages.
        counters: The relay's counters.
        settings: Timing and bounds.
    """

    def __init__(
        self, source: KafkaSource, mode: Mode, counters: RelayCounters, settings: ReaderSettings
    ) -> None:
        from confluent_kafka import Consumer

        self.source = source
        self.mode = mode
        self.settings = settings
        self._counters = counters
        self._mask = source.masker()
        self._consumer = Consumer({**source.consumer_settings(), "error_cb": self._on_error})
        self._marks = Marks(
            source.client_settings(), source.group, mode.marks, settings.broker_timeout
        )
        self._dead = (
            DeadLetters(source.client_settings(), source.dlq, counters) if source.dlq else None
        )
        self._assigned: list[PartitionKey] = []
        self._committed: dict[PartitionKey, int] = {}
        self._written: dict[str, dict[PartitionKey, int]] = {}
        self._paused: set[PartitionKey] = set()
        self._full = False
        self._leaving = False
        self._held = 0
        self._next_commit = 0.0
        self.fatal: str | None = None

    # --- the loop ----------------------------------------------------------------------

    def open(self) -> None:
        """Join the group (the assignment arrives in a later `step`)."""
        self._consumer.subscribe(
            list(self.source.topics),
            on_assign=self._on_assign,
            on_revoke=self._on_revoke,
            on_lost=self._on_lost,
        )

    def step(self, timeout: float = 0.1) -> int:
        """Read, hand over, acknowledge and commit once; return how many messages were read.

        Raises:
            MetricStreamError: If the consumer met an error it cannot go on after.
        """
        room = self.settings.max_held - self._held  # read no more than may be held
        wanted = max(1, min(self.settings.poll_messages, room))
        messages = self._consumer.consume(wanted, timeout)
        if messages:
            self._take(messages)
        self._tick()
        if self.fatal is not None:
            raise MetricStreamError(f"the relay's consumer failed: {self.fatal}")
        return len(messages)

    def _take(self, messages: list[Any]) -> None:
        by_partition: dict[PartitionKey, list[Decoded]] = {}
        events_read = 0
        for message in messages:
            if message.error() is not None:
                self._message_error(message.error())
                continue
            try:
                events: list[MetricEvent] = decode_message(message.value(), message.headers())
            except Exception as exc:  # a poison message never stops its partition
                decoded = self._refuse(message, exc)
            else:
                decoded = (message.offset(), events, None)
                events_read += len(events)
            key = (message.topic(), message.partition())
            found = by_partition.get(key)
            if found is None:
                by_partition[key] = [decoded]
            else:
                found.append(decoded)
        self._counters.add("messages", len(messages))
        self._counters.add("events_read", events_read)
        take = self.mode.take
        for key, decoded_messages in by_partition.items():
            take(key, decoded_messages)

    def _refuse(self, message: Any, exc: Exception) -> Decoded:
        """Count a message that cannot be decoded, send it to the dead letters if any."""
        problem = self._mask(f"{type(exc).__name__}: {exc}")
        self._counters.add("invalid_messages")
        _warnings.warning(
            ("relay", "invalid"),
            "relay: %s/%d at offset %d cannot be decoded (%s); %s",
            message.topic(),
            message.partition(),
            message.offset(),
            problem,
            "sent to the dead-letter topic" if self._dead else "counted and skipped",
        )
        letter: DeadLetter | None = None
        if self._dead is not None:
            letter = self._dead.send(message, problem)
        return message.offset(), [], letter

    def _message_error(self, error: Any) -> None:
        from confluent_kafka import KafkaError

        if error.code() == KafkaError._PARTITION_EOF:
            return
        if error.fatal():
            self.fatal = self._mask(str(error))
        _warnings.warning(
            ("relay", "consume", error.code()),
            "relay: reading failed: %s",
            self._mask(str(error)),
        )

    def _on_error(self, error: Any) -> None:
        if error.fatal():
            self.fatal = self._mask(str(error))
        _warnings.warning(
            ("relay", "client", error.code()),
            "relay: Kafka client: %s",
            self._mask(str(error)),
        )

    def _tick(self) -> None:
        if self._dead is not None:
            self._dead.poll()
        mode = self.mode
        mode.collect()
        mode.close_windows()
        mode.pump()
        self._cut_tails()
        if time.monotonic() >= self._next_commit:
            self.commit()
        self._flow()

    # --- pass-through tails -------------------------------------------------------------

    def _cut_tails(self, linger: float | None = None) -> None:
        waiting = self.mode.waiting_tails()
        if not waiting:
            return
        due = self.mode.tails_due(self._log_ends(waiting), linger)
        if not due:
            return
        try:
            self._marks.write("cut", due)
            self._commit_offsets(self.mode.positions(), force=True)  # still a member?
        except MetricStreamError as exc:
            self._commit_failed(exc)
            return
        self.mode.cut_tails(due)
        self.mode.pump()

    def _log_ends(self, keys: Iterable[PartitionKey]) -> dict[PartitionKey, int | None]:
        """Each partition's end of the log as the last fetch saw it (None if unknown)."""
        from confluent_kafka import KafkaException, TopicPartition

        ends: dict[PartitionKey, int | None] = {}
        for key in keys:
            try:
                _, high = self._consumer.get_watermark_offsets(TopicPartition(*key), cached=True)
            except KafkaException:
                high = -1
            ends[key] = high if high is not None and high >= 0 else None
        return ends

    # --- committing -----------------------------------------------------------------------

    def commit(self, keys: Iterable[PartitionKey] | None = None) -> bool:
        """Write the marks, then commit the offsets (of `keys`, or every partition).

        Returns:
            True if the broker took them (or nothing had changed).
        """
        self._next_commit = time.monotonic() + self.settings.commit_interval
        wanted = None if keys is None else set(keys)
        positions = {
            key: offset
            for key, offset in self.mode.positions().items()
            if wanted is None or key in wanted
        }
        try:
            self._write_marks(wanted)
            self._commit_offsets(positions)
        except MetricStreamError as exc:
            self._commit_failed(exc)
            return False
        self._report()
        return True

    def _write_marks(self, wanted: set[PartitionKey] | None) -> None:
        values = self.mode.mark_values()
        for name in self.mode.marks:
            written = self._written.setdefault(name, {})
            changed = {
                key: value
                for key, value in values.get(name, {}).items()
                if written.get(key) != value and (wanted is None or key in wanted)
            }
            if changed:
                self._marks.write(name, changed)
                written.update(changed)

    def _commit_offsets(self, positions: Mapping[PartitionKey, int], force: bool = False) -> None:
        from confluent_kafka import KafkaException, TopicPartition

        changed = {
            key: offset
            for key, offset in positions.items()
            if force or self._committed.get(key) != offset
        }
        if not changed:
            return
        offsets = [TopicPartition(t, p, offset) for (t, p), offset in changed.items()]
        try:
            answers = self._consumer.commit(offsets=offsets, asynchronous=False)
        except KafkaException as exc:
            raise MetricStreamError(f"committing offsets failed: {exc}") from exc
        refused = [answer for answer in answers or () if answer.error is not None]
        if refused:
            raise MetricStreamError(f"the broker refused an offset: {refused[0].error}")
        self._committed.update(changed)
        self.mode.committed(changed)
        self._counters.add("commits")

    def _commit_failed(self, exc: MetricStreamError) -> None:
        self._counters.add("commit_errors")
        _warnings.warning(
            ("relay", "commit"),
            "relay: %s (tried again at the next commit)",
            self._mask(str(exc)),
        )

    def _report(self) -> None:
        read = self.mode.read_positions()
        ends = self._log_ends(self._assigned)
        for key in self._assigned:
            self._counters.update(
                key,
                committed=self._committed.get(key),
                position=read.get(key),
                end=ends.get(key),
                paused=key in self._paused,
            )

    # --- flow control ---------------------------------------------------------------------

    def _flow(self) -> None:
        from confluent_kafka import TopicPartition

        held = self._held = self.mode.held_events()
        self._counters.held(held)
        limit = self.settings.max_held
        self._full = held > limit or (self._full and held > limit // 2)
        wanted = set(self._assigned) if self._full else self.mode.blocked() & set(self._assigned)
        pause = wanted - self._paused
        resume = self._paused - wanted
        if pause:
            self._consumer.pause([TopicPartition(*key) for key in sorted(pause)])
        if resume:
            self._consumer.resume([TopicPartition(*key) for key in sorted(resume)])
        self._paused = wanted

    # --- rebalances -------------------------------------------------------------------------

    def _on_assign(self, consumer: Any, partitions: list[Any]) -> None:
        keys = [(tp.topic, tp.partition) for tp in partitions]
        self._counters.add("rebalances")
        committed = consumer.committed(partitions, timeout=self.settings.broker_timeout)
        starts = {
            (tp.topic, tp.partition): tp.offset if tp.offset >= 0 else None for tp in committed
        }
        marks = self._marks.read(keys)
        self._written = {name: dict(values) for name, values in marks.items()}
        for key in keys:
            mine = {name: values[key] for name, values in marks.items() if key in values}
            self.mode.assign(key, starts.get(key), mine)
        self._assigned = keys
        self._committed = {key: start for key, start in starts.items() if start is not None}
        self._paused = set()
        self._counters.assigned(keys)
        logger.info("relay: assigned %s", ", ".join(f"{t}/{p}" for t, p in keys))

    def _on_revoke(self, _consumer: Any, partitions: list[Any]) -> None:
        keys = [(tp.topic, tp.partition) for tp in partitions]
        # When the relay leaves the group, drain() has waited already.
        deadline = time.monotonic() + (0.0 if self._leaving else self.settings.revoke_timeout)
        while True:
            if self._dead is not None:
                self._dead.poll()
            self.mode.collect()
            if self.mode.settled(keys) or time.monotonic() >= deadline:
                break
            time.sleep(0.005)
        self.commit(keys)
        self._forget(keys)

    def _on_lost(self, _consumer: Any, partitions: list[Any]) -> None:
        self._forget([(tp.topic, tp.partition) for tp in partitions])

    def _forget(self, keys: list[PartitionKey]) -> None:
        self.mode.revoke(keys)
        gone = set(keys)
        self._assigned = [key for key in self._assigned if key not in gone]
        self._paused -= gone
        for key in gone:
            self._committed.pop(key, None)
        self._counters.assigned(self._assigned)

    # --- the end --------------------------------------------------------------------------

    def drain(self, timeout: float) -> bool:
        """Deliver what was read (at most `timeout` seconds), then commit; True if all was."""
        self._cut_tails(linger=0.0)
        deadline = time.monotonic() + timeout
        while True:
            if self._dead is not None:
                self._dead.poll()
            self.mode.collect()
            self.mode.pump()
            settled = self.mode.settled(self._assigned) and not self.mode.blocked()
            if settled or time.monotonic() >= deadline:
                break
            time.sleep(0.01)
        self.commit()
        return settled

    def close(self, timeout: float) -> None:
        """Leave the group (the revocation commits what is delivered); close the clients."""
        self._leaving = True
        try:
            self._consumer.close()
        finally:
            self._marks.close()
            if self._dead is not None:
                missing = self._dead.close(timeout)
                if missing:
                    logger.warning(
                        "relay: %d dead letters were not confirmed delivered", missing
                    )
