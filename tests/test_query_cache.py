"""The query cache: where it lives, how it follows a growing, rotating, damaged archive.

Every answer from the cache is compared with the plain-Python reference over
the events written and with the same query reading the archive only
(``cache=False``); ``records_loaded`` shows what was read from the archive.
"""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import tempfile
import threading
from pathlib import Path
from typing import Any

import pytest

from tests.servers import require_module

require_module("duckdb", "metricstream.query runs on DuckDB (the query extra)")

from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

import metricstream as ms  # noqa: E402
from metricstream.cli import main  # noqa: E402
from metricstream.contract import EventBatch  # noqa: E402
from metricstream.exceptions import ConfigError  # noqa: E402
from metricstream.query import Archive, QueryCache, clear_caches  # noqa: E402
from metricstream.query import _cache as cache_module  # noqa: E402
from metricstream.sinks.jsonl import JsonLinesReader, JsonLinesSink  # noqa: E402
from tests.test_query_reference import (  # noqa: E402
    append_as_written_before,
    breakdown,
    select,
    total,
    unique,
    write_archive,
)

Event = ms.MetricEvent
MAGIC = b"\x28\xb5\x2f\xfd"


def batch(first: int, size: int = 50, user: str = "user") -> list[Event]:
    return [
        Event(
            ["view", "cart"][n % 2],
            tags={user: f"u{n % 13}", "b": str(n // size)},
            fields={"n": n},
            timestamp_ns=1_000 + n,
            before_2001=True,
        )
        for n in range(first, first + size)
    ]


def answers(archive: Archive) -> tuple[object, ...]:
    """What the tests compare: counts, uniques, a sum, a breakdown and the damage.

    The first query reads every property the others read, so the cache
    loads each record once.
    """
    combinations = archive.events().unique(["user", "b", "n"])
    views = archive.events("view")
    rows = views.breakdown("b", n=3, unique=["user"]).value
    return (
        archive.events().count().value,
        combinations.value,
        views.unique("user").value,
        archive.events().sum("n").value,
        [(row.values, row.count, row.unique) for row in rows],
        [(s.path, s.offset, s.length, s.reason) for s in combinations.skipped],
    )


def reference(path: Path) -> tuple[object, ...]:
    """The same, from the events the JSON Lines reader reads (damage compared elsewhere)."""
    events = list(JsonLinesReader(path))
    views = select(events, "view")
    return (
        len(events),
        unique(events, ["user", "b", "n"]),
        unique(views, ["user"]),
        total(events, "n"),
        breakdown(views, ["b"], 3, ["user"]),
    )


def same_everywhere(cached: Archive, path: Path) -> tuple[object, ...]:
    """Check the cached answers against the archive read directly and the reference."""
    found = answers(cached)
    assert found == answers(Archive(path, cache=False))
    assert found[:5] == reference(path)
    return found


@pytest.fixture
def cache_dir(tmp_path: Path) -> Path:
    return tmp_path / "cache"


@pytest.fixture
def path(tmp_path: Path) -> Path:
    """A zstd archive of two batches: 100 events."""
    found = tmp_path / "e.jsonl.zst"
    write_archive(found, [batch(0), batch(50)])
    return found


def opened(path: Path, cache_dir: Path) -> tuple[Archive, QueryCache]:
    """An archive over `path` with a cache in `cache_dir`, queried once."""
    archive = Archive(path, cache=cache_dir)
    assert archive.cache is not None
    same_everywhere(archive, path)
    return archive, archive.cache


class TestWhereTheCacheLives:
    """The cache's directory, its file name, and turning it off or clearing it."""

    def test_the_default_directory_follows_the_environment(
        self, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
    ) -> None:
        monkeypatch.setenv(cache_module.CACHE_ENV, str(tmp_path / "mine"))
        assert cache_module.default_directory() == tmp_path / "mine"
        monkeypatch.setenv(cache_module.CACHE_ENV, "off")
        assert cache_module.default_directory() is None
        write_archive(tmp_path / "e.jsonl", [batch(0)], compression="none")
        assert Archive(tmp_path / "e.jsonl").cache is None
        monkeypatch.delenv(cache_module.CACHE_ENV)
        monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
        assert cache_module.default_directory() == tmp_path / "xdg" / "metricstream" / "query"
        monkeypatch.delenv("XDG_CACHE_HOME")
        monkeypatch.setenv("HOME", str(tmp_path / "home"))
        expected = tmp_path / "home" / ".cache" / "metricstream" / "query"
        assert cache_module.default_directory() == expected

    def test_nothing_is_written_beside_the_archive(self, tmp_path: Path, cache_dir: Path) -> None:
        archive_dir = tmp_path / "archive"
        archive_dir.mkdir()
        write_archive(archive_dir / "e.jsonl.zst", [batch(0), batch(50)], rotate_bytes=900)
        before = sorted(archive_dir.iterdir())
        archive = Archive(archive_dir / "e.jsonl.zst", cache=cache_dir)
        same_everywhere(archive, archive_dir / "e.jsonl.zst")
        assert sorted(archive_dir.iterdir()) == before
        assert archive.cache is not None
        assert [path.name for path in cache_dir.iterdir()] == [archive.cache.path.name]
        import duckdb

        suffix = f"-q{cache_module.FORMAT}-duckdb{duckdb.__version__}.duckdb"
        assert archive.cache.path.name.endswith(suffix)

    def test_quotes_in_the_paths_of_the_archive_and_the_cache(self, tmp_path: Path) -> None:
        """Single and double quotes in directory names do not keep the cache file from opening."""
        archive_dir = tmp_path / "o'brien's \"events\""
        archive_dir.mkdir()
        path = archive_dir / "e.jsonl.zst"
        write_archive(path, [batch(0), batch(50)])
        cache_dir = tmp_path / "it's the ''cache''"
        _, first = opened(path, cache_dir)
        assert [found.name for found in cache_dir.iterdir()] == [first.path.name]
        assert (first.stats.records_loaded, first.stats.answered) == (100, 5)
        _, again = opened(path, cache_dir)
        assert (again.stats.records_loaded, again.stats.answered) == (0, 5)

    def test_one_archive_one_cache_file(
        self, tmp_path: Path, cache_dir: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        write_archive(tmp_path / "a.jsonl", [batch(0)], compression="none")
        write_archive(tmp_path / "b.jsonl", [batch(0)], compression="none")
        monkeypatch.chdir(tmp_path)
        (tmp_path / "x").mkdir()
        paths = {
            Archive(name, cache=cache_dir).cache.path  # type: ignore[union-attr]
            for name in ("a.jsonl", str(tmp_path / "a.jsonl"), tmp_path / "x" / ".." / "a.jsonl")
        }
        assert len(paths) == 1
        assert Archive("b.jsonl", cache=cache_dir).cache.path not in paths  # type: ignore[union-attr]

    def test_a_directory_given_that_cannot_be_made_is_refused(self, tmp_path: Path) -> None:
        write_archive(tmp_path / "e.jsonl", [batch(0)], compression="none")
        (tmp_path / "blocker").write_text("a file, not a directory")
        with pytest.raises(ConfigError) as caught:
            Archive(tmp_path / "e.jsonl", cache=tmp_path / "blocker" / "cache")
        assert caught.value.option == "cache"
        for wrong in (3, ""):
            with pytest.raises(ConfigError, match="cache"):
                Archive(tmp_path / "e.jsonl", cache=wrong)  # type: ignore[arg-type]

    def test_a_default_directory_that_cannot_be_made_means_no_cache(
        self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
    ) -> None:
        (tmp_path / "blocker").write_text("a file, not a directory")
        monkeypatch.setenv(cache_module.CACHE_ENV, str(tmp_path / "blocker" / "cache"))
        write_archive(tmp_path / "e.jsonl.zst", [batch(0), batch(50)])
        archive = Archive(tmp_path / "e.jsonl.zst")
        with caplog.at_level(logging.WARNING, logger="metricstream.query"):
            same_everywhere(archive, tmp_path / "e.jsonl.zst")
        assert archive.cache is not None
        assert archive.cache.stats.answered == 0
        assert archive.cache.stats.bypassed == 5
        assert "cannot create" in (archive.cache.stats.last_problem or "")
        assert "reading the archive directly" in caplog.text

    def test_clear_removes_the_file_and_the_next_query_builds_it_again(
        self, tmp_path: Path, cache_dir: Path
    ) -> None:
        write_archive(tmp_path / "e.jsonl.zst", [batch(0), batch(50)])
        archive = Archive(tmp_path / "e.jsonl.zst", cache=cache_dir)
        assert archive.cache is not None
        assert archive.events().count().value == 100
        assert archive.cache.clear() == [archive.cache.path]
        assert not archive.cache.path.exists()
        assert archive.events().count().value == 100
        assert archive.cache.stats.records_loaded == 200
        other = tmp_path / "o.jsonl"
        write_archive(other, [batch(0)], compression="none")
        Archive(other, cache=cache_dir).events().count()
        (cache_dir / "mine.duckdb").write_bytes(b"someone else's database")
        assert len(clear_caches(cache_dir)) == 2
        assert [path.name for path in cache_dir.iterdir()] == ["mine.duckdb"]


def append(path: Path, events: list[Event], **options: object) -> None:
    sink = JsonLinesSink(path, **options)  # type: ignore[arg-type]
    sink.write(sink.prepare(EventBatch(events)))
    sink.close()


class TestFollowingTheArchive:
    """Growth, rotation, replacement, truncation and damage after a file was cached."""

    def test_a_growing_file_loads_only_its_new_records(self, path: Path, cache_dir: Path) -> None:
        archive, cache = opened(path, cache_dir)
        assert cache.stats.records_loaded == 100
        append(path, batch(100))
        same_everywhere(archive, path)
        assert cache.stats.records_loaded == 150
        same_everywhere(archive, path)
        assert cache.stats.records_loaded == 150
        assert cache.stats.bypassed == 0

    def test_the_same_query_over_an_unchanged_archive_is_answered_from_memory(
        self, path: Path, cache_dir: Path
    ) -> None:
        archive, cache = opened(path, cache_dir)
        first = archive.events("view").unique("user").value
        repeated = cache.stats.repeated
        assert archive.events("view").unique("user").value == first
        assert cache.stats.repeated == repeated + 1
        append(path, batch(100))
        assert archive.events("view").unique("user").value == unique(
            select(list(JsonLinesReader(path)), "view"), ["user"]
        )
        assert cache.stats.repeated == repeated + 1
        carts = select(list(JsonLinesReader(path)), "cart")
        assert archive.events("cart").unique("user").value == unique(carts, ["user"])
        assert cache.stats.repeated == repeated + 1

    def test_the_memory_of_answers_can_be_turned_off(
        self, path: Path, cache_dir: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        monkeypatch.setenv(cache_module.MEMO_ENV, "0")
        archive, cache = opened(path, cache_dir)
        first = archive.events("view").unique("user").value
        assert archive.events("view").unique("user").value == first
        assert cache.stats.repeated == 0
        monkeypatch.setenv(cache_module.MEMO_ENV, "some")
        with pytest.raises(ConfigError, match=cache_module.MEMO_ENV):
            Archive(path, cache=cache_dir)

    def test_a_growing_plain_file_with_a_line_being_written(
        self, tmp_path: Path, cache_dir: Path
    ) -> None:
        path = tmp_path / "e.jsonl"
        write_archive(path, [batch(0)], compression="none")
        archive = Archive(path, cache=cache_dir)
        same_everywhere(archive, path)
        with open(path, "ab") as handle:
            handle.write(b'{"measurement":"view","tags":{"user":"half')
        found = same_everywhere(archive, path)
        assert len(found[5]) == 1  # type: ignore[arg-type]
        with open(path, "ab") as handle:
            handle.write(b'"},"fields":{"n":1000},"timestamp_ns":5}\n')
        assert same_everywhere(archive, path)[5] == []
        assert archive.cache is not None
        assert archive.cache.stats.records_loaded == 51

    def test_rotated_files_are_recognised_under_their_new_names(
        self, tmp_path: Path, cache_dir: Path
    ) -> None:
        path = tmp_path / "e.jsonl.zst"
        written = 0
        for step in range(6):
            append(path, batch(written, 30), rotate_bytes=600)
            written += 30
            archive = Archive(tmp_path / "*.jsonl.zst*", cache=cache_dir)
            same_everywhere(archive, path)
            assert archive.cache is not None
            assert archive.cache.stats.records_loaded == (written if step == 0 else 30)
        assert len(archive.files) >= 3  # type: ignore[possibly-undefined]

    def test_a_replaced_file_is_loaded_again(
        self, path: Path, tmp_path: Path, cache_dir: Path
    ) -> None:
        archive, cache = opened(path, cache_dir)
        replacement = tmp_path / "new.jsonl.zst"
        write_archive(replacement, [batch(500, 20, user="user")])
        os.replace(replacement, path)
        same_everywhere(archive, path)
        assert cache.stats.records_loaded == 120

    def test_a_truncated_file_is_loaded_again(self, tmp_path: Path, cache_dir: Path) -> None:
        path = tmp_path / "e.jsonl"
        write_archive(path, [batch(0)], compression="none")
        size = path.stat().st_size
        append(path, batch(50), compression="none")
        archive = Archive(path, cache=cache_dir)
        same_everywhere(archive, path)
        with open(path, "r+b") as handle:
            handle.truncate(size)
        same_everywhere(archive, path)
        assert archive.cache is not None
        assert archive.cache.stats.records_loaded == 150

    def test_a_file_rewritten_in_place_is_loaded_again(
        self, tmp_path: Path, cache_dir: Path
    ) -> None:
        path = tmp_path / "e.jsonl.zst"
        write_archive(path, [batch(0), batch(50), batch(100)])
        archive = Archive(path, cache=cache_dir)
        same_everywhere(archive, path)
        data = bytearray(path.read_bytes())
        starts = [at for at in range(len(data)) if data.startswith(MAGIC, at)]
        data[(starts[1] + starts[2]) // 2] ^= 0x40  # the same size, another frame 2
        modified = path.stat().st_mtime_ns
        with open(path, "r+b") as handle:
            handle.write(data)
        os.utime(path, ns=(modified, modified + 1_000_000_000))  # however coarse the clock
        found = same_everywhere(archive, path)
        assert [(offset, length) for _, offset, length, _ in found[5]] == [  # type: ignore[attr-defined]
            (starts[1], starts[2] - starts[1])
        ]

    def test_damage_appended_after_caching_is_reported(
        self, tmp_path: Path, cache_dir: Path
    ) -> None:
        path = tmp_path / "e.jsonl.zst"
        write_archive(path, [batch(0)])
        archive = Archive(path, cache=cache_dir)
        same_everywhere(archive, path)
        with open(path, "ab") as handle:
            handle.write(MAGIC + b"\x00\x01")  # a frame being written
        torn = same_everywhere(archive, path)[5]
        assert len(torn) == 1  # type: ignore[arg-type]
        with open(path, "ab") as handle:
            handle.write(b"garbage" * 5)
        append_as_written_before(path, [batch(50)])
        assert len(same_everywhere(archive, path)[5]) == 1  # type: ignore[arg-type]
        good = tmp_path / "frame.jsonl.zst"
        write_archive(good, [batch(100)])
        frame = bytearray(good.read_bytes())
        frame[len(frame) // 2] ^= 0x40  # whole by its headers, wrong by its checksum
        with open(path, "ab") as handle:
            handle.write(frame)
        append_as_written_before(path, [batch(150)])
        found = same_everywhere(archive, path)
        assert found[0] == 150
        assert len(found[5]) == 2  # type: ignore[arg-type]

    def test_a_file_growing_while_it_is_read_is_read_once(
        self, path: Path, cache_dir: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        from metricstream.query import _store

        write_sources = _store.write_sources
        grown: list[bool] = []

        def checked_then_grown(*args: object) -> object:
            sources = write_sources(*args)  # type: ignore[arg-type]
            if not grown:  # the sink appends after the check, before DuckDB reads
                append(path, batch(100))
                grown.append(True)
            return sources

        monkeypatch.setattr(_store, "write_sources", checked_then_grown)
        archive, cache = opened(path, cache_dir)
        assert cache.stats.records_loaded == 150
        same_everywhere(archive, path)
        assert cache.stats.records_loaded == 150

    @pytest.mark.parametrize("cached", [True, False], ids=["cache", "archive"])
    def test_a_file_rotated_between_its_check_and_its_read(
        self, tmp_path: Path, cache_dir: Path, monkeypatch: pytest.MonkeyPatch, cached: bool
    ) -> None:
        from metricstream.query import _archive, _store

        path = tmp_path / "e.jsonl"
        append(path, batch(0), compression="none")
        with open(path, "ab") as handle:  # a line being written: its intact lines are copied
            handle.write(b'{"measurement":"view","tags":{"user":"half')
        module: Any = _store if cached else _archive
        check_file = module.check_file
        rotated: list[bool] = []

        def checked_then_rotated(file: Path, *args: object) -> object:
            found = check_file(file, *args)
            if not rotated and file == path.resolve():
                # The writer rotates the file just checked and starts a new, shorter one.
                append(path, batch(50, 10), compression="none", rotate_bytes=path.stat().st_size)
                rotated.append(True)
            return found

        monkeypatch.setattr(module, "check_file", checked_then_rotated)
        archive = Archive(path, cache=cache_dir if cached else False)
        assert answers(archive)[:5] == reference(path)
        assert (rotated, len(archive.files)) == ([True], 2)
        assert answers(archive)[0] == 60

    def test_a_file_no_longer_in_the_archive_is_dropped(
        self, tmp_path: Path, cache_dir: Path
    ) -> None:
        path = tmp_path / "e.jsonl.zst"
        write_archive(path, [batch(0), batch(50), batch(100)], rotate_bytes=1000)
        archive = Archive(path, cache=cache_dir)
        same_everywhere(archive, path)
        (tmp_path / "e.1.jsonl.zst").unlink()
        same_everywhere(archive, path)

    def test_a_new_property_loads_every_record_again_once(
        self, path: Path, cache_dir: Path
    ) -> None:
        archive = Archive(path, cache=cache_dir)
        assert archive.cache is not None
        assert archive.events().count().value == 100
        assert archive.cache.stats.rebuilds == 0
        assert archive.events().unique("user").value == 13
        assert archive.cache.stats.rebuilds == 1
        assert archive.events().unique("user").value == 13
        assert archive.events().breakdown("user", n=1).value[0].count == 8
        assert (archive.cache.stats.rebuilds, archive.cache.stats.records_loaded) == (1, 200)

    def test_another_archive_continues_where_the_cache_is(
        self, path: Path, cache_dir: Path
    ) -> None:
        opened(path, cache_dir)
        _, again = opened(path, cache_dir)
        assert (again.stats.records_loaded, again.stats.answered) == (0, 5)

    @settings(max_examples=10, deadline=None, suppress_health_check=[HealthCheck.too_slow])
    @given(
        steps=st.lists(st.tuples(st.integers(1, 40), st.booleans()), min_size=1, max_size=6),
        rotate=st.sampled_from([None, 700, 2000]),
        compression=st.sampled_from(["zstd", "none"]),
    )
    def test_any_writes_between_queries_load_each_record_once(
        self, steps: list[tuple[int, bool]], rotate: int | None, compression: str
    ) -> None:
        with tempfile.TemporaryDirectory() as directory:
            path = Path(directory) / "e.jsonl"
            append(path, batch(0, 1), compression=compression)
            archive = Archive(path.with_name("*.jsonl*"), cache=Path(directory) / "c")
            written = 1
            for size, query in steps:
                append(path, batch(written, size), rotate_bytes=rotate, compression=compression)
                written += size
                if query:
                    same_everywhere(archive, path)
            same_everywhere(archive, path)
            assert archive.cache is not None
            assert archive.cache.stats.records_loaded == written
            assert archive.cache.stats.rebuilds == 0


class TestSharing:
    """Several archives, threads and processes on one cache; a damaged cache file."""

    def test_a_process_keeping_the_cache_makes_queries_read_the_archive(
        self, path: Path, cache_dir: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        archive, cache = opened(path, cache_dir)
        holder = subprocess.Popen(
            [
                sys.executable,
                "-c",
                "import duckdb, sys; held = duckdb.connect(sys.argv[1]); "
                "print('ready', flush=True); sys.stdin.read()",
                str(cache.path),
            ],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        try:
            assert holder.stdout is not None
            assert holder.stdout.readline().strip() == "ready"
            monkeypatch.setattr(cache_module, "LOCK_WAIT", 0.0)
            same_everywhere(archive, path)
            assert cache.stats.bypassed == 5
            assert "in use by another process" in (cache.stats.last_problem or "")
        finally:
            holder.communicate("", timeout=60)
        same_everywhere(archive, path)
        assert cache.stats.answered == 10

    def test_threads_with_their_own_archives_share_the_cache(
        self, path: Path, cache_dir: Path
    ) -> None:
        expected = answers(Archive(path, cache=False))
        found: list[object] = []

        def work() -> None:
            archive = Archive(path, cache=cache_dir)
            found.append(answers(archive))
            assert archive.cache is not None
            found.append(archive.cache.stats.bypassed)

        threads = [threading.Thread(target=work) for _ in range(4)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=120)
        assert found.count(expected) == 4
        assert found.count(0) == 4

    def test_an_unreadable_cache_file_is_built_again(
        self, path: Path, cache_dir: Path, caplog: pytest.LogCaptureFixture
    ) -> None:
        archive, cache = opened(path, cache_dir)
        cache.path.write_bytes(b"not a database" * 1000)
        with caplog.at_level(logging.WARNING, logger="metricstream"):
            same_everywhere(archive, path)
        assert "unreadable" in caplog.text
        assert cache.stats.bypassed == 0


class TestKeys:
    """Property names DuckDB's struct members could confuse, with and without the cache."""

    @pytest.mark.parametrize("cached", [True, False])
    def test_keys_that_differ_in_case_or_hold_odd_characters(
        self, tmp_path: Path, cached: bool
    ) -> None:
        keys = ["user", "User", 'q"k', "a.b", "ü", " sp", "$1"]
        events = [
            Event(
                "view",
                tags={key: f"{key}-{n % (i + 2)}" for i, key in enumerate(keys) if (n + i) % 3},
                fields={"n": n, "User": n % 2},
                timestamp_ns=n,
                before_2001=True,
            )
            for n in range(40)
        ]
        path = tmp_path / "e.jsonl.zst"
        write_archive(path, [events[:20], events[20:]])
        archive = Archive(path, cache=tmp_path / "c" if cached else False)
        for key in keys:
            assert archive.events().unique(key).value == unique(events, [key]), key
        assert archive.events().unique(["user", "User"]).value == unique(events, ["user", "User"])
        rows = archive.events().breakdown(["User", 'q"k'], n=50).value
        assert [(row.values, row.count) for row in rows] == [
            (values, count) for values, count, _ in breakdown(events, ["User", 'q"k'], 50)
        ]

    @pytest.mark.parametrize("cached", [True, False])
    def test_an_object_naming_a_member_twice_is_still_read(
        self, tmp_path: Path, cached: bool
    ) -> None:
        path = tmp_path / "e.jsonl"
        path.write_bytes(
            b'{"measurement":"view","tags":{"user":"a","user":"a","x":"1","x":"2"},'
            b'"fields":{"n":1,"n":1},"timestamp_ns":1}\n'
            b'{"measurement":"view","tags":{"user":"c"},"fields":{"n":2},"timestamp_ns":2}\n'
        )
        archive = Archive(path, cache=tmp_path / "c" if cached else False)
        assert archive.events().unique("user").value == 2
        assert archive.events().sum("n").value == 3
        assert archive.events().count().skipped == ()


class TestCommand:
    """``metricstream query`` with --cache-dir, --no-cache and --clear-cache."""

    def test_the_cache_flags(
        self, path: Path, cache_dir: Path, capsys: pytest.CaptureFixture[str]
    ) -> None:
        query = ["query", str(path), "--event", "view", "--unique", "user", "--format", "json"]
        assert main([*query, "--cache-dir", str(cache_dir)]) == 0
        cached = json.loads(capsys.readouterr().out)
        assert len(list(cache_dir.iterdir())) == 1
        assert main([*query, "--no-cache"]) == 0
        assert json.loads(capsys.readouterr().out) == cached
        assert cached["data"]["view"] == {"count": 50, "weighted_count": 50, "unique": {"user": 13}}
        assert main(["query", str(path), "--cache-dir", str(cache_dir), "--clear-cache"]) == 0
        assert capsys.readouterr().out.startswith("removed ")
        assert list(cache_dir.iterdir()) == []
        assert main([*query, "--cache-dir", str(cache_dir), "--clear-cache"]) == 0
        assert json.loads(capsys.readouterr().out.split("\n", 1)[1]) == cached
        assert main(["query", "--cache-dir", str(cache_dir), "--clear-cache"]) == 0
        assert capsys.readouterr().out.startswith("removed ")
        assert main(["query", "--cache-dir", str(cache_dir), "--clear-cache"]) == 0
        assert capsys.readouterr().out == "no query cache to remove\n"
        assert main(["query", str(path), "--no-cache", "--clear-cache"]) == 2
        with pytest.raises(SystemExit):
            main([*query, "--no-cache", "--cache-dir", str(cache_dir)])
