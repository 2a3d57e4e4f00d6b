"""The Redis counter sink's options and its URL schemes: Redis URLs read into arguments.

URLs: ``redis://[[user]:password@]host[:port][/db]``, ``rediss://`` for TLS,
``redis+cluster://host:port`` (``rediss+cluster://``) for Redis Cluster, where
the host is any node of the cluster. redis-py's own query options
(``socket_timeout``, ``ssl_ca_certs``...) pass through to it.
"""

from __future__ import annotations

import urllib.parse
from typing import Any

from metricstream._options import parse_bool
from metricstream._secrets import scrub_secrets
from metricstream.exceptions import ConfigError
from metricstream.sinks._url import check_overrides, parse_query
from metricstream.sinks.redis_counters.buckets import TimeBuckets
from metricstream.sinks.redis_counters.client import describe

__all__ = ["CLUSTER_SCHEMES", "SCHEMES", "check_url", "split_scheme", "url_arguments"]

SCHEMES = ("redis", "rediss", "redis+cluster", "rediss+cluster")
"""The URL schemes of this sink (see `url_arguments`)."""

CLUSTER_SCHEMES = ("redis+cluster", "rediss+cluster")
"""The schemes that mean Redis Cluster."""

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


def split_scheme(url: str) -> tuple[str, bool]:
    """Return the URL redis-py reads and whether it names a cluster.

    Raises:
        ConfigError: If the scheme is not one of `SCHEMES`.
    """
    if not isinstance(url, str):
        raise ConfigError("url", f"must be a redis:// URL, not {type(url).__name__}")
    scheme, sep, rest = url.partition("://")
    scheme = scheme.lower()
    if not sep or scheme not in SCHEMES:
        known = ", ".join(f"{s}://" for s in SCHEMES)
        raise ConfigError("url", f"{scrub_secrets(url)!r} is not a Redis URL; use {known}")
    plain = scheme.removesuffix("+cluster")
    return f"{plain}://{rest}", scheme in CLUSTER_SCHEMES


def check_url(url: str, *, cluster: bool) -> None:
    """Refuse a URL redis-py cannot read (without connecting).

    Raises:
        ConfigError: Naming the problem, without the password.
    """
    from redis.connection import parse_url

    try:
        options = parse_url(url)
    except (ValueError, TypeError) as exc:
        raise ConfigError("url", f"{describe(url)!r}: {scrub_secrets(str(exc))}") from None
    if cluster and options.get("db", 0) != 0:
        raise ConfigError("url", f"{describe(url)!r}: Redis Cluster has only database 0")


def url_arguments(url: str, overrides: dict[str, Any]) -> dict[str, Any]:
    """Return the `RedisCounterSink` arguments a Redis URL stands for; `overrides` win.

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
    kwargs["url"] = connection
    return kwargs
