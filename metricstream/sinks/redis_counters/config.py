"""The Redis counter sink's options and its URL schemes: Redis URLs read into arguments.

URLs: ``redis://[[user]:password@]host[:port][/db]``, ``rediss://`` for TLS,
``redis+cluster://host:port`` (``rediss+cluster://``) for Redis Cluster, where
the host is any node of the cluster. redis-py's own query options
(``socket_timeout``, ``ssl_ca_certs``...) pass through to it.
"""

from __future__ import annotations

import urllib.parse
from collections.abc import Callable, Mapping
from typing import Any, TypeVar

from metricstream._options import (
    Kind,
    boolean,
    duration,
    integer,
    option,
    optional,
    options_class,
    parse_bool,
    text,
)
from metricstream._secrets import scrub_secrets
from metricstream.exceptions import ConfigError
from metricstream.sinks._url import check_overrides, query_options
from metricstream.sinks.redis_counters.buckets import TimeBuckets
from metricstream.sinks.redis_counters.client import describe
from metricstream.sinks.redis_counters.mapping import CounterLimits, CounterMapping

__all__ = [
    "CLUSTER_SCHEMES",
    "SCHEMES",
    "CounterStoreOptions",
    "RedisCounterOptions",
    "as_mapping",
    "check_url",
    "split_scheme",
    "url_arguments",
]

T = TypeVar("T")

SCHEMES = ("redis", "rediss", "redis+cluster", "rediss+cluster")
"""The URL schemes of this sink (see `url_arguments`)."""

CLUSTER_SCHEMES = ("redis+cluster", "rediss+cluster")
"""The schemes that mean Redis Cluster."""

_REDIS_OPTIONS = (
    "client_name",
    "health_check_interval",
    "socket_connect_timeout",
    "socket_keepalive",
    "ssl_ca_certs",
    "ssl_cert_reqs",
    "ssl_certfile",
    "ssl_check_hostname",
    "ssl_keyfile",
)
"""redis-py's own query options, passed on to it in the connection URL."""

_BUCKET_OPTIONS = ("hourly", "tz")
"""URL options that build the `TimeBuckets` (``buckets=`` in code)."""


def _check_url(option_name: str, url: object) -> str:
    split_scheme(url, option_name)
    return url  # type: ignore[return-value]


def _check_prefix(option_name: str, prefix: object) -> str:
    if not isinstance(prefix, str):
        raise ConfigError(option_name, f"must be a string, not {prefix!r}")
    return prefix


def _instance_of(kind: type[T], default: Callable[[], T]) -> Kind[T]:
    def check(option_name: str, value: object) -> T:
        if value is None:
            return default()
        if not isinstance(value, kind):
            raise ConfigError(option_name, f"must be a {kind.__name__}, not {value!r}")
        return value

    return Kind(f"a {kind.__name__}", check)


def as_mapping(mapping: object, option_name: str = "mapping") -> CounterMapping:
    """Accept a `CounterMapping`, a dict (`CounterMapping.from_dict`) or JSON text.

    Raises:
        ConfigError: If it is none of these, or invalid.
    """
    if isinstance(mapping, CounterMapping):
        return mapping
    if isinstance(mapping, Mapping):
        return CounterMapping.from_dict(mapping)
    if isinstance(mapping, str):
        return CounterMapping.from_json(mapping)
    raise ConfigError(
        option_name,
        f"expected a CounterMapping, a dict or JSON text, not {type(mapping).__name__}",
    )


@options_class
class CounterStoreOptions:
    """Where counters live: the options `RedisCounterSink` and `RedisCounterReader` share."""

    url: str = option(
        kind=Kind("a redis://, rediss://, redis+cluster:// or rediss+cluster:// URL", _check_url),
        doc="The server (any node of a cluster); redis-py's own query options pass through.",
        kw_only=False,
        text=False,
    )
    prefix: str = option(
        default="ms:",
        kind=Kind("a string", _check_prefix),
        doc="Written before every key ('' for the traqq engine's exact keys).",
    )
    buckets: TimeBuckets = option(
        default_factory=TimeBuckets,
        kind=_instance_of(TimeBuckets, TimeBuckets),
        doc="Daily (and hourly) buckets in a time zone; in URLs, hourly= and tz=.",
        text=False,
    )
    cluster: bool = option(
        default=False,
        kind=boolean(),
        doc="Redis Cluster (also implied by a redis+cluster:// URL).",
    )

    def __post_init__(self) -> None:
        """The URL redis-py reads, the cluster it implies, a prefix a cluster can hash."""
        url, url_cluster = split_scheme(self.url)
        cluster = self.cluster or url_cluster
        object.__setattr__(self, "url", url)
        object.__setattr__(self, "cluster", cluster)
        if cluster and ("{" in self.prefix or "}" in self.prefix):
            from redis.crc import key_slot

            if key_slot(f"{self.prefix}a".encode()) != key_slot(f"{self.prefix}b".encode()):
                raise ConfigError(
                    "prefix",
                    f"{self.prefix!r} has a brace but no complete hash tag; on a cluster a "
                    "prefix may hold braces only as a hash tag such as '{app}:'",
                )
        check_url(url, cluster=cluster)


@options_class
class RedisCounterOptions(CounterStoreOptions):
    """The options of a `RedisCounterSink`, each checked when the sink is built."""

    mapping: CounterMapping | Mapping[str, Any] | str = option(
        kind=Kind("a CounterMapping, a dict or JSON text", lambda name, v: as_mapping(v, name)),
        doc="The counters to feed (see CounterMapping.from_dict).",
    )
    limits: CounterLimits = option(
        default_factory=CounterLimits,
        kind=_instance_of(CounterLimits, CounterLimits),
        doc="Limits per event (the traqq engine's by default).",
        text=False,
    )
    ttl_daily: int | None = option(
        default=None,
        kind=optional(integer(minimum=1)),
        doc="Keep daily keys this many seconds after their day starts (EXPIREAT, set by the "
        "same script); None keeps them.",
    )
    ttl_hourly: int | None = option(
        default=None, kind=optional(integer(minimum=1)), doc="Likewise for hourly keys."
    )
    name: str = option(
        default="redis-counters", kind=text(), doc="The sink's name in health reports."
    )
    batch_ttl: int = option(
        default=3600,
        kind=integer(minimum=1),
        doc="Seconds a batch id is remembered; a retry later than this would count the batch "
        "again.",
    )
    socket_timeout: float = option(
        default=10.0,
        kind=duration(minimum=0.001, inclusive=True),
        doc="Seconds to wait for Redis before a write fails (and is retried by the streamer).",
    )

    def __post_init__(self) -> None:
        """Hourly retention needs hourly buckets."""
        CounterStoreOptions.__post_init__(self)
        if self.ttl_hourly is not None and not self.buckets.hourly:
            raise ConfigError("ttl_hourly", "is set but the buckets are not hourly")


def split_scheme(url: object, option_name: str = "url") -> tuple[str, bool]:
    """Return the URL redis-py reads and whether it names a cluster.

    Raises:
        ConfigError: If the scheme is not one of `SCHEMES`.
    """
    if not isinstance(url, str):
        raise ConfigError(option_name, f"must be a redis:// URL, not {type(url).__name__}")
    scheme, sep, rest = url.partition("://")
    scheme = scheme.lower()
    if not sep or scheme not in SCHEMES:
        known = ", ".join(f"{s}://" for s in SCHEMES)
        raise ConfigError(
            option_name, f"{scrub_secrets(url)!r} is not a Redis URL; use {known}"
        )
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
    given as ``mapping=`` in code). The query options are those of
    `RedisCounterOptions` (``mapping``, ``prefix``, ``cluster``,
    ``ttl_daily``, ``ttl_hourly``, ``name``, ``batch_ttl``,
    ``socket_timeout``), ``hourly`` and ``tz``, which build the
    `TimeBuckets` (a ``buckets=`` override replaces them), and redis-py's
    own connection options, passed on to it (``ssl_ca_certs``,
    ``client_name``...).

    Raises:
        ConfigError: If the URL is not a Redis URL, an option is unknown,
            repeated or invalid, or there is no mapping.
    """
    base, _, query = url.partition("?")
    check_overrides(overrides, RedisCounterOptions, "RedisCounterSink", exclude=("url",))
    kwargs, extra = query_options(
        url, query, RedisCounterOptions, url_only=(*_BUCKET_OPTIONS, *_REDIS_OPTIONS)
    )
    passed = {key: value for key, value in extra.items() if key in _REDIS_OPTIONS}
    kwargs["url"] = base + ("?" + urllib.parse.urlencode(passed) if passed else "")
    if "hourly" in extra or "tz" in extra:
        kwargs["buckets"] = TimeBuckets(
            hourly=parse_bool("hourly", extra.get("hourly", "false")),
            timezone=extra.get("tz", "UTC"),
        )
    kwargs.update(overrides)
    if "mapping" not in kwargs:
        raise ConfigError(
            "mapping", "a Redis counter sink needs a mapping (mapping=... in the URL or in code)"
        )
    return kwargs
