"""Damaged archives: torn and corrupt frames and lines are skipped and reported, never read.

The answer each query is compared with comes from `read_archive`, a reader
written here with nothing of metricstream's: ``zstandard`` and ``zlib``
frame by frame, plain ``json`` line by line.
"""

from __future__ import annotations

import json
import os
import re
import zlib
from pathlib import Path
from typing import Any

import zstandard
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import metricstream as ms
from tests.servers import require_module

require_module("duckdb", "metricstream.query runs on DuckDB (the query extra)")

from metricstream.query import Archive, Skipped  # noqa: E402
from tests.test_query_reference import (  # noqa: E402
    append_as_written_before,
    both_ways,  # noqa: F401  (a fixture: every test with and without the cache)
    write_archive,
)

Event = ms.MetricEvent
ZSTD_MAGIC, GZIP_MAGIC = b"\x28\xb5\x2f\xfd", b"\x1f\x8b\x08"


def batches(count: int = 6, size: int = 50, offset: int = 0) -> list[list[Event]]:
    return [
        [
            Event(
                ["view", "cart"][i % 2],
                tags={"user": f"u{(b * size + i) % 37}", "b": str(b + offset)},
                fields={"n": i},
                timestamp_ns=1_000 + b * size + i,
                before_2001=True,
            )
            for i in range(size)
        ]
        for b in range(count)
    ]


def series(path: Path) -> list[Path]:
    """``e.1.jsonl.zst``, ``e.2.jsonl.zst``, ... (oldest first), then ``e.jsonl.zst``."""
    stem, _, ending = path.name.partition(".")
    numbered = re.compile(re.escape(stem) + r"\.([1-9][0-9]*)\." + re.escape(ending))
    rotated = sorted(
        (int(match[1]), file)
        for file in path.parent.iterdir()
        if (match := numbered.fullmatch(file.name))
    )
    return [file for _, file in rotated] + ([path] if path.exists() else [])


def member_at(data: bytes, pos: int) -> tuple[bytes, int] | None:
    """The content and end of a complete, intact zstd frame or gzip member at `pos`."""
    decoder: Any
    if data.startswith(ZSTD_MAGIC, pos):
        decoder, failure = zstandard.ZstdDecompressor().decompressobj(), zstandard.ZstdError
    elif data.startswith(GZIP_MAGIC, pos):
        decoder, failure = zlib.decompressobj(16 + zlib.MAX_WBITS), zlib.error
    else:
        return None
    try:
        content = decoder.decompress(data[pos:])
    except failure:
        return None
    return (content, len(data) - len(decoder.unused_data)) if decoder.eof else None


def frames(data: bytes) -> tuple[list[bytes], list[tuple[int, int]]]:
    """The contents of the intact frames, and (offset, length) of the bytes between them."""
    contents, damage, pos, damaged_from = [], [], 0, None
    while pos < len(data):
        found = member_at(data, pos)
        if found is None:
            damaged_from = pos if damaged_from is None else damaged_from
            starts = [data.find(magic, pos + 1) for magic in (ZSTD_MAGIC, GZIP_MAGIC)]
            pos = min([at for at in starts if at >= 0], default=len(data))
            continue
        if damaged_from is not None:
            damage.append((damaged_from, pos - damaged_from))
            damaged_from = None
        contents.append(found[0])
        pos = found[1]
    if damaged_from is not None:
        damage.append((damaged_from, len(data) - damaged_from))
    return contents, damage


def read_archive(path: Path) -> tuple[list[dict[str, Any]], list[tuple[str, int, int]]]:
    """Every event of an archive as plain JSON, and every run of bytes skipped.

    A plain file is read line by line: a line that is not JSON is skipped.
    A compressed file is read frame by frame: bytes that are not a complete,
    intact frame are skipped up to the next one that is.
    """
    events: list[dict[str, Any]] = []
    skipped: list[tuple[str, int, int]] = []
    for file in series(path):
        data = file.read_bytes()
        if data[:1] and data[:1] in b"{ \t\r\n":
            pos = 0
            for raw in data.split(b"\n"):
                end = pos + len(raw) + (1 if pos + len(raw) < len(data) else 0)
                if raw.strip():
                    try:
                        events.append(json.loads(raw))
                    except ValueError:
                        skipped.append((str(file), pos, end - pos))
                pos = end
        elif data:
            contents, damage = frames(data)
            events += [
                json.loads(line)
                for content in contents
                for line in content.split(b"\n")
                if line.strip()
            ]
            skipped += [(str(file), offset, length) for offset, length in damage]
    return events, skipped


def unique_users_of_views(events: list[dict[str, Any]]) -> int:
    return len(
        {e["tags"]["user"] for e in events if e["measurement"] == "view" and "user" in e["tags"]}
    )


def assert_same(archive: Archive, path: Path) -> tuple[Skipped, ...]:
    events, skipped = read_archive(path)
    counted = archive.events().count()
    assert counted.value == len(events)
    assert [(s.path, s.offset, s.length) for s in counted.skipped] == skipped
    assert archive.events("view").unique("user").value == unique_users_of_views(events)
    return counted.skipped


def frame_offsets(path: Path) -> list[int]:
    data = path.read_bytes()
    found, at = [], data.find(b"\x28\xb5\x2f\xfd")
    while at >= 0:
        found.append(at)
        at = data.find(b"\x28\xb5\x2f\xfd", at + 1)
    return found


class TestCompressedDamage:
    """zstd and gzip archives with torn tails, flipped bits and garbage."""

    def test_a_torn_zstd_tail_is_skipped_and_reported(self, tmp_path: Path) -> None:
        path = tmp_path / "e.jsonl.zst"
        write_archive(path, batches())
        size = path.stat().st_size
        with open(path, "r+b") as handle:
            handle.truncate(size - 25)
        skipped = assert_same(Archive(path), path)
        assert len(skipped) == 1
        assert skipped[0].offset == frame_offsets(path)[-1]
        assert "incomplete zstd frame" in skipped[0].reason

    def test_a_corrupt_frame_in_the_middle_is_found_by_the_checksum(self, tmp_path: Path) -> None:
        path = tmp_path / "e.jsonl.zst"
        write_archive(path, batches())
        starts = frame_offsets(path)
        data = bytearray(path.read_bytes())
        data[(starts[2] + starts[3]) // 2] ^= 0x40
        path.write_bytes(bytes(data))
        archive = Archive(path)
        skipped = assert_same(archive, path)
        assert [(s.offset, s.length) for s in skipped] == [(starts[2], starts[3] - starts[2])]
        batches_read = {row.values[0] for row in archive.events().breakdown("b", n=10).value}
        assert batches_read == {"0", "1", "3", "4", "5"}

    def test_garbage_between_frames_and_a_torn_gzip_member(self, tmp_path: Path) -> None:
        path = tmp_path / "e.jsonl.zst"
        write_archive(path, batches(2))
        garbage = b"\x00garbage\xff" * 10
        with open(path, "ab") as handle:
            handle.write(garbage)
        # Not through a sink, which would move the garbage aside as a torn tail.
        append_as_written_before(path, batches(2, offset=2))
        assert [s.length for s in assert_same(Archive(path), path)] == [len(garbage)]
        gz = tmp_path / "e.jsonl.gz"
        write_archive(gz, batches(3), compression="gzip")
        with open(gz, "r+b") as handle:
            handle.truncate(gz.stat().st_size - 10)
        assert len(assert_same(Archive(gz), gz)) == 1

    def test_a_rotated_series_with_damage_in_an_old_file(self, tmp_path: Path) -> None:
        path = tmp_path / "e.jsonl.zst"
        write_archive(path, batches(8), rotate_bytes=1200)
        old = tmp_path / "e.1.jsonl.zst"
        with open(old, "r+b") as handle:
            handle.truncate(old.stat().st_size - 7)
        archive = Archive(path)
        assert len(archive.files) > 2
        skipped = assert_same(archive, path)
        assert [s.path for s in skipped] == [str(old)]


class TestPlainDamage:
    """Plain archives: a torn line in the middle (as earlier versions left it) and at the end."""

    def test_torn_lines_are_skipped_and_reported(self, tmp_path: Path) -> None:
        path = tmp_path / "e.jsonl"
        write_archive(path, batches(2), compression="none")
        with open(path, "ab") as handle:
            handle.write(b'{"measurement":"view","tags":{"user":"torn"\n')
        append_as_written_before(path, batches(2, offset=2), compression="none")
        with open(path, "ab") as handle:
            handle.write(b'{"measurement":"cart","fie')
        archive = Archive(path)
        skipped = assert_same(archive, path)
        assert len(skipped) == 2
        assert "line" in skipped[0].reason
        assert "at the end of the file" in skipped[1].reason

    def test_a_complete_last_line_without_a_newline_counts(self, tmp_path: Path) -> None:
        path = tmp_path / "e.jsonl"
        write_archive(path, batches(1), compression="none")
        path.write_bytes(path.read_bytes().rstrip(b"\n"))
        assert assert_same(Archive(path), path) == ()


class TestGrowingArchives:
    """A file that grows is checked again from where the last check stopped."""

    def test_appends_and_rotations_show_up_in_the_next_query(self, tmp_path: Path) -> None:
        path = tmp_path / "e.jsonl.zst"
        write_archive(path, batches(2))
        archive = Archive(path)
        assert archive.events().count().value == 100
        with open(path, "ab") as handle:
            handle.write(b"\x28\xb5\x2f\xfd\x00")  # a frame being written right now
        assert len(archive.events().count().skipped) == 1
        with open(path, "r+b") as handle:
            handle.truncate(path.stat().st_size - 5)
        write_archive(path, batches(2, offset=2), rotate_bytes=path.stat().st_size + 10)
        assert (tmp_path / "e.1.jsonl.zst").exists()
        found = archive.events().count()
        assert (found.value, found.skipped) == (200, ())
        assert archive.check() == ()

    def test_a_replaced_file_is_checked_from_the_start(self, tmp_path: Path) -> None:
        path = tmp_path / "e.jsonl.zst"
        write_archive(path, batches(3))
        archive = Archive(path)
        assert archive.events().count().value == 150
        os.unlink(path)
        write_archive(path, batches(1))
        assert archive.events().count().value == 50


class TestGeneratedDamage:
    """Generated archives cut or flipped anywhere: the answer is the reader's."""

    @settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.too_slow])
    @given(
        compression=st.sampled_from(["zstd", "none"]),
        cut=st.floats(0.0, 1.0),
        flip=st.one_of(st.none(), st.floats(0.0, 1.0)),
    )
    def test_damage_anywhere(self, compression: str, cut: float, flip: float | None) -> None:
        import tempfile

        with tempfile.TemporaryDirectory() as directory:
            path = Path(directory) / "e.jsonl"
            write_archive(path, batches(4, size=20), compression=compression)
            data = bytearray(path.read_bytes())
            if flip is not None and compression == "zstd":
                data[int(flip * (len(data) - 1))] ^= 0x01
            data = data[: max(1, int(cut * len(data)))]
            path.write_bytes(bytes(data))
            events, skipped = read_archive(path)
            archive = Archive(path, threads=2)
            found = archive.events().count()
            assert found.value == len(events)
            assert [(s.path, s.offset, s.length) for s in found.skipped] == skipped
            archive.close()
