"""Redis connections (redis-py) for the sink and the reader, and the one table of its errors.

URLs: ``redis://[[user]:password@]host[:port][/db]``, ``rediss://`` for TLS,
``redis+cluster://host:port`` (``rediss+cluster://``) for Redis Cluster, where
the host is any node of the cluster. redis-py's own query options
(``socket_timeout``, ``ssl_ca_certs``...) pass through. A password never
appears in a repr, a log line, a health field or an error message: every
text made from a URL or an error goes through `scrub_secrets`.
"""

from __future__ import annotations

import re
from typing import Any

from metricstream._secrets import scrub_secrets
from metricstream.exceptions import (
    ConfigError,
    PermanentSinkError,
    SinkError,
    TransientSinkError,
)

__all__ = [
    "CLUSTER_SCHEMES",
    "SCHEMES",
    "check_url",
    "client_name",
    "connect",
    "describe",
    "sink_error",
    "split_scheme",
]

SCHEMES = ("redis", "rediss", "redis+cluster", "rediss+cluster")
"""The URL schemes understood here."""

CLUSTER_SCHEMES = ("redis+cluster", "rediss+cluster")
"""The schemes that mean Redis Cluster."""

_TRANSIENT_REPLIES = (
    "BUSY",
    "LOADING",
    "TRYAGAIN",
    "CLUSTERDOWN",
    "MASTERDOWN",
    "NOREPLICAS",
    "OOM",
    "READONLY",
)
"""Server errors (by their first word) that clear by themselves: retry."""


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


def describe(url: str) -> str:
    """The URL as it may be shown: without its password."""
    return scrub_secrets(url)


def client_name(name: str) -> str:
    """The connection name Redis shows in ``CLIENT LIST`` for a sink called `name`."""
    return "metricstream:" + re.sub(r"[^\w.:@/-]", "_", name)


def connect(
    url: str, *, cluster: bool, name: str | None = None, socket_timeout: float = 10.0
) -> Any:
    """Return a redis-py client for `url` (from `split_scheme`): `redis.Redis` or `RedisCluster`.

    The client does not retry by itself (the streamer's lane does) and never
    sleeps. A single node is reached on the first command; a cluster client
    asks the node for the cluster's layout now.

    Raises:
        ConfigError: If redis-py refuses the URL or one of its options.
        redis.exceptions.RedisError: If the cluster cannot be reached.
        redis.exceptions.RedisClusterException: Likewise.
    """
    import redis
    from redis.backoff import NoBackoff
    from redis.retry import Retry

    options: dict[str, Any] = {
        "socket_timeout": socket_timeout,
        "socket_connect_timeout": min(socket_timeout, 5.0),
    }
    if name is not None and "client_name=" not in url:
        options["client_name"] = client_name(name)
    try:
        if cluster:
            from redis.cluster import RedisCluster

            return RedisCluster.from_url(url, retry=Retry(NoBackoff(), 1), **options)
        return redis.Redis.from_url(url, retry=Retry(NoBackoff(), 0), **options)
    except (ValueError, TypeError) as exc:
        raise ConfigError("url", f"{describe(url)!r}: {scrub_secrets(str(exc))}") from None


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


def _is_transient_reply(exc: BaseException) -> bool:
    first = str(exc).split(" ", 1)[0].upper()
    return first in _TRANSIENT_REPLIES


def sink_error(exc: BaseException, *, sink: str, action: str) -> SinkError:
    """Translate a redis-py error into the sink's error: the one table.

    - wrong credentials or missing permissions: permanent, and the sink is
      unhealthy until a write succeeds;
    - connection errors, timeouts, a cluster that is down or resharding, a
      server that is loading, busy, out of memory (``OOM``) or read-only:
      transient;
    - any other error reply: permanent (``rejected``);
    - anything else: transient.
    """
    from redis import exceptions as errors
    from redis.exceptions import RedisClusterException

    message = f"{action}: {type(exc).__name__}: {scrub_secrets(str(exc))}"
    table: tuple[tuple[tuple[type[BaseException], ...], str], ...] = (
        (
            (
                errors.AuthenticationError,
                errors.AuthorizationError,
                errors.NoPermissionError,
                errors.AuthenticationWrongNumberOfArgsError,
            ),
            "credentials",
        ),
        ((errors.ConnectionError, errors.TimeoutError, RedisClusterException), "transient"),
        (
            (
                errors.ClusterError,
                errors.TryAgainError,
                errors.AskError,
                errors.ReadOnlyError,
            ),
            "transient",
        ),
        ((errors.ResponseError, errors.DataError), "reply"),
    )
    kind = "transient"
    for classes, verdict in table:
        if isinstance(exc, classes):
            kind = verdict
            break
    if kind == "credentials":
        return PermanentSinkError(message, unhealthy=True, sink=sink)
    if kind == "reply" and not _is_transient_reply(exc):
        return PermanentSinkError(message, sink=sink)
    return TransientSinkError(message, sink=sink)
