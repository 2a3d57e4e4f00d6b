"""`RedisCounterSink`: events become pre-aggregated counters in Redis, exactly once."""

from __future__ import annotations

import threading
from collections.abc import Mapping
from functools import partial
from typing import Any

from metricstream._log import RateLimitedLog, logger
from metricstream._options import require_bool, require_int, require_name, require_number
from metricstream.contract import EventBatch
from metricstream.exceptions import ConfigError, PermanentSinkError, SinkError
from metricstream.sinks.redis_counters import client as _client
from metricstream.sinks.redis_counters.buckets import TimeBuckets
from metricstream.sinks.redis_counters.config import check_url, split_scheme, url_arguments
from metricstream.sinks.redis_counters.encode import Planner
from metricstream.sinks.redis_counters.errors import sink_error
from metricstream.sinks.redis_counters.keys import KeyLayout
from metricstream.sinks.redis_counters.mapping import CounterLimits, CounterMapping
from metricstream.sinks.redis_counters.reader import RedisCounterReader
from metricstream.sinks.redis_counters.script import (
    APPLY_BATCH,
    CounterPayload,
    ScriptCall,
    encode_calls,
)

__all__ = ["RedisCounterSink", "as_mapping", "from_url"]

_warnings = RateLimitedLog(logger.getChild("redis_counters"))


def as_mapping(mapping: object) -> CounterMapping:
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
        "mapping", f"expected a CounterMapping, a dict or JSON text, not {type(mapping).__name__}"
    )


def _check_prefix(prefix: str, *, cluster: bool) -> None:
    if not isinstance(prefix, str):
        raise ConfigError("prefix", f"must be a string, not {prefix!r}")
    if cluster and ("{" in prefix or "}" in prefix):
        from redis.crc import key_slot

        if key_slot(f"{prefix}a".encode()) != key_slot(f"{prefix}b".encode()):
            raise ConfigError(
                "prefix",
                f"{prefix!r} has a brace but no complete hash tag; on a cluster a prefix "
                "may hold braces only as a hash tag such as '{app}:'",
            )


class RedisCounterSink:
    """Count events into Redis: counts, sums and unique counts per time bucket.

    Each batch is aggregated on the client (identical keys merged) and applied
    by one server-side Lua script call, atomically and exactly once: the
    script records the batch id and does nothing for a batch it has seen, so
    a retry never counts twice. On Redis Cluster each hash slot's part of a
    batch is applied the same way. Keys, buckets and escaping are described
    in `metricstream.sinks.redis_counters`.

    Args:
        url: ``redis://``, ``rediss://`` (TLS) or ``redis+cluster://`` URL.
        mapping: The counters to feed: a `CounterMapping`, a dict or JSON text.
        buckets: Daily (and hourly) buckets in a time zone; `TimeBuckets()`
            (daily, UTC) when None.
        limits: Limits per event; `CounterLimits()` (traqq's) when None.
        prefix: Written before every key (``""`` for traqq's exact keys).
        ttl_daily: Keep daily keys this many seconds after their day starts
            (``EXPIREAT`` set by the same script); None keeps them.
        ttl_hourly: Likewise for hourly keys.
        cluster: Redis Cluster (also implied by a ``redis+cluster://`` URL).
        name: The sink's name in health reports (``"redis-counters"``).
        batch_ttl: Seconds a batch id is remembered; a retry later than this
            would count the batch again. Default one hour.
        socket_timeout: Seconds to wait for Redis before a write fails (and
            is retried by the streamer).

    Raises:
        ConfigError: For an invalid URL, mapping (also one naming a property
            longer than ``limits.max_field_length``) or option.
    """

    def __init__(
        self,
        url: str,
        *,
        mapping: CounterMapping | Mapping[str, Any] | str,
        buckets: TimeBuckets | None = None,
        limits: CounterLimits | None = None,
        prefix: str = "ms:",
        ttl_daily: int | None = None,
        ttl_hourly: int | None = None,
        cluster: bool = False,
        name: str | None = None,
        batch_ttl: int = 3600,
        socket_timeout: float = 10.0,
    ) -> None:
        self._url, url_cluster = split_scheme(url)
        self.cluster: bool = require_bool("cluster", cluster) or url_cluster
        self.name: str = require_name("name", "redis-counters" if name is None else name)
        self.mapping: CounterMapping = as_mapping(mapping)
        self.buckets: TimeBuckets = TimeBuckets() if buckets is None else buckets
        self.limits: CounterLimits = CounterLimits() if limits is None else limits
        for option, value, kind in (
            ("buckets", self.buckets, TimeBuckets),
            ("limits", self.limits, CounterLimits),
        ):
            if not isinstance(value, kind):
                raise ConfigError(option, f"must be a {kind.__name__}, not {value!r}")
        for option, ttl in (("ttl_daily", ttl_daily), ("ttl_hourly", ttl_hourly)):
            if ttl is not None:
                require_int(option, ttl, minimum=1)
        if ttl_hourly is not None and not self.buckets.hourly:
            raise ConfigError("ttl_hourly", "is set but the buckets are not hourly")
        self.batch_ttl: int = require_int("batch_ttl", batch_ttl, minimum=1)
        self.socket_timeout = require_number("socket_timeout", socket_timeout, minimum=0.001)
        _check_prefix(prefix, cluster=self.cluster)
        check_url(self._url, cluster=self.cluster)
        self.layout = KeyLayout(prefix)
        self.ttl_daily, self.ttl_hourly = ttl_daily, ttl_hourly
        self._planner = Planner(
            self.mapping,
            self.buckets,
            self.limits,
            self.layout,
            ttl_daily=ttl_daily,
            ttl_hourly=ttl_hourly,
        )
        self._lock = threading.Lock()
        self._redis: Any = None
        self._script: Any = None
        self._closed = False
        self.calls_applied = 0
        """Script calls that applied their operations."""
        self.calls_repeated = 0
        """Script calls that found their batch already applied (a retry) and changed nothing."""

    @property
    def prefix(self) -> str:
        """The prefix of every key."""
        return self.layout.prefix

    @property
    def url(self) -> str:
        """The connection URL without its password."""
        return _client.describe(self._url)

    def __repr__(self) -> str:
        return (
            f"RedisCounterSink(name={self.name!r}, url={self.url!r}, cluster={self.cluster}, "
            f"prefix={self.prefix!r}, buckets={self.buckets!r}, mapping={self.mapping!r})"
        )

    def reader(self) -> RedisCounterReader:
        """A reader of this sink's counters: same server, prefix and buckets."""
        return RedisCounterReader(
            self._url, prefix=self.prefix, buckets=self.buckets, cluster=self.cluster
        )

    # --- prepare: CPU only -----------------------------------------------------

    def prepare(self, batch: EventBatch) -> CounterPayload:
        """Aggregate the batch and pack its operations into script calls.

        Returns:
            The payload: one script call, or one per hash slot on a cluster.

        Raises:
            InvalidEventError: With ``reason="limits"`` and the ``indexes`` of
                the events over the limits; the streamer drops those (as
                ``limits``) and prepares the rest again.
        """
        ops = self._planner.plan(batch.columns())
        batch_key = partial(self.layout.batch, self.name, batch.batch_id)
        calls = encode_calls(ops, batch_key, self.batch_ttl, cluster=self.cluster)
        return CounterPayload(batch.batch_id, len(batch), calls)

    # --- write: I/O --------------------------------------------------------------

    def _connected(self) -> Any:
        with self._lock:
            if self._closed:
                raise PermanentSinkError(
                    f"Redis counter sink {self.name!r} is closed", unhealthy=True, sink=self.name
                )
            if self._redis is None:
                try:
                    client = _client.connect(
                        self._url,
                        cluster=self.cluster,
                        name=self.name,
                        socket_timeout=self.socket_timeout,
                    )
                except ConfigError as exc:
                    raise PermanentSinkError(str(exc), unhealthy=True, sink=self.name) from None
                except Exception as exc:
                    raise sink_error(exc, sink=self.name, action="connect") from None
                self._script = client.register_script(APPLY_BATCH)
                self._redis = client
            return self._redis

    def write(self, payload: CounterPayload) -> None:
        """Apply a payload from `prepare`; applying it again changes nothing.

        Raises:
            TransientSinkError: Redis is unreachable, timed out, loading, busy,
                out of memory or the cluster is changing: retry (safe: a part
                already applied is not applied twice).
            PermanentSinkError: Wrong credentials (unhealthy), Redis refused
                the script, the sink is closed, or some keys refused their
                operation (wrong type): then every other operation was
                applied, the events count as written and the error names the
                first key.
        """
        if not payload.calls:
            return
        redis_client = self._connected()
        try:
            if self.cluster:
                replies = self._apply_cluster(redis_client, payload.calls)
            else:
                call = payload.calls[0]
                replies = [self._script(keys=call.keys, args=call.args, client=redis_client)]
        except SinkError:
            raise
        except Exception as exc:
            raise sink_error(exc, sink=self.name, action="apply batch") from None
        self._account(payload, replies)

    def _apply_cluster(self, cluster: Any, calls: tuple[ScriptCall, ...]) -> list[Any]:
        """Apply each slot's call on the primary holding that slot, one pipeline per node."""
        by_node: dict[str, tuple[Any, list[int]]] = {}
        for number, call in enumerate(calls):
            node = cluster.get_node_from_key(call.keys[0])
            by_node.setdefault(node.name, (node, []))[1].append(number)
        replies: list[Any] = [None] * len(calls)
        for node, numbers in by_node.values():
            try:
                found = self._apply_on(node.redis_connection, [calls[n] for n in numbers])
            except Exception:
                # The slot may have moved (resharding, failover): learn the
                # cluster's layout again before the retry.
                cluster.nodes_manager.initialize()
                raise
            for number, reply in zip(numbers, found, strict=True):
                replies[number] = reply
        return replies

    def _apply_on(self, node: Any, calls: list[ScriptCall]) -> list[Any]:
        """Run script calls on one node in a pipeline; load the script there if it lacks it."""
        from redis.exceptions import NoScriptError

        replies: list[Any] = [None] * len(calls)
        todo = list(range(len(calls)))
        for attempt in range(2):
            pipe = node.pipeline(transaction=False)
            for number in todo:
                call = calls[number]
                pipe.evalsha(self._script.sha, len(call.keys), *call.keys, *call.args)
            missing = []
            for number, result in zip(todo, pipe.execute(raise_on_error=False), strict=True):
                if isinstance(result, NoScriptError) and attempt == 0:
                    missing.append(number)
                elif isinstance(result, BaseException):
                    raise result
                else:
                    replies[number] = result
            if not missing:
                break
            node.script_load(APPLY_BATCH)  # a node that restarted forgot the script
            todo = missing
        return replies

    def _account(self, payload: CounterPayload, replies: list[Any]) -> None:
        failed, first_error = 0, ""
        for applied, refused, error in replies:
            if int(applied):
                self.calls_applied += 1
            else:
                self.calls_repeated += 1
            if int(refused):
                failed += int(refused)
                if not first_error:
                    first_error = error.decode() if isinstance(error, bytes) else str(error)
        if failed:
            _warnings.error(
                (self.name, "refused"),
                "metricstream: Redis counter sink %r: %d operations of batch %s were refused; "
                "the first: %s",
                self.name,
                failed,
                payload.batch_id,
                first_error,
            )
            raise PermanentSinkError(
                f"Redis refused {failed} operations of batch {payload.batch_id} (every other "
                f"operation was applied); the first: {first_error}",
                sink=self.name,
                written=payload.events,
            )

    def check(self) -> None:
        """Ping Redis (every primary of a cluster).

        Raises:
            SinkError: If it does not answer, or the sink is closed.
        """
        redis_client = self._connected()
        try:
            if self.cluster:
                redis_client.ping(target_nodes=redis_client.PRIMARIES)
            else:
                redis_client.ping()
        except Exception as exc:
            raise sink_error(exc, sink=self.name, action="ping") from None

    def close(self) -> None:
        """Close the connections; later writes raise `PermanentSinkError`. Idempotent."""
        with self._lock:
            self._closed = True
            redis_client, self._redis = self._redis, None
        if redis_client is not None:
            redis_client.close()

    def after_fork(self) -> None:
        """In a forked child: forget the parent's client and lock (a new client is made on use)."""
        self._lock = threading.Lock()
        self._redis = None
        self._script = None


def from_url(url: str, **overrides: Any) -> RedisCounterSink:
    """Build a `RedisCounterSink` from a Redis URL (see `url_arguments`); keyword arguments win.

    Raises:
        ConfigError: If the URL is not a Redis URL, an option is unknown,
            repeated or invalid, or there is no mapping.
    """
    return RedisCounterSink(**url_arguments(url, overrides))
