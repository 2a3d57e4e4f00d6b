"""Kafka: `KafkaSink` produces events to a topic, `decode_message` reads them back.

Install the extra: ``pip install 'metricstream[kafka]'`` (confluent-kafka,
imported only when a sink is built).

The package, by role (the same files as every sink folder):

- `config`: the options, the librdkafka configuration, and
  ``kafka://host:port[,host:port]/TOPIC?...`` URLs;
- `sink`: `KafkaSink` (delivery-report accounting, fork, close) and `from_url`;
- `encode`: the topic contract (value, key, headers, schema version) and
  how a batch becomes messages;
- `errors`: librdkafka's error codes in one table;
- `reader`: `decode_message`, the contract's reference reader;

and its own helper, `delivery`: a payload's state and its delivery reports.
"""

from __future__ import annotations

from metricstream.sinks.kafka.config import SCHEMES, KafkaOptions
from metricstream.sinks.kafka.delivery import KafkaPayload
from metricstream.sinks.kafka.encode import (
    CONTENT_TYPES,
    HEADER_BATCH_ID,
    HEADER_CONTENT_TYPE,
    HEADER_CORRELATION_ID,
    HEADER_SCHEMA_VERSION,
)
from metricstream.sinks.kafka.errors import VERDICTS, Verdict
from metricstream.sinks.kafka.reader import decode_message
from metricstream.sinks.kafka.sink import KafkaSink, from_url

__all__ = [
    "CONTENT_TYPES",
    "HEADER_BATCH_ID",
    "HEADER_CONTENT_TYPE",
    "HEADER_CORRELATION_ID",
    "HEADER_SCHEMA_VERSION",
    "SCHEMES",
    "VERDICTS",
    "KafkaOptions",
    "KafkaPayload",
    "KafkaSink",
    "Verdict",
    "decode_message",
    "from_url",
]
