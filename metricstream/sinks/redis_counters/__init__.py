"""Redis counters: events become pre-aggregated keys that dashboards read directly.

`RedisCounterSink` turns each event into counts (``INCRBY``), sums
(``INCRBY``/``INCRBYFLOAT``) and unique counts (``PFADD`` into a HyperLogLog)
in daily and, optionally, hourly buckets, as a `CounterMapping` says;
`RedisCounterReader` reads them back over a time range.

- Keys and escaping: `metricstream.sinks.redis_counters.keys`
  (``{prefix}{add|adv|bmp}:{d|h}:{bucket_start}:{pattern}:{values}``, the
  traqq engine's layout with ``prefix=""``).
- Buckets and daylight saving: `metricstream.sinks.redis_counters.buckets`.
- Aggregation within a batch: `metricstream.sinks.redis_counters.plan`.
- Exactly once, single node and cluster: `metricstream.sinks.redis_counters.script`.

URLs (`from_url`, registered as ``redis``, ``rediss``, ``redis+cluster`` and
``rediss+cluster``)::

    redis://:PASSWORD@host:6379/0?prefix=ms:&hourly=true&tz=Europe/Berlin&mapping={...}

Query options: ``mapping`` (JSON, see `CounterMapping.from_dict`), ``prefix``,
``hourly``, ``tz``, ``ttl_daily``, ``ttl_hourly``, ``batch_ttl``, ``name``,
``cluster``; redis-py's own connection options (``socket_timeout``,
``ssl_ca_certs``, ``ssl_cert_reqs``...) are passed on to it.
"""

from __future__ import annotations

import urllib.parse
from typing import Any

from metricstream._options import parse_bool
from metricstream.exceptions import ConfigError
from metricstream.sinks._url import check_overrides, parse_query
from metricstream.sinks.redis_counters.buckets import TimeBuckets
from metricstream.sinks.redis_counters.keys import CounterKey, KeyLayout, escape, parse_key
from metricstream.sinks.redis_counters.mapping import CounterLimits, CounterMapping
from metricstream.sinks.redis_counters.reader import CounterResult, RedisCounterReader
from metricstream.sinks.redis_counters.script import CounterPayload
from metricstream.sinks.redis_counters.sink import RedisCounterSink

__all__ = [
    "SCHEMES",
    "CounterKey",
    "CounterLimits",
    "CounterMapping",
    "CounterPayload",
    "CounterResult",
    "KeyLayout",
    "RedisCounterReader",
    "RedisCounterSink",
    "TimeBuckets",
    "escape",
    "from_url",
    "parse_key",
]

SCHEMES = ("redis", "rediss", "redis+cluster", "rediss+cluster")
"""The URL schemes this package builds sinks for (see `from_url`)."""

_SINK_OPTIONS = (
    "batch_ttl",
    "cluster",
    "hourly",
    "mapping",
    "name",
    "prefix",
    "ttl_daily",
    "ttl_hourly",
    "tz",
)
_REDIS_OPTIONS = (
    "client_name",
    "health_check_interval",
    "socket_connect_timeout",
    "socket_keepalive",
    "socket_timeout",
    "ssl_ca_certs",
    "ssl_cert_reqs",
    "ssl_certfile",
    "ssl_check_hostname",
    "ssl_keyfile",
)
_OVERRIDES = (
    "batch_ttl",
    "buckets",
    "cluster",
    "limits",
    "mapping",
    "name",
    "prefix",
    "socket_timeout",
    "ttl_daily",
    "ttl_hourly",
)


def _int_option(option: str, text: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise ConfigError(option, f"expected a whole number of seconds, not {text!r}") from None


def from_url(url: str, **overrides: Any) -> RedisCounterSink:
    """Build a `RedisCounterSink` from a URL; keyword arguments win over URL options.

    Example: ``redis://127.0.0.1:6379/0?prefix=app:&hourly=true&tz=Europe/Berlin
    &mapping={"count":["measurement"]}`` (the mapping percent-encoded, or
    given as ``mapping=`` in code). ``hourly`` and ``tz`` build the
    `TimeBuckets`; a ``buckets=`` override replaces them.

    Raises:
        ConfigError: If the URL is not a Redis URL, an option is unknown,
            repeated or invalid, or there is no mapping.
    """
    base, _, query = url.partition("?")
    options = parse_query(url, query, (*_SINK_OPTIONS, *_REDIS_OPTIONS))
    check_overrides(overrides, _OVERRIDES, "RedisCounterSink")
    passed = {key: value for key, value in options.items() if key in _REDIS_OPTIONS}
    connection = base + ("?" + urllib.parse.urlencode(passed) if passed else "")
    kwargs: dict[str, Any] = {}
    for key in ("prefix", "name", "mapping"):
        if key in options:
            kwargs[key] = options[key]
    for key in ("ttl_daily", "ttl_hourly", "batch_ttl"):
        if key in options:
            kwargs[key] = _int_option(key, options[key])
    if "cluster" in options:
        kwargs["cluster"] = parse_bool("cluster", options["cluster"])
    if "hourly" in options or "tz" in options:
        kwargs["buckets"] = TimeBuckets(
            hourly=parse_bool("hourly", options.get("hourly", "false")),
            timezone=options.get("tz", "UTC"),
        )
    kwargs.update(overrides)
    if "mapping" not in kwargs:
        raise ConfigError(
            "mapping", "a Redis counter sink needs a mapping (mapping=... in the URL or in code)"
        )
    return RedisCounterSink(connection, **kwargs)
