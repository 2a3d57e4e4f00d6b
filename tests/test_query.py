"""Event sets over archives: discovery, every filter and set operation against the reference."""

from __future__ import annotations

import datetime as dt
import tempfile
from pathlib import Path

import pytest

from tests.servers import require_module

require_module("duckdb", "metricstream.query runs on DuckDB (the query extra)")

from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

import metricstream as ms  # noqa: E402
from metricstream.exceptions import ConfigError  # noqa: E402
from metricstream.query import (  # noqa: E402
    Archive,
    Filter,
    eq,
    gt,
    gte,
    isin,
    lt,
    lte,
    neq,
    present,
    regex,
)
from tests.test_query_reference import (  # noqa: E402
    both_ways,  # noqa: F401  (a fixture: every test with and without the cache)
    breakdown,
    select,
    series,
    total,
    unique,
    write_archive,
)

Event = ms.MetricEvent
BASE = 1_700_000_000_000_000_000
HOUR = 3_600_000_000_000


def sample_events() -> list[Event]:
    """Ties, repeats, missing properties, unicode, every field type."""
    users = ["ana", "bo", "çé", "日本", "ana"]
    events = []
    for i in range(60):
        tags = {"user": users[i % 5], "path": ["/", "/docs", "/ü"][i % 3]}
        if i % 7 == 0:
            del tags["user"]
        fields: dict[str, object] = {"count": i % 4}
        if i % 2:
            fields["amount"] = round(i * 1.25, 2)
        if i % 5 == 0:
            fields["big"] = ms.UInt(2**64 - 1 - i)
        if i % 6 == 0:
            fields["ok"] = i % 12 == 0
        if i % 9 == 0:
            fields["user"] = "field-user"
        name = ["view", "cart", "buy", "vïew"][i % 4]
        events.append(Event(name, tags=tags, fields=fields, timestamp_ns=BASE + (i // 3) * HOUR))
    return events


FILTERS = [
    eq("user", "ana"),
    eq("user", "日本"),
    eq("user", "field-user"),
    eq("count", 2),
    eq("count", 2.0),
    eq("count", "2"),
    eq("ok", True),
    eq("amount", 2.5),
    eq("measurement", "vïew"),
    eq("event", "cart"),
    neq("user", "ana"),
    neq("ok", False),
    isin("user", ["bo", "çé", 3]),
    isin("count", [0, 3]),
    isin("user", []),
    regex("path", "^/d"),
    regex("user", "."),
    regex("path", "ü$"),
    present("user"),
    present("amount"),
    present("missing"),
    gt("count", 1),
    gte("count", 1),
    lt("amount", 30),
    lte("amount", 30.0),
    gt("big", 2**64 - 30),
    lte("big", 2**64 - 50),
    gt("user", 0),
    gt("ok", 0),
]


@pytest.fixture(scope="module")
def sample(
    tmp_path_factory: pytest.TempPathFactory,
    both_ways: str,  # noqa: F811  (made again for each way)
) -> tuple[Archive, list[Event]]:
    directory = tmp_path_factory.mktemp("sample")
    events = sample_events()
    batches = [events[i : i + 7] for i in range(0, len(events), 7)]
    write_archive(directory / "events.jsonl.zst", batches, rotate_bytes=600)
    archive = Archive(directory / "events.jsonl.zst")
    assert len(archive.files) > 2
    return archive, events


class TestDiscovery:
    """An archive is a file, a rotated series or a glob, oldest file first."""

    def test_a_rotated_series_is_read_whole(self, sample: tuple[Archive, list[Event]]) -> None:
        archive, events = sample
        names = [file.name for file in archive.files]
        assert names[-1] == "events.jsonl.zst"
        assert names[:-1] == [f"events.{n}.jsonl.zst" for n in range(1, len(names))]
        assert archive.events().count().value == len(events)

    def test_a_glob_and_a_list_of_paths(self, tmp_path: Path) -> None:
        write_archive(tmp_path / "a.jsonl", [sample_events()[:10]], compression="none")
        write_archive(tmp_path / "b.jsonl.zst", [sample_events()[10:25]])
        write_archive(tmp_path / "c.jsonl.gz", [sample_events()[25:30]], compression="gzip")
        assert Archive(str(tmp_path / "*.jsonl*")).events().count().value == 30
        assert Archive([tmp_path / "a.jsonl", tmp_path / "c.jsonl.gz"]).events().count().value == 15

    def test_a_glob_over_rotated_series_keeps_each_series_in_order(self, tmp_path: Path) -> None:
        events = sample_events()
        for worker in ("0", "1"):
            batches = [events[i : i + 2] for i in range(0, 24, 2)]
            write_archive(tmp_path / f"events-{worker}.jsonl.zst", batches, rotate_bytes=1)
        (tmp_path / "events-0.1.jsonl.zst").rename(tmp_path / "events-0.jsonl.zst.1")
        archive = Archive(str(tmp_path / "events-*.jsonl.zst"))
        expected = [
            f"events-{worker}.{n}.jsonl.zst" if (worker, n) != ("0", 1) else "events-0.jsonl.zst.1"
            for worker in ("0", "1")
            for n in range(1, 12)
        ]
        expected.insert(11, "events-0.jsonl.zst")
        expected.append("events-1.jsonl.zst")
        assert [file.name for file in archive.files] == expected
        assert archive.events().count().value == 48

    def test_missing_files_and_empty_lists_are_refused(self, tmp_path: Path) -> None:
        with pytest.raises(FileNotFoundError):
            Archive(tmp_path / "none.jsonl")
        with pytest.raises(FileNotFoundError, match="matches no file"):
            Archive(str(tmp_path / "*.zst"))
        with pytest.raises(ConfigError, match="paths"):
            Archive([])

    def test_an_empty_file_answers_zero(self, tmp_path: Path) -> None:
        (tmp_path / "empty.jsonl").write_bytes(b"")
        archive = Archive(tmp_path / "empty.jsonl")
        assert archive.events().count().value == 0
        assert archive.events().unique("user").value == 0
        assert archive.events().sum("count").value == 0


class TestFilters:
    """Every filter selects exactly the events the reference selects."""

    @pytest.mark.parametrize("item", FILTERS, ids=lambda f: f"{f.type}-{f.key}-{f.value!r}")
    def test_filter_matches_the_reference(
        self, sample: tuple[Archive, list[Event]], item: Filter
    ) -> None:
        archive, events = sample
        expected = select(events, filters=[item])
        found = archive.events(filters=[item])
        assert found.count().value == len(expected)
        assert found.unique("measurement").value == unique(expected, ["measurement"])

    def test_filters_combine_with_names_and_times(
        self, sample: tuple[Archive, list[Event]]
    ) -> None:
        archive, events = sample
        start, end = BASE + 3 * HOUR, BASE + 12 * HOUR
        filters = [present("user"), neq("path", "/")]
        expected = select(events, "view", filters, start, end)
        found = archive.events("view", filters, start=start // 1_000_000, end=end // 1_000_000)
        assert found.count().value == len(expected)
        iso = archive.events(
            "view",
            [{"type": "all", "key": "user"}, {"type": "neq", "key": "path", "value": "/"}],
            start=dt.datetime.fromtimestamp(start / 1e9, dt.timezone.utc).isoformat(),
            end=dt.datetime.fromtimestamp(end / 1e9, dt.timezone.utc),
        )
        assert iso.count().value == len(expected)

    @pytest.mark.parametrize(
        ("kwargs", "option"),
        [
            ({"type": "like", "key": "a", "value": 1}, "filters[0].type"),
            ({"type": "eq", "key": "", "value": 1}, "filters[0].key"),
            ({"type": "gt", "key": "a", "value": "1"}, "filters[0].value"),
            ({"type": "in", "key": "a", "value": [1, None]}, "filters[0].value[1]"),
            ({"type": "all", "key": "a", "value": 1}, "filters[0].value"),
            ({"type": "eq", "key": "a", "value": float("nan")}, "filters[0].value"),
        ],
    )
    def test_bad_filters_name_the_part(
        self, sample: tuple[Archive, list[Event]], kwargs: dict[str, object], option: str
    ) -> None:
        archive, _ = sample
        with pytest.raises(ConfigError) as caught:
            archive.events("x", [kwargs])
        assert caught.value.option == option

    def test_a_pattern_re2_refuses_is_a_config_error(
        self, sample: tuple[Archive, list[Event]]
    ) -> None:
        archive, _ = sample
        with pytest.raises(ConfigError, match=r"filters\[0\]\.value"):
            archive.events(filters=[regex("path", "(")]).count()


class TestSetOperations:
    """count, unique, sum, breakdown and series agree with the reference."""

    def test_unique_of_one_key_and_of_combinations(
        self, sample: tuple[Archive, list[Event]]
    ) -> None:
        archive, events = sample
        for keys in (["user"], ["user", "path"], ["big"], ["ok", "measurement"], ["nothing"]):
            assert archive.events().unique(keys).value == unique(events, keys), keys
        views = select(events, "view")
        assert archive.events("view").unique("user").value == unique(views, ["user"])

    def test_sum_adds_integers_exactly_and_floats_closely(
        self, sample: tuple[Archive, list[Event]]
    ) -> None:
        archive, events = sample
        assert archive.events().sum("count").value == total(events, "count")
        assert archive.events().sum("big").value == total(events, "big")
        assert isinstance(archive.events().sum("big").value, int)
        assert archive.events().sum("amount").value == pytest.approx(total(events, "amount"))
        assert archive.events().sum("user").value == 0

    @pytest.mark.parametrize("keys", [["user"], ["path", "user"], ["ok"], ["amount"]])
    def test_breakdown_top_values_with_uniques(
        self, sample: tuple[Archive, list[Event]], keys: list[str]
    ) -> None:
        archive, events = sample
        for n in (1, 3, 100):
            rows = archive.events().breakdown(keys, n=n, unique=["user", "path"]).value
            expected = breakdown(events, keys, n, ["user", "path"])
            assert [(r.values, r.count, r.unique) for r in rows] == expected

    @pytest.mark.parametrize(
        ("bucket", "timezone"),
        [("hour", "UTC"), ("day", "UTC"), ("hour", "Asia/Kathmandu"), ("day", "America/New_York")],
    )
    def test_series_buckets_on_the_wall_clock(
        self, sample: tuple[Archive, list[Event]], bucket: str, timezone: str
    ) -> None:
        archive, events = sample
        points = archive.events().series(bucket, timezone=timezone).value
        assert [(p.start, p.count) for p in points] == series(events, bucket, timezone)
        with_users = archive.events("view").series(bucket, timezone, unique=["user"]).value
        assert sum(p.count for p in with_users) == len(select(events, "view"))

    def test_series_refuses_unknown_buckets_and_timezones(
        self, sample: tuple[Archive, list[Event]]
    ) -> None:
        archive, _ = sample
        with pytest.raises(ConfigError, match="bucket"):
            archive.events().series("week")
        with pytest.raises(ConfigError, match="timezone"):
            archive.events().series("day", timezone="Mars/Olympus")

    def test_a_daylight_saving_change_keeps_local_days(self, tmp_path: Path) -> None:
        zone = "Europe/Paris"
        # 2024-03-31: the clocks go forward at 02:00 local time.
        start = int(dt.datetime(2024, 3, 30, 20, tzinfo=dt.timezone.utc).timestamp()) * 10**9
        events = [
            Event("view", fields={"n": 1}, timestamp_ns=start + i * HOUR // 2) for i in range(60)
        ]
        write_archive(tmp_path / "dst.jsonl.zst", [events])
        archive = Archive(tmp_path / "dst.jsonl.zst")
        for bucket in ("hour", "day"):
            found = archive.events().series(bucket, timezone=zone).value
            assert [(p.start, p.count) for p in found] == series(events, bucket, zone)


names = st.sampled_from(["view", "cart", "buy", "ünï"])
keys = st.sampled_from(["user", "path", "n", "x"])
scalars = st.one_of(
    st.sampled_from(["a", "b", "ü", "日"]),
    st.integers(-3, 3),
    st.sampled_from([0.5, -1.5, 2.0]),
    st.booleans(),
)


@st.composite
def generated_events(draw: st.DrawFn) -> list[Event]:
    count = draw(st.integers(0, 40))
    events = []
    for _ in range(count):
        tags = draw(
            st.dictionaries(
                st.sampled_from(["user", "path"]),
                st.sampled_from(["a", "b", "ü", "日"]),
                max_size=2,
            )
        )
        fields = draw(st.dictionaries(keys, scalars, min_size=1, max_size=3))
        events.append(
            Event(
                draw(names),
                tags=tags,
                fields=fields,
                timestamp_ns=BASE + draw(st.integers(0, 6)) * HOUR,
            )
        )
    return events


@st.composite
def generated_filters(draw: st.DrawFn) -> Filter:
    kind = draw(st.sampled_from(["eq", "neq", "in", "regex", "all", "gt", "gte", "lt", "lte"]))
    key = draw(st.one_of(keys, st.just("measurement")))
    if kind in ("eq", "neq"):
        return Filter(kind, key, draw(scalars))
    if kind == "in":
        return Filter(kind, key, draw(st.lists(scalars, max_size=3)))
    if kind == "regex":
        return Filter(kind, key, draw(st.sampled_from(["^a", "ü", "b$", ".", "^(v|c)"])))
    if kind == "all":
        return Filter(kind, key)
    return Filter(kind, key, draw(st.one_of(st.integers(-3, 3), st.sampled_from([0.5, -1.0]))))


class TestGenerated:
    """Generated archives and queries give the reference's answers."""

    @settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
    @given(
        events=generated_events(),
        filters=st.lists(generated_filters(), max_size=2),
        name=st.one_of(st.none(), names),
        compression=st.sampled_from(["zstd", "none", "gzip"]),
        rotate=st.sampled_from([None, 400]),
    )
    def test_sets_match_the_reference(
        self,
        events: list[Event],
        filters: list[Filter],
        name: str | None,
        compression: str,
        rotate: int | None,
    ) -> None:
        with tempfile.TemporaryDirectory() as directory:
            path = Path(directory) / "events.jsonl"
            batches = [events[i : i + 6] for i in range(0, len(events), 6)]
            write_archive(path, batches, compression=compression, rotate_bytes=rotate)
            if not events:
                path.write_bytes(b"")
            archive = Archive(path, threads=2)
            expected = select(events, name, filters)
            found = archive.events(name, filters)
            assert found.count().value == len(expected)
            assert found.unique(["user", "n"]).value == unique(expected, ["user", "n"])
            assert found.sum("n").value == pytest.approx(total(expected, "n"))
            rows = found.breakdown("n", n=3, unique=["user"]).value
            assert [(r.values, r.count, r.unique) for r in rows] == breakdown(
                expected, ["n"], 3, ["user"]
            )
            archive.close()
