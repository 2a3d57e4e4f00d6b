"""What DuckDB reads: the intact bytes of each file, as files it can open.

A file that is intact from its first byte to its last is read where it is.
Otherwise its intact ranges (whole frames, whole lines) are copied, in the
kernel where it can, into a temporary file that holds nothing else, so DuckDB
never sees a damaged byte.

Files move while they are read: a writer rotates its current file (renames
it, and starts a new one under its name) at any moment. A copy is made from
the file that was checked or not at all (`FileChangedError`), and
`changed_since` tells whether a file read where it is changed meanwhile; the
callers then list and check the archive's files again.

DuckDB reads a compressed file on one thread, so when there are fewer
compressed files than threads, large ones are cut at frame boundaries into
as many pieces as there are threads.
"""

from __future__ import annotations

import bisect
import itertools
import os
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from pathlib import Path

from metricstream.codecs.compression import Compression
from metricstream.query._files import FileCheck
from metricstream.query._sql import Params, json_pointer

__all__ = [
    "CHANGE_RETRIES",
    "FileChangedError",
    "Source",
    "changed_since",
    "refuses_structs",
    "scan_sql",
    "write_sources",
]

CHANGE_RETRIES = 20
"""How many times a read starts again because files changed under it before it gives up."""

SPLIT_MIN_BYTES = 8 << 20
"""Compressed files at least this large are cut into pieces for parallel reads."""

_COPY_CHUNK = 1 << 24

# DuckDB's names for the codecs: "none" is read only since DuckDB 2.
_DUCKDB_COMPRESSION = {
    Compression.NONE: "uncompressed",
    Compression.GZIP: "gzip",
    Compression.ZSTD: "zstd",
}


class FileChangedError(Exception):
    """A file was replaced or cut short while it was read (rotated, say): list the files again."""


def changed_since(check: FileCheck) -> bool:
    """Whether the file at the check's path is no longer what was checked (moved, grown, gone)."""
    try:
        info = os.stat(check.path)
    except FileNotFoundError:
        return True
    return (info.st_dev, info.st_ino, info.st_size, info.st_mtime_ns) != check.identity


@dataclass(frozen=True)
class Source:
    """One file DuckDB reads, and the check it stands for.

    Attributes:
        path: The file DuckDB opens (the archive file or a temporary copy).
        codec: Its compression.
        check: The archive file it comes from.
    """

    path: str
    codec: Compression
    check: FileCheck


def write_sources(
    checks: list[FileCheck], directory: Path, threads: int, copied: Collection[str] = ()
) -> list[Source]:
    """Return the files DuckDB reads for `checks`, writing copies into `directory`.

    Args:
        checks: The checked archive files.
        directory: Where copies go (the caller removes it).
        threads: How many threads DuckDB runs.
        copied: Files whose intact bytes are copied even when the file is
            intact from its first byte to its last (files that grow).

    Raises:
        FileChangedError: If a file to copy is no longer the file checked.
        OSError: If a file cannot be read or a copy written.
    """
    readable = [check for check in checks if check.ranges and check.codec is not None]
    compressed = sum(1 for check in readable if check.codec is not Compression.NONE)
    sources: list[Source] = []
    for check in readable:
        assert check.codec is not None
        pieces = [check.ranges]
        if (
            check.codec is not Compression.NONE
            and compressed < threads
            and check.ranges[-1][1] - check.ranges[0][0] >= SPLIT_MIN_BYTES
        ):
            pieces = _split(check, threads)
        if len(pieces) == 1 and check.whole and check.path not in copied:
            sources.append(Source(check.path, check.codec, check))
            continue
        for piece in pieces:
            target = directory / f"{len(sources)}.part"
            _copy_ranges(check, target, piece)
            sources.append(Source(str(target), check.codec, check))
    return sources


def _split(check: FileCheck, parts: int) -> list[list[tuple[int, int]]]:
    """Cut a file's intact ranges at frame starts into about `parts` equal pieces."""
    low, high = check.ranges[0][0], check.ranges[-1][1]
    cuts = []
    for index in range(1, parts):
        at = bisect.bisect_left(check.starts, low + (high - low) * index // parts)
        if at < len(check.starts) and check.starts[at] not in cuts:
            cuts.append(check.starts[at])
    bounds = [0, *cuts, check.size]
    pieces = []
    for low, high in itertools.pairwise(bounds):
        piece = [(max(a, low), min(b, high)) for a, b in check.ranges if a < high and b > low]
        if piece:
            pieces.append(piece)
    return pieces


def _copy_ranges(check: FileCheck, target: Path, ranges: list[tuple[int, int]]) -> None:
    try:
        reader = os.open(check.path, os.O_RDONLY)
    except FileNotFoundError:
        raise FileChangedError(f"{check.path} is gone") from None
    try:
        info = os.fstat(reader)
        if (info.st_dev, info.st_ino) != check.identity[:2]:
            raise FileChangedError(f"{check.path} is another file than the one checked")
        writer = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            for start, end in ranges:
                _copy_range(reader, writer, start, end)
        finally:
            os.close(writer)
    finally:
        os.close(reader)


def _copy_range(reader: int, writer: int, start: int, end: int) -> None:
    offset = start
    try:
        while offset < end:
            copied = os.copy_file_range(reader, writer, end - offset, offset)
            if copied == 0:
                break
            offset += copied
    except (AttributeError, OSError):
        pass  # not supported here: the loop below copies what is left
    while offset < end:
        chunk = os.pread(reader, min(_COPY_CHUNK, end - offset), offset)
        if not chunk:
            raise FileChangedError(f"{end - offset} bytes went missing while copying a range")
        os.write(writer, chunk)
        offset += len(chunk)


def _quoted(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _struct(keys: Sequence[str], kind: str) -> str:
    return "STRUCT(" + ", ".join(f"{_quoted(key)} {kind}" for key in keys) + ")"


def _projection(keys: Sequence[str], params: Params, objects: bool) -> tuple[dict[str, str], str]:
    """The columns to read and the select list of ``m``, ``ts``, ``t<i>``, ``x<i>``.

    The tags and fields are read as structs of the keys only (only those
    members are converted). DuckDB's struct member names ignore case, and a
    struct refuses an object that names a member twice: keys that differ only
    in case, or `objects`, make the tags and fields read as JSON objects
    whose members are looked up by pointer.
    """
    columns = {"measurement": "VARCHAR", "timestamp_ns": "BIGINT"}
    parts = ["measurement AS m", "timestamp_ns AS ts"]
    if not keys:
        return columns, ", ".join(parts)
    if not objects and len({key.casefold() for key in keys}) == len(keys):
        columns["tags"] = _struct(keys, "VARCHAR")
        columns["fields"] = _struct(keys, "JSON")
        for index in range(len(keys)):
            parts.append(f"struct_extract_at(tags, {index + 1}) AS t{index}")
            parts.append(f"struct_extract_at(fields, {index + 1}) AS x{index}")
    else:
        columns["tags"] = columns["fields"] = "JSON"
        for index, key in enumerate(keys):
            pointer = params.add(json_pointer(key))
            parts.append(f"json_extract_string(tags, {pointer}) AS t{index}")
            parts.append(f"json_extract(fields, {pointer}) AS x{index}")
    return columns, ", ".join(parts)


def scan_sql(
    sources: list[Source],
    keys: Sequence[str],
    params: Params,
    *,
    filename: bool = False,
    objects: bool = False,
    raw: bool = False,
) -> str:
    """Return a SELECT of the records of `sources`: ``m``, ``ts``, ``t<i>``, ``x<i>``.

    Args:
        sources: What DuckDB reads.
        keys: The property keys, in column order (see `metricstream.query._sql`).
        params: The statement's parameters (the columns and paths are added).
        filename: Add the column ``filename``: the source each record came from.
        objects: Read the tags and fields as JSON objects (see `refuses_structs`).
        raw: Also select the tags and fields objects whole, as ``tags_json``
            and ``fields_json`` (they are read as JSON objects).
    """
    columns, projection = _projection(keys, params, objects or raw)
    if raw:
        columns["tags"] = columns["fields"] = "JSON"
        projection += ", tags AS tags_json, fields AS fields_json"
    if filename:
        projection += ", filename"
    selects = []
    wanted: str | None = None
    for codec in Compression:
        paths = [source.path for source in sources if source.codec is codec]
        if paths:
            wanted = wanted or params.add(columns)
            compression = params.add(_DUCKDB_COMPRESSION[codec])
            selects.append(
                f"SELECT {projection} FROM read_ndjson("
                f"{params.add(paths)}, columns = {wanted}, filename = {str(filename).lower()}, "
                f"compression = {compression}, format = 'newline_delimited')"
            )
    if not selects:
        empty = ", ".join(f"CAST(NULL AS {kind}) AS {name}" for name, kind in columns.items())
        if filename:
            empty += ", CAST(NULL AS VARCHAR) AS filename"
        return f"SELECT {projection} FROM (SELECT {empty}) WHERE false"
    return " UNION ALL ".join(selects)


def refuses_structs(exc: Exception) -> bool:
    """True when DuckDB failed to read a record as structs only: a tag or field named twice."""
    return "has duplicate key" in str(exc)
