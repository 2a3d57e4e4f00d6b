"""`Marks`: the few positions a relay keeps beside its group's committed offsets.

A replay must repeat what the relay did before a crash: cut the same
batches, skip the events of windows already emitted. Besides the offset
where reading resumes, that takes at most two numbers per partition, and
the relay keeps them where Kafka keeps offsets: as the committed offsets of
companion consumer groups named after the group (``GROUP.metricstream-cut``,
``GROUP.metricstream-read``, ``GROUP.metricstream-watermark``), which no
consumer ever joins. Kafka's
committed offsets stay the whole of the relay's state (commit metadata would
be the natural place, but not every broker keeps it); nothing else is
stored anywhere.

- ``cut`` (without windows): the last batch cut that depended on time
  (`metricstream.relay.batches`), written before that batch is sent;
- ``read`` (with windows): the offset below which every event was
  accounted for (aggregated into a window, or delivered as late) when the
  offsets were last committed;
- ``watermark`` (with windows): the event time (ns) through which every
  window was emitted and delivered then.

Marks are written before the group's offsets that rely on them, ``read``
before ``watermark``: a crash between two of these writes may make a
replay emit a window again, identical and with the same batch id, but
never lose an event or count one twice in Redis.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from metricstream.exceptions import MetricStreamError

__all__ = ["MARK_NAMES", "Marks", "PartitionKey"]

PartitionKey = tuple[str, int]
"""A partition: (topic, partition number)."""

MARK_NAMES = ("cut", "read", "watermark")
"""The marks a relay may keep (each in a companion group ``GROUP.metricstream-NAME``)."""


class Marks:
    """Reads and writes marks as committed offsets of companion consumer groups.

    Args:
        settings: The librdkafka settings shared by the relay's clients
            (brokers, security).
        group: The relay's consumer group.
        names: The marks this relay keeps (from `MARK_NAMES`).
        timeout: Seconds to wait for the broker.
    """

    def __init__(
        self, settings: Mapping[str, Any], group: str, names: Iterable[str], timeout: float
    ) -> None:
        from confluent_kafka import Consumer

        self.timeout = timeout
        self._clients = {
            name: Consumer(
                {
                    **settings,
                    "group.id": f"{group}.metricstream-{name}",
                    "enable.auto.commit": False,
                }
            )
            for name in names
        }

    @property
    def names(self) -> tuple[str, ...]:
        """The marks kept."""
        return tuple(self._clients)

    def read(self, partitions: Iterable[PartitionKey]) -> dict[str, dict[PartitionKey, int]]:
        """Return each mark of each partition that has one.

        Raises:
            MetricStreamError: If the broker does not answer in time.
        """
        from confluent_kafka import KafkaException, TopicPartition

        wanted = [TopicPartition(topic, number) for topic, number in partitions]
        found: dict[str, dict[PartitionKey, int]] = {}
        for name, client in self._clients.items():
            try:
                answers = client.committed(wanted, timeout=self.timeout) if wanted else []
            except KafkaException as exc:
                raise MetricStreamError(f"reading the relay's {name} marks failed: {exc}") from exc
            found[name] = {
                (answer.topic, answer.partition): answer.offset
                for answer in answers
                if answer.error is None and answer.offset >= 0
            }
        return found

    def write(self, name: str, values: Mapping[PartitionKey, int]) -> None:
        """Write `values` (each >= 0) of mark `name`, waiting until the broker has them.

        Raises:
            MetricStreamError: If the broker refuses them or does not answer.
        """
        from confluent_kafka import KafkaException, TopicPartition

        offsets = [TopicPartition(t, p, value) for (t, p), value in values.items() if value >= 0]
        if not offsets:
            return
        try:
            answers = self._clients[name].commit(offsets=offsets, asynchronous=False)
        except KafkaException as exc:
            raise MetricStreamError(f"writing the relay's {name} marks failed: {exc}") from exc
        refused = [answer for answer in answers or () if answer.error is not None]
        if refused:
            raise MetricStreamError(f"the broker refused {name} marks: {refused[0].error}")

    def close(self) -> None:
        """Close the companion clients."""
        for client in self._clients.values():
            client.close()
