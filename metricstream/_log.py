"""The package's logger and rate-limited warnings.

Everything metricstream logs goes to the ``metricstream`` logger (or a child
of it), which has a `logging.NullHandler`: an application that configures no
logging sees nothing, and one that does decides what to show.

A warning that can repeat once per batch (overflow, dropped events, events a
sink cannot encode) goes through `RateLimitedLog`: the first occurrence is
logged at once, later ones of the same kind at most once per interval, with
the number of occurrences folded into that line. The exact counts are always
in the streamer's health.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Hashable

__all__ = ["RateLimitedLog", "logger"]

logger = logging.getLogger("metricstream")
"""The logger every part of metricstream writes to."""
logger.addHandler(logging.NullHandler())


class RateLimitedLog:
    """Log each kind of message at most once per `interval` seconds.

    A kind is any hashable key, typically ``(sink name, reason)``. The first
    message of a kind is logged at once; messages of that kind during the
    following `interval` are only counted, and the next one after it is
    logged with ``(and N more like it in the last S s)`` appended.

    Args:
        log: The logger to write to.
        interval: Seconds between two lines of the same kind.
        clock: Monotonic seconds (injectable for tests).
    """

    def __init__(
        self,
        log: logging.Logger = logger,
        *,
        interval: float = 60.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._log = log
        self.interval = interval
        self._clock = clock
        self._lock = threading.Lock()
        # kind -> (time of the last line, occurrences not logged since)
        self._state: dict[Hashable, tuple[float, int]] = {}

    def log(self, level: int, kind: Hashable, message: str, *args: object) -> bool:
        """Log `message % args` at `level` unless a line of this kind was logged recently.

        Returns:
            True if a line was written, False if the message was only counted.
        """
        now = self._clock()
        with self._lock:
            last = self._state.get(kind)
            if last is not None and now - last[0] < self.interval:
                self._state[kind] = (last[0], last[1] + 1)
                return False
            self._state[kind] = (now, 0)
        if last is not None and last[1]:
            message += " (and %d more like it in the last %.0f s)"
            args = (*args, last[1], now - last[0])
        self._log.log(level, message, *args)
        return True

    def warning(self, kind: Hashable, message: str, *args: object) -> bool:
        """`log` at WARNING level."""
        return self.log(logging.WARNING, kind, message, *args)

    def error(self, kind: Hashable, message: str, *args: object) -> bool:
        """`log` at ERROR level."""
        return self.log(logging.ERROR, kind, message, *args)
