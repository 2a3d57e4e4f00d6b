"""Concatenated compressed frames: what a compressed JSON Lines file is made of.

A compressed file is a sequence of complete zstd frames (with content size
and checksum) or gzip members, one per batch. `iter_frames` walks such a
sequence and yields each intact frame's content, and, for bytes that are not
an intact frame (a write torn by a crash, a flipped bit), one `Damage`
record, resuming at the next frame that is intact. `sniff` tells what a file
holds from its first bytes.
"""

from __future__ import annotations

import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, Protocol

import zstandard

from metricstream.codecs.compression import Compression

__all__ = [
    "GZIP_MAGIC",
    "PLAIN_FIRST_BYTES",
    "ZSTD_MAGIC",
    "Damage",
    "Frame",
    "frame_at",
    "intact_end",
    "iter_frames",
    "sniff",
]

ZSTD_MAGIC = b"\x28\xb5\x2f\xfd"
"""The first four bytes of every zstd frame."""
GZIP_MAGIC = b"\x1f\x8b\x08"
"""The first three bytes of every gzip member (deflate)."""
PLAIN_FIRST_BYTES = b"{ \t\r\n"
"""Bytes a plain JSON Lines file may start with."""

_READ_CHUNK = 1 << 20


class Buffer(Protocol):
    """Bytes that can be sliced and searched (``bytes``, ``mmap.mmap``)."""

    def __getitem__(self, index: slice, /) -> bytes: ...

    def find(self, sub: bytes, start: int = ..., /) -> int: ...

    def rfind(self, sub: bytes, start: int = ..., end: int = ..., /) -> int: ...


@dataclass(frozen=True)
class Frame:
    """One intact frame or member.

    Attributes:
        offset: Where it starts, in bytes from the start of the data.
        end: Where it ends (exclusive).
        content: Its decompressed content.
    """

    offset: int
    end: int
    content: bytes


@dataclass(frozen=True)
class Damage:
    """Bytes that are not an intact frame, up to the next one that is.

    Attributes:
        offset: Where the damage starts.
        length: How many bytes were skipped.
        detail: What was wrong, in words.
    """

    offset: int
    length: int
    detail: str


def sniff(head: bytes) -> Compression | None:
    """Say which codec data starting with `head` holds; None when unsure or empty."""
    if head.startswith(ZSTD_MAGIC):
        return Compression.ZSTD
    if head.startswith(GZIP_MAGIC[:2]):
        return Compression.GZIP
    if head and head[:1] in PLAIN_FIRST_BYTES:
        return Compression.NONE
    return None


def iter_frames(data: Buffer, size: int, start: int = 0) -> Iterator[Frame | Damage]:
    """Yield the intact frames of `data[start:size]` in order, and the damage between them.

    Args:
        data: The bytes (an ``mmap`` works without copying the file).
        size: How many bytes of `data` to read.
        start: Where to begin.

    Yields:
        A `Frame` for each intact frame, a `Damage` for each run of bytes
        that is not one (a torn tail is one last `Damage`).
    """
    pos = start
    while pos < size:
        member = _decode_member(data, pos, size)
        if isinstance(member, str):
            resume, found = _next_member(data, pos + 1, size)
            yield Damage(pos, resume - pos, member)
            if found is None:
                return
            pos = resume
            member = found
        content, end = member
        yield Frame(pos, end, content)
        pos = end


def frame_at(data: Buffer, pos: int, size: int) -> Frame | None:
    """The intact frame or member starting at `pos` (ending by `size`), or None."""
    member = _decode_member(data, pos, size)
    return None if isinstance(member, str) else Frame(pos, member[1], member[0])


def intact_end(data: Buffer, size: int, codec: Compression) -> int:
    """Where the last intact frame (or member) of compressed data ends; 0 if there is none.

    Searches back from the end for the start of an intact frame, so that
    only the tail is read: whatever follows the end it returns is not an
    intact frame (a write torn by a crash).

    Args:
        data: The bytes (an ``mmap`` works without copying the file).
        size: How many bytes of `data` to consider.
        codec: `Compression.ZSTD` or `Compression.GZIP`.
    """
    magic = ZSTD_MAGIC if codec is Compression.ZSTD else GZIP_MAGIC
    before = size
    while (at := data.rfind(magic, 0, before)) >= 0:
        frame = frame_at(data, at, size)
        if frame is not None:
            return frame.end
        before = at + len(magic) - 1
    return 0


def _decode_member(data: Buffer, pos: int, size: int) -> tuple[bytes, int] | str:
    """Decompress the zstd frame or gzip member at `pos`.

    Returns:
        (content, end offset), or what is wrong with the bytes at `pos`.
    """
    head = data[pos : pos + len(ZSTD_MAGIC)]
    decoder: Any
    failure: type[Exception]
    if head.startswith(ZSTD_MAGIC):
        kind, failure = "zstd frame", zstandard.ZstdError
        decoder = zstandard.ZstdDecompressor().decompressobj()
    elif head.startswith(GZIP_MAGIC):
        kind, failure = "gzip member", zlib.error
        decoder = zlib.decompressobj(16 + zlib.MAX_WBITS)
    else:
        return "not the start of a zstd frame or gzip member"
    parts: list[bytes] = []
    at = pos
    try:
        while at < size:
            chunk = data[at : min(at + _READ_CHUNK, size)]
            parts.append(decoder.decompress(chunk))
            at += len(chunk)
            if decoder.eof:
                return b"".join(parts), at - len(decoder.unused_data)
    except failure as exc:
        return f"torn or corrupt {kind}: {exc}"
    return f"incomplete {kind} at the end of the file"


def _next_member(data: Buffer, start: int, size: int) -> tuple[int, tuple[bytes, int] | None]:
    """Find the first intact frame or member at or after `start` (or the end)."""
    while start < size:
        candidates = [
            at
            for at in (data.find(ZSTD_MAGIC, start), data.find(GZIP_MAGIC, start))
            if 0 <= at < size
        ]
        if not candidates:
            break
        at = min(candidates)
        member = _decode_member(data, at, size)
        if not isinstance(member, str):
            return at, member
        start = at + 1
    return size, None
