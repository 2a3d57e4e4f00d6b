"""Redis connections (redis-py) for the sink and the reader.

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
from metricstream.exceptions import ConfigError

__all__ = ["client_name", "connect", "describe"]


def describe(url: str) -> str:
    """The URL as it may be shown: without its password."""
    return scrub_secrets(url)


def client_name(name: str) -> str:
    """The connection name Redis shows in ``CLIENT LIST`` for a sink called `name`."""
    return "metricstream:" + re.sub(r"[^\w.:@/-]", "_", name)


def connect(
    url: str, *, cluster: bool, name: str | None = None, socket_timeout: float = 10.0
) -> Any:
    """Return a redis-py client (`redis.Redis` or `RedisCluster`) for `url`, from `split_scheme`.

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
