"""`SinkWriter`: one lane's calls to its sink's ``write`` and ``check``.

It owns the lane's `WriteState` (only the writer thread changes it) and the
event that ends a retry wait early: `hurry` when a shutdown begins (the
retrying goes on, without waiting), `abandon` when the lane gives up (the
retrying ends; it says whether a write may be under way, or the writer was
waiting to retry after a failure). It never touches the lane's counters: the lane's writer
thread counts the outcome `deliver` returns.
"""

from __future__ import annotations

import logging
import threading
import time
import traceback

from metricstream._log import RateLimitedLog, logger
from metricstream._secrets import scrub_secrets
from metricstream.contract import Sink
from metricstream.exceptions import PermanentSinkError, TransientSinkError
from metricstream.streamer.engine.lane.retry import Retrier, RetryConfig, RetryInterruptedError
from metricstream.streamer.engine.lane.work import PreparedBatch, PreparedTelemetry
from metricstream.streamer.engine.lane.write_state import WriteState, describe_error

__all__ = ["SinkWriter"]


class SinkWriter:
    """Writes payloads to one sink with retry, and probes it.

    Args:
        sink: The sink.
        name: Its name.
        retry: The retry policy.
        warnings: Where repeated warnings go.

    Attributes:
        state: The record of its writes and probes, for health.
        retrier: Runs each write under the retry policy.
    """

    def __init__(
        self, sink: Sink, name: str, *, retry: RetryConfig, warnings: RateLimitedLog
    ) -> None:
        self.sink = sink
        self.name = name
        self.state = WriteState()
        self._wake = threading.Event()
        self._state_lock = threading.Lock()
        self._abandoned = False
        self._waiting = False
        self._warnings = warnings
        self._logged_unexpected: set[type[BaseException]] = set()
        self.retrier = Retrier(retry, sleep=self._sleep, on_retry=self._count_retry)

    def deliver(self, item: PreparedBatch) -> tuple[str, int]:
        """Write one payload with retry.

        Returns:
            (the drop reason for events not written, "" when every event
            was written; events written).
        """
        try:
            self.retrier.call(lambda: self._attempt(item))
        except PermanentSinkError as exc:
            return exc.reason or "rejected", item.written
        except RetryInterruptedError:
            return "shutdown", item.written
        except Exception:
            return "retries_exhausted", item.written
        return "", item.count

    def write_once(self, telemetry: PreparedTelemetry) -> None:
        """Write self-telemetry once: no retry, no change of health; a failure is logged."""
        try:
            self.sink.write(telemetry.payload)
        except Exception as exc:
            self._warnings.log(
                logging.DEBUG,
                (self.name, "self-metrics-write"),
                "writing self-telemetry to sink %r failed: %s",
                self.name,
                scrub_secrets(f"{type(exc).__name__}: {exc}"),
            )

    def _attempt(self, item: PreparedBatch) -> None:
        started = time.perf_counter()
        try:
            self.sink.write(item.payload)
        except (TransientSinkError, PermanentSinkError) as exc:
            reported = exc.written
            if reported.__class__ is int and item.written < reported:
                item.written = min(reported, item.count)
            refused = getattr(exc, "rejected", 0)
            if refused.__class__ is int and item.rejected < refused:
                item.rejected = min(refused, item.count)
            self.state.failed(exc, permanent=isinstance(exc, PermanentSinkError))
            raise
        except Exception as exc:
            if type(exc) not in self._logged_unexpected:
                self._logged_unexpected.add(type(exc))
                # The traceback is formatted here so that it is scrubbed of
                # credentials like every other message.
                logger.error(
                    "sink %r raised an unexpected %s; treating it as transient\n%s",
                    self.name,
                    type(exc).__name__,
                    scrub_secrets("".join(traceback.format_exception(exc))).rstrip(),
                )
            self.state.failed(exc, permanent=False)
            raise
        self.state.succeeded((time.perf_counter() - started) * 1000.0)

    def _count_retry(self, retry: int, exc: BaseException, seconds: float) -> None:
        self.state.retried()
        self._warnings.warning(
            (self.name, "retry"),
            "write to sink %r failed (%s); retry %d in %.2f s",
            self.name,
            describe_error(exc),
            retry + 1,
            seconds,
        )

    def _sleep(self, seconds: float) -> None:
        with self._state_lock:
            if self._abandoned:
                raise RetryInterruptedError
            self._waiting = True  # the last attempt failed: nothing is under way
        try:
            woken = self._wake.wait(seconds)
        finally:
            with self._state_lock:
                self._waiting = False
        if woken:
            self._wake.clear()
            if self._abandoned:
                raise RetryInterruptedError

    def pause(self, seconds: float) -> None:
        """Wait `seconds`, or less if hurried (shutdown)."""
        if self._wake.wait(seconds):
            self._wake.clear()

    def hurry(self) -> None:
        """End the current wait at once (a shutdown has begun); retrying goes on."""
        self._wake.set()

    def abandon(self) -> bool:
        """End the current wait and the retrying (the lane gave up).

        Returns:
            False when the writer was waiting to retry, so that no write is
            under way; True when one may be (its outcome is then unknown
            until it ends).
        """
        with self._state_lock:
            self._abandoned = True
            under_way = not self._waiting
        self._wake.set()
        return under_way

    def probe(self) -> None:
        """Run the sink's health probe and record its outcome."""
        try:
            self.sink.check()
        except Exception as exc:
            self.state.probed(exc)
        else:
            self.state.probed(None)
