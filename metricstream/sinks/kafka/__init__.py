"""Kafka: `KafkaSink` produces events to a topic, `decode_message` reads them back.

Install the extra: ``pip install 'metricstream[kafka]'`` (confluent-kafka,
imported only when a sink is built).

- `metricstream.sinks.kafka.wire`: the topic contract (value, key, headers,
  schema version) and `decode_message`;
- `metricstream.sinks.kafka.errors`: librdkafka's error codes in one table;
- `metricstream.sinks.kafka.sink`: delivery-report accounting, fork, close;
- `metricstream.sinks.kafka.delivery`: a payload's state and its delivery reports;
- `metricstream.sinks.kafka.url`: ``kafka://host:port[,host:port]/TOPIC?...``.
"""

from __future__ import annotations

from metricstream.sinks.kafka.delivery import KafkaPayload
from metricstream.sinks.kafka.errors import VERDICTS, Verdict
from metricstream.sinks.kafka.sink import KafkaSink
from metricstream.sinks.kafka.url import SCHEMES, from_url
from metricstream.sinks.kafka.wire import (
    CONTENT_TYPES,
    HEADER_BATCH_ID,
    HEADER_CONTENT_TYPE,
    HEADER_CORRELATION_ID,
    HEADER_SCHEMA_VERSION,
    decode_message,
)

__all__ = [
    "CONTENT_TYPES",
    "HEADER_BATCH_ID",
    "HEADER_CONTENT_TYPE",
    "HEADER_CORRELATION_ID",
    "HEADER_SCHEMA_VERSION",
    "SCHEMES",
    "VERDICTS",
    "KafkaPayload",
    "KafkaSink",
    "Verdict",
    "decode_message",
    "from_url",
]
