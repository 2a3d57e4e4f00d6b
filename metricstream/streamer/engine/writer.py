"""`SinkWriter`: one lane's calls to its sink (write with retry, probe) and their effect on health.

Every change to the lane's `WriteState` is made under the lane's lock, which
the writer is given.
"""

from __future__ import annotations

import threading
import time
import traceback
from collections.abc import Callable

from metricstream._log import RateLimitedLog, logger
from metricstream._secrets import scrub_secrets
from metricstream.contract import Sink
from metricstream.exceptions import PermanentSinkError, TransientSinkError
from metricstream.streamer.engine.queue import Item
from metricstream.streamer.engine.retry import Retrier, RetryConfig, RetryInterruptedError
from metricstream.streamer.engine.write_state import WriteState, describe_error

__all__ = ["SinkWriter"]


class SinkWriter:
    """Writes payloads to one sink with retry, and probes it.

    Args:
        sink: The sink.
        name: Its name.
        retry: The retry policy.
        lock: The lane's lock, held while `state` changes.
        state: The lane's record of writes, for health.
        warnings: Where repeated warnings go.
        aborted: Tells whether the lane gave up (a retry wait then ends the retrying).
    """

    def __init__(
        self,
        sink: Sink,
        name: str,
        *,
        retry: RetryConfig,
        lock: threading.Condition,
        state: WriteState,
        warnings: RateLimitedLog,
        aborted: Callable[[], bool],
    ) -> None:
        self.sink = sink
        self.name = name
        self.state = state
        self.wake = threading.Event()
        self._lock = lock
        self._warnings = warnings
        self._aborted = aborted
        self._logged_unexpected: set[type[BaseException]] = set()
        self.retrier = Retrier(retry, sleep=self._sleep, on_retry=self._count_retry)

    def deliver(self, item: Item) -> tuple[str, int]:
        """Write one payload with retry.

        Returns:
            (the drop reason for events not written, events written).
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

    def _attempt(self, item: Item) -> None:
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
            with self._lock:
                self.state.failed(exc, permanent=isinstance(exc, PermanentSinkError))
            raise
        except Exception as exc:
            if type(exc) not in self._logged_unexpected:
                self._logged_unexpected.add(type(exc))
                # The traceback is formatted here so that it is scrubbed of
                # credentials like every other message.
                logger.error(
                    "metricstream: sink %r raised an unexpected %s; treating it as transient\n%s",
                    self.name,
                    type(exc).__name__,
                    scrub_secrets("".join(traceback.format_exception(exc))).rstrip(),
                )
            with self._lock:
                self.state.failed(exc, permanent=False)
            raise
        with self._lock:
            self.state.succeeded((time.perf_counter() - started) * 1000.0)

    def _count_retry(self, retry: int, exc: BaseException, seconds: float) -> None:
        with self._lock:
            self.state.retries += 1
        self._warnings.warning(
            (self.name, "retry"),
            "metricstream: write to sink %r failed (%s); retry %d in %.2f s",
            self.name,
            describe_error(exc),
            retry + 1,
            seconds,
        )

    def _sleep(self, seconds: float) -> None:
        if self.wake.wait(seconds):
            self.wake.clear()
            if self._aborted():
                raise RetryInterruptedError

    def pause(self, seconds: float) -> None:
        """Wait `seconds`, or less if woken (shutdown)."""
        if self.wake.wait(seconds):
            self.wake.clear()

    def probe(self) -> None:
        """Run the sink's health probe and record its outcome."""
        try:
            self.sink.check()
        except Exception as exc:
            with self._lock:
                self.state.probed(exc)
        else:
            with self._lock:
                self.state.probed(None)
