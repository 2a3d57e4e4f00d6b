"""`DropReports`: ``on_drop`` called, and dead letters written, on a thread of their own.

With ``EventStreamer(on_drop=callback)`` the streamer calls::

    callback(sink, reason, count, first_event)

with a sink's name, a drop reason (`metricstream.streamer.health.DROP_REASONS`
or a sink's own), how many events that sink dropped for that reason since the
last call for the pair, and the first of them (a `MetricEvent`, or None when
it is no longer known: events lost to spool damage, or evicted once
prepared). It is called at most once a second per sink and reason, and once
more when the streamer shuts down, for what is left. A drop before any lane
(a full buffer, ``cardinality``, ``shutdown``) is counted by every sink, so
it is reported for each.

The counts are the accounting's own: each call's count is the growth of
that sink's ``dropped_by_reason[reason]`` since the last call, so the
calls add up to what health shows. The callback runs on the
``metricstream-drops`` thread, never on the application's threads nor a
lane's: a slow callback delays only the next reports, and one that raises
is logged (once a minute at most), counted in health (``on_drop_errors``),
and called again for the next drops.

The same thread writes the dead letters (`DeadLetterFiles`), as soon as they
arrive, so nothing a lane drops waits for the callback.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

from metricstream._log import RateLimitedLog, logger
from metricstream.event import MetricEvent
from metricstream.streamer.config import OnDrop, StreamerConfig
from metricstream.streamer.engine.current import CurrentPipeline
from metricstream.streamer.engine.drops import EVERY_SINK
from metricstream.streamer.health import DeadLetterHealth
from metricstream.streamer.operations.dead_letters import DeadLetterFiles

__all__ = ["REPORT_INTERVAL", "DropReports"]

REPORT_INTERVAL = 1.0
"""Seconds between two calls of ``on_drop`` for one sink and reason, at least."""

_warnings = RateLimitedLog(logger)


class DropReports:
    """Calls ``on_drop`` and writes dead letters for one streamer, on a thread of its own.

    Args:
        config: The streamer's options (``on_drop``, ``dead_letter_dir``,
            ``dead_letter_max_bytes``).
        current: The streamer's pipeline in this process.
        monotonic: Monotonic seconds (injectable for tests).

    Attributes:
        callback_errors: Calls of ``on_drop`` that raised.
    """

    def __init__(
        self,
        config: StreamerConfig,
        current: CurrentPipeline,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self._callback: OnDrop | None = config.on_drop
        self._current = current
        self._monotonic = monotonic
        directory = config.dead_letter_dir
        self._files = (
            None
            if directory is None
            else DeadLetterFiles(directory, config.dead_letter_max_bytes)
        )
        self.callback_errors = 0
        self._reported: dict[tuple[str, str], int] = {}
        self._stopping = False
        self._thread: threading.Thread | None = None

    @property
    def needed(self) -> bool:
        """Whether there is anything to do (a callback, or a dead-letter directory)."""
        return self._callback is not None or self._files is not None

    def start(self) -> None:
        """Start the thread (when `needed`)."""
        if not self.needed:
            return
        self._stopping = False
        self._thread = threading.Thread(
            target=self._run, name="metricstream-drops", daemon=True
        )
        self._thread.start()

    def finish(self, deadline: float) -> None:
        """Report what is left, then stop; wait for it until the monotonic `deadline`."""
        thread = self._thread
        if thread is None:
            return
        self._stopping = True
        self._current.pipeline.drops.wake.set()
        thread.join(max(0.0, deadline - time.monotonic()))

    def after_fork_in_child(self) -> None:
        """Start afresh in a forked child (then `start`): new counts, no thread, no open files."""
        self._reported = {}
        self._thread = None
        if self._files is not None:
            self._files.after_fork()

    def dead_letters(self) -> DeadLetterHealth | None:
        """The dead letters' figures, or None without a dead-letter directory."""
        return None if self._files is None else self._files.health()

    # --- the thread ----------------------------------------------------------------

    def _run(self) -> None:
        next_call = self._monotonic() + REPORT_INTERVAL
        while True:
            drops = self._current.pipeline.drops
            drops.wake.wait(max(0.0, next_call - self._monotonic()))
            drops.wake.clear()
            finished = self._stopping or self._current.pipeline.finished
            if finished or self._monotonic() >= next_call:
                self._report(with_callback=True)
                next_call = self._monotonic() + REPORT_INTERVAL
            else:
                self._report(with_callback=False)
            if finished:
                if self._files is not None:
                    self._files.close()
                return

    def _report(self, *, with_callback: bool) -> None:
        """Write the dead letters waiting; with the callback, call it for each new drop."""
        pipeline = self._current.pipeline
        if not with_callback or self._callback is None:
            if self._files is not None:
                letters = pipeline.drops.take_letters()
                self._files.write(letters, pipeline.drops.take_lost())
            return
        first, letters = pipeline.drops.take()
        if self._files is not None:
            self._files.write(letters, pipeline.drops.take_lost())
        health = pipeline.health()
        for sink, state in health.sinks.items():
            for reason, count in state.dropped_by_reason.items():
                before = self._reported.get((sink, reason), 0)
                if count > before:
                    self._reported[(sink, reason)] = count
                    event = first.get((sink, reason), first.get((EVERY_SINK, reason)))
                    self._call(sink, reason, count - before, event)

    def _call(self, sink: str, reason: str, count: int, event: MetricEvent | None) -> None:
        assert self._callback is not None
        try:
            self._callback(sink, reason, count, event)
        except Exception as exc:
            self.callback_errors += 1
            _warnings.error(
                ("*", "on_drop", type(exc).__name__),
                "the on_drop callback raised %s: %s (sink %r, reason %r, %d events)",
                type(exc).__name__,
                exc,
                sink,
                reason,
                count,
            )
