"""JSON Lines files: `JsonLinesSink` appends events, `read_events` reads them back.

File format
    One JSON object per event and line (see `metricstream.codecs.json`). With
    compression, each batch is one complete zstd frame (with content size and
    checksum) or one gzip member holding that batch's lines, and a file is
    the concatenation of these, so ``zstdcat``/``zcat`` print the whole file.

Crash safety
    A crash can cut only the batch being written. When a sink opens a file
    that ends in such a torn record (a plain line cut short) or frame, it
    moves those bytes to ``PATH.torn`` and truncates the file where its last
    intact record or frame ends (`tail`), so the file stays a valid series
    that ``zstd -t``, ``zstdcat`` and DuckDB read whole; the sink records it
    in ``torn_tails`` and logs it. A plain last line that lacks only its
    newline is kept and gets one before the next append. A ``write`` that
    fails truncates the file back to where it was, so the retry neither
    duplicates nor fuses records. `read_events` skips what a crash tore in
    a file no sink has opened since, and reports it (`TornTail`).

Rotation
    With ``rotate_bytes``, a write that would take the file past that size
    first renames it to the next free number, placed before the ending that
    says what the file holds: ``metrics.jsonl.zst`` becomes
    ``metrics.1.jsonl.zst``, later ``metrics.2.jsonl.zst``... (`rotated_path`),
    so every file of a series ends in ``.jsonl.zst`` and other tools
    recognise it. Higher numbers are newer, each rotation is one atomic
    rename, and the series in order is ``.1, .2, ..., .N`` then the current
    file (`series_files`). Files rotated under the earlier names,
    ``metrics.jsonl.zst.1``, still belong to their series, in their numeric
    place, and new rotations continue their numbering. A single batch
    larger than ``rotate_bytes`` still goes into one file. No file is ever
    deleted.

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
- `reader`: `read_events`, `JsonLinesReader`, `series_files` and the names
  of rotated files;
- `tail`: a torn tail found at open, moved aside;
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
