"""Reading JSON Lines files back: `read_events`, `JsonLinesReader`, `series_files`."""

from __future__ import annotations

import errno
import logging
import mmap
import os
import re
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from metricstream.codecs.frames import PLAIN_FIRST_BYTES, Damage, iter_frames
from metricstream.codecs.json import decode_event
from metricstream.event import MetricEvent
from metricstream.exceptions import InvalidEventError, SchemaVersionError
from metricstream.sinks.jsonl.tail import TornTail, complete_record

__all__ = [
    "JsonLinesReader",
    "TornTail",
    "in_series_order",
    "next_number",
    "read_events",
    "rotated_path",
    "rotation_of",
    "series_files",
    "split_name",
    "warn_torn_tail",
]

logger = logging.getLogger("metricstream.sinks.jsonl")


_COMPRESSED_ENDINGS = frozenset({".zst", ".gz", ".zstd", ".gzip"})
_NUMBER = re.compile(r"[1-9][0-9]*")


def split_name(name: str) -> tuple[str, str]:
    """Split a file name into its stem and the ending that says what it holds.

    The ending is the last suffix, and the one before it when the last is a
    compression suffix: ``events.jsonl.zst`` is ``("events", ".jsonl.zst")``,
    ``events.jsonl`` is ``("events", ".jsonl")``, ``events`` is ``("events", "")``.
    """
    stem, ending = name, ""
    for _ in range(2):
        head, dot, tail = stem.rpartition(".")
        if not dot or not head or not tail:
            break
        stem, ending = head, f".{tail}{ending}"
        if f".{tail}".lower() not in _COMPRESSED_ENDINGS:
            break
    return stem, ending


def rotated_path(path: Path, number: int) -> Path:
    """The name of the `number`-th rotated file of `path`'s series: the number before the ending.

    ``events.jsonl.zst`` rotates to ``events.1.jsonl.zst``, ``events.2.jsonl.zst``...
    """
    stem, ending = split_name(path.name)
    return path.with_name(f"{stem}.{number}{ending}")


def rotation_of(path: Path) -> tuple[Path, float] | None:
    """The current file of the series `path` was rotated from, and its place in the series.

    Rotated files are named ``STEM.N.ENDING`` (`rotated_path`); files that
    earlier versions rotated, ``NAME.N``, are recognised too, and come just
    before a file of the same number named the new way.

    Returns:
        (the series' current file, N), or None when `path` is not named as
        a rotated file.
    """
    stem, ending = split_name(path.name)
    head, dot, number = stem.rpartition(".")
    if dot and head and _NUMBER.fullmatch(number):
        return path.with_name(f"{head}{ending}"), float(number)
    head, dot, number = path.name.rpartition(".")
    if dot and head and _NUMBER.fullmatch(number):
        return path.with_name(head), float(number) - 0.5
    return None


def _rotated_numbers(path: Path) -> list[tuple[float, Path]]:
    stem, ending = split_name(path.name)
    named = re.compile(re.escape(stem) + r"\.([1-9][0-9]*)" + re.escape(ending))
    legacy = re.compile(re.escape(path.name) + r"\.([1-9][0-9]*)")
    found = []
    with os.scandir(path.parent) as entries:
        for entry in entries:
            match = named.fullmatch(entry.name)
            if match is not None:
                found.append((float(match.group(1)), path.parent / entry.name))
                continue
            match = legacy.fullmatch(entry.name)
            if match is not None:
                found.append((float(match.group(1)) - 0.5, path.parent / entry.name))
    found.sort()
    return found


def next_number(path: Path) -> int:
    """The number the next rotated file of `path`'s series gets (see `rotated_path`).

    One more than the highest number in use, whether named the new way or
    the old one, so numbers keep growing across the change of names.
    """
    numbers = _rotated_numbers(path)
    return int(numbers[-1][0] + 0.5) + 1 if numbers else 1


def series_files(path: str | os.PathLike[str]) -> list[Path]:
    """Return the files of a rotated series, oldest first.

    That is ``STEM.1.ENDING``, ``STEM.2.ENDING``, ... in numeric order
    (``events.1.jsonl.zst`` for ``events.jsonl.zst``), then the path itself
    when it exists. Files rotated by earlier versions of metricstream,
    named ``PATH.1``, ``PATH.2``..., belong to the series too, in their
    numeric place. A path with no rotated files gives just itself (when it
    exists).
    """
    base = Path(os.fspath(path))
    files = [file for _, file in _rotated_numbers(base)] if base.parent.is_dir() else []
    if base.is_file():
        files.append(base)
    return files


def in_series_order(files: list[Path]) -> list[Path]:
    """Order `files` so that those of one rotated series follow each other, oldest first.

    A series is placed where its first file was; the order of other files
    is kept.
    """
    groups: dict[Path, list[tuple[float, Path]]] = {}
    for file in files:
        base, number = rotation_of(file) or (file, float("inf"))
        groups.setdefault(base, []).append((number, file))
    return [file for members in groups.values() for _, file in sorted(members)]


class JsonLinesReader:
    """Read events back from a file, or from a rotated series, in order.

    Each file is read as plain JSON Lines when it starts with ``{`` or
    whitespace, otherwise as concatenated zstd frames and gzip members
    (whatever the file is called).

    What a crash tore is skipped and reported, never raised: in a plain file,
    a line that is not JSON (a crash leaves at most one per crash, and the
    writer terminates it before appending); in a compressed file, bytes that
    are not a complete, checksummed frame, up to the next frame that is. Each
    is appended to `torn_tails` and passed to `on_torn_tail`, or, without
    one, logged as a warning on the ``metricstream.sinks.jsonl`` logger
    (`warn_torn_tail`).

    Args:
        path: A file, or the current file of a rotated series (its rotated
            files are read first, oldest first; see `series_files`).
        on_torn_tail: Called with each `TornTail` as it is found, instead of
            the warning.

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
        if self._on_torn_tail is not None:
            self._on_torn_tail(tail)
        else:
            warn_torn_tail(tail)

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
                    if not complete_record(line):
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


def warn_torn_tail(tail: TornTail) -> None:
    """Log `tail` as a warning on the ``metricstream.sinks.jsonl`` logger."""
    where = f"line {tail.line}, " if tail.line is not None else ""
    logger.warning(
        "skipped a torn record in %s (%sbyte %d, %d bytes): %s",
        tail.path,
        where,
        tail.offset,
        tail.length,
        tail.detail,
    )


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
