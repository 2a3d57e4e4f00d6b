"""Destinations for events: one room per sink, and `sink_from_url`.

- `ConsoleSink` (`metricstream.sinks.console`)
- `JsonLinesSink` (`metricstream.sinks.jsonl`)
- `InfluxDBSink` (`metricstream.sinks.influxdb`, extra ``influxdb``)
- `KafkaSink` (`metricstream.sinks.kafka`, extra ``kafka``)
- `RedisCounterSink` and `RedisCounterReader`, with `CounterMapping`,
  `TimeBuckets` and `CounterLimits` (`metricstream.sinks.redis_counters`,
  extra ``redis``)

Each sink module registers its URL schemes (see `metricstream.registry`);
optional client libraries are imported only when a sink that needs them is
created.
"""

from __future__ import annotations

from metricstream.contract import Sink
from metricstream.registry import register_scheme, schemes, sink_from_url
from metricstream.sinks.console import ConsoleSink
from metricstream.sinks.influxdb import InfluxDBSink
from metricstream.sinks.jsonl import JsonLinesSink
from metricstream.sinks.kafka import KafkaSink
from metricstream.sinks.redis_counters import (
    CounterLimits,
    CounterMapping,
    RedisCounterReader,
    RedisCounterSink,
    TimeBuckets,
)

__all__ = [
    "ConsoleSink",
    "CounterLimits",
    "CounterMapping",
    "InfluxDBSink",
    "JsonLinesSink",
    "KafkaSink",
    "RedisCounterReader",
    "RedisCounterSink",
    "Sink",
    "TimeBuckets",
    "register_scheme",
    "schemes",
    "sink_from_url",
]
