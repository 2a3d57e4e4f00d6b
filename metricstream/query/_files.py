"""Archive files: which files a path or glob names, and which of their bytes are intact.

A compressed file is checked frame by frame without decompressing it: each
zstd frame's header and block headers must lead exactly to where the next
frame starts (or the file ends). Wherever they do not (a torn tail, bytes that
are not a frame), `iter_frames` takes over from that point: it decompresses,
verifies checksums and resumes at the next intact frame. DuckDB verifies the
checksum of every frame it decompresses, so a frame whose content is corrupt
but whose structure is whole makes the query fail rather than read it; the
archive then checks that file in full (`verify`) and queries again.

A plain file is checked at its tail (a last line without a newline must be a
complete JSON object); a damaged line elsewhere makes DuckDB's strict parse
fail, and `verify` then parses every line.

A later check continues an earlier one (`check_file` with `previous`) when the
file is the same file grown: the same device and inode (wherever it is now,
so a file rotated to ``STEM.N.ENDING`` is recognised), at least as many bytes as the
earlier check settled, the same bytes just before that point (`fingerprint`),
and not rewritten in place (the same size with another modification time).
Anything else is checked from the start.
"""

from __future__ import annotations

import dataclasses
import glob
import hashlib
import mmap
import os
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import orjson
import zstandard

from metricstream.codecs.compression import Compression
from metricstream.codecs.frames import ZSTD_MAGIC, Damage, iter_frames, sniff
from metricstream.exceptions import ConfigError
from metricstream.query._results import Skipped
from metricstream.sinks.jsonl.reader import in_series_order, series_files

__all__ = ["FileCheck", "check_file", "discover", "file_key", "verify"]

_GLOB_CHARS = frozenset("*?[")
_MAX_FRAME_HEADER = 18
_CHECKSUM_FLAG = 0x04
_RLE_BLOCK = 1
_RESERVED_BLOCK = 3
_FINGERPRINT_BYTES = 4096


def discover(paths: Iterable[str | os.PathLike[str]]) -> list[Path]:
    """Return the archive files that `paths` name, oldest first within each series.

    A path is a file or the current file of a rotated series (its rotated
    files, ``STEM.N.ENDING`` or the earlier ``PATH.N``, come first, see
    `series_files`); a path with ``*``, ``?`` or ``[`` is a glob, and each
    file it matches counts as such a path. A glob that matches rotated files
    (``events-*.jsonl.zst`` matches ``events-0.1.jsonl.zst``) keeps each
    series in its order (`in_series_order`).

    Raises:
        ConfigError: If no path is given.
        FileNotFoundError: If a path names no file, or a glob matches none.
    """
    found: dict[Path, None] = {}
    given = 0
    for item in paths:
        given += 1
        text = os.fspath(item)
        if _GLOB_CHARS.intersection(text):
            matches = sorted(glob.glob(text))
            if not matches:
                raise FileNotFoundError(f"{text!r} matches no file")
            candidates = [Path(match) for match in matches if os.path.isfile(match)]
        else:
            candidates = [Path(text)]
        for candidate in candidates:
            files = series_files(candidate)
            if not files:
                raise FileNotFoundError(f"no JSON Lines file or rotated series at {text!r}")
            for file in files:
                found.setdefault(file.resolve(), None)
    if not given:
        raise ConfigError("paths", "name at least one archive file or glob")
    return in_series_order(list(found))


@dataclass
class FileCheck:
    """What is known about one file: its codec and its intact byte ranges.

    Attributes:
        path: The file.
        identity: Device, inode, size and modification time when checked.
        codec: What the file holds (None for an empty file).
        ranges: The intact byte ranges, merged and in order.
        starts: Where frames start, inside `ranges` (compressed files only):
            the places a range may be cut for parallel reading.
        damage: The byte ranges that are not intact.
        resume: Where a later check of the grown file continues: the end of
            the last intact range (everything before it is settled).
        verified: Every frame was decompressed and every record parsed.
        fingerprint: A digest of the bytes just before `resume`, which a
            later check compares to tell a grown file from a rewritten one.
        carried: How many bytes this check took over, unchanged, from the
            check it continued (0 when it checked the file from the start).
    """

    path: str
    identity: tuple[int, int, int, int]
    codec: Compression | None
    ranges: list[tuple[int, int]] = field(default_factory=list)
    starts: list[int] = field(default_factory=list)
    damage: list[Skipped] = field(default_factory=list)
    resume: int = 0
    verified: bool = False
    fingerprint: str = ""
    carried: int = 0

    @property
    def size(self) -> int:
        """The file's size when checked."""
        return self.identity[2]

    @property
    def whole(self) -> bool:
        """True when the file is one intact range from its first byte to its last."""
        return self.ranges == [(0, self.size)]

    def add(self, start: int, end: int, *, frame: bool = False) -> None:
        """Record the intact bytes ``[start, end)``."""
        if frame:
            self.starts.append(start)
        if self.ranges and self.ranges[-1][1] == start:
            self.ranges[-1] = (self.ranges[-1][0], end)
        else:
            self.ranges.append((start, end))
        self.resume = end


def _identity(path: str) -> tuple[int, int, int, int]:
    info = os.stat(path)
    return (info.st_dev, info.st_ino, info.st_size, info.st_mtime_ns)


def file_key(path: str | os.PathLike[str]) -> tuple[int, int]:
    """The device and inode of a file: what stays the same when it is renamed.

    Raises:
        OSError: If the file cannot be found.
    """
    info = os.stat(path)
    return (info.st_dev, info.st_ino)


def _fingerprint(data: mmap.mmap | bytes, end: int) -> str:
    return hashlib.blake2b(data[max(0, end - _FINGERPRINT_BYTES) : end], digest_size=16).hexdigest()


def _continues(
    previous: FileCheck, identity: tuple[int, int, int, int], data: mmap.mmap | bytes
) -> bool:
    """True when the file is `previous`'s file, grown (see the module documentation)."""
    return (
        previous.codec is not None
        and previous.identity[:2] == identity[:2]
        and identity[2] >= previous.resume
        and not (identity[2] == previous.size and identity[3] != previous.identity[3])
        and len(data) >= previous.resume
        and _fingerprint(data, previous.resume) == previous.fingerprint
    )


def _renamed(check: FileCheck, name: str) -> FileCheck:
    if check.path == name:
        return check
    return dataclasses.replace(
        check,
        path=name,
        ranges=list(check.ranges),
        starts=list(check.starts),
        damage=[dataclasses.replace(item, path=name) for item in check.damage],
    )


def check_file(path: Path, previous: FileCheck | None = None) -> FileCheck:
    """Check a file's structure, continuing from `previous` when the file only grew.

    Args:
        path: The file.
        previous: An earlier check of the same file (same device and inode,
            under this name or another), or None.

    Returns:
        `previous` itself when the file is unchanged (a copy naming `path`
        when it was renamed), else a new check.

    Raises:
        OSError: If the file cannot be read.
    """
    name = str(path)
    identity = _identity(name)
    if previous is not None and previous.identity == identity:
        return _renamed(previous, name)
    if identity[2] == 0:
        return FileCheck(name, identity, None)
    with open(name, "rb") as handle, mmap.mmap(handle.fileno(), 0, access=mmap.ACCESS_READ) as data:
        size = min(identity[2], len(data))
        start = 0
        if previous is not None and _continues(previous, identity, data):
            check = FileCheck(name, identity, previous.codec, carried=previous.resume)
            check.ranges = [r for r in previous.ranges if r[1] <= previous.resume]
            check.starts = [s for s in previous.starts if s < previous.resume]
            check.damage = [
                dataclasses.replace(d, path=name)
                for d in previous.damage
                if d.offset < previous.resume
            ]
            check.resume = start = previous.resume
        else:
            check = FileCheck(name, identity, sniff(data[: len(ZSTD_MAGIC)]) or Compression.ZSTD)
        if check.codec is Compression.NONE:
            _check_plain_tail(check, data, start, size)
        elif check.codec is Compression.ZSTD:
            _check_zstd(check, data, start, size)
        else:
            _decode_frames(check, data, start, size)
        check.fingerprint = _fingerprint(data, check.resume)
    return check


def verify(check: FileCheck) -> FileCheck:
    """Check a file in full: decompress every frame and parse every record.

    Returns:
        A new check of the file as it is now, with `verified` set.

    Raises:
        OSError: If the file cannot be read.
    """
    identity = _identity(check.path)
    result = FileCheck(check.path, identity, None)
    if identity[2] == 0:
        result.verified = True
        return result
    with (
        open(check.path, "rb") as handle,
        mmap.mmap(handle.fileno(), 0, access=mmap.ACCESS_READ) as data,
    ):
        size = min(identity[2], len(data))
        result.codec = sniff(data[: len(ZSTD_MAGIC)]) or Compression.ZSTD
        if result.codec is Compression.NONE:
            _verify_plain(result, data, 0, size)
        else:
            _decode_frames(result, data, 0, size, parse=True)
        result.fingerprint = _fingerprint(data, result.resume)
    result.verified = True
    return result


def _zstd_frame_end(data: mmap.mmap, pos: int, size: int) -> int | None:
    """Where the zstd frame at `pos` ends, from its headers alone; None if it is not whole."""
    if data[pos : pos + len(ZSTD_MAGIC)] != ZSTD_MAGIC:
        return None
    try:
        at = pos + zstandard.frame_header_size(data[pos : pos + _MAX_FRAME_HEADER])
    except zstandard.ZstdError:
        return None
    has_checksum = data[pos + len(ZSTD_MAGIC)] & _CHECKSUM_FLAG
    last = False
    while not last:
        if at + 3 > size:
            return None
        block = int.from_bytes(data[at : at + 3], "little")
        kind = (block >> 1) & 3
        if kind == _RESERVED_BLOCK:
            return None
        last = bool(block & 1)
        at += 3 + (1 if kind == _RLE_BLOCK else block >> 3)
    if has_checksum:
        at += 4
    return at if at <= size else None


def _check_zstd(check: FileCheck, data: mmap.mmap, start: int, size: int) -> None:
    pos = start
    while pos < size:
        end = _zstd_frame_end(data, pos, size)
        if end is None:
            _decode_frames(check, data, pos, size)
            return
        check.add(pos, end, frame=True)
        pos = end


def _decode_frames(
    check: FileCheck, data: mmap.mmap, start: int, size: int, *, parse: bool = False
) -> None:
    for found in iter_frames(data, size, start):
        if isinstance(found, Damage):
            check.damage.append(Skipped(check.path, found.offset, found.length, found.detail))
            continue
        problem = _records_problem(found.content) if parse else None
        if problem is None:
            check.add(found.offset, found.end, frame=True)
        else:
            check.damage.append(
                Skipped(check.path, found.offset, found.end - found.offset, problem)
            )


def _records_problem(content: bytes) -> str | None:
    """Why the lines of an intact frame are not all JSON objects (None when they are)."""
    for number, line in enumerate(content.split(b"\n"), 1):
        if line.strip():
            problem = _line_problem(line)
            if problem is not None:
                return f"frame holds a record that is {problem} (record {number})"
    return None


def _line_problem(line: bytes) -> str | None:
    try:
        value = orjson.loads(line)
    except orjson.JSONDecodeError:
        return "not JSON"
    return None if isinstance(value, dict) else "not a JSON object"


def _check_plain_tail(check: FileCheck, data: mmap.mmap, start: int, size: int) -> None:
    """Keep the complete lines; a last line without a newline must be a JSON object."""
    last_newline = data.rfind(b"\n", start, size)
    tail_start = start if last_newline < 0 else last_newline + 1
    if tail_start > start:
        check.add(start, tail_start)
    tail = data[tail_start:size]
    if not tail.strip():
        if tail:
            check.add(tail_start, size)
        return
    problem = _line_problem(tail)
    if problem is None:
        check.add(tail_start, size)
    else:
        check.damage.append(
            Skipped(
                check.path,
                tail_start,
                size - tail_start,
                f"incomplete JSON record at the end of the file ({problem})",
            )
        )


def _verify_plain(check: FileCheck, data: mmap.mmap, start: int, size: int) -> None:
    for offset, end, number in _lines(data, start, size):
        line = data[offset:end]
        problem = _line_problem(line) if line.strip() else None
        if problem is None:
            check.add(offset, end)
        else:
            ending = "" if line.endswith(b"\n") else " at the end of the file"
            check.damage.append(
                Skipped(
                    check.path,
                    offset,
                    end - offset,
                    f"line {number} is {problem}: an incomplete JSON record{ending}",
                )
            )


def _lines(data: mmap.mmap, start: int, size: int) -> Iterator[tuple[int, int, int]]:
    """Yield (start, end including the newline, 1-based number) of each line."""
    pos, number = start, 1
    while pos < size:
        newline = data.find(b"\n", pos, size)
        end = size if newline < 0 else newline + 1
        yield pos, end, number
        pos, number = end, number + 1
