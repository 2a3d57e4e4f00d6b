"""Retry policy: exponential backoff with full jitter, honouring Retry-After.

`RetryConfig` is the user-facing policy; `Retrier` runs a callable under it
on top of tenacity. The clock, the sleep and the random source are
injectable, so a test can drive the schedule with a fake clock and fixed
jitter; the streamer injects a sleep that a shutdown interrupts.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

import tenacity

from metricstream._options import require_bool, require_int, require_number
from metricstream.exceptions import ConfigError, PermanentSinkError, TransientSinkError

__all__ = ["RetryConfig", "RetryInterruptedError", "Retrier"]

T = TypeVar("T")


@dataclass(frozen=True)
class RetryConfig:
    """How a lane retries a failed write.

    Retry number ``n`` (0 for the first retry) waits a random time between 0
    and ``delay_for_attempt(n)`` milliseconds ("full jitter"), or exactly that
    long when ``jitter`` is False. A `TransientSinkError` carrying
    ``retry_after`` waits that long instead, capped at ``max_delay_ms``.
    Retrying stops after ``max_retries`` retries or once ``max_elapsed_ms``
    have passed since the first attempt, whichever comes first; the events
    of a write given up are dropped (``retries_exhausted``), or, with a
    spool, kept there and written again later.

    By default there is no limit: a lane keeps retrying while its sink is
    down (a restart of InfluxDB or Kafka takes 10-30 s), the waits growing
    to ``max_delay_ms``, as influxdb-client (up to 180 s) and Vector (no
    limit) do. Meanwhile the lane keeps accepting events up to
    ``max_buffer``; beyond that the overflow policy applies (counted as
    ``overflow``), and at shutdown what is still undelivered is counted as
    ``shutdown`` (or stays in the spool).

    Args:
        max_retries: Retries after the first attempt (0 disables retrying);
            None: no limit.
        initial_delay_ms: The un-jittered delay before the first retry.
        max_delay_ms: The cap on any single delay.
        multiplier: Growth factor between consecutive delays (>= 1).
        jitter: Randomise each delay uniformly in [0, delay].
        max_elapsed_ms: Give up once this much time has passed since the first
            attempt; None: no limit.

    Raises:
        ConfigError: If an option is out of range; it names the option.
    """

    max_retries: int | None = None
    initial_delay_ms: float = 100
    max_delay_ms: float = 10_000
    multiplier: float = 2.0
    jitter: bool = True
    max_elapsed_ms: float | None = None

    def __post_init__(self) -> None:
        if self.max_retries is not None:
            require_int("max_retries", self.max_retries, minimum=0)
        require_number("initial_delay_ms", self.initial_delay_ms, minimum=0)
        require_number("max_delay_ms", self.max_delay_ms, minimum=0)
        require_number("multiplier", self.multiplier, minimum=1)
        if self.max_elapsed_ms is not None:
            require_number("max_elapsed_ms", self.max_elapsed_ms, minimum=0)
        require_bool("jitter", self.jitter)
        if self.max_delay_ms < self.initial_delay_ms:
            raise ConfigError(
                "max_delay_ms",
                f"{self.max_delay_ms} is below initial_delay_ms={self.initial_delay_ms}",
            )

    def delay_for_attempt(self, attempt: int) -> float:
        """Return the un-jittered delay in ms before retry number `attempt` (from 0)."""
        if attempt < 0:
            raise ConfigError("attempt", f"must be >= 0, not {attempt}")
        try:
            delay = self.initial_delay_ms * float(self.multiplier) ** attempt
        except OverflowError:
            return self.max_delay_ms
        return min(delay, self.max_delay_ms)


class RetryInterruptedError(Exception):
    """Raised by an interruptible sleep to abandon the retry loop (shutdown)."""


def _retryable(exc: BaseException) -> bool:
    return not isinstance(exc, (PermanentSinkError, RetryInterruptedError)) and isinstance(
        exc, Exception
    )


class Retrier:
    """Run callables under a `RetryConfig` (tenacity underneath).

    Args:
        config: The policy.
        sleep: Called with the seconds to wait; may raise
            `RetryInterruptedError` to give up at once.
        clock: Monotonic seconds, for ``max_elapsed_ms``.
        random_source: Returns a float in [0, 1) for jitter.
        on_retry: Called before each wait with (retry number from 0, the
            exception, the seconds about to be waited).
    """

    def __init__(
        self,
        config: RetryConfig,
        *,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
        random_source: Callable[[], float] = random.random,
        on_retry: Callable[[int, BaseException, float], None] | None = None,
    ) -> None:
        self.config = config
        self._sleep = sleep
        self._clock = clock
        self._random = random_source
        self._on_retry = on_retry

    def delay_after(self, retry: int, exc: BaseException | None) -> float:
        """Return the seconds to wait before retry number `retry` after `exc`."""
        config = self.config
        if isinstance(exc, TransientSinkError) and exc.retry_after is not None:
            return max(0.0, min(exc.retry_after * 1000.0, config.max_delay_ms)) / 1000.0
        delay = config.delay_for_attempt(retry)
        if config.jitter:
            delay *= self._random()
        return delay / 1000.0

    def _stop(self, started: float) -> tenacity.stop.stop_base:
        """When to give up: after ``max_retries``, once ``max_elapsed_ms`` passed, or never."""
        config = self.config
        stop: tenacity.stop.stop_base = tenacity.stop_never
        if config.max_retries is not None:
            stop = tenacity.stop_after_attempt(config.max_retries + 1)
        if config.max_elapsed_ms is not None:
            clock, limit = self._clock, config.max_elapsed_ms / 1000.0

            class OutOfTime(tenacity.stop.stop_base):
                def __call__(self, retry_state: tenacity.RetryCallState) -> bool:
                    return clock() - started >= limit

            stop = stop | OutOfTime()
        return stop

    def call(self, fn: Callable[[], T]) -> T:
        """Call `fn` until it succeeds, fails permanently or retries run out.

        Returns:
            What `fn` returned.

        Raises:
            PermanentSinkError: At once, when `fn` raises it.
            RetryInterruptedError: When the sleep was interrupted.
            Exception: The last transient error once retries are exhausted.
        """
        stop = self._stop(started=self._clock())

        def wait(state: tenacity.RetryCallState) -> float:
            outcome = state.outcome
            exc = outcome.exception() if outcome is not None else None
            return self.delay_after(state.attempt_number - 1, exc)

        def before_sleep(state: tenacity.RetryCallState) -> None:
            if self._on_retry is not None and state.outcome is not None:
                exc = state.outcome.exception()
                seconds = state.upcoming_sleep
                if exc is not None:
                    self._on_retry(state.attempt_number - 1, exc, seconds)

        retrying = tenacity.Retrying(
            sleep=self._sleep,
            stop=stop,
            wait=wait,
            retry=tenacity.retry_if_exception(_retryable),
            before_sleep=before_sleep,
            reraise=True,
        )
        return retrying(fn)
