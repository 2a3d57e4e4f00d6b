"""Saying what a command waits for, while it waits for the sinks.

A command that streams to sinks can wait a long time without printing
anything: ``send`` waits for room when the sinks fall behind (under
``overflow="block"``), and ``shutdown`` waits for what is pending. While
such a wait lasts, `WaitReporter` prints one line on standard error every
`STATUS_INTERVAL` seconds naming each sink that holds events, how many, and
its last error, so that nobody has to guess whether the command hangs.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from types import TracebackType
from typing import TextIO

from metricstream._secrets import scrub_secrets
from metricstream.streamer import EventStreamer, StreamerHealth

__all__ = ["STATUS_INTERVAL", "WaitReporter", "describe_backlog"]

STATUS_INTERVAL = 5.0
"""Seconds between two lines about the same wait (the first comes after as long)."""


class WaitReporter:
    """A daemon thread that reports on standard error while a wait lasts.

    Use it as a context manager around the command, and mark each wait with
    `waiting`::

        with WaitReporter(streamer, "metricstream pipe", sys.stderr) as waits:
            with waits.waiting("waiting for room in the sinks' buffers"):
                streamer.send_many(events)

    Args:
        streamer: The streamer whose sinks are waited for.
        command: How the lines start, e.g. ``metricstream pipe``.
        errors: Where the lines go.
        interval: Seconds between lines; `STATUS_INTERVAL` when None.
    """

    def __init__(
        self,
        streamer: EventStreamer,
        command: str,
        errors: TextIO,
        interval: float | None = None,
    ) -> None:
        self._streamer = streamer
        self._command = command
        self._errors = errors
        self._interval = STATUS_INTERVAL if interval is None else interval
        self._lock = threading.Lock()
        self._what: str | None = None
        self._since = 0.0
        self._deadline: float | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(
            target=self._run, name="metricstream-cli-waits", daemon=True
        )

    def __enter__(self) -> WaitReporter:
        self._thread.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._stop.set()
        self._thread.join()

    @contextmanager
    def waiting(self, what: str, timeout: float | None = None) -> Iterator[None]:
        """Mark a wait: while the block runs longer than the interval, say so.

        Args:
            what: What the command is doing, e.g. ``delivering what was read``.
            timeout: The seconds the wait may last, to show what is left.
        """
        now = time.monotonic()
        with self._lock:
            self._what, self._since = what, now
            self._deadline = None if timeout is None else now + timeout
        try:
            yield
        finally:
            with self._lock:
                self._what = None

    def _run(self) -> None:
        last = 0.0
        while not self._stop.wait(min(0.25, self._interval)):
            now = time.monotonic()
            with self._lock:
                what, since, deadline = self._what, self._since, self._deadline
            if what is None or now - since < self._interval or now - last < self._interval:
                continue
            last = now
            left = "" if deadline is None else f", {max(0.0, deadline - now):.0f} s left"
            backlog = describe_backlog(self._streamer.health())
            self._errors.write(f"{self._command}: {what} ({now - since:.0f} s{left}): {backlog}\n")
            self._errors.flush()


def describe_backlog(health: StreamerHealth) -> str:
    """One line naming each sink that holds events: how many, and its last error."""
    parts = []
    for name, sink in health.sinks.items():
        if not (sink.pending or sink.spooled):
            continue
        held = f"{sink.pending:,} pending"
        if sink.spooled:
            held += f", {sink.spooled:,} in the spool"
        if sink.write_errors:
            held += f", {sink.write_errors:,} failed writes"
        if sink.last_error and not sink.connected:
            error = " ".join(scrub_secrets(sink.last_error).split())
            held += f", last error: {error[:200]}"
        parts.append(f"{name} {held}")
    return "; ".join(parts) if parts else "no events pending; closing the sinks"
