"""`DeadLetterFiles`: the events a sink refused, written as JSON Lines, so none is lost.

With ``EventStreamer(dead_letter_dir=DIR)`` every event a sink drops as
``rejected`` (the destination refused it for good) or ``invalid`` (the sink
could not encode it) is written to ``DIR/<sink>-<UTC time>-<pid>.jsonl``,
one line per event: the event's JSON, as `MetricEvent.to_json` and the JSON
Lines sink write it, with one more member, which every reader of events
ignores::

    {"measurement": "orders", "tags": {...}, "fields": {...}, "timestamp_ns": ...,
     "schema_version": 1,
     "dead_letter": {"sink": "influxdb", "reason": "rejected",
                     "error": "PermanentSinkError: ... field type conflict ...",
                     "batch_id": "5f0c...", "dropped_ns": 1700000000123456789,
                     "exact": true}}

``exact`` is false when the destination stored part of a write and refused
the rest without saying which events (an InfluxDB partial write): every
event of that write is there, and sending them again may store some twice
(InfluxDB keeps one point per series and time, so there it does not).

A file is closed and the next one started past `FILE_BYTES`; all of them
together hold at most ``dead_letter_max_bytes`` (the files already in the
directory count too): beyond that, dead letters are counted in health
(``dead_letters.events_not_written``) and not written. `metricstream cat`
reads a file; once the cause is fixed, `metricstream pipe` sends its
events again::

    metricstream pipe --input-format json --input DIR/influxdb-...jsonl --sink influxdb://...

The files are written on the operations' thread (`DropReports`), never on a
lane's, with mode 0600 in a directory of mode 0700.
"""

from __future__ import annotations

import contextlib
import os
import re
import time
from pathlib import Path
from typing import IO

import orjson

from metricstream._log import RateLimitedLog, logger
from metricstream.codecs.json import encode_event
from metricstream.streamer.engine.drops import DeadLetter
from metricstream.streamer.health import DeadLetterHealth

__all__ = ["FILE_BYTES", "DeadLetterFiles", "dead_letter_lines"]

FILE_BYTES = 64 << 20
"""A dead-letter file is closed, and the next one started, past this many bytes."""

_UNSAFE = re.compile(r"[^A-Za-z0-9._-]")
_warnings = RateLimitedLog(logger)


def dead_letter_lines(letter: DeadLetter, dropped_ns: int) -> bytes:
    """The JSON Lines of a dead letter's events, each with its ``dead_letter`` member."""
    lines = []
    for event, error in zip(letter.batch.events, letter.errors, strict=True):
        about = {
            "sink": letter.sink,
            "reason": letter.reason,
            "error": error,
            "batch_id": letter.batch_id,
            "dropped_ns": dropped_ns,
            "exact": letter.exact,
        }
        lines.append(encode_event(event)[:-1] + b',"dead_letter":' + orjson.dumps(about) + b"}\n")
    return b"".join(lines)


class DeadLetterFiles:
    """The dead-letter files of one streamer's process, in one directory.

    Args:
        directory: Where they go (made, mode 0700, if missing).
        max_bytes: The most bytes all the files there may hold.

    Attributes:
        written: Events written.
        not_written: Events that could not be (full, or an error).
        last_error: The last error writing, or None.
    """

    def __init__(self, directory: str | os.PathLike[str], max_bytes: int) -> None:
        self.directory = Path(directory)
        self.max_bytes = max_bytes
        self.written = 0
        self.not_written = 0
        self.last_error: str | None = None
        self._files: dict[str, tuple[IO[bytes], int]] = {}
        self._used: int | None = None

    def health(self) -> DeadLetterHealth:
        """What became of the dead letters so far."""
        return DeadLetterHealth(
            str(self.directory), self.written, self.not_written, self.last_error
        )

    def write(self, letters: list[DeadLetter], lost: int = 0) -> None:
        """Write `letters`; count `lost` more events that never reached here."""
        self.not_written += lost
        now = time.time_ns()
        for letter in letters:
            try:
                self._write(letter.sink, dead_letter_lines(letter, now), len(letter.batch))
            except OSError as exc:
                self._failed(letter, f"{type(exc).__name__}: {exc}")

    def _write(self, sink: str, lines: bytes, count: int) -> None:
        used = self._bytes_used()
        if used + len(lines) > self.max_bytes:
            self.not_written += count
            _warnings.warning(
                ("*", "dead-letters-full"),
                "the dead-letter directory %s holds dead_letter_max_bytes=%d; "
                "%d events from sink %r are not written there (counted in health)",
                self.directory,
                self.max_bytes,
                count,
                sink,
            )
            return
        file, size = self._file(sink)
        file.write(lines)
        file.flush()
        self._used = used + len(lines)
        self._files[sink] = (file, size + len(lines))
        self.written += count
        if size + len(lines) >= FILE_BYTES:
            self._close(sink)

    def _failed(self, letter: DeadLetter, error: str) -> None:
        self.not_written += len(letter.batch)
        self.last_error = error
        self._close(letter.sink)
        _warnings.error(
            ("*", "dead-letters-write"),
            "writing dead letters of sink %r to %s failed: %s",
            letter.sink,
            self.directory,
            error,
        )

    def _bytes_used(self) -> int:
        if self._used is None:
            self.directory.mkdir(mode=0o700, parents=True, exist_ok=True)
            self._used = sum(
                path.stat().st_size for path in self.directory.glob("*.jsonl") if path.is_file()
            )
        return self._used

    def _file(self, sink: str) -> tuple[IO[bytes], int]:
        found = self._files.get(sink)
        if found is not None:
            return found
        stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
        stem = f"{_UNSAFE.sub('_', sink)}-{stamp}-{os.getpid()}"
        path = self.directory / f"{stem}.jsonl"
        number = 1
        while path.exists():
            number += 1
            path = self.directory / f"{stem}-{number}.jsonl"
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_APPEND, 0o600)
        opened = (os.fdopen(fd, "ab"), 0)
        self._files[sink] = opened
        return opened

    def _close(self, sink: str) -> None:
        found = self._files.pop(sink, None)
        if found is not None:
            with contextlib.suppress(OSError):
                found[0].close()

    def close(self) -> None:
        """Close every open file."""
        for sink in list(self._files):
            self._close(sink)

    def after_fork(self) -> None:
        """In a forked child: forget the parent's open files (the child writes its own)."""
        self._files = {}
        self._used = None
