"""Destinations for events: one room per sink, and `sink_from_url`.

- `ConsoleSink` (`metricstream.sinks.console`)
- `JsonLinesSink` (`metricstream.sinks.jsonl`)
- `InfluxDBSink` (`metricstream.sinks.influxdb`, extra ``influxdb``)
- `KafkaSink` (`metricstream.sinks.kafka`, extra ``kafka``)

Each sink module registers its URL schemes (see `metricstream.sinks.registry`);
optional client libraries are imported only when a sink that needs them is
created.
"""

from __future__ import annotations

from metricstream.contract import Sink
from metricstream.sinks.console import ConsoleSink
from metricstream.sinks.influxdb import InfluxDBSink
from metricstream.sinks.jsonl import JsonLinesSink
from metricstream.sinks.kafka import KafkaSink
from metricstream.sinks.registry import register_scheme, schemes, sink_from_url

__all__ = [
    "ConsoleSink",
    "InfluxDBSink",
    "JsonLinesSink",
    "KafkaSink",
    "Sink",
    "register_scheme",
    "schemes",
    "sink_from_url",
]
