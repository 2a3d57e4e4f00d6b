"""Destinations for events: one module per sink, and `sink_from_url`.

Optional client libraries (influxdb-client, confluent-kafka, redis) are
imported only when a sink that needs them is created.
"""

from __future__ import annotations

from metricstream.sinks.base import Sink
from metricstream.sinks.console import ConsoleSink
from metricstream.sinks.influxdb import InfluxDBSink
from metricstream.sinks.jsonl import JsonLinesSink
from metricstream.sinks.url import sink_from_url

__all__ = ["ConsoleSink", "InfluxDBSink", "JsonLinesSink", "Sink", "sink_from_url"]
