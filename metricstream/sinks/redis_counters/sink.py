"""`RedisCounterSink`: events become pre-aggregated counters in Redis, exactly once."""

from __future__ import annotations

import threading
from functools import partial
from typing import Any

from metricstream._log import RateLimitedLog, logger
from metricstream._options import takes_options
from metricstream.contract import EventBatch
from metricstream.exceptions import ConfigError, PermanentSinkError, SinkError
from metricstream.sinks.redis_counters import client as _client
from metricstream.sinks.redis_counters.config import (
    RedisCounterOptions,
    as_mapping,
    url_arguments,
)
from metricstream.sinks.redis_counters.encode import Planner
from metricstream.sinks.redis_counters.errors import sink_error
from metricstream.sinks.redis_counters.keys import KeyLayout
from metricstream.sinks.redis_counters.reader import RedisCounterReader
from metricstream.sinks.redis_counters.script import (
    APPLY_BATCH,
    CounterPayload,
    ScriptCall,
    encode_calls,
)

__all__ = ["RedisCounterSink", "from_url"]

_warnings = RateLimitedLog(logger.getChild("redis_counters"))


class RedisCounterSink:
    """Count events into Redis: counts, sums and unique counts per time bucket.

    Each batch is aggregated on the client (identical keys merged) and applied
    by one server-side Lua script call, atomically and exactly once: the
    script records the batch id and does nothing for a batch it has seen, so
    a retry never counts twice. On Redis Cluster each hash slot's part of a
    batch is applied the same way. Keys, buckets and escaping are described
    in `metricstream.sinks.redis_counters`.

    Takes the options of `RedisCounterOptions` (each documented there) as its
    parameters: ``RedisCounterSink(url, *, mapping, prefix="ms:",
    buckets=TimeBuckets(), ...)``; they are kept, checked, as `options`.

    Raises:
        ConfigError: For an invalid URL, mapping (also one naming a property
            longer than ``limits.max_field_length``) or option.
    """

    @takes_options(RedisCounterOptions)
    def __init__(self, options: RedisCounterOptions) -> None:
        self.options = options
        self.name: str = options.name
        self.layout = KeyLayout(options.prefix)
        self._planner = Planner(
            as_mapping(options.mapping),
            options.buckets,
            options.limits,
            self.layout,
            ttl_daily=options.ttl_daily,
            ttl_hourly=options.ttl_hourly,
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
        return _client.describe(self.options.url)

    def __repr__(self) -> str:
        return (
            f"RedisCounterSink(name={self.name!r}, url={self.url!r}, "
            f"cluster={self.options.cluster}, prefix={self.prefix!r}, "
            f"buckets={self.options.buckets!r}, mapping={self.options.mapping!r})"
        )

    def reader(self) -> RedisCounterReader:
        """A reader of this sink's counters: same server, prefix and buckets."""
        options = self.options
        return RedisCounterReader(
            options.url, prefix=options.prefix, buckets=options.buckets, cluster=options.cluster
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
        calls = encode_calls(ops, batch_key, self.options.batch_ttl, cluster=self.options.cluster)
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
                        self.options.url,
                        cluster=self.options.cluster,
                        name=self.name,
                        socket_timeout=self.options.socket_timeout,
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
            if self.options.cluster:
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
                "Redis counter sink %r: %d operations of batch %s were refused; the first: %s",
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
            if self.options.cluster:
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
