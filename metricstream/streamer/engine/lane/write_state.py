"""`WriteState`: what a lane knows about its sink's writes and probes, for health.

Its owner is the lane's `SinkWriter`: only the writer thread changes it (an
attempt, a retry, a probe). Health reads a consistent copy (`WriteRecord`)
from any thread; a small lock of its own makes the copy consistent, so the
writer never needs the lane's lock to record an attempt.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass

from metricstream._secrets import scrub_secrets

__all__ = ["WriteRecord", "WriteState", "describe_error"]

_MAX_ERROR_CHARS = 500


def describe_error(exc: BaseException) -> str:
    """``Type: message`` of an exception, credentials removed, at most 500 characters."""
    return scrub_secrets(f"{type(exc).__name__}: {exc}")[:_MAX_ERROR_CHARS]


@dataclass(frozen=True, slots=True)
class WriteRecord:
    """A copy of a `WriteState` at one moment (see its attributes)."""

    connected: bool
    consecutive_failures: int
    write_errors: int
    retries: int
    last_error: str | None
    last_write_ns: int | None
    last_latency_ms: float | None


class WriteState:
    """Connection state, failures, retries and latency of one sink's writes.

    Attributes:
        connected: False after a failed write or probe until the next success.
        permanently_unhealthy: A permanent failure said the sink cannot work
            at all (`PermanentSinkError.unhealthy`); only a successful write
            clears it.
        consecutive_failures: Failed attempts since the last success.
        write_errors: Failed attempts in total.
        retries: Retries performed.
        last_error: The last failure, described, or None.
        last_write_ns: Wall-clock time of the last successful write, or None.
        last_latency_ms: How long the last successful write took, or None.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.connected = True
        self.permanently_unhealthy = False
        self.consecutive_failures = 0
        self.write_errors = 0
        self.retries = 0
        self.last_error: str | None = None
        self.last_write_ns: int | None = None
        self.last_latency_ms: float | None = None

    def succeeded(self, elapsed_ms: float) -> None:
        """A write succeeded after `elapsed_ms`."""
        with self._lock:
            self.connected = True
            self.permanently_unhealthy = False
            self.consecutive_failures = 0
            self.last_write_ns = time.time_ns()
            self.last_latency_ms = round(elapsed_ms, 3)

    def failed(self, exc: BaseException, *, permanent: bool) -> None:
        """A write failed with `exc`."""
        with self._lock:
            self.write_errors += 1
            self.consecutive_failures += 1
            self.last_error = describe_error(exc)
            if not permanent:
                self.connected = False
            elif getattr(exc, "unhealthy", False):
                self.permanently_unhealthy = True
                self.connected = False

    def retried(self) -> None:
        """A retry is about to be waited for."""
        with self._lock:
            self.retries += 1

    def probed(self, exc: BaseException | None) -> None:
        """A health probe (`Sink.check`) passed (None) or failed."""
        with self._lock:
            if exc is not None:
                self.connected = False
                self.last_error = describe_error(exc)
            elif not self.permanently_unhealthy:
                self.connected = True

    def is_connected(self) -> bool:
        """Connected, and not stopped by a failure every write will hit."""
        return self.connected and not self.permanently_unhealthy

    def record(self) -> WriteRecord:
        """A consistent copy, for health."""
        with self._lock:
            return WriteRecord(
                connected=self.connected and not self.permanently_unhealthy,
                consecutive_failures=self.consecutive_failures,
                write_errors=self.write_errors,
                retries=self.retries,
                last_error=self.last_error,
                last_write_ns=self.last_write_ns,
                last_latency_ms=self.last_latency_ms,
            )
