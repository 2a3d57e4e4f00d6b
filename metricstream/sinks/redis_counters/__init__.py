"""Redis counters: events become pre-aggregated keys that dashboards read directly.

`RedisCounterSink` turns each event into counts (``INCRBY``), sums
(``INCRBY``/``INCRBYFLOAT``) and unique counts (``PFADD`` into a HyperLogLog)
in daily and, optionally, hourly buckets, as a `CounterMapping` says;
`RedisCounterReader` reads them back over a time range.

The package, by role (the same files as every sink folder):

- `config`: the options and the ``redis``, ``rediss``, ``redis+cluster``
  and ``rediss+cluster`` URL schemes;
- `sink`: `RedisCounterSink` and `from_url`;
- `encode`: aggregation within a batch (a batch's columns become operations);
- `errors`: redis-py's errors translated into sink errors, by one table;
- `reader`: `RedisCounterReader`;

and its own helpers: `keys` (``{prefix}{add|adv|bmp}:{d|h}:{bucket_start}:
{pattern}:{values}``, the traqq engine's layout with ``prefix=""``),
`buckets` (daily and hourly buckets, daylight saving), `mapping` (which
counters an event feeds), `script` (exactly once, single node and cluster)
and `client` (redis-py connections).

URLs (`from_url`)::

    redis://:PASSWORD@host:6379/0?prefix=ms:&hourly=true&tz=Europe/Berlin&mapping={...}

Query options: ``mapping`` (JSON, see `CounterMapping.from_dict`), ``prefix``,
``hourly``, ``tz``, ``ttl_daily``, ``ttl_hourly``, ``batch_ttl``, ``name``,
``cluster``; redis-py's own connection options (``socket_timeout``,
``ssl_ca_certs``, ``ssl_cert_reqs``...) are passed on to it.
"""

from __future__ import annotations

from metricstream.sinks.redis_counters.buckets import TimeBuckets
from metricstream.sinks.redis_counters.config import (
    SCHEMES,
    CounterStoreOptions,
    RedisCounterOptions,
)
from metricstream.sinks.redis_counters.keys import CounterKey, KeyLayout, escape, parse_key
from metricstream.sinks.redis_counters.mapping import CounterLimits, CounterMapping
from metricstream.sinks.redis_counters.reader import CounterResult, RedisCounterReader
from metricstream.sinks.redis_counters.script import CounterPayload
from metricstream.sinks.redis_counters.sink import RedisCounterSink, from_url

__all__ = [
    "SCHEMES",
    "CounterKey",
    "CounterLimits",
    "CounterMapping",
    "CounterPayload",
    "CounterResult",
    "CounterStoreOptions",
    "KeyLayout",
    "RedisCounterOptions",
    "RedisCounterReader",
    "RedisCounterSink",
    "TimeBuckets",
    "escape",
    "from_url",
    "parse_key",
]
