"""redis-py's errors, translated into sink errors in one place: `sink_error`.

- wrong credentials or missing permissions: permanent, and the sink is
  unhealthy until a write succeeds;
- connection errors, timeouts, a cluster that is down or resharding, a
  server that is loading, busy, out of memory (``OOM``) or read-only:
  transient;
- any other error reply: permanent (``rejected``);
- anything else: transient.
"""

from __future__ import annotations

from metricstream._secrets import scrub_secrets
from metricstream.exceptions import PermanentSinkError, SinkError, TransientSinkError

__all__ = ["sink_error"]

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


def _is_transient_reply(exc: BaseException) -> bool:
    first = str(exc).split(" ", 1)[0].upper()
    return first in _TRANSIENT_REPLIES


def sink_error(exc: BaseException, *, sink: str, action: str) -> SinkError:
    """Translate a redis-py error into the sink's error, by the table the module draws."""
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
