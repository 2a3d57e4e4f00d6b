"""Destinations for events: one room per sink, and `sink_from_url`.

- `ConsoleSink` (`metricstream.sinks.console`)
- `JsonLinesSink` (`metricstream.sinks.jsonl`)
- `InfluxDBSink` (`metricstream.sinks.influxdb`, extra ``influxdb``)
- `KafkaSink` (`metricstream.sinks.kafka`, extra ``kafka``)
- `RedisCounterSink` and `RedisCounterReader`, with `CounterMapping`,
  `TimeBuckets` and `CounterLimits` (`metricstream.sinks.redis_counters`,
  extra ``redis``)

Each sink's folder is imported when one of its names is first used
(``metricstream.sinks.KafkaSink``, ``metricstream.sinks.kafka``), so that
``import metricstream`` imports no sink and no client library. The URL
schemes of the built-in sinks are entry points of the ``metricstream.sinks``
group, as a third-party sink's are (see `metricstream.registry`).
"""

from __future__ import annotations

from types import ModuleType
from typing import TYPE_CHECKING, Any

from metricstream.contract import Sink
from metricstream.registry import register_scheme, schemes, sink_from_url

if TYPE_CHECKING:
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


def _console() -> ModuleType:
    import metricstream.sinks.console

    return metricstream.sinks.console


def _jsonl() -> ModuleType:
    import metricstream.sinks.jsonl

    return metricstream.sinks.jsonl


def _influxdb() -> ModuleType:
    import metricstream.sinks.influxdb

    return metricstream.sinks.influxdb


def _kafka() -> ModuleType:
    import metricstream.sinks.kafka

    return metricstream.sinks.kafka


def _redis_counters() -> ModuleType:
    import metricstream.sinks.redis_counters

    return metricstream.sinks.redis_counters


_ROOMS = {
    "console": _console,
    "jsonl": _jsonl,
    "influxdb": _influxdb,
    "kafka": _kafka,
    "redis_counters": _redis_counters,
}
"""Each sink's folder, imported on first use."""

_HOMES = {
    "ConsoleSink": _console,
    "JsonLinesSink": _jsonl,
    "InfluxDBSink": _influxdb,
    "KafkaSink": _kafka,
    "CounterLimits": _redis_counters,
    "CounterMapping": _redis_counters,
    "RedisCounterReader": _redis_counters,
    "RedisCounterSink": _redis_counters,
    "TimeBuckets": _redis_counters,
}
"""The folder each exported sink name lives in."""


def __getattr__(name: str) -> Any:
    """Import a sink's folder when one of its names is first used."""
    room = _ROOMS.get(name)
    if room is not None:
        return room()
    home = _HOMES.get(name)
    if home is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(home(), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__, *_ROOMS})
