"""A batch as the bytes a JSON Lines file gets: `BatchEncoder`.

The batch's shared JSON Lines encoding, newline-terminated, and then, with
compression, one complete zstd frame (content size and checksum: the
batch's own, `EventBatch.json_lines_zstd`, which the spool writes too) or
one gzip member per batch, so that a file is a concatenation of whole
frames.
"""

from __future__ import annotations

import threading

from metricstream.codecs.compression import Compression, compress
from metricstream.contract import EventBatch

__all__ = ["SUFFIX_CODECS", "BatchEncoder"]

SUFFIX_CODECS = {".zst": Compression.ZSTD, ".gz": Compression.GZIP}
"""The codec a file's suffix implies."""


class BatchEncoder:
    """Encode batches in one codec, chosen once: a file never mixes codecs.

    Args:
        codec: The codec, or None while none is chosen (the first batch
            encoded then fixes `Compression.NONE`).
    """

    def __init__(self, codec: Compression | None) -> None:
        self._codec = codec
        self._lock = threading.Lock()

    @property
    def codec(self) -> Compression:
        """The codec in use (`Compression.NONE` while none has been chosen)."""
        return Compression.NONE if self._codec is None else self._codec

    def choose(self, codec: Compression) -> None:
        """Adopt `codec` if no codec was chosen and no batch was encoded yet."""
        with self._lock:
            if self._codec is None:
                self._codec = codec

    def after_fork(self) -> None:
        """In a forked child: a new lock (a parent thread may hold it)."""
        self._lock = threading.Lock()

    def encode(self, batch: EventBatch) -> bytes:
        """Return the batch's JSON Lines, newline-terminated, in the codec; empty if empty.

        Raises:
            InvalidEventError: If an event has no fields.
        """
        data = batch.json_lines_bytes()
        if not data:
            return b""
        with self._lock:
            codec = self._codec
            if codec is None:
                codec = self._codec = Compression.NONE
        if codec is Compression.ZSTD:
            return batch.json_lines_zstd()
        if codec is Compression.GZIP:
            return compress(data + b"\n", Compression.GZIP)
        return data + b"\n"
