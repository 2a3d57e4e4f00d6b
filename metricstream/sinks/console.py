"""`ConsoleSink`: events printed to a text stream, for humans or pipes.

Three formats:

- ``pretty`` — one aligned line per event, for reading::

      2026-11-25T10:00:00.123456Z  http_requests  route=/api  latency_ms=12.5 count=1i  [req-42]

  Columns are the UTC timestamp (microseconds), the measurement, the tags
  (sorted by key), the fields (in the order they were added) and the
  correlation id in brackets. Within one batch every column starts at the same
  position; the tags column is left out when no event of the batch has tags.
  Field values are typed as in line protocol (``1i`` signed, ``1u`` unsigned,
  ``12.5`` float, ``true`` bool, ``"text"`` string, JSON-escaped); a tag key or
  value containing a space, ``=``, a quote or a control character is quoted
  the same way.
- ``json`` — one JSON object per line (the JSON Lines encoding of the batch).
- ``line`` — InfluxDB line protocol, nanosecond timestamps.

The ``json`` and ``line`` formats keep the full nanosecond timestamp.
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import json
import os
import sys
import threading
from typing import Any, Literal, TextIO

from metricstream._options import require_int, require_name
from metricstream._validate import no_fields_error
from metricstream.contract import EventBatch
from metricstream.event import FieldValue, MetricEvent, UInt
from metricstream.exceptions import (
    ConfigError,
    InvalidEventError,
    PermanentSinkError,
    SinkError,
    TransientSinkError,
)
from metricstream.sinks._url import check_overrides, parse_query

__all__ = ["FORMATS", "SCHEMES", "ConsoleSink", "format_pretty", "format_timestamp", "from_url"]

SCHEMES = ("console",)
"""The URL schemes this module builds sinks for (see `from_url`)."""

FORMATS = ("pretty", "json", "line")
"""The formats `ConsoleSink` writes."""

_STANDARD_STREAMS = ("stdout", "stderr")
_EPOCH = _dt.datetime(1970, 1, 1)
_NEEDS_QUOTES = frozenset(' ="\\') | frozenset(chr(c) for c in range(32)) | {"\x7f"}


class ConsoleSink:
    """Write each batch to a text stream (standard output by default).

    Args:
        stream: Where to write: a text stream, or ``"stdout"`` / ``"stderr"``
            (or None, meaning ``"stdout"``) to use ``sys.stdout`` /
            ``sys.stderr`` as they are at each write, so redirecting them
            (``contextlib.redirect_stdout``, test capture) is honoured.
        format: ``"pretty"`` (aligned, for people), ``"json"`` (JSON Lines) or
            ``"line"`` (line protocol).
        name: The sink's name in health reports.
        max_events_per_batch: For display: show at most this many events of
            each batch, then a line ``# ... and N more events in batch ID``.
            The whole batch counts as written. Not allowed with ``json``.

    Raises:
        ConfigError: If the format is unknown, the stream has no ``write``
            method or the name is empty.

    The sink never closes the stream: it belongs to the caller. ``close``
    flushes it, and later writes raise `PermanentSinkError`.
    """

    def __init__(
        self,
        stream: TextIO | Literal["stdout", "stderr"] | None = None,
        format: str = "pretty",
        *,
        name: str = "console",
        max_events_per_batch: int | None = None,
    ) -> None:
        if not isinstance(format, str) or format.strip().lower() not in FORMATS:
            raise ConfigError(
                "format", f"unknown console format {format!r}; use {', '.join(FORMATS)}"
            )
        if stream is None:
            stream = "stdout"
        if isinstance(stream, str):
            if stream not in _STANDARD_STREAMS:
                raise ConfigError(
                    "stream", f"unknown stream {stream!r}; use 'stdout', 'stderr' or a text stream"
                )
        elif not callable(getattr(stream, "write", None)):
            raise ConfigError(
                "stream",
                f"expected a text stream with a write() method, not {type(stream).__name__}",
            )
        require_name("name", name)
        if max_events_per_batch is not None:
            require_int("max_events_per_batch", max_events_per_batch, minimum=1)
            if format.strip().lower() == "json":
                raise ConfigError(
                    "max_events_per_batch", "is for display and cannot be used with format='json'"
                )
        self.max_events_per_batch = max_events_per_batch
        self.name: str = name
        self._format = format.strip().lower()
        self._stream = stream
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
        return f"ConsoleSink(name={self.name!r}, format={self._format!r}, stream={stream!r})"

    @property
    def format(self) -> str:
        """The output format: ``"pretty"``, ``"json"`` or ``"line"``."""
        return self._format

    @property
    def stream(self) -> TextIO:
        """The stream the next write goes to."""
        if self._stream == "stdout":
            return sys.stdout
        if self._stream == "stderr":
            return sys.stderr
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
        limit = self.max_events_per_batch
        if limit is not None and len(batch.events) > limit:
            shown = EventBatch(batch.events[:limit], batch_id=batch.batch_id)
            return (
                self.prepare(shown)
                + f"# ... and {len(batch.events) - limit} more events in batch {batch.batch_id}\n"
            )
        if self._format == "json":
            text = batch.to_json_lines() + "\n"
        elif self._format == "line":
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
            except BrokenPipeError as exc:
                raise PermanentSinkError(
                    f"console sink {self.name!r}: the reader of the stream went away ({exc})",
                    unhealthy=True,
                    sink=self.name,
                ) from exc
            except UnicodeEncodeError as exc:
                raise PermanentSinkError(
                    f"console sink {self.name!r}: the stream cannot encode the text ({exc})",
                    sink=self.name,
                ) from exc
            except ValueError as exc:  # io raises ValueError for a closed stream
                raise PermanentSinkError(
                    f"console sink {self.name!r}: {exc}", unhealthy=True, sink=self.name
                ) from exc
            except OSError as exc:
                raise TransientSinkError(
                    f"console sink {self.name!r}: write failed: {exc}", sink=self.name
                ) from exc

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


def format_timestamp(timestamp_ns: int) -> str:
    """Return `timestamp_ns` as an ISO 8601 UTC time with microseconds.

    Example: ``1_700_000_000_123_456_789`` -> ``"2023-11-14T22:13:20.123456Z"``
    (truncated, never rounded up).
    """
    seconds, nanoseconds = divmod(timestamp_ns, 1_000_000_000)
    moment = _EPOCH + _dt.timedelta(seconds=seconds)
    return f"{moment:%Y-%m-%dT%H:%M:%S}.{nanoseconds // 1000:06d}Z"


def _quote(text: str) -> str:
    if _NEEDS_QUOTES.isdisjoint(text):
        return text
    return json.dumps(text, ensure_ascii=False)


def _format_field(value: FieldValue) -> str:
    cls = value.__class__
    if cls is float:
        return repr(value)
    if cls is bool:
        return "true" if value else "false"
    if cls is str:
        return json.dumps(value, ensure_ascii=False)
    if isinstance(value, UInt):
        return f"{int(value)}u"
    return f"{value}i"


def format_pretty(events: list[MetricEvent]) -> str:
    """Render events as aligned lines (the ``pretty`` format).

    Returns:
        One line per event, each ending with a newline.

    Raises:
        InvalidEventError: If an event has no fields.
    """
    rows: list[tuple[str, str, str, str, str]] = []
    for event in events:
        if not event.fields:
            raise no_fields_error(event.measurement)
        tags = " ".join(f"{_quote(k)}={_quote(v)}" for k, v in sorted(event.tags.items()))
        fields = " ".join(f"{_quote(k)}={_format_field(v)}" for k, v in event.fields.items())
        cid = "" if event.correlation_id is None else f"[{event.correlation_id}]"
        rows.append((format_timestamp(event.timestamp_ns), event.measurement, tags, fields, cid))
    measurement_width = max(len(row[1]) for row in rows)
    tags_width = max(len(row[2]) for row in rows)
    fields_width = max(len(row[3]) for row in rows) if any(row[4] for row in rows) else 0
    lines = []
    for timestamp, measurement, tags, fields, cid in rows:
        columns = [timestamp, measurement.ljust(measurement_width)]
        if tags_width:
            columns.append(tags.ljust(tags_width))
        columns.append(fields.ljust(fields_width))
        columns.append(cid)
        lines.append("  ".join(columns).rstrip() + "\n")
    return "".join(lines)


def from_url(url: str, **overrides: Any) -> ConsoleSink:
    """Build a `ConsoleSink` from a ``console:`` URL; keyword arguments win.

    Forms: ``console:`` (pretty), ``console:json``, ``console:line``,
    ``console:pretty``, and query options ``format``, ``name`` and ``stream``
    (``stdout`` or ``stderr``): ``console:?format=json&name=audit``,
    ``console:line?stream=stderr``.

    Raises:
        ConfigError: If the URL is not a ``console:`` URL, an option is unknown,
            repeated or invalid, or the format after the colon disagrees with
            ``format=``.
    """
    scheme, sep, rest = url.partition(":")
    if not sep or scheme.lower() != "console":
        raise ConfigError("url", f"not a console: URL: {url!r}")
    rest = rest.removeprefix("//")
    path, _, query = rest.partition("?")
    options: dict[str, Any] = parse_query(url, query, ("format", "name", "stream"))
    if path:
        if "format" in options and options["format"].strip().lower() != path.strip().lower():
            raise ConfigError(
                "format", f"{url!r} names two formats: {path!r} and {options['format']!r}"
            )
        options["format"] = path
    check_overrides(overrides, ("format", "name", "stream"), "ConsoleSink")
    options.update(overrides)
    return ConsoleSink(**options)
