"""Sinks for testing code that uses metricstream.

- `InMemorySink` keeps every delivered event in ``.events``.
- `FaultySink` follows a script of outcomes (ok, transient failure with an
  optional ``retry_after``, permanent failure, delay, hang, unexpected
  exception), so retry, isolation and shutdown behaviour can be tested::

      sink = FaultySink(["transient", "ok"])
      sink = FaultySink([FaultySink.transient(retry_after=2.0), "permanent"], then="ok")
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass

from metricstream.contract import EventBatch
from metricstream.event import MetricEvent
from metricstream.exceptions import ConfigError, PermanentSinkError, TransientSinkError

__all__ = ["FaultySink", "InMemorySink", "Outcome"]


class InMemorySink:
    """A sink that keeps what it is given, in memory.

    Args:
        name: The sink's name.

    Attributes:
        events: Every delivered event, in delivery order.
        batch_ids: The id of every delivered batch, in order.
        closed: True once `close` was called.
    """

    def __init__(self, name: str = "memory") -> None:
        self.name = name
        self.events: list[MetricEvent] = []
        self.batch_ids: list[str] = []
        self.closed = False
        self._cond = threading.Condition()

    def prepare(self, batch: EventBatch) -> EventBatch:
        """Return the batch itself."""
        return batch

    def write(self, payload: EventBatch) -> None:
        """Keep the batch's events."""
        with self._cond:
            self.events.extend(payload.events)
            self.batch_ids.append(payload.batch_id)
            self._cond.notify_all()

    def after_fork(self) -> None:
        """Replace the lock in a forked child (a parent thread may hold it)."""
        self._cond = threading.Condition()

    def check(self) -> None:
        """Always healthy."""

    def close(self) -> None:
        """Mark the sink closed."""
        self.closed = True

    def wait_for(self, count: int, timeout: float = 5.0) -> bool:
        """Wait until at least `count` events arrived; return whether they did."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while len(self.events) < count:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return False
                self._cond.wait(remaining)
        return True

    def __repr__(self) -> str:
        return f"InMemorySink(name={self.name!r}, events={len(self.events)})"


@dataclass(frozen=True)
class Outcome:
    """One scripted outcome of `FaultySink.write`.

    Attributes:
        kind: ``ok``, ``transient``, ``permanent``, ``delay``, ``hang`` or ``raise``.
        retry_after: For ``transient``: the server's Retry-After hint, seconds.
        seconds: For ``delay``: how long the write takes before succeeding.
        reason: For ``permanent``: the drop reason.
    """

    kind: str
    retry_after: float | None = None
    seconds: float = 0.0
    reason: str = "rejected"


_KINDS = ("ok", "transient", "permanent", "delay", "hang", "raise")


def _outcome(spec: Outcome | str) -> Outcome:
    if isinstance(spec, Outcome):
        return spec
    if spec not in _KINDS:
        raise ConfigError("script", f"unknown outcome {spec!r}; use one of {', '.join(_KINDS)}")
    return Outcome(spec)


class FaultySink:
    """A sink whose writes follow a script of outcomes, for tests.

    Each `write` call consumes the next outcome; when the script is used up,
    every further write has the outcome `then`. A ``hang`` blocks until
    `release` or `close` is called; a ``delay`` sleeps, then succeeds.

    Args:
        script: Outcomes (`Outcome` or their kind names), in order.
        then: The outcome once the script is exhausted.
        name: The sink's name.
        healthy: What `check` reports: True passes, False raises.

    Attributes:
        events: Events of the writes that succeeded, in order.
        attempts: Every write call as (batch id, outcome kind), in order.
    """

    @staticmethod
    def ok() -> Outcome:
        """A successful write."""
        return Outcome("ok")

    @staticmethod
    def permanent(reason: str = "rejected") -> Outcome:
        """A permanent failure; the events are dropped with `reason`."""
        return Outcome("permanent", reason=reason)

    @staticmethod
    def hang() -> Outcome:
        """A write that blocks until `release` or `close`."""
        return Outcome("hang")

    @staticmethod
    def unexpected() -> Outcome:
        """A write that raises an unexpected `RuntimeError`."""
        return Outcome("raise")

    @staticmethod
    def transient(retry_after: float | None = None) -> Outcome:
        """A transient failure, optionally with a Retry-After hint (seconds)."""
        return Outcome("transient", retry_after=retry_after)

    @staticmethod
    def delay(seconds: float) -> Outcome:
        """A write that takes `seconds`, then succeeds."""
        return Outcome("delay", seconds=seconds)

    def __init__(
        self,
        script: Iterable[Outcome | str] = (),
        *,
        then: Outcome | str = "ok",
        name: str = "faulty",
        healthy: bool = True,
    ) -> None:
        self.name = name
        self._script = [_outcome(spec) for spec in script]
        self._then = _outcome(then)
        self.healthy = healthy
        self.events: list[MetricEvent] = []
        self.attempts: list[tuple[str, str]] = []
        self.closed = False
        self._lock = threading.Lock()
        self._released = threading.Event()

    def prepare(self, batch: EventBatch) -> EventBatch:
        """Return the batch itself."""
        return batch

    def write(self, payload: EventBatch) -> None:
        """Play the next scripted outcome.

        Raises:
            TransientSinkError: For ``transient``.
            PermanentSinkError: For ``permanent``.
            RuntimeError: For ``raise`` (an unexpected error).
        """
        with self._lock:
            outcome = self._script.pop(0) if self._script else self._then
            self.attempts.append((payload.batch_id, outcome.kind))
        if outcome.kind == "transient":
            raise TransientSinkError(
                f"scripted transient failure of {self.name}", retry_after=outcome.retry_after
            )
        if outcome.kind == "permanent":
            raise PermanentSinkError(
                f"scripted permanent failure of {self.name}", reason=outcome.reason
            )
        if outcome.kind == "raise":
            raise RuntimeError(f"scripted unexpected failure of {self.name}")
        if outcome.kind == "hang":
            self._released.wait()
            if self.closed:
                raise TransientSinkError(f"{self.name} was closed while hanging")
        elif outcome.kind == "delay":
            self._released.wait(outcome.seconds)
        with self._lock:
            self.events.extend(payload.events)

    def after_fork(self) -> None:
        """Replace the lock in a forked child (a parent thread may hold it)."""
        self._lock = threading.Lock()

    def release(self) -> None:
        """Let every hanging (and delayed) write return."""
        self._released.set()

    def check(self) -> None:
        """Raise `TransientSinkError` when constructed (or set) unhealthy."""
        if not self.healthy:
            raise TransientSinkError(f"{self.name} is scripted to be unhealthy")

    def close(self) -> None:
        """Mark the sink closed and release hanging writes."""
        self.closed = True
        self._released.set()

    def __repr__(self) -> str:
        return f"FaultySink(name={self.name!r}, attempts={len(self.attempts)})"
