"""JsonLinesSink and read_events: real files, exact bytes, crashes, rotation, URLs."""

from __future__ import annotations

import errno
import gzip
import io
import json
import logging
import os
import resource
import shutil
import signal
import stat
import subprocess
import sys
import zlib
from collections.abc import Iterator
from pathlib import Path

import pytest
import zstandard

from metricstream import EventBatch, MetricEvent, UInt
from metricstream.codecs.compression import Compression
from metricstream.exceptions import (
    ConfigError,
    InvalidEventError,
    PermanentSinkError,
    SchemaVersionError,
    SinkError,
    TransientSinkError,
)
from metricstream.sinks import JsonLinesSink, Sink, sink_from_url
from metricstream.sinks.jsonl import (
    JsonLinesReader,
    TornTail,
    from_url,
    read_events,
    series_files,
)
from metricstream.sinks.jsonl.errors import sink_error


def event(i: int) -> MetricEvent:
    return MetricEvent(
        "m", tags={"k": "v"}, fields={"n": i}, timestamp_ns=1_000 + i, before_2001=True
    )


def record(i: int) -> bytes:
    """The exact JSON line the sink writes for `event(i)` (without newline)."""
    return (
        b'{"measurement":"m","tags":{"k":"v"},"fields":{"n":%d},"timestamp_ns":%d,'
        b'"schema_version":1}' % (i, 1_000 + i)
    )


def lines(*numbers: int) -> bytes:
    return b"".join(record(i) + b"\n" for i in numbers)


def batch(*numbers: int) -> EventBatch:
    return EventBatch([event(i) for i in numbers])


def numbers(events: Iterator[MetricEvent] | JsonLinesReader) -> list[int]:
    return [int(e.fields["n"]) for e in events]


def write(sink: JsonLinesSink, *numbers: int) -> bytes:
    payload = sink.prepare(batch(*numbers))
    sink.write(payload)
    return payload


def zstd_frames(data: bytes) -> list[bytes]:
    """Split a file into the decompressed content of each zstd frame."""
    contents = []
    while data:
        decoder = zstandard.ZstdDecompressor().decompressobj()
        contents.append(decoder.decompress(data))
        assert decoder.eof
        data = decoder.unused_data
    return contents


def gzip_members(data: bytes) -> list[bytes]:
    contents = []
    while data:
        decoder = zlib.decompressobj(16 + zlib.MAX_WBITS)
        contents.append(decoder.decompress(data))
        assert decoder.eof
        data = decoder.unused_data
    return contents


class TestPlainFile:
    """Plain JSON Lines: exact bytes, lazy creation, exact permissions."""

    def test_batches_are_appended_as_exact_lines(self, tmp_path: Path) -> None:
        path = tmp_path / "m.jsonl"
        sink = JsonLinesSink(path)
        write(sink, 0, 1)
        write(sink, 2)
        sink.close()
        assert path.read_bytes() == lines(0, 1, 2)
        assert record(0) == (
            b'{"measurement":"m","tags":{"k":"v"},"fields":{"n":0},"timestamp_ns":1000,'
            b'"schema_version":1}'
        )

    def test_prepare_returns_lines_with_trailing_newline(self, tmp_path: Path) -> None:
        assert JsonLinesSink(tmp_path / "m.jsonl").prepare(batch(0, 1)) == lines(0, 1)

    def test_file_is_created_on_first_write_only(self, tmp_path: Path) -> None:
        path = tmp_path / "m.jsonl"
        sink = JsonLinesSink(path)
        sink.check()
        assert not path.exists()
        sink.write(sink.prepare(EventBatch([])))
        assert not path.exists()
        write(sink, 0)
        assert path.read_bytes() == lines(0)

    def test_appends_to_an_existing_file(self, tmp_path: Path) -> None:
        path = tmp_path / "m.jsonl"
        path.write_bytes(lines(0))
        sink = JsonLinesSink(path)
        write(sink, 1)
        assert path.read_bytes() == lines(0, 1)

    def test_new_file_gets_exact_mode_despite_umask(self, tmp_path: Path) -> None:
        old = os.umask(0o077)
        try:
            sink = JsonLinesSink(tmp_path / "m.jsonl", file_mode=0o640)
            write(sink, 0)
        finally:
            os.umask(old)
        assert stat.S_IMODE((tmp_path / "m.jsonl").stat().st_mode) == 0o640

    def test_default_mode_is_owner_only(self, tmp_path: Path) -> None:
        write(JsonLinesSink(tmp_path / "m.jsonl"), 0)
        assert stat.S_IMODE((tmp_path / "m.jsonl").stat().st_mode) == 0o600

    def test_existing_file_keeps_its_mode(self, tmp_path: Path) -> None:
        path = tmp_path / "m.jsonl"
        path.write_bytes(b"")
        path.chmod(0o644)
        write(JsonLinesSink(path, file_mode=0o600), 0)
        assert stat.S_IMODE(path.stat().st_mode) == 0o644

    def test_fsync_writes_the_same_bytes(self, tmp_path: Path) -> None:
        sink = JsonLinesSink(tmp_path / "m.jsonl", fsync=True, rotate_bytes=len(lines(0)))
        write(sink, 0)
        write(sink, 1)
        sink.close()
        assert (tmp_path / "m.1.jsonl").read_bytes() == lines(0)
        assert (tmp_path / "m.jsonl").read_bytes() == lines(1)

    def test_relative_path_is_fixed_at_construction(
        self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        monkeypatch.chdir(tmp_path)
        sink = JsonLinesSink("m.jsonl")
        (tmp_path / "elsewhere").mkdir()
        monkeypatch.chdir(tmp_path / "elsewhere")
        write(sink, 0)
        assert sink.path == tmp_path / "m.jsonl"
        assert (tmp_path / "m.jsonl").read_bytes() == lines(0)

    def test_implements_the_sink_protocol(self, tmp_path: Path) -> None:
        sink = JsonLinesSink(tmp_path / "m.jsonl")
        assert isinstance(sink, Sink)
        assert sink.name == "jsonl"
        assert repr(sink) == (
            f"JsonLinesSink(name='jsonl', path='{tmp_path / 'm.jsonl'}', "
            "compression='none', rotate_bytes=None)"
        )


class TestCompression:
    """zstd frames and gzip members, one per batch; codec choice and inheritance."""

    def test_zst_suffix_writes_one_checksummed_zstd_frame_per_batch(self, tmp_path: Path) -> None:
        path = tmp_path / "m.jsonl.zst"
        sink = JsonLinesSink(path)
        assert sink.compression is Compression.ZSTD
        first = write(sink, 0, 1)
        second = write(sink, 2)
        sink.close()
        data = path.read_bytes()
        assert data == first + second
        assert zstd_frames(data) == [lines(0, 1), lines(2)]
        params = zstandard.get_frame_parameters(first)
        assert (params.content_size, params.has_checksum) == (len(lines(0, 1)), True)

    def test_zstd_file_reads_as_one_stream_across_frames(self, tmp_path: Path) -> None:
        path = tmp_path / "m.jsonl.zst"
        sink = JsonLinesSink(path)
        write(sink, 0)
        write(sink, 1, 2)
        reader = zstandard.ZstdDecompressor().stream_reader(
            io.BytesIO(path.read_bytes()), read_across_frames=True
        )
        assert reader.read() == lines(0, 1, 2)

    def test_gz_suffix_writes_one_gzip_member_per_batch(self, tmp_path: Path) -> None:
        path = tmp_path / "m.jsonl.gz"
        sink = JsonLinesSink(path)
        assert sink.compression is Compression.GZIP
        write(sink, 0, 1)
        write(sink, 2)
        data = path.read_bytes()
        assert gzip_members(data) == [lines(0, 1), lines(2)]
        assert gzip.decompress(data) == lines(0, 1, 2)

    def test_explicit_compression_without_suffix(self, tmp_path: Path) -> None:
        path = tmp_path / "m.jsonl"
        write(JsonLinesSink(path, compression="zstd"), 0)
        assert zstd_frames(path.read_bytes()) == [lines(0)]

    def test_explicit_compression_matching_suffix(self, tmp_path: Path) -> None:
        assert JsonLinesSink(tmp_path / "a.zst", compression="zst").compression is Compression.ZSTD

    @pytest.mark.parametrize(
        ("name", "compression"),
        [("m.jsonl.zst", "gzip"), ("m.jsonl.zst", "none"), ("m.gz", "zstd")],
    )
    def test_compression_contradicting_suffix_is_refused(
        self, tmp_path: Path, name: str, compression: str
    ) -> None:
        with pytest.raises(ConfigError, match="contradicts the") as info:
            JsonLinesSink(tmp_path / name, compression=compression)
        assert info.value.option == "compression"

    def test_inherits_streamer_codec_when_unset(self, tmp_path: Path) -> None:
        path = tmp_path / "m.jsonl"
        sink = JsonLinesSink(path)
        sink.inherit_compression(Compression.ZSTD)
        assert sink.compression is Compression.ZSTD
        write(sink, 0)
        assert zstd_frames(path.read_bytes()) == [lines(0)]

    def test_inherited_gzip_writes_gzip_members(self, tmp_path: Path) -> None:
        path = tmp_path / "m.jsonl"
        sink = JsonLinesSink(path)
        sink.inherit_compression("gzip")
        write(sink, 0)
        assert gzip_members(path.read_bytes()) == [lines(0)]

    def test_own_setting_wins_over_inherited(self, tmp_path: Path) -> None:
        explicit = JsonLinesSink(tmp_path / "a.jsonl", compression="none")
        explicit.inherit_compression(Compression.ZSTD)
        by_suffix = JsonLinesSink(tmp_path / "b.jsonl.zst")
        by_suffix.inherit_compression(Compression.GZIP)
        assert (explicit.compression, by_suffix.compression) == (
            Compression.NONE,
            Compression.ZSTD,
        )

    def test_codec_is_fixed_by_the_first_prepare(self, tmp_path: Path) -> None:
        sink = JsonLinesSink(tmp_path / "m.jsonl")
        sink.prepare(batch(0))
        sink.inherit_compression(Compression.ZSTD)
        assert sink.compression is Compression.NONE

    def test_unknown_inherited_codec(self, tmp_path: Path) -> None:
        with pytest.raises(ConfigError) as info:
            JsonLinesSink(tmp_path / "m.jsonl").inherit_compression("lz4")
        assert info.value.option == "compression"

    def test_empty_batch_writes_no_frame(self, tmp_path: Path) -> None:
        sink = JsonLinesSink(tmp_path / "m.jsonl.zst")
        assert sink.prepare(EventBatch([])) == b""

    @pytest.mark.parametrize(("existing", "codec"), [("zstd", "none"), ("none", "zstd")])
    def test_refuses_to_mix_codecs_in_one_file(
        self, tmp_path: Path, existing: str, codec: str
    ) -> None:
        path = tmp_path / "m.jsonl"
        write(JsonLinesSink(path, compression=existing), 0)
        before = path.read_bytes()
        sink = JsonLinesSink(path, compression=codec)
        with pytest.raises(PermanentSinkError, match="a file never mixes codecs") as info:
            write(sink, 1)
        assert info.value.unhealthy is True
        assert path.read_bytes() == before
        with pytest.raises(SinkError, match=f"holds {existing} data but the sink writes {codec}"):
            sink.check()


class TestTornTail:
    """A crash tears at most one record or frame; the rest is read back in order."""

    def test_plain_torn_record_is_moved_aside_before_the_next_append(self, tmp_path: Path) -> None:
        path = tmp_path / "m.jsonl"
        sink = JsonLinesSink(path)
        write(sink, 0, 1)
        write(sink, 2)
        sink.close()
        cut = len(lines(0, 1)) + 20
        os.truncate(path, cut)  # the crash: record 2 is cut after 20 bytes
        restarted = JsonLinesSink(path)
        write(restarted, 3)
        restarted.close()
        assert path.read_bytes() == lines(0, 1, 3)
        assert (tmp_path / "m.jsonl.torn").read_bytes() == record(2)[:20]
        assert restarted.torn_tails == [
            TornTail(str(path), len(lines(0, 1)), 20, 3, "torn JSON record at the end of the file")
        ]
        reader = JsonLinesReader(path)
        assert (numbers(reader), reader.torn_tails) == ([0, 1, 3], [])

    def test_plain_torn_tail_at_end_of_file_is_skipped_and_reported(self, tmp_path: Path) -> None:
        path = tmp_path / "m.jsonl"
        path.write_bytes(lines(0) + record(1)[:-1])
        reported: list[TornTail] = []
        assert numbers(read_events(path, on_torn_tail=reported.append)) == [0]
        assert reported == [
            TornTail(
                str(path),
                len(lines(0)),
                len(record(1)) - 1,
                2,
                "incomplete JSON record at the end of the file",
            )
        ]

    def test_record_missing_only_its_newline_is_kept_and_not_fused(self, tmp_path: Path) -> None:
        path = tmp_path / "m.jsonl"
        path.write_bytes(lines(0) + record(1))
        write(JsonLinesSink(path), 2)
        assert path.read_bytes() == lines(0, 1, 2)
        reader = JsonLinesReader(path)
        assert (numbers(reader), reader.torn_tails) == ([0, 1, 2], [])

    @pytest.mark.parametrize(("suffix", "kind"), [(".zst", "zstd frame"), (".gz", "gzip member")])
    def test_torn_frame_is_moved_aside_before_new_frames(
        self, tmp_path: Path, suffix: str, kind: str
    ) -> None:
        path = tmp_path / f"m.jsonl{suffix}"
        sink = JsonLinesSink(path)
        first = write(sink, 0, 1)
        second = write(sink, 2, 3)
        sink.close()
        os.truncate(path, len(first) + len(second) // 2)
        restarted = JsonLinesSink(path)
        third = write(restarted, 4)
        restarted.close()
        assert path.read_bytes() == first + third
        assert (tmp_path / f"m.jsonl{suffix}.torn").read_bytes() == second[: len(second) // 2]
        assert restarted.torn_tails == [
            TornTail(
                str(path), len(first), len(second) // 2, None, f"torn {kind} at the end of the file"
            )
        ]
        reader = JsonLinesReader(path)
        assert (numbers(reader), reader.torn_tails) == ([0, 1, 4], [])

    @pytest.mark.parametrize(("suffix", "kind"), [(".zst", "zstd frame"), (".gz", "gzip member")])
    def test_torn_frame_at_end_of_file(self, tmp_path: Path, suffix: str, kind: str) -> None:
        path = tmp_path / f"m.jsonl{suffix}"
        sink = JsonLinesSink(path)
        first = write(sink, 0)
        second = write(sink, 1)
        os.truncate(path, len(first) + len(second) - 1)
        reader = JsonLinesReader(path)
        assert numbers(reader) == [0]
        assert reader.torn_tails == [
            TornTail(
                str(path),
                len(first),
                len(second) - 1,
                None,
                f"incomplete {kind} at the end of the file",
            )
        ]

    def test_frame_torn_before_its_magic_number_is_moved_aside(self, tmp_path: Path) -> None:
        path = tmp_path / "m.jsonl.zst"
        sink = JsonLinesSink(path)
        first = write(sink, 0)
        second = sink.prepare(batch(1))
        with path.open("ab") as handle:
            handle.write(second[:2])
        sink.close()
        third = write(JsonLinesSink(path), 2)
        assert path.read_bytes() == first + third
        assert (tmp_path / "m.jsonl.zst.torn").read_bytes() == second[:2]
        reader = JsonLinesReader(path)
        assert (numbers(reader), reader.torn_tails) == ([0, 2], [])

    def test_torn_tail_is_logged_as_a_warning(
        self, tmp_path: Path, caplog: pytest.LogCaptureFixture
    ) -> None:
        path = tmp_path / "m.jsonl"
        path.write_bytes(lines(0) + b'{"measu')
        with caplog.at_level(logging.WARNING, logger="metricstream.sinks.jsonl"):
            assert numbers(read_events(path)) == [0]
        assert caplog.messages == [
            f"skipped a torn record in {path} (line 2, byte {len(lines(0))}, 7 bytes): "
            "incomplete JSON record at the end of the file"
        ]

    def test_failed_write_is_truncated_away_so_the_retry_is_exact(self, tmp_path: Path) -> None:
        path = tmp_path / "m.jsonl"
        sink = JsonLinesSink(path)
        write(sink, 0)
        size = path.stat().st_size
        payload = sink.prepare(batch(1, 2))
        previous_handler = signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
        resource.setrlimit(resource.RLIMIT_FSIZE, (size + 30, hard))
        try:
            with pytest.raises(PermanentSinkError, match="File too large"):
                sink.write(payload)  # 30 bytes land, then EFBIG
        finally:
            resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))
            signal.signal(signal.SIGXFSZ, previous_handler)
        assert path.read_bytes() == lines(0)
        sink.write(payload)
        assert path.read_bytes() == lines(0, 1, 2)


class TestRotation:
    """Rotation renames to increasing numbers; the series reads back in order."""

    def test_each_rotation_renames_to_the_next_number(self, tmp_path: Path) -> None:
        path = tmp_path / "m.jsonl"
        size = len(lines(0))
        sink = JsonLinesSink(path, rotate_bytes=2 * size)
        for i in range(5):
            write(sink, i)
        sink.close()
        assert sorted(p.name for p in tmp_path.iterdir() if p.name[0] != ".") == [
            "m.1.jsonl",
            "m.2.jsonl",
            "m.jsonl",
        ]
        assert (tmp_path / "m.1.jsonl").read_bytes() == lines(0, 1)
        assert (tmp_path / "m.2.jsonl").read_bytes() == lines(2, 3)
        assert path.read_bytes() == lines(4)
        assert numbers(read_events(path)) == [0, 1, 2, 3, 4]

    def test_batch_larger_than_limit_goes_into_one_file(self, tmp_path: Path) -> None:
        path = tmp_path / "m.jsonl"
        sink = JsonLinesSink(path, rotate_bytes=10)
        write(sink, 0, 1, 2)
        write(sink, 3)
        assert (tmp_path / "m.1.jsonl").read_bytes() == lines(0, 1, 2)
        assert path.read_bytes() == lines(3)
        assert series_files(path) == [tmp_path / "m.1.jsonl", path]

    def test_file_exactly_at_limit_is_not_rotated(self, tmp_path: Path) -> None:
        path = tmp_path / "m.jsonl"
        sink = JsonLinesSink(path, rotate_bytes=len(lines(0, 1)))
        write(sink, 0)
        write(sink, 1)
        assert series_files(path) == [path]
        assert path.read_bytes() == lines(0, 1)

    def test_numbering_continues_after_files_named_the_earlier_way(self, tmp_path: Path) -> None:
        path = tmp_path / "m.jsonl"
        (tmp_path / "m.jsonl.1").write_bytes(lines(0))
        (tmp_path / "m.jsonl.2").write_bytes(lines(1))
        path.write_bytes(lines(2))
        sink = JsonLinesSink(path, rotate_bytes=len(lines(0)))
        write(sink, 3)
        sink.close()
        assert (tmp_path / "m.3.jsonl").read_bytes() == lines(2)
        assert path.read_bytes() == lines(3)
        assert numbers(read_events(path)) == [0, 1, 2, 3]

    def test_series_is_ordered_numerically(self, tmp_path: Path) -> None:
        path = tmp_path / "m.jsonl"
        for number in (10, 2, 1):
            (tmp_path / f"m.jsonl.{number}").write_bytes(lines(number))
        for unrelated in ("m.jsonl.01", "m.jsonl.2.bak", "m.jsonl.x", "other.jsonl.3"):
            (tmp_path / unrelated).write_bytes(b"")
        assert series_files(path) == [
            tmp_path / "m.jsonl.1",
            tmp_path / "m.jsonl.2",
            tmp_path / "m.jsonl.10",
        ]
        assert numbers(read_events(path)) == [1, 2, 10]

    def test_compressed_series_with_torn_tail_in_a_rotated_file(self, tmp_path: Path) -> None:
        path = tmp_path / "m.jsonl.zst"
        sink = JsonLinesSink(path, rotate_bytes=1)
        first = write(sink, 0)
        second = write(sink, 1)
        sink.close()
        rotated = tmp_path / "m.1.jsonl.zst"
        assert (rotated.read_bytes(), path.read_bytes()) == (first, second)
        with rotated.open("ab") as handle:
            handle.write(sink.prepare(batch(9))[:5])
        reader = JsonLinesReader(path)
        assert reader.files == [rotated, path]
        assert numbers(reader) == [0, 1]
        assert reader.torn_tails == [
            TornTail(
                str(rotated), len(first), 5, None, "incomplete zstd frame at the end of the file"
            )
        ]
        assert reader.events_read == 2


class TestReadEvents:
    """read_events: round trip of every field type, errors with locations."""

    def test_round_trip_of_every_field_type(self, tmp_path: Path) -> None:
        original = MetricEvent(
            "t",
            tags={"a": "b"},
            fields={"f": 1.5, "i": -2, "u": UInt(2**64 - 1), "b": True, "s": "x\ny"},
            timestamp_ns=-5,
            before_2001=True,
            correlation_id="c",
        )
        path = tmp_path / "m.jsonl.zst"
        sink = JsonLinesSink(path)
        sink.write(sink.prepare(EventBatch([original])))
        [back] = read_events(path)
        assert (
            back.measurement,
            back.tags,
            back.fields,
            back.timestamp_ns,
            back.correlation_id,
        ) == ("t", {"a": "b"}, {"f": 1.5, "i": -2, "u": 2**64 - 1, "b": True, "s": "x\ny"}, -5, "c")
        assert type(back.fields["u"]) is UInt

    def test_missing_file_raises_at_once(self, tmp_path: Path) -> None:
        with pytest.raises(FileNotFoundError, match="no JSON Lines file or rotated series"):
            read_events(tmp_path / "absent.jsonl")

    def test_rotated_files_without_current_file(self, tmp_path: Path) -> None:
        (tmp_path / "m.jsonl.1").write_bytes(lines(0))
        assert numbers(read_events(tmp_path / "m.jsonl")) == [0]

    def test_empty_file_and_blank_lines(self, tmp_path: Path) -> None:
        (tmp_path / "m.jsonl.1").write_bytes(b"")
        (tmp_path / "m.jsonl").write_bytes(b"\n" + lines(0) + b"\n  \n" + lines(1))
        reader = JsonLinesReader(tmp_path / "m.jsonl")
        assert (numbers(reader), reader.torn_tails) == ([0, 1], [])

    def test_torn_record_in_the_middle_is_skipped(self, tmp_path: Path) -> None:
        path = tmp_path / "m.jsonl"
        path.write_bytes(lines(0) + b'{"measurement":"m"\n' + lines(1))
        reader = JsonLinesReader(path)
        assert numbers(reader) == [0, 1]
        assert reader.torn_tails == [
            TornTail(str(path), len(lines(0)), 19, 2, "incomplete JSON record")
        ]

    def test_json_that_is_not_an_event_raises_with_file_and_line(self, tmp_path: Path) -> None:
        path = tmp_path / "m.jsonl"
        path.write_bytes(lines(0) + b'{"measurement":"m","fields":{}}\n' + lines(1))
        events = read_events(path)
        assert numbers(iter([next(events)])) == [0]
        with pytest.raises(InvalidEventError, match=rf"^{path}, line 2: JSON event is missing"):
            next(events)

    def test_newer_schema_raises_with_file_and_line(self, tmp_path: Path) -> None:
        path = tmp_path / "m.jsonl"
        path.write_bytes(
            b'{"measurement":"m","fields":{"n":1},"timestamp_ns":1,"schema_version":99}\n'
        )
        with pytest.raises(
            SchemaVersionError, match=rf"^{path}, line 1: schema_version 99"
        ) as info:
            list(read_events(path))
        assert (info.value.found, info.value.supported) == (99, 1)

    def test_bad_record_inside_an_intact_frame_raises(self, tmp_path: Path) -> None:
        path = tmp_path / "m.jsonl.zst"
        good = zstandard.ZstdCompressor().compress(lines(0))
        path.write_bytes(good + zstandard.ZstdCompressor().compress(lines(1) + b"not json\n"))
        with pytest.raises(
            InvalidEventError, match=rf"^{path}, frame at byte {len(good)}, record 2: invalid JSON"
        ):
            list(read_events(path))

    def test_each_iteration_starts_afresh(self, tmp_path: Path) -> None:
        path = tmp_path / "m.jsonl"
        path.write_bytes(lines(0) + b"{")
        reader = JsonLinesReader(path)
        assert (numbers(reader), numbers(reader)) == ([0], [0])
        assert len(reader.torn_tails) == 1


class TestOptions:
    """Constructor validation names the offending option."""

    @pytest.mark.parametrize(
        ("kwargs", "option", "message"),
        [
            ({"rotate_bytes": 0}, "rotate_bytes", "must be an integer >= 1"),
            ({"rotate_bytes": -1}, "rotate_bytes", "must be an integer >= 1"),
            ({"rotate_bytes": True}, "rotate_bytes", "must be an integer >= 1"),
            ({"rotate_bytes": 1.5}, "rotate_bytes", "must be an integer >= 1"),
            ({"fsync": "yes"}, "fsync", "must be True or False"),
            ({"file_mode": 0o400}, "file_mode", "not 0o400"),
            ({"file_mode": 0o1777}, "file_mode", "not 0o1777"),
            ({"file_mode": 0o266}, "file_mode", "include 0o600"),
            ({"file_mode": "600"}, "file_mode", "not '600'"),
            ({"compression": "lz4"}, "compression", "unknown compression 'lz4'"),
            ({"name": ""}, "name", "non-empty"),
        ],
    )
    def test_invalid_option(
        self, tmp_path: Path, kwargs: dict[str, object], option: str, message: str
    ) -> None:
        with pytest.raises(ConfigError, match=message) as info:
            JsonLinesSink(tmp_path / "m.jsonl", **kwargs)  # type: ignore[arg-type]
        assert info.value.option == option

    def test_path_is_a_directory(self, tmp_path: Path) -> None:
        with pytest.raises(ConfigError, match="is a directory") as info:
            JsonLinesSink(tmp_path)
        assert info.value.option == "path"

    def test_directory_does_not_exist(self, tmp_path: Path) -> None:
        with pytest.raises(ConfigError, match=r"absent'.* does not exist") as info:
            JsonLinesSink(tmp_path / "absent" / "m.jsonl")
        assert info.value.option == "path"

    def test_parent_is_a_file(self, tmp_path: Path) -> None:
        (tmp_path / "file").write_bytes(b"")
        with pytest.raises(ConfigError, match="is not a directory") as info:
            JsonLinesSink(tmp_path / "file" / "m.jsonl")
        assert info.value.option == "path"

    def test_path_is_not_a_regular_file(self, tmp_path: Path) -> None:
        os.mkfifo(tmp_path / "fifo")
        with pytest.raises(ConfigError, match="not a regular file") as info:
            JsonLinesSink(tmp_path / "fifo")
        assert info.value.option == "path"

    @pytest.mark.parametrize("path", ["", b"m.jsonl", 3])
    def test_bad_path_values(self, path: object) -> None:
        with pytest.raises(ConfigError) as info:
            JsonLinesSink(path)  # type: ignore[arg-type]
        assert info.value.option == "path"


class TestWriteErrors:
    """OSError maps to transient or permanent; check() and close() behave."""

    def test_path_replaced_by_directory_is_permanent(self, tmp_path: Path) -> None:
        path = tmp_path / "m.jsonl"
        sink = JsonLinesSink(path)
        path.mkdir()
        with pytest.raises(PermanentSinkError, match="Is a directory") as info:
            write(sink, 0)
        assert (info.value.unhealthy, info.value.sink) == (True, "jsonl")
        with pytest.raises(SinkError, match="is not a regular file"):
            sink.check()

    def test_missing_directory_is_transient_and_recovers(self, tmp_path: Path) -> None:
        directory = tmp_path / "d"
        directory.mkdir()
        sink = JsonLinesSink(directory / "m.jsonl")
        shutil.rmtree(directory)
        with pytest.raises(SinkError, match="does not exist"):
            sink.check()
        payload = sink.prepare(batch(0))
        with pytest.raises(TransientSinkError, match="No such file or directory"):
            sink.write(payload)
        directory.mkdir()
        sink.check()
        sink.write(payload)
        assert (directory / "m.jsonl").read_bytes() == lines(0)

    def test_a_file_renamed_away_while_open_is_replaced_by_a_new_one(self, tmp_path: Path) -> None:
        path = tmp_path / "m.jsonl"
        sink = JsonLinesSink(path)
        write(sink, 0)
        moved = tmp_path / "moved.jsonl"
        path.rename(moved)
        write(sink, 1)
        assert (moved.read_bytes(), path.read_bytes()) == (lines(0), lines(1))

    def test_a_file_deleted_while_open_is_recreated_and_nothing_is_lost(
        self, tmp_path: Path, caplog: pytest.LogCaptureFixture
    ) -> None:
        path = tmp_path / "m.jsonl.zst"
        sink = JsonLinesSink(path)
        write(sink, 0)
        path.unlink()
        with caplog.at_level(logging.WARNING, logger="metricstream"):
            write(sink, 1)
            write(sink, 2)
        assert numbers(JsonLinesReader(path)) == [1, 2]
        assert [r.getMessage() for r in caplog.records if "removed or replaced" in r.getMessage()]

    def test_a_file_replaced_by_another_is_not_written_through_the_old_descriptor(
        self, tmp_path: Path
    ) -> None:
        path = tmp_path / "m.jsonl"
        sink = JsonLinesSink(path)
        write(sink, 0)
        path.unlink()
        path.write_bytes(lines(7))
        write(sink, 1)
        assert path.read_bytes() == lines(7, 1)

    @pytest.mark.parametrize(
        ("code", "kind"),
        [
            (errno.ENOSPC, TransientSinkError),
            (errno.EDQUOT, TransientSinkError),
            (errno.EIO, TransientSinkError),
            (errno.ENOENT, TransientSinkError),
            (errno.EMFILE, TransientSinkError),
            (errno.EACCES, PermanentSinkError),
            (errno.EPERM, PermanentSinkError),
            (errno.EROFS, PermanentSinkError),
            (errno.EISDIR, PermanentSinkError),
            (errno.EFBIG, PermanentSinkError),
        ],
    )
    def test_errno_classification(self, code: int, kind: type[SinkError]) -> None:
        error = sink_error(OSError(code, os.strerror(code)), "s", Path("/x/m.jsonl"))
        assert type(error) is kind
        assert str(error) == (
            f"JSON Lines sink 's': writing '/x/m.jsonl' failed: [Errno {code}] {os.strerror(code)}"
        )

    def test_write_after_close_is_permanent_and_close_is_idempotent(self, tmp_path: Path) -> None:
        sink = JsonLinesSink(tmp_path / "m.jsonl", name="audit")
        write(sink, 0)
        sink.close()
        sink.close()
        with pytest.raises(PermanentSinkError, match="'audit' is closed"):
            write(sink, 1)
        with pytest.raises(SinkError, match="'audit' is closed"):
            sink.check()
        assert (tmp_path / "m.jsonl").read_bytes() == lines(0)


class TestFromUrl:
    """jsonl: URLs, directly and through sink_from_url."""

    def test_relative_path(self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        monkeypatch.chdir(tmp_path)
        sink = sink_from_url("jsonl:out.jsonl")
        assert isinstance(sink, JsonLinesSink)
        assert (sink.path, sink.compression, sink.name) == (
            tmp_path / "out.jsonl",
            Compression.NONE,
            "jsonl",
        )

    def test_dot_relative_zst_path(self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        monkeypatch.chdir(tmp_path)
        sink = from_url("jsonl:./out.jsonl.zst")
        assert (sink.path, sink.compression) == (tmp_path / "out.jsonl.zst", Compression.ZSTD)

    @pytest.mark.parametrize("form", ["jsonl:{}", "jsonl://{}", "jsonl://localhost{}"])
    def test_absolute_path(self, tmp_path: Path, form: str) -> None:
        sink = from_url(form.format(tmp_path / "a b.jsonl").replace(" ", "%20"))
        assert sink.path == tmp_path / "a b.jsonl"

    def test_home_directory(self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        monkeypatch.setenv("HOME", str(tmp_path))
        assert from_url("jsonl:~/m.jsonl").path == tmp_path / "m.jsonl"

    def test_query_options(self, tmp_path: Path) -> None:
        sink = sink_from_url(
            f"jsonl:{tmp_path}/m.jsonl?compression=gzip&rotate_bytes=1000&fsync=true"
            "&file_mode=0o640&name=audit"
        )
        assert isinstance(sink, JsonLinesSink)
        o = sink.options
        assert (sink.compression, o.rotate_bytes, o.fsync, o.file_mode, sink.name) == (
            Compression.GZIP,
            1000,
            True,
            0o640,
            "audit",
        )

    @pytest.mark.parametrize(("text", "value"), [("1", True), ("off", False), ("No", False)])
    def test_fsync_spellings(self, tmp_path: Path, text: str, value: bool) -> None:
        assert from_url(f"jsonl:{tmp_path}/m.jsonl?fsync={text}").options.fsync is value

    def test_overrides_win(self, tmp_path: Path) -> None:
        sink = from_url(f"jsonl:{tmp_path}/m.jsonl?name=a&rotate_bytes=5", name="b", fsync=True)
        assert (sink.name, sink.options.rotate_bytes, sink.options.fsync) == ("b", 5, True)

    def test_sink_from_url_writes_through(self, tmp_path: Path) -> None:
        sink = sink_from_url(f"jsonl:{tmp_path}/m.jsonl.zst")
        sink.write(sink.prepare(batch(0)))
        assert numbers(read_events(tmp_path / "m.jsonl.zst")) == [0]

    @pytest.mark.parametrize(
        ("query", "option", "message"),
        [
            ("rotate_bytes=ten", "rotate_bytes", "must be an integer >= 1, not 'ten'"),
            ("rotate_bytes=0", "rotate_bytes", "must be an integer >= 1"),
            ("fsync=maybe", "fsync", "must be true or false .*, not 'maybe'"),
            ("file_mode=rw", "file_mode", "octal integer between 0o600 and 0o777, not 'rw'"),
            ("file_mode=444", "file_mode", "not 0o444"),
            ("compression=lz4", "compression", "unknown compression 'lz4'"),
            ("level=3", "level", "unknown option"),
            ("name=a&name=b", "name", "more than once"),
        ],
    )
    def test_invalid_query(self, tmp_path: Path, query: str, option: str, message: str) -> None:
        with pytest.raises(ConfigError, match=message) as info:
            sink_from_url(f"jsonl:{tmp_path}/m.jsonl?{query}")
        assert info.value.option == option

    @pytest.mark.parametrize(
        ("url", "option", "message"),
        [
            ("jsonl:", "path", "names no file"),
            ("jsonl:?fsync=1", "path", "names no file"),
            ("jsonl://server/m.jsonl", "url", "names host 'server'"),
        ],
    )
    def test_invalid_location(self, url: str, option: str, message: str) -> None:
        with pytest.raises(ConfigError, match=message) as info:
            sink_from_url(url)
        assert info.value.option == option

    def test_unknown_override(self, tmp_path: Path) -> None:
        with pytest.raises(ConfigError) as info:
            from_url(f"jsonl:{tmp_path}/m.jsonl", level=3)
        assert info.value.option == "level"


class TestThroughStreamer:
    """End to end: events sent to an EventStreamer land in the file, in order."""

    def test_streamer_codec_is_inherited_and_every_event_is_written(self, tmp_path: Path) -> None:
        from metricstream.streamer.streamer import EventStreamer

        path = tmp_path / "m.jsonl"
        sink = JsonLinesSink(path, rotate_bytes=4096)
        streamer = EventStreamer(
            [sink], batch_size=10, flush_interval=60.0, compression="zstd", register_atexit=False
        )
        try:
            assert streamer.send_many(event(i) for i in range(95)) == 95
            assert streamer.flush(timeout=30) is True
            health = streamer.health().sinks["jsonl"]
            assert (health.events_written, health.events_dropped, health.pending) == (95, 0, 0)
        finally:
            assert streamer.shutdown(timeout=30) is True
        assert sink.compression is Compression.ZSTD
        reader = JsonLinesReader(path)
        assert numbers(reader) == list(range(95))
        assert reader.torn_tails == []
        contents = [frame for file in reader.files for frame in zstd_frames(file.read_bytes())]
        assert contents == [lines(*range(start, min(start + 10, 95))) for start in range(0, 95, 10)]


class TestSecretsInUrls:
    """A password in a jsonl: URL never shows in an error."""

    @pytest.mark.parametrize(
        "url",
        [
            "jsonl://user:hunter2@host/x.jsonl",
            "jsonl://user:hun/ter2@host/x.jsonl",
            "jsonl://user:hunter2#x@host/x.jsonl",
        ],
    )
    def test_the_password_is_redacted(self, url: str) -> None:
        with pytest.raises(ConfigError) as info:
            sink_from_url(url)
        assert "hunter2" not in str(info.value)
        assert "hun/ter2" not in str(info.value)
        assert "user:***@" in str(info.value)


class TestOneWriterPerFile:
    """A file has one writer: a second sink for it is refused at construction."""

    def test_a_second_sink_for_the_same_path_is_refused_until_the_first_closes(
        self, tmp_path: Path
    ) -> None:
        path = tmp_path / "m.jsonl.zst"
        first = JsonLinesSink(path)
        with pytest.raises(ConfigError, match="already has a writer") as info:
            JsonLinesSink(str(path), name="other")
        assert info.value.option == "path"
        first.close()
        second = JsonLinesSink(path)
        write(second, 1)
        assert numbers(JsonLinesReader(path)) == [1]

    def test_a_writer_in_another_process_is_refused(self, tmp_path: Path) -> None:
        path = tmp_path / "m.jsonl"
        sink = JsonLinesSink(path)
        script = (
            "import sys\n"
            "from metricstream.sinks import JsonLinesSink\n"
            "from metricstream.exceptions import ConfigError\n"
            "try:\n"
            "    JsonLinesSink(sys.argv[1])\n"
            "except ConfigError as exc:\n"
            "    print(exc)\n"
            "    sys.exit(3)\n"
        )
        result = subprocess.run(
            [sys.executable, "-c", script, str(path)],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert (result.returncode, "already has a writer" in result.stdout) == (3, True)
        sink.close()

    @pytest.mark.skipif(not hasattr(os, "fork"), reason="os.fork is POSIX-only")
    def test_a_forked_child_writes_its_own_file(self, tmp_path: Path) -> None:
        path = tmp_path / "events.jsonl.zst"
        sink = JsonLinesSink(path)
        write(sink, 0)
        pid = os.fork()
        if pid == 0:  # the child
            code = 1
            try:
                sink.after_fork()
                write(sink, 100)
                sink.close()
                code = 0
            finally:
                os._exit(code)
        _, status = os.waitpid(pid, 0)
        assert os.waitstatus_to_exitcode(status) == 0
        write(sink, 1)
        sink.close()
        assert numbers(JsonLinesReader(path)) == [0, 1]
        assert numbers(JsonLinesReader(tmp_path / f"events.pid{pid}.jsonl.zst")) == [100]
        assert series_files(path) == [path]  # a child's file is not a rotated file


def run_tool(*command: str) -> subprocess.CompletedProcess[bytes]:
    """Run a reader nobody here wrote (the ``zstd`` tool, ``jq``); it must be installed."""
    assert shutil.which(command[0]), f"{command[0]} is not installed"
    return subprocess.run(command, capture_output=True, timeout=120, check=False)


def duckdb_values(pattern: str) -> list[int]:
    """The ``n`` field of every record DuckDB's ``read_ndjson`` reads from `pattern`."""
    import duckdb

    with duckdb.connect() as connection:
        rows = connection.execute(
            "SELECT fields.n FROM read_ndjson(?) ORDER BY fields.n", [pattern]
        ).fetchall()
    return [int(n) for (n,) in rows]


class TestOtherReaders:
    """Files read whole by readers nobody here wrote: the zstd tool, jq and DuckDB."""

    def test_a_torn_frame_is_set_aside_so_every_reader_reads_the_file_whole(
        self, tmp_path: Path
    ) -> None:
        path = tmp_path / "events.jsonl.zst"
        sink = JsonLinesSink(path)
        for first in range(0, 1400, 100):
            write(sink, *range(first, first + 100))
        sink.close()
        last_frame = len(sink.prepare(batch(*range(1300, 1400))))
        os.truncate(path, path.stat().st_size - 37)  # the crash cut the last frame short
        restarted = JsonLinesSink(path)
        for first in range(2000, 2500, 100):
            write(restarted, *range(first, first + 100))
        restarted.close()
        expected = [*range(1300), *range(2000, 2500)]
        assert run_tool("zstd", "-t", str(path)).returncode == 0
        shown = run_tool("zstd", "-dc", str(path))
        assert shown.returncode == 0
        shown_values = [json.loads(line)["fields"]["n"] for line in shown.stdout.splitlines()]
        assert shown_values == expected
        assert duckdb_values(str(path)) == expected
        assert numbers(read_events(path)) == expected
        [torn] = restarted.torn_tails
        assert (torn.length, (tmp_path / "events.jsonl.zst.torn").stat().st_size) == (
            last_frame - 37,
            last_frame - 37,
        )

    def test_a_partial_last_line_is_set_aside_so_every_reader_reads_the_file_whole(
        self, tmp_path: Path
    ) -> None:
        path = tmp_path / "events.jsonl"
        sink = JsonLinesSink(path)
        write(sink, *range(100))
        write(sink, *range(100, 200))
        sink.close()
        os.truncate(path, path.stat().st_size - 37)  # the crash cut the last line short
        restarted = JsonLinesSink(path)
        write(restarted, *range(500, 600))
        restarted.close()
        expected = [*range(199), *range(500, 600)]
        parsed = run_tool("jq", "-c", ".fields.n", str(path))
        assert parsed.returncode == 0, parsed.stderr
        assert [int(n) for n in parsed.stdout.split()] == expected
        assert duckdb_values(str(path)) == expected
        assert numbers(read_events(path)) == expected
        assert (tmp_path / "events.jsonl.torn").read_bytes() == record(199)[: len(record(199)) - 36]

    def test_rotated_files_end_in_what_they_hold(self, tmp_path: Path) -> None:
        path = tmp_path / "events.jsonl.zst"
        sink = JsonLinesSink(path, rotate_bytes=1)
        for first in range(0, 500, 100):
            write(sink, *range(first, first + 100))
        sink.close()
        names = sorted(p.name for p in tmp_path.iterdir() if not p.name.startswith("."))
        assert names == [f"events.{n}.jsonl.zst" for n in range(1, 5)] + ["events.jsonl.zst"]
        assert duckdb_values(str(tmp_path / "events*.jsonl.zst")) == list(range(500))
        for name in names:
            assert run_tool("zstd", "-t", str(tmp_path / name)).returncode == 0
        assert numbers(read_events(path)) == list(range(500))

    def test_a_series_rotated_under_the_earlier_names_is_still_read(self, tmp_path: Path) -> None:
        path = tmp_path / "events.jsonl.zst"
        sink = JsonLinesSink(path, rotate_bytes=1)
        for first in range(0, 300, 100):
            write(sink, *range(first, first + 100))
        sink.close()
        for number in (1, 2):  # as earlier versions named them
            rotated = tmp_path / f"events.{number}.jsonl.zst"
            rotated.rename(tmp_path / f"events.jsonl.zst.{number}")
        again = JsonLinesSink(path, rotate_bytes=1)
        for first in range(300, 500, 100):
            write(again, *range(first, first + 100))
        again.close()
        assert [p.name for p in series_files(path)] == [
            "events.jsonl.zst.1",
            "events.jsonl.zst.2",
            "events.3.jsonl.zst",
            "events.4.jsonl.zst",
            "events.jsonl.zst",
        ]
        assert numbers(read_events(path)) == list(range(500))
