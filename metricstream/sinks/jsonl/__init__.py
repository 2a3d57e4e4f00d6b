"""JSON Lines files: `JsonLinesSink` appends events, `read_events` reads them back.

File format
    One JSON object per event and line (see `metricstream.codecs.json`). With
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
    ``write`` maps `OSError` in one place (`errors.sink_error`): errors an
    operator must fix (``EACCES``, ``EPERM``, ``EROFS``, ``EISDIR``,
    ``ENOTDIR``, ``ENAMETOOLONG``, ``ELOOP``, ``EINVAL``, ``EFBIG``) raise
    `PermanentSinkError` marked unhealthy; everything else (``ENOSPC``,
    ``EDQUOT``, ``EIO``, ``ENOENT``, ``EMFILE``...) raises `TransientSinkError`,
    so the lane retries once space, the directory or descriptors come back.

One process writes a given file; readers may run at any time (a record
being written at that moment shows up as a torn tail).

The package, by role (the same files as every sink folder):

- `config`: the options, the ``jsonl:`` URL scheme and how a URL reads;
- `sink`: `JsonLinesSink` (append, rotate, fork, close) and `from_url`;
- `encode`: a batch as the bytes a file gets (plain, zstd frame, gzip member);
- `errors`: file-system errors translated into sink errors, by one table;
- `reader`: `read_events`, `JsonLinesReader`, `series_files`;
- `writer_lock`: one writer per file (an advisory lock beside it).
"""

from __future__ import annotations

from metricstream.sinks.jsonl.config import SCHEMES, JsonLinesOptions
from metricstream.sinks.jsonl.reader import JsonLinesReader, TornTail, read_events, series_files
from metricstream.sinks.jsonl.sink import JsonLinesSink, from_url

__all__ = [
    "SCHEMES",
    "JsonLinesOptions",
    "JsonLinesReader",
    "JsonLinesSink",
    "TornTail",
    "from_url",
    "read_events",
    "series_files",
]
