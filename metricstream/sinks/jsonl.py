"""`JsonLinesSink`: events appended to a local JSON Lines file, and `read_events`.

File format
    One JSON object per event and line (see `metricstream._json`). With
    compression, each batch is one complete zstd frame (with content size and
    checksum) or one gzip member holding that batch's lines, and a file is
    the concatenation of these, so ``zstdcat``/``zcat`` print the whole file.

Crash safety
    A crash can cut only the batch being written. A plain file that does not
    end with a newline gets one before the next append, so a torn record
    never fuses with the next one; a torn compressed frame is simply followed
    by the next complete frame. A ``write`` that fails truncates the file back
    to where it was, so the retry neither duplicates nor fuses records.
    `read_events` skips what a crash tore and reports it (`TornTail`).

Rotation
    With ``rotate_bytes``, a write that would take the file past that size
    first renames it to the next free number: ``metrics.jsonl`` becomes
    ``metrics.jsonl.1``, later ``metrics.jsonl.2``... so higher numbers are
    newer, each rotation is one atomic rename, and the series in order is
    ``.1, .2, ..., .N`` then the current file. A single batch larger than
    ``rotate_bytes`` still goes into one file. No file is ever deleted.

Errors
    ``write`` maps `OSError` in one place (`_translate_os_error`): errors an
    operator must fix (``EACCES``, ``EPERM``, ``EROFS``, ``EISDIR``,
    ``ENOTDIR``, ``ENAMETOOLONG``, ``ELOOP``, ``EINVAL``, ``EFBIG``) raise
    `PermanentSinkError` marked unhealthy; everything else (``ENOSPC``,
    ``EDQUOT``, ``EIO``, ``ENOENT``, ``EMFILE``...) raises `TransientSinkError`,
    so the lane retries once space, the directory or descriptors come back.

One process writes a given file; readers may run at any time (a record
being written at that moment shows up as a torn tail).
"""

from __future__ import annotations

import contextlib
import dataclasses
import errno
import logging
import mmap
import os
import re
import stat
import threading
import urllib.parse
import zlib
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import orjson
import zstandard

from metricstream._json import decode_event
from metricstream.event import MetricEvent
from metricstream.exceptions import (
    ConfigError,
    InvalidEventError,
    PermanentSinkError,
    SchemaVersionError,
    SinkError,
    TransientSinkError,
)
from metricstream.sinks.url import parse_query
from metricstream.streamer.batch import EventBatch
from metricstream.streamer.compression import Compression, compress

__all__ = [
    "JsonLinesReader",
    "JsonLinesSink",
    "TornTail",
    "from_url",
    "read_events",
    "series_files",
]

logger = logging.getLogger(__name__)

_ZSTD_MAGIC = b"\x28\xb5\x2f\xfd"
_GZIP_MAGIC = b"\x1f\x8b\x08"
_PLAIN_FIRST_BYTES = b"{ \t\r\n"
_SUFFIX_CODECS = {".zst": Compression.ZSTD, ".gz": Compression.GZIP}
_ZSTD_LEVEL = 3
_READ_CHUNK = 1 << 20

_PERMANENT_ERRNOS = frozenset(
    {
        errno.EACCES,
        errno.EPERM,
        errno.EROFS,
        errno.EISDIR,
        errno.ENOTDIR,
        errno.ENAMETOOLONG,
        errno.ELOOP,
        errno.EINVAL,
        errno.EFBIG,
    }
)


class JsonLinesSink:
    """Append each batch to a JSON Lines file, optionally compressed and rotated.

    Args:
        path: The file to append to; created on the first write. Its directory
            must exist. A relative path is made absolute now.
        compression: ``"zstd"``, ``"gzip"``, ``"none"`` or a `Compression`.
            None means: zstd for a ``.zst`` path, gzip for a ``.gz`` path,
            otherwise the streamer's codec (`inherit_compression`), and plain
            text when there is none.
        rotate_bytes: Rotate before a write that would take the file past this
            many bytes (on disk, so compressed bytes when compressing).
        fsync: ``os.fsync`` the file after every write, and its directory
            after a file is created or rotated.
        file_mode: Permission bits for files the sink creates, applied exactly
            (not reduced by the umask). Between ``0o600`` and ``0o777``: the
            owner must read and write. Existing files keep their mode.
        name: The sink's name in health reports.

    Raises:
        ConfigError: Naming the option, if the path is a directory, is not a
            regular file, or its directory does not exist; if the compression
            is unknown or contradicts a ``.zst``/``.gz`` suffix; if
            ``rotate_bytes`` is not a positive int; if ``fsync`` is not a
            bool; if ``file_mode`` is outside ``0o600..0o777``; or if the
            name is empty.
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        compression: str | Compression | None = None,
        rotate_bytes: int | None = None,
        fsync: bool = False,
        file_mode: int = 0o600,
        name: str = "jsonl",
    ) -> None:
        self.path: Path = _check_path(path)
        suffix_codec = _SUFFIX_CODECS.get(self.path.suffix.lower())
        if compression is None:
            codec = suffix_codec
        else:
            codec = Compression.from_str(compression)
            if suffix_codec is not None and codec is not suffix_codec:
                raise ConfigError(
                    "compression",
                    f"{codec.value!r} contradicts the {self.path.suffix!r} suffix of "
                    f"{str(self.path)!r}",
                )
        if rotate_bytes is not None and (
            not isinstance(rotate_bytes, int) or isinstance(rotate_bytes, bool) or rotate_bytes <= 0
        ):
            raise ConfigError(
                "rotate_bytes", f"expected a positive number of bytes or None, not {rotate_bytes!r}"
            )
        if not isinstance(fsync, bool):
            raise ConfigError("fsync", f"expected True or False, not {fsync!r}")
        if (
            not isinstance(file_mode, int)
            or isinstance(file_mode, bool)
            or not 0o600 <= file_mode <= 0o777
        ):
            shown = oct(file_mode) if isinstance(file_mode, int) else repr(file_mode)
            raise ConfigError(
                "file_mode",
                f"expected permission bits between 0o600 and 0o777 that include 0o600 "
                f"(the owner reads and writes), not {shown}",
            )
        if not isinstance(name, str) or not name:
            raise ConfigError("name", "a sink name must be a non-empty string")
        self.name: str = name
        self.rotate_bytes: int | None = rotate_bytes
        self.fsync: bool = fsync
        self.file_mode: int = file_mode
        self._codec: Compression | None = codec
        self._zstd = zstandard.ZstdCompressor(
            level=_ZSTD_LEVEL, write_checksum=True, write_content_size=True
        )
        self._prepare_lock = threading.Lock()
        self._write_lock = threading.Lock()
        self._fd: int | None = None
        self._check_tail = False
        self._closed = False

    def __repr__(self) -> str:
        return (
            f"JsonLinesSink(name={self.name!r}, path={str(self.path)!r}, "
            f"compression={self.compression.value!r}, rotate_bytes={self.rotate_bytes!r})"
        )

    @property
    def compression(self) -> Compression:
        """The codec in use (`Compression.NONE` while none has been chosen)."""
        return Compression.NONE if self._codec is None else self._codec

    def inherit_compression(self, compression: Compression | str | None) -> None:
        """Adopt the streamer's codec when the user chose none.

        Has no effect when ``compression=`` was given, the path ends in
        ``.zst``/``.gz``, or a batch was already prepared (a file never mixes
        codecs). ``gzip`` writes one gzip member per batch.

        Raises:
            ConfigError: If the codec name is unknown.
        """
        codec = Compression.from_str(compression)
        with self._prepare_lock:
            if self._codec is None:
                self._codec = codec

    def prepare(self, batch: EventBatch) -> bytes:
        """Encode (and compress) the batch into the bytes `write` appends.

        Returns:
            The batch's JSON Lines, newline-terminated; compressed, one zstd
            frame or gzip member. Empty for an empty batch.

        Raises:
            InvalidEventError: If an event has no fields.
        """
        data = batch.json_lines_bytes()
        if not data:
            return b""
        with self._prepare_lock:
            codec = self._codec
            if codec is None:
                codec = self._codec = Compression.NONE
            if codec is Compression.ZSTD:
                # A ZstdCompressor must not be used by two threads at once.
                frame: bytes = self._zstd.compress(data + b"\n")
                return frame
        if codec is Compression.GZIP:
            return compress(data + b"\n", Compression.GZIP)
        return data + b"\n"

    def write(self, payload: bytes) -> None:
        """Append a payload from `prepare`, rotating first when needed.

        On failure the file is truncated back to its previous size and
        reopened on the next write, so a retry writes the batch exactly once.

        Raises:
            TransientSinkError: For I/O errors that may clear (disk full, I/O
                error, directory missing...).
            PermanentSinkError: For errors an operator must fix (permissions,
                read-only file system, path is a directory...), when the file
                holds data in another codec, or after `close`.
        """
        if not payload:
            return
        with self._write_lock:
            if self._closed:
                raise PermanentSinkError(
                    f"JSON Lines sink {self.name!r} is closed", unhealthy=True, sink=self.name
                )
            try:
                self._append(payload)
            except OSError as exc:
                raise _translate_os_error(exc, self.name, self.path) from exc

    def check(self) -> None:
        """Probe that the next write can succeed.

        Raises:
            SinkError: If the sink is closed, the directory is missing or not
                writable, or the path exists but is not a readable and writable
                regular file, or holds data in another codec.
        """
        if self._closed:
            raise SinkError(f"JSON Lines sink {self.name!r} is closed", sink=self.name)
        directory = self.path.parent
        if not directory.is_dir():
            raise SinkError(
                f"JSON Lines sink {self.name!r}: directory {str(directory)!r} does not exist",
                sink=self.name,
            )
        if not os.access(directory, os.W_OK | os.X_OK):
            raise SinkError(
                f"JSON Lines sink {self.name!r}: directory {str(directory)!r} is not writable",
                sink=self.name,
            )
        if self.path.exists() or self.path.is_symlink():
            if not self.path.is_file():
                raise SinkError(
                    f"JSON Lines sink {self.name!r}: {str(self.path)!r} is not a regular file",
                    sink=self.name,
                )
            if not os.access(self.path, os.R_OK | os.W_OK):
                raise SinkError(
                    f"JSON Lines sink {self.name!r}: {str(self.path)!r} is not readable "
                    "and writable",
                    sink=self.name,
                )
            with open(self.path, "rb") as handle:
                found = _sniff(handle.read(len(_ZSTD_MAGIC)))
            if found is not None and found is not self.compression:
                raise SinkError(
                    f"JSON Lines sink {self.name!r}: {str(self.path)!r} holds {found.value} "
                    f"data but the sink writes {self.compression.value}",
                    sink=self.name,
                )

    def close(self) -> None:
        """Close the file; later writes raise `PermanentSinkError`. Idempotent.

        Raises:
            SinkError: If the operating system reports an error on close.
        """
        with self._write_lock:
            self._closed = True
            fd, self._fd = self._fd, None
            if fd is not None:
                try:
                    os.close(fd)
                except OSError as exc:
                    raise SinkError(
                        f"JSON Lines sink {self.name!r}: closing {str(self.path)!r} failed: {exc}",
                        sink=self.name,
                    ) from exc

    # --- I/O, called with the write lock held --------------------------------

    def _append(self, payload: bytes) -> None:
        fd = self._fd if self._fd is not None else self._open()
        size = os.fstat(fd).st_size
        data = self._with_tail_repair(fd, size, payload)
        if self.rotate_bytes is not None and size > 0 and size + len(data) > self.rotate_bytes:
            self._rotate()
            fd = self._open()
            size = os.fstat(fd).st_size
            data = self._with_tail_repair(fd, size, payload)
        try:
            _write_all(fd, data)
            if self.fsync:
                os.fsync(fd)
        except OSError:
            self._discard(fd, size)
            raise
        self._check_tail = False

    def _with_tail_repair(self, fd: int, size: int, payload: bytes) -> bytes:
        """Prefix a newline when a plain file ends in a torn record."""
        if (
            self._check_tail
            and size > 0
            and self.compression is Compression.NONE
            and os.pread(fd, 1, size - 1) != b"\n"
        ):
            return b"\n" + payload
        return payload

    def _open(self) -> int:
        flags = os.O_RDWR | os.O_APPEND | getattr(os, "O_CLOEXEC", 0)
        try:
            fd = os.open(self.path, flags | os.O_CREAT | os.O_EXCL, self.file_mode)
        except FileExistsError:
            fd = os.open(self.path, flags)
            try:
                self._check_existing(fd)
            except BaseException:
                os.close(fd)
                raise
        else:
            try:
                os.fchmod(fd, self.file_mode)
                if self.fsync:
                    _fsync_directory(self.path.parent)
            except BaseException:
                os.close(fd)
                raise
        self._fd = fd
        self._check_tail = True
        return fd

    def _check_existing(self, fd: int) -> None:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise OSError(errno.EINVAL, "not a regular file", str(self.path))
        if info.st_size == 0:
            return
        found = _sniff(os.pread(fd, len(_ZSTD_MAGIC), 0))
        if found is not None and found is not self.compression:
            raise PermanentSinkError(
                f"JSON Lines sink {self.name!r}: {str(self.path)!r} holds {found.value} data but "
                f"the sink writes {self.compression.value}; a file never mixes codecs, so move "
                f"the file away or choose another path",
                unhealthy=True,
                sink=self.name,
            )

    def _rotate(self) -> None:
        target = self.path.with_name(f"{self.path.name}.{_next_number(self.path)}")
        os.rename(self.path, target)
        fd, self._fd = self._fd, None
        if fd is not None:
            os.close(fd)
        if self.fsync:
            _fsync_directory(self.path.parent)

    def _discard(self, fd: int, size: int) -> None:
        """Undo a failed append and drop the descriptor, so the next write reopens."""
        # If truncating fails too, the reopen checks the tail and readers skip
        # the torn record; close releases the descriptor even when it errs.
        with contextlib.suppress(OSError):
            os.ftruncate(fd, size)
        self._fd = None
        with contextlib.suppress(OSError):
            os.close(fd)


def _check_path(path: str | os.PathLike[str]) -> Path:
    try:
        raw = os.fspath(path)
    except TypeError:
        raise ConfigError("path", f"expected a path, not {type(path).__name__}") from None
    if not isinstance(raw, str):
        raise ConfigError("path", f"expected a str path, not {type(raw).__name__}")
    if not raw:
        raise ConfigError("path", "the path is empty")
    resolved = Path(os.path.abspath(raw))
    if resolved.is_dir():
        raise ConfigError("path", f"{raw!r} is a directory; name a file inside it")
    if resolved.exists() and not resolved.is_file():
        raise ConfigError("path", f"{raw!r} is not a regular file")
    directory = resolved.parent
    if not directory.is_dir():
        problem = "is not a directory" if directory.exists() else "does not exist"
        raise ConfigError("path", f"the directory {str(directory)!r} of {raw!r} {problem}")
    return resolved


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        written = os.write(fd, view)
        view = view[written:]


def _fsync_directory(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _translate_os_error(exc: OSError, sink: str, path: Path) -> SinkError:
    """Map an `OSError` from file I/O to the sink error the lane acts on."""
    message = f"JSON Lines sink {sink!r}: writing {str(path)!r} failed: {exc}"
    if exc.errno in _PERMANENT_ERRNOS:
        return PermanentSinkError(message, unhealthy=True, sink=sink)
    return TransientSinkError(message, sink=sink)


def _sniff(head: bytes) -> Compression | None:
    """Say which codec a file starting with `head` holds; None when unsure or empty."""
    if head.startswith(_ZSTD_MAGIC):
        return Compression.ZSTD
    if head.startswith(_GZIP_MAGIC[:2]):
        return Compression.GZIP
    if head and head[:1] in _PLAIN_FIRST_BYTES:
        return Compression.NONE
    return None


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


def _next_number(path: Path) -> int:
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


# --- reading ------------------------------------------------------------------


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
            if head in _PLAIN_FIRST_BYTES:
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
            pos = 0
            while pos < size:
                member = _decode_member(data, pos, size)
                if isinstance(member, str):
                    resume, found = _next_member(data, pos + 1, size)
                    self._report(TornTail(str(file), pos, resume - pos, None, member))
                    if found is None:
                        return
                    pos, member = resume, found
                content, end = member
                yield from _member_events(file, pos, content)
                pos = end


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


def _decode_member(data: mmap.mmap, pos: int, size: int) -> tuple[bytes, int] | str:
    """Decompress the zstd frame or gzip member at `pos`.

    Returns:
        (content, end offset), or what is wrong with the bytes at `pos`.
    """
    head = data[pos : pos + len(_ZSTD_MAGIC)]
    decoder: Any
    failure: type[Exception]
    if head.startswith(_ZSTD_MAGIC):
        kind, failure = "zstd frame", zstandard.ZstdError
        decoder = zstandard.ZstdDecompressor().decompressobj()
    elif head.startswith(_GZIP_MAGIC):
        kind, failure = "gzip member", zlib.error
        decoder = zlib.decompressobj(16 + zlib.MAX_WBITS)
    else:
        return "not the start of a zstd frame or gzip member"
    parts: list[bytes] = []
    at = pos
    try:
        while at < size:
            chunk = data[at : at + _READ_CHUNK]
            parts.append(decoder.decompress(chunk))
            at += len(chunk)
            if decoder.eof:
                return b"".join(parts), at - len(decoder.unused_data)
    except failure as exc:
        return f"torn or corrupt {kind}: {exc}"
    return f"incomplete {kind} at the end of the file"


def _next_member(data: mmap.mmap, start: int, size: int) -> tuple[int, tuple[bytes, int] | None]:
    """Find the first intact frame or member at or after `start` (or the end of the file)."""
    while start < size:
        candidates = [
            at for at in (data.find(_ZSTD_MAGIC, start), data.find(_GZIP_MAGIC, start)) if at >= 0
        ]
        if not candidates:
            break
        at = min(candidates)
        member = _decode_member(data, at, size)
        if not isinstance(member, str):
            return at, member
        start = at + 1
    return size, None


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


# --- URLs -----------------------------------------------------------------------

_URL_OPTIONS = ("compression", "file_mode", "fsync", "name", "rotate_bytes")
_TRUE = frozenset({"1", "true", "yes", "on"})
_FALSE = frozenset({"0", "false", "no", "off"})


def _url_option_values(options: dict[str, str]) -> dict[str, Any]:
    values: dict[str, Any] = {}
    for key, text in options.items():
        if key == "rotate_bytes":
            try:
                values[key] = int(text)
            except ValueError:
                raise ConfigError(key, f"expected a whole number of bytes, not {text!r}") from None
        elif key == "fsync":
            flag = text.strip().lower()
            if flag not in _TRUE | _FALSE:
                raise ConfigError(key, f"expected true or false, not {text!r}")
            values[key] = flag in _TRUE
        elif key == "file_mode":
            digits = text.strip().lower().removeprefix("0o")
            try:
                values[key] = int(digits, 8)
            except ValueError:
                raise ConfigError(
                    key, f"expected octal permission bits like 600, not {text!r}"
                ) from None
        else:
            values[key] = text
    return values


def from_url(url: str, **overrides: Any) -> JsonLinesSink:
    """Build a `JsonLinesSink` from a ``jsonl:`` URL; keyword arguments win.

    Forms: ``jsonl:metrics.jsonl`` and ``jsonl:./out.jsonl.zst`` (relative to
    the working directory), ``jsonl:/var/log/m.jsonl`` and
    ``jsonl:///var/log/m.jsonl`` (absolute), ``jsonl:~/m.jsonl`` (home).
    Percent-escapes in the path are decoded (``%20``, and ``%3F`` for ``?``).
    Query options: ``compression`` (none, zstd, gzip), ``rotate_bytes``
    (an integer), ``fsync`` (true/false, 1/0, yes/no, on/off), ``file_mode``
    (octal, ``640`` or ``0o640``) and ``name``.

    Raises:
        ConfigError: If the URL is not a ``jsonl:`` URL, names no path or a
            remote host, or an option is unknown, repeated or invalid.
    """
    scheme, sep, rest = url.partition(":")
    if not sep or scheme.lower() != "jsonl":
        raise ConfigError("url", f"not a jsonl: URL: {url!r}")
    location, _, query = rest.partition("?")
    if location.startswith("//"):
        host, slash, tail = location[2:].partition("/")
        if host not in ("", "localhost"):
            raise ConfigError(
                "url",
                f"{url!r} names host {host!r}; a jsonl: URL names a local file "
                "(jsonl:PATH or jsonl:///absolute/path)",
            )
        location = slash + tail
    path = os.path.expanduser(urllib.parse.unquote(location))
    if not path:
        raise ConfigError("path", f"{url!r} names no file; use jsonl:PATH")
    kwargs = _url_option_values(parse_query(url, query, _URL_OPTIONS))
    unknown = sorted(set(overrides) - set(_URL_OPTIONS))
    if unknown:
        raise ConfigError(unknown[0], "unknown JsonLinesSink option")
    kwargs.update(overrides)
    return JsonLinesSink(path, **kwargs)
