"""`Compression`: the codecs a sink may apply to its payloads."""

from __future__ import annotations

import enum
import gzip
import threading

import zstandard

from metricstream.exceptions import ConfigError

__all__ = ["ZSTD_FRAME_LEVEL", "Compression", "compress", "decompress", "zstd_frame"]

ZSTD_FRAME_LEVEL = 1
"""The zstd level of `zstd_frame`: the fastest, on the path of every batch."""

_frames = threading.local()


class Compression(str, enum.Enum):
    """A payload compression codec.

    The streamer's ``compression`` option is the default for every sink that
    compresses; a sink's own setting wins. Each sink maps the codec onto what
    its destination supports (InfluxDB only accepts gzip, so ``zstd`` means
    gzip there).
    """

    NONE = "none"
    ZSTD = "zstd"
    GZIP = "gzip"

    @classmethod
    def from_str(cls, value: str | Compression | None) -> Compression:
        """Parse ``none``, ``zstd`` (or ``zst``), ``gzip`` (or ``gz``); None means none.

        Raises:
            ConfigError: If the name is unknown.
        """
        if value is None:
            return cls.NONE
        if isinstance(value, Compression):
            return value
        if not isinstance(value, str):
            raise ConfigError("compression", f"expected a string, not {type(value).__name__}")
        name = value.strip().lower()
        aliases = {
            "": cls.NONE,
            "none": cls.NONE,
            "off": cls.NONE,
            "zstd": cls.ZSTD,
            "zst": cls.ZSTD,
            "gzip": cls.GZIP,
            "gz": cls.GZIP,
        }
        try:
            return aliases[name]
        except KeyError:
            raise ConfigError(
                "compression", f"unknown compression {value!r}; use none, zstd or gzip"
            ) from None

    def __str__(self) -> str:
        return self.value


def compress(data: bytes, compression: Compression, level: int | None = None) -> bytes:
    """Compress `data` with `compression` (one complete frame or member)."""
    if compression is Compression.ZSTD:
        return zstandard.ZstdCompressor(level=3 if level is None else level).compress(data)
    if compression is Compression.GZIP:
        return gzip.compress(data, compresslevel=1 if level is None else level, mtime=0)
    return data


def zstd_frame(data: bytes) -> bytes:
    """One complete zstd frame of `data`, with its content size and checksum.

    The frame a batch's JSON Lines are written in, to a JSON Lines file and
    to the spool alike (`metricstream.contract.EventBatch.json_lines_zstd`).
    Each thread compresses with a compressor of its own: one must not be
    used by two threads at once.
    """
    compressor: zstandard.ZstdCompressor | None = getattr(_frames, "compressor", None)
    if compressor is None:
        compressor = _frames.compressor = zstandard.ZstdCompressor(
            level=ZSTD_FRAME_LEVEL, write_checksum=True, write_content_size=True
        )
    frame: bytes = compressor.compress(data)
    return frame


def decompress(data: bytes, compression: Compression) -> bytes:
    """Undo `compress`."""
    if compression is Compression.ZSTD:
        return zstandard.ZstdDecompressor().decompressobj().decompress(data)
    if compression is Compression.GZIP:
        return gzip.decompress(data)
    return data
