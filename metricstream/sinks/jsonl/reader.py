"""Reading JSON Lines files back: `read_events`, `JsonLinesReader`, `series_files`."""

from __future__ import annotations

import dataclasses
import errno
import logging
import mmap
import os
import re
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import orjson

from metricstream.codecs.frames import PLAIN_FIRST_BYTES, Damage, iter_frames
from metricstream.codecs.json import decode_event
from metricstream.event import MetricEvent
from metricstream.exceptions import InvalidEventError, SchemaVersionError

__all__ = [
    "JsonLinesReader",
    "TornTail",
    "next_number",
    "read_events",
    "series_files",
]

logger = logging.getLogger("metricstream.sinks.jsonl")


def _rotated_numbers(path: Path) -> list[tuple[int, Path]]:
    pattern = re.compile(re.escape(path.name) + r"\.([1-9][0-9]*)")
    found = []
    with os.scandir(path.parent) as entries:
        for entry in entries:
            match = pattern.fullmatch(entry.name)
            if match is not None:
                found.append((int(match.group(1)), path.parent / entry.name))
    found.sort()
    return found


def next_number(path: Path) -> int:
    """The number the next rotated file of `path`'s series gets (``PATH.N``)."""
    numbers = _rotated_numbers(path)
    return numbers[-1][0] + 1 if numbers else 1


def series_files(path: str | os.PathLike[str]) -> list[Path]:
    """Return the files of a rotated series, oldest first.

    That is ``PATH.1``, ``PATH.2``, ... in numeric order, then ``PATH`` itself
    when it exists. A path with no rotated files gives just itself (when it
    exists).
    """
    base = Path(os.fspath(path))
    files = [file for _, file in _rotated_numbers(base)] if base.parent.is_dir() else []
    if base.is_file():
        files.append(base)
    return files


@dataclasses.dataclass(frozen=True)
class TornTail:
    """Bytes `read_events` skipped because a crash cut a record or frame short.

    Attributes:
        path: The file.
        offset: Where the skipped bytes start, in bytes from the start of the file.
        length: How many bytes were skipped (including a terminating newline).
        line: The 1-based line number in a plain file; None in a compressed one.
        detail: What was wrong, in words.
    """

    path: str
    offset: int
    length: int
    line: int | None
    detail: str


class JsonLinesReader:
    """Read events back from a file, or from a rotated series, in order.

    Each file is read as plain JSON Lines when it starts with ``{`` or
    whitespace, otherwise as concatenated zstd frames and gzip members
    (whatever the file is called).

    What a crash tore is skipped and reported, never raised: in a plain file,
    a line that is not JSON (a crash leaves at most one per crash, and the
    writer terminates it before appending); in a compressed file, bytes that
    are not a complete, checksummed frame, up to the next frame that is. Each
    is appended to `torn_tails`, logged as a warning on the
    ``metricstream.sinks.jsonl`` logger, and passed to `on_torn_tail`.

    Args:
        path: A file, or the current file of a rotated series (its ``.N``
            siblings are read first, oldest first; see `series_files`).
        on_torn_tail: Called with each `TornTail` as it is found.

    Raises:
        FileNotFoundError: If neither the file nor any rotated file exists.

    Attributes:
        files: The files read, in order (fixed when the reader is created).
        torn_tails: What the last iteration skipped.
        events_read: How many events the last iteration yielded.

    Iterating raises `InvalidEventError` (or `SchemaVersionError`) naming the
    file and line for a record that is valid JSON but not a valid event, or a
    corrupt record inside an intact frame: those are not crash damage.
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        on_torn_tail: Callable[[TornTail], None] | None = None,
    ) -> None:
        self.path = Path(os.fspath(path))
        self.files: list[Path] = series_files(self.path)
        if not self.files:
            raise FileNotFoundError(
                errno.ENOENT, "no JSON Lines file or rotated series", str(self.path)
            )
        self.torn_tails: list[TornTail] = []
        self.events_read = 0
        self._on_torn_tail = on_torn_tail

    def __iter__(self) -> Iterator[MetricEvent]:
        self.torn_tails = []
        self.events_read = 0
        for file in self.files:
            for event in self._read_file(file):
                self.events_read += 1
                yield event

    def _report(self, tail: TornTail) -> None:
        self.torn_tails.append(tail)
        where = f"line {tail.line}, " if tail.line is not None else ""
        logger.warning(
            "skipped a torn record in %s (%sbyte %d, %d bytes): %s",
            tail.path,
            where,
            tail.offset,
            tail.length,
            tail.detail,
        )
        if self._on_torn_tail is not None:
            self._on_torn_tail(tail)

    def _read_file(self, file: Path) -> Iterator[MetricEvent]:
        with open(file, "rb") as handle:
            head = handle.read(1)
            if not head:
                return
            handle.seek(0)
            if head in PLAIN_FIRST_BYTES:
                yield from self._read_plain(file, handle)
            else:
                yield from self._read_compressed(file, handle.fileno())

    def _read_plain(self, file: Path, handle: Any) -> Iterator[MetricEvent]:
        offset = 0
        for number, raw in enumerate(handle, 1):
            line = raw[:-1] if raw.endswith(b"\n") else raw
            if line.strip():
                try:
                    yield decode_event(line)
                except InvalidEventError as exc:
                    if not _is_json(line):
                        ending = "" if raw.endswith(b"\n") else " at the end of the file"
                        self._report(
                            TornTail(
                                str(file),
                                offset,
                                len(raw),
                                number,
                                f"incomplete JSON record{ending}",
                            )
                        )
                    else:
                        raise _located(exc, f"{file}, line {number}") from exc
                except SchemaVersionError as exc:
                    raise _located(exc, f"{file}, line {number}") from exc
            offset += len(raw)

    def _read_compressed(self, file: Path, fd: int) -> Iterator[MetricEvent]:
        size = os.fstat(fd).st_size
        with mmap.mmap(fd, 0, access=mmap.ACCESS_READ) as data:
            for found in iter_frames(data, size):
                if isinstance(found, Damage):
                    self._report(
                        TornTail(str(file), found.offset, found.length, None, found.detail)
                    )
                else:
                    yield from _member_events(file, found.offset, found.content)


def _is_json(line: bytes) -> bool:
    try:
        orjson.loads(line)
    except orjson.JSONDecodeError:
        return False
    return True


def _located(
    exc: InvalidEventError | SchemaVersionError, where: str
) -> InvalidEventError | SchemaVersionError:
    """Return a copy of `exc` whose message starts with `where`."""
    if isinstance(exc, SchemaVersionError):
        located = SchemaVersionError(exc.found, exc.supported)
        located.args = (f"{where}: {exc}",)
        return located
    return InvalidEventError(exc.key, f"{where}: {exc.problem}")


def _member_events(file: Path, offset: int, content: bytes) -> Iterator[MetricEvent]:
    for number, line in enumerate(content.split(b"\n"), 1):
        if line.strip():
            try:
                yield decode_event(line)
            except (InvalidEventError, SchemaVersionError) as exc:
                raise _located(exc, f"{file}, frame at byte {offset}, record {number}") from exc


def read_events(
    path: str | os.PathLike[str],
    *,
    on_torn_tail: Callable[[TornTail], None] | None = None,
) -> Iterator[MetricEvent]:
    """Yield the events of a JSON Lines file or rotated series, oldest first.

    A convenience over `JsonLinesReader` (use it directly to inspect
    ``torn_tails`` afterwards). Torn records are skipped, logged as warnings
    and passed to `on_torn_tail`.

    Raises:
        FileNotFoundError: At once, if neither the file nor a rotated file exists.
        InvalidEventError: While iterating, naming file and line, for a
            record that is JSON but not a valid event.
    """
    return iter(JsonLinesReader(path, on_torn_tail=on_torn_tail))
