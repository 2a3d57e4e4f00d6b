"""`WriteState`: what a lane knows about its sink's writes, for health.

Changed only under the lane's lock.
"""

from __future__ import annotations

import time

from metricstream._secrets import scrub_secrets

__all__ = ["WriteState", "describe_error"]

_MAX_ERROR_CHARS = 500


def describe_error(exc: BaseException) -> str:
    """``Type: message`` of an exception, credentials removed, at most 500 characters."""
    return scrub_secrets(f"{type(exc).__name__}: {exc}")[:_MAX_ERROR_CHARS]


class WriteState:
    """Connection state, failures, retries and latency of one sink's writes."""

    def __init__(self) -> None:
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
        self.connected = True
        self.permanently_unhealthy = False
        self.consecutive_failures = 0
        self.last_write_ns = time.time_ns()
        self.last_latency_ms = round(elapsed_ms, 3)

    def failed(self, exc: BaseException, *, permanent: bool) -> None:
        """A write failed with `exc`."""
        self.write_errors += 1
        self.consecutive_failures += 1
        self.last_error = describe_error(exc)
        if not permanent:
            self.connected = False
        elif getattr(exc, "unhealthy", False):
            self.permanently_unhealthy = True
            self.connected = False

    def probed(self, exc: BaseException | None) -> None:
        """A health probe (`Sink.check`) passed (None) or failed."""
        if exc is not None:
            self.connected = False
            self.last_error = describe_error(exc)
        elif not self.permanently_unhealthy:
            self.connected = True

    def is_connected(self) -> bool:
        """Connected, and not stopped by a failure every write will hit."""
        return self.connected and not self.permanently_unhealthy
