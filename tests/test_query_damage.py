"""Damaged archives: torn and corrupt frames and lines are skipped and reported, never read."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

pytest.importorskip("duckdb")

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import metricstream as ms
from metricstream.query import Archive, Skipped
from metricstream.sinks.jsonl import JsonLinesReader
from tests.test_query_reference import (
    both_ways,  # noqa: F401  (a fixture: every test with and without the cache)
    select,
    unique,
    write_archive,
)

Event = ms.MetricEvent


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


def reference(path: Path) -> tuple[list[Event], list[Skipped]]:
    """What the JSON Lines reader reads and skips: the independent answer."""
    reader = JsonLinesReader(path)
    events = list(reader)
    return events, [Skipped(t.path, t.offset, t.length, t.detail) for t in reader.torn_tails]


def assert_same(archive: Archive, path: Path) -> tuple[Skipped, ...]:
    events, torn = reference(path)
    counted = archive.events().count()
    assert counted.value == len(events)
    assert [(s.path, s.offset, s.length) for s in counted.skipped] == [
        (s.path, s.offset, s.length) for s in torn
    ]
    assert archive.events("view").unique("user").value == unique(select(events, "view"), ["user"])
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
        with open(path, "ab") as handle:
            handle.write(b"\x00garbage\xff" * 10)
        write_archive(path, batches(2, offset=2))
        assert_same(Archive(path), path)
        gz = tmp_path / "e.jsonl.gz"
        write_archive(gz, batches(3), compression="gzip")
        with open(gz, "r+b") as handle:
            handle.truncate(gz.stat().st_size - 10)
        assert len(assert_same(Archive(gz), gz)) == 1

    def test_a_rotated_series_with_damage_in_an_old_file(self, tmp_path: Path) -> None:
        path = tmp_path / "e.jsonl.zst"
        write_archive(path, batches(8), rotate_bytes=1200)
        old = tmp_path / "e.jsonl.zst.1"
        with open(old, "r+b") as handle:
            handle.truncate(old.stat().st_size - 7)
        archive = Archive(path)
        assert len(archive.files) > 2
        skipped = assert_same(archive, path)
        assert [s.path for s in skipped] == [str(old)]


class TestPlainDamage:
    """Plain archives: a torn line in the middle (terminated by the sink) and at the end."""

    def test_torn_lines_are_skipped_and_reported(self, tmp_path: Path) -> None:
        path = tmp_path / "e.jsonl"
        write_archive(path, batches(2), compression="none")
        with open(path, "ab") as handle:
            handle.write(b'{"measurement":"view","tags":{"user":"torn"')
        write_archive(path, batches(2, offset=2), compression="none")
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
        assert (tmp_path / "e.jsonl.zst.1").exists()
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
            try:
                events, torn = reference(path)
            except ms.InvalidEventError:
                return  # a flip inside a record's text: the reader refuses it too
            archive = Archive(path, threads=2)
            found = archive.events().count()
            assert found.value == len(events)
            assert sum(s.length for s in found.skipped) == sum(s.length for s in torn)
            archive.close()
