"""`JsonLinesSink`: events appended to a local JSON Lines file (see the package doc)."""

from __future__ import annotations

import contextlib
import errno
import os
import stat
import threading
from pathlib import Path
from typing import Any

from metricstream._files import fsync_directory, write_all
from metricstream._log import RateLimitedLog
from metricstream._options import takes_options
from metricstream.codecs.compression import Compression
from metricstream.codecs.frames import ZSTD_MAGIC, sniff
from metricstream.contract import EventBatch
from metricstream.exceptions import (
    ConfigError,
    PermanentSinkError,
    SinkError,
)
from metricstream.sinks.jsonl.config import JsonLinesOptions, url_arguments
from metricstream.sinks.jsonl.encode import BatchEncoder
from metricstream.sinks.jsonl.errors import sink_error
from metricstream.sinks.jsonl.reader import next_number, rotated_path, split_name
from metricstream.sinks.jsonl.tail import TornTail, find_torn_tail, set_aside
from metricstream.sinks.jsonl.writer_lock import WriterLock

__all__ = ["JsonLinesSink", "from_url"]


class JsonLinesSink:
    """Append each batch to a JSON Lines file, optionally compressed and rotated.

    Takes the options of `JsonLinesOptions` (each documented there) as its
    parameters: ``JsonLinesSink(path, compression=None, rotate_bytes=None,
    fsync=False, file_mode=0o600, name="jsonl")``; they are kept, checked, as
    `options`.

    Raises:
        ConfigError: Naming the option, if one is invalid (a path that is a
            directory, not a regular file or in a missing directory; a codec
            that contradicts a ``.zst``/``.gz`` suffix...) or another sink
            writes the file already.

    Attributes:
        torn_tails: The torn tails this sink found at the end of a file it
            opened and moved aside to ``PATH.torn`` (see
            `metricstream.sinks.jsonl.tail`), oldest first.
    """

    @takes_options(JsonLinesOptions)
    def __init__(self, options: JsonLinesOptions) -> None:
        self.options = options
        self.name: str = options.name
        self.path: Path = Path(options.path)
        """The file written now (a forked child writes a file of its own)."""
        self._encoder = BatchEncoder(options.codec)
        self._write_lock = threading.Lock()
        self._fd: int | None = None
        self._check_tail = False
        self._closed = False
        self._warnings = RateLimitedLog()
        self.torn_tails: list[TornTail] = []
        try:
            self._writer_lock = WriterLock(self.path)
        except OSError as exc:
            raise ConfigError("path", f"cannot lock {str(self.path)!r} for writing: {exc}") from exc

    def after_fork(self) -> None:
        """In a forked child: write a file of the child's own, under its own lock.

        The child's file is the parent's with ``pid`` and the child's pid
        before its ending (``events.jsonl.zst`` becomes
        ``events.pid4242.jsonl.zst``), so parent and children never append
        to or rotate the same file, and a child's file is never taken for a
        rotated file of the parent's series (``events.7.jsonl.zst``). Locks
        and the open file a parent thread may have held are replaced.
        """
        self._encoder.after_fork()
        self._write_lock = threading.Lock()
        self._warnings = RateLimitedLog()
        self._writer_lock.forget_in_child()
        fd, self._fd = self._fd, None
        if fd is not None:
            with contextlib.suppress(OSError):
                os.close(fd)
        stem, ending = split_name(self.path.name)
        self.path = self.path.with_name(f"{stem}.pid{os.getpid()}{ending}")
        if not self._closed:
            self._writer_lock = WriterLock(self.path)

    def __repr__(self) -> str:
        return (
            f"JsonLinesSink(name={self.name!r}, path={str(self.path)!r}, "
            f"compression={self.compression.value!r}, rotate_bytes={self.options.rotate_bytes!r})"
        )

    @property
    def compression(self) -> Compression:
        """The codec in use (`Compression.NONE` while none has been chosen)."""
        return self._encoder.codec

    def inherit_compression(self, compression: Compression | str | None) -> None:
        """Adopt the streamer's codec when the user chose none.

        Has no effect when ``compression=`` was given, the path ends in
        ``.zst``/``.gz``, or a batch was already prepared (a file never mixes
        codecs). ``gzip`` writes one gzip member per batch.

        Raises:
            ConfigError: If the codec name is unknown.
        """
        self._encoder.choose(Compression.from_str(compression))

    def prepare(self, batch: EventBatch) -> bytes:
        """Encode (and compress) the batch into the bytes `write` appends.

        Returns:
            The batch's JSON Lines, newline-terminated; compressed, one zstd
            frame or gzip member. Empty for an empty batch.

        Raises:
            InvalidEventError: If an event has no fields.
        """
        return self._encoder.encode(batch)

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
                raise sink_error(exc, self.name, self.path) from exc

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
                found = sniff(handle.read(len(ZSTD_MAGIC)))
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
            self._writer_lock.release()
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
        fd = self._fd
        if fd is not None:
            info = os.fstat(fd)
            if not self._still_at_path(info):
                self._reopen_after_removal(fd)
                fd = None
        if fd is None:
            fd = self._open()
            info = os.fstat(fd)
        size = info.st_size
        data = self._with_tail_repair(fd, size, payload)
        rotate_bytes = self.options.rotate_bytes
        if rotate_bytes is not None and size > 0 and size + len(data) > rotate_bytes:
            self._rotate()
            fd = self._open()
            size = os.fstat(fd).st_size
            data = self._with_tail_repair(fd, size, payload)
        try:
            write_all(fd, data)
            if self.options.fsync:
                os.fsync(fd)
        except OSError:
            self._discard(fd, size)
            raise
        self._check_tail = False

    def _still_at_path(self, info: os.stat_result) -> bool:
        """Tell whether the open file is still the one at ``path`` (not removed or replaced)."""
        try:
            current = os.stat(self.path)
        except FileNotFoundError:
            return False
        return (current.st_ino, current.st_dev) == (info.st_ino, info.st_dev)

    def _reopen_after_removal(self, fd: int) -> None:
        """Drop the descriptor of a file that was deleted or renamed away under us."""
        self._fd = None
        with contextlib.suppress(OSError):
            os.close(fd)
        self._warnings.warning(
            "reopen",
            "%r was removed or replaced while sink %r had it open; "
            "writing to a new file at that path",
            str(self.path),
            self.name,
        )

    def _with_tail_repair(self, fd: int, size: int, payload: bytes) -> bytes:
        """Prefix a newline when a plain file ends in a record without one."""
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
            fd = os.open(self.path, flags | os.O_CREAT | os.O_EXCL, self.options.file_mode)
        except FileExistsError:
            fd = os.open(self.path, flags)
            try:
                self._check_existing(fd)
                self._set_aside_torn_tail(fd)
            except BaseException:
                os.close(fd)
                raise
        else:
            try:
                os.fchmod(fd, self.options.file_mode)
                if self.options.fsync:
                    fsync_directory(self.path.parent)
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
        found = sniff(os.pread(fd, len(ZSTD_MAGIC), 0))
        if found is not None and found is not self.compression:
            raise PermanentSinkError(
                f"JSON Lines sink {self.name!r}: {str(self.path)!r} holds {found.value} data but "
                f"the sink writes {self.compression.value}; a file never mixes codecs, so move "
                f"the file away or choose another path",
                unhealthy=True,
                sink=self.name,
            )

    def _set_aside_torn_tail(self, fd: int) -> None:
        """Move a torn record or frame at the end of the file to ``PATH.torn`` (see `tail`)."""
        torn = find_torn_tail(fd, self.path, self.compression)
        if torn is None:
            return
        aside = set_aside(
            fd, self.path, torn, file_mode=self.options.file_mode, fsync=self.options.fsync
        )
        self.torn_tails.append(torn)
        self._warnings.warning(
            "torn",
            "%r ended in a %s (%d bytes at byte %d); moved them to %r, so that "
            "the file is whole for every reader",
            str(self.path),
            torn.detail.removesuffix(" at the end of the file"),
            torn.length,
            torn.offset,
            str(aside),
        )

    def _rotate(self) -> None:
        target = rotated_path(self.path, next_number(self.path))
        os.rename(self.path, target)
        fd, self._fd = self._fd, None
        if fd is not None:
            os.close(fd)
        if self.options.fsync:
            fsync_directory(self.path.parent)

    def _discard(self, fd: int, size: int) -> None:
        """Undo a failed append and drop the descriptor, so the next write reopens."""
        # If truncating fails too, the reopen checks the tail and readers skip
        # the torn record; close releases the descriptor even when it errs.
        with contextlib.suppress(OSError):
            os.ftruncate(fd, size)
        self._fd = None
        with contextlib.suppress(OSError):
            os.close(fd)


def from_url(url: str, **overrides: Any) -> JsonLinesSink:
    """Build a `JsonLinesSink` from a ``jsonl:`` URL (see `url_arguments`); keyword arguments win.

    Raises:
        ConfigError: If the URL or an option is invalid.
    """
    return JsonLinesSink(**url_arguments(url, overrides))
