"""`ConsoleSink`: events printed to a text stream, for humans or pipes.

The formats are described in `metricstream.sinks.console.encode`; the
stream's errors are translated in `metricstream.sinks.console.errors`.
"""

from __future__ import annotations

import contextlib
import os
import sys
import threading
from typing import Any, TextIO

from metricstream._options import takes_options
from metricstream.contract import EventBatch
from metricstream.event import MetricEvent
from metricstream.exceptions import (
    InvalidEventError,
    PermanentSinkError,
    SinkError,
)
from metricstream.sinks.console.config import ConsoleOptions, url_arguments
from metricstream.sinks.console.encode import format_pretty
from metricstream.sinks.console.errors import sink_error

__all__ = ["ConsoleSink", "from_url"]


class ConsoleSink:
    """Write each batch to a text stream (standard output by default).

    Takes the options of `ConsoleOptions` (each documented there) as its
    parameters: ``ConsoleSink(stream=None, format="pretty", *, name="console",
    max_events_per_batch=None)``; they are kept, checked, as `options`.

    Raises:
        ConfigError: If the format is unknown, the stream has no ``write``
            method or the name is empty.

    The sink never closes the stream: it belongs to the caller. ``close``
    flushes it, and later writes raise `PermanentSinkError`.
    """

    @takes_options(ConsoleOptions)
    def __init__(self, options: ConsoleOptions) -> None:
        self.options = options
        self.name: str = options.name
        self._stream: TextIO | str = options.stream or "stdout"
        self._owned: TextIO | None = None
        self._closed = False
        self._lock = threading.Lock()

    def after_fork(self) -> None:
        """In a forked child: a new write lock, and a new stream on the same file descriptor.

        A parent thread may have been writing at the moment of the fork: its
        lock, and the stream's own buffer lock, would stay held in the child
        for ever. The child therefore writes through a fresh text stream on a
        duplicate of the stream's descriptor (bytes the parent had buffered
        stay the parent's). A stream without a descriptor (``io.StringIO``)
        is kept.
        """
        self._lock = threading.Lock()
        stream = self.stream
        try:
            descriptor = stream.fileno()
        except (AttributeError, OSError, ValueError):
            return
        fresh = open(  # noqa: SIM115 - owned by the sink, closed by close()
            os.dup(descriptor),
            "w",
            encoding=getattr(stream, "encoding", None) or "utf-8",
            errors=getattr(stream, "errors", None) or "strict",
            closefd=True,
        )
        self._stream = fresh
        self._owned = fresh

    def __repr__(self) -> str:
        stream = self._stream if isinstance(self._stream, str) else type(self._stream).__name__
        return f"ConsoleSink(name={self.name!r}, format={self.format!r}, stream={stream!r})"

    @property
    def format(self) -> str:
        """The output format: ``"pretty"``, ``"json"`` or ``"line"``."""
        return self.options.format

    @property
    def stream(self) -> TextIO:
        """The stream the next write goes to."""
        if isinstance(self._stream, str):
            return sys.stderr if self._stream == "stderr" else sys.stdout
        return self._stream

    def prepare(self, batch: EventBatch) -> str:
        """Render the batch as text in the sink's format, one line per event.

        Returns:
            The text, each line ending with a newline; empty for an empty batch.

        Raises:
            InvalidEventError: If an event has no fields.
        """
        if not batch.events:
            return ""
        limit = self.options.max_events_per_batch
        if limit is not None and len(batch.events) > limit:
            shown = EventBatch(batch.events[:limit], batch_id=batch.batch_id)
            return (
                self.prepare(shown)
                + f"# ... and {len(batch.events) - limit} more events in batch {batch.batch_id}\n"
            )
        if self.format == "json":
            text = batch.to_json_lines() + "\n"
        elif self.format == "line":
            text = batch.to_influx_batch("ns") + "\n"
        else:
            text = format_pretty(batch.events)
        self._check_encodable(text, batch.events)
        return text

    def _check_encodable(self, text: str, events: list[MetricEvent]) -> None:
        """Refuse, by position, the events the stream could not encode.

        Raises:
            InvalidEventError: Naming every such event (``indexes``), so that
                the streamer drops just those instead of the whole batch.
        """
        encoding = getattr(self.stream, "encoding", None)
        if not isinstance(encoding, str) or text.isascii():
            return
        try:
            text.encode(encoding)
        except UnicodeEncodeError:
            pass
        else:
            return
        bad = []
        for index, event in enumerate(events):
            try:
                self.prepare(EventBatch([event])).encode(encoding)
            except (UnicodeEncodeError, InvalidEventError):
                bad.append(index)
        raise InvalidEventError(
            events[bad[0]].measurement if bad else None,
            f"the console stream ({encoding}) cannot encode {len(bad)} event(s) of the batch",
            indexes=tuple(bad) or None,
        )

    def write(self, payload: str) -> None:
        """Write the text from `prepare` and flush the stream.

        Raises:
            PermanentSinkError: If the sink or the stream is closed, the reader
                of a pipe went away (``BrokenPipeError``) or the stream cannot
                encode the text.
            TransientSinkError: For any other `OSError`.
        """
        if not payload:
            return
        with self._lock:
            if self._closed:
                raise PermanentSinkError(
                    f"console sink {self.name!r} is closed", unhealthy=True, sink=self.name
                )
            stream = self.stream
            try:
                stream.write(payload)
                stream.flush()
            except Exception as exc:
                error = sink_error(exc, sink=self.name)
                if error is None:
                    raise
                raise error from exc

    def check(self) -> None:
        """Raise if the sink or its stream is closed.

        Raises:
            SinkError: If the sink or its stream is closed.
        """
        if self._closed:
            raise SinkError(f"console sink {self.name!r} is closed", sink=self.name)
        if getattr(self.stream, "closed", False):
            raise SinkError(f"console sink {self.name!r}: its stream is closed", sink=self.name)

    def close(self) -> None:
        """Flush the stream (without closing it) and refuse later writes. Idempotent."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            stream = self.stream
            if not getattr(stream, "closed", False):
                # Nothing is pending in the sink itself: a stream that cannot
                # flush any more loses nothing of ours.
                with contextlib.suppress(OSError, ValueError):
                    stream.flush()
            if self._owned is not None:
                with contextlib.suppress(OSError, ValueError):
                    self._owned.close()


def from_url(url: str, **overrides: Any) -> ConsoleSink:
    """Build a `ConsoleSink` from a ``console:`` URL (see `url_arguments`); keyword arguments win.

    Raises:
        ConfigError: If the URL or an option is invalid.
    """
    return ConsoleSink(**url_arguments(url, overrides))
