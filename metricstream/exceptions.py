"""The metricstream error tree.

Every error metricstream raises on purpose derives from `MetricStreamError`;
errors about bad input are also `ValueError`, so callers that only know the
standard library still catch them::

    MetricStreamError
     ├── ConfigError              (also ValueError) an option or URL is invalid
     ├── InvalidEventError        (also ValueError) an event cannot be built or sent
     ├── LineProtocolError        (also ValueError) line protocol text is malformed
     ├── SchemaVersionError       (also ValueError) JSON from a newer schema version
     ├── BackpressureError        a streamer cannot take a whole batch now (retry_after seconds)
     ├── StreamerClosedError      the streamer is shut down and takes nothing more
     └── SinkError                a sink could not write a payload
          ├── TransientSinkError  worth retrying (may carry retry_after seconds)
          └── PermanentSinkError  retrying cannot help; the events are dropped

Errors carry their data as attributes (`key`, `line`, `column`, `retry_after`,
`reason`...) so code can act on them without parsing messages. Every error
pickles with its message and attributes (`MetricStreamError.__reduce__`), so
one raised in a ``multiprocessing`` worker reaches the parent whole.
"""

from __future__ import annotations

__all__ = [
    "BackpressureError",
    "ConfigError",
    "InvalidEventError",
    "LineProtocolError",
    "MetricStreamError",
    "PermanentSinkError",
    "SchemaVersionError",
    "SinkError",
    "StreamerClosedError",
    "TransientSinkError",
]


def _restore(
    cls: type[MetricStreamError], args: tuple[object, ...], state: dict[str, object]
) -> MetricStreamError:
    """Rebuild a pickled error without calling its ``__init__`` (see `MetricStreamError`)."""
    error = cls.__new__(cls)
    error.args = args
    error.__dict__.update(state)
    return error


class MetricStreamError(Exception):
    """Base class of every error metricstream raises on purpose.

    Errors pickle with their message and every attribute, whatever their
    ``__init__`` takes: the default pickling of an exception calls its class
    with its message alone, which an error with keyword-only arguments cannot
    take, so a ``multiprocessing`` pool's result thread would fail (and the
    pool hang) on one raised in a worker.
    """

    def __reduce__(self) -> tuple[object, ...]:
        """Pickle as the class, the message and the attributes (see the class doc)."""
        return (_restore, (type(self), self.args, dict(self.__dict__)))


class ConfigError(MetricStreamError, ValueError):
    """An option, URL or environment setting is invalid.

    Attributes:
        option: The name of the offending option (for example ``"batch_size"``).
    """

    def __init__(self, option: str, message: str) -> None:
        self.option = option
        super().__init__(f"{option}: {message}")


class InvalidEventError(MetricStreamError, ValueError):
    """An event (or part of one) is not valid.

    Attributes:
        key: The measurement, tag key or field key concerned, or ``None`` when
            the problem is with the event as a whole.
        problem: What is wrong, in words.
        indexes: When a sink's ``prepare`` raises it for a batch: the positions
            in the batch of the events it cannot encode, so the streamer drops
            just those (as ``reason``) without trying each event alone.
        reason: The accounting reason those events are dropped under:
            ``"invalid"`` by default; a sink may name its own (the Redis
            counter sink drops events over its limits as ``"limits"``).
    """

    def __init__(
        self,
        key: str | None,
        problem: str,
        *,
        indexes: tuple[int, ...] | None = None,
        reason: str = "invalid",
    ) -> None:
        self.key = key
        self.problem = problem
        self.indexes = indexes
        self.reason = reason
        super().__init__(problem)


class LineProtocolError(MetricStreamError, ValueError):
    """Line protocol text could not be parsed.

    Attributes:
        line: The 1-based line number of the offending entry.
        column: The 1-based column (in characters) where the problem starts.
        text: The text of the offending line (without its line ending).
        problem: What is wrong, in words.
    """

    def __init__(self, problem: str, *, line: int, column: int, text: str) -> None:
        self.problem = problem
        self.line = line
        self.column = column
        self.text = text
        super().__init__(f"line {line}, column {column}: {problem}")


class SchemaVersionError(MetricStreamError, ValueError):
    """A serialized event uses a schema version this library does not know.

    Attributes:
        found: The schema version in the input.
        supported: The newest schema version this library reads.
    """

    def __init__(self, found: object, supported: int) -> None:
        self.found = found
        self.supported = supported
        super().__init__(
            f"schema_version {found!r} is newer than this library supports "
            f"({supported}); upgrade metricstream to read it"
        )


class BackpressureError(MetricStreamError):
    """A streamer cannot take a whole batch now; none of it was accepted.

    Raised by `EventStreamer.send_batch` when the lanes' buffers (or, with a
    spool, the spool) have no room for every event of the batch. Nothing
    was queued and nothing was counted: send the same batch again later.

    Attributes:
        retry_after: Seconds after which trying again is reasonable.
        events: The events of the refused batch.
    """

    def __init__(self, message: str, *, retry_after: float, events: int) -> None:
        self.retry_after = retry_after
        self.events = events
        super().__init__(message)


class StreamerClosedError(MetricStreamError):
    """The streamer is shut down (or shutting down) and accepts nothing more."""


class SinkError(MetricStreamError):
    """A sink failed to write a payload.

    Attributes:
        sink: The name of the sink, when known.
        written: How many events of the payload the destination stored before
            the failure (a batch written in parts); the streamer counts those
            as written, whatever becomes of the rest.
        rejected: How many other events of the payload the destination
            refused for good before the failure; the streamer counts those as
            dropped for ``rejected``, and the rest under the failure's own
            reason.
    """

    def __init__(
        self, message: str, *, sink: str | None = None, written: int = 0, rejected: int = 0
    ) -> None:
        self.sink = sink
        self.written = written
        self.rejected = rejected
        super().__init__(message)


class TransientSinkError(SinkError):
    """A write failed in a way that retrying may fix (timeouts, 5xx, 429...).

    Attributes:
        retry_after: Seconds the server asked us to wait before retrying, or
            ``None`` when it gave no hint.
    """

    def __init__(
        self,
        message: str,
        *,
        retry_after: float | None = None,
        sink: str | None = None,
        written: int = 0,
        rejected: int = 0,
    ) -> None:
        self.retry_after = retry_after
        super().__init__(message, sink=sink, written=written, rejected=rejected)


class PermanentSinkError(SinkError):
    """A write failed in a way that retrying cannot fix (bad data, bad credentials).

    Attributes:
        reason: The accounting reason the events are dropped under: ``"rejected"``
            by default.
        unhealthy: True when the failure means the sink cannot work at all (for
            example wrong credentials), so health reports it as disconnected.
    """

    def __init__(
        self,
        message: str,
        *,
        reason: str = "rejected",
        unhealthy: bool = False,
        written: int = 0,
        sink: str | None = None,
        rejected: int = 0,
    ) -> None:
        self.reason = reason
        self.unhealthy = unhealthy
        super().__init__(message, sink=sink, written=written, rejected=rejected)
