"""Redis counters without a server: keys, escaping, mappings, buckets, aggregation, limits."""

from __future__ import annotations

import datetime as dt
import zoneinfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import metricstream as ms
from metricstream.columns import EventColumns
from metricstream.exceptions import ConfigError, InvalidEventError
from metricstream.properties import event_property, property_values
from metricstream.sinks import CounterLimits, CounterMapping, RedisCounterSink, TimeBuckets
from metricstream.sinks.redis_counters import KeyLayout, parse_key
from metricstream.sinks.redis_counters.encode import Planner
from metricstream.sinks.redis_counters.keys import escape, join_escaped, split_escaped

DAY = 1_696_118_400  # 2023-10-01T00:00:00Z, the traqq README's bucket
TRAQQ = CounterMapping(
    unique=["ip"],
    count=["event", "event~utm_source", "event~utm_campaign"],
    sum=[("event", "amount"), ("event~utm_source", "amount")],
)


def plan(mapping: CounterMapping, events: list[ms.MetricEvent], **options: object) -> dict:
    """The operations of a batch as {key: [(code, args...), ...]}."""
    buckets = options.pop("buckets", TimeBuckets())
    limits = options.pop("limits", CounterLimits())
    prefix = options.pop("prefix", "")
    planner = Planner(mapping, buckets, limits, KeyLayout(prefix), **options)  # type: ignore[arg-type]
    found: dict[str, list[tuple[str, ...]]] = {}
    for key, op in planner.plan(EventColumns.of_events(events)):
        found.setdefault(key, []).append(op)
    return found


def purchase(ts: int = DAY * 10**9 + 5, **tags: str) -> ms.MetricEvent:
    tags = {"utm_source": "google", "utm_campaign": "summer_sale", "ip": "127.0.0.1", **tags}
    return ms.MetricEvent("purchase", tags=tags, fields={"amount": 99.99}, timestamp_ns=ts)


class TestTraqqLayout:
    """With prefix="" the keys are byte for byte those of traqq's README."""

    def test_the_readme_examples_are_produced_exactly(self) -> None:
        ops = plan(TRAQQ, [purchase()])
        assert ops["bmp:d:1696118400:ip"] == [("p", "127.0.0.1")]
        assert ops["add:d:1696118400:event:purchase"] == [("i", "1")]
        assert ops["add:d:1696118400:event~utm_source:purchase~google"] == [("i", "1")]
        assert ops["add:d:1696118400:event~utm_campaign:purchase~summer_sale"] == [("i", "1")]
        assert ops["adv:d:1696118400:event:purchase"] == [("f", "99.99")]
        assert ops["adv:d:1696118400:event~utm_source:purchase~google"] == [("f", "99.99")]

    def test_hourly_buckets_add_h_keys(self) -> None:
        ops = plan(TRAQQ, [purchase()], buckets=TimeBuckets(hourly=True))
        assert ops["bmp:h:1696118400:ip"] == [("p", "127.0.0.1")]
        assert ops["add:h:1696118400:event:purchase"] == [("i", "1")]
        assert ops["adv:h:1696118400:event:purchase"] == [("f", "99.99")]

    def test_a_prefix_goes_before_every_key(self) -> None:
        ops = plan(TRAQQ, [purchase()], prefix="ms:")
        assert all(key.startswith("ms:") for key in ops)
        assert "ms:add:d:1696118400:event:purchase" in ops


class TestAggregation:
    """Identical keys of a batch merge: commands grow with distinct keys, not events."""

    def test_counts_sums_and_members_merge_within_a_batch(self) -> None:
        events = [purchase(ip=f"10.0.0.{i % 3}") for i in range(50)]
        events += [
            ms.MetricEvent("purchase", tags={"utm_source": "google"}, fields={"amount": 5},
                           timestamp_ns=DAY * 10**9)
            for _ in range(4)
        ]  # fmt: skip
        ops = plan(TRAQQ, events)
        assert ops["add:d:1696118400:event:purchase"] == [("i", "54")]
        floats = 0.0
        for _ in range(50):
            floats += 99.99
        assert sorted(ops["adv:d:1696118400:event:purchase"]) == [("f", repr(floats)), ("i", "20")]
        (pfadd,) = ops["bmp:d:1696118400:ip"]
        assert pfadd[0] == "p"
        assert sorted(pfadd[1:]) == ["10.0.0.0", "10.0.0.1", "10.0.0.2"]

    def test_a_missing_property_drops_only_the_keys_that_need_it(self) -> None:
        event = ms.MetricEvent(
            "purchase", tags={"utm_source": "google"}, fields={"n": 1}, timestamp_ns=DAY * 10**9
        )
        ops = plan(TRAQQ, [event])
        assert "add:d:1696118400:event~utm_source:purchase~google" in ops
        assert not any("utm_campaign" in key for key in ops)
        assert not any(key.startswith("adv:") or key.startswith("bmp:") for key in ops)

    def test_a_non_numeric_value_field_feeds_no_sum(self) -> None:
        mapping = CounterMapping(sum=[("measurement", "v")])
        events = [
            ms.MetricEvent("m", fields={"v": value}, timestamp_ns=DAY * 10**9)
            for value in ("12", "0.5", "abc", True, 3)
        ]
        ops = plan(mapping, events)
        assert sorted(ops["adv:d:1696118400:measurement:m"]) == [("f", "0.5"), ("i", "15")]

    def test_value_index_lists_the_combinations_of_each_bucket(self) -> None:
        events = [purchase(utm_source=source) for source in ("google", "bing", "google")]
        ops = plan(TRAQQ, events)
        (sadd,) = ops["idx:add:d:1696118400:event~utm_source"]
        assert sadd[0] == "s"
        assert sorted(sadd[1:]) == ["purchase~bing", "purchase~google"]

    def test_ttls_expire_keys_relative_to_their_bucket_start(self) -> None:
        ops = plan(
            TRAQQ,
            [purchase(ts=(DAY + 7300) * 10**9)],
            buckets=TimeBuckets(hourly=True),
            ttl_daily=86_400,
            ttl_hourly=600,
        )
        assert ops["add:d:1696118400:event:purchase"] == [("i", "1"), ("x", str(DAY + 86_400))]
        assert ops["add:h:1696125600:event:purchase"] == [("i", "1"), ("x", str(DAY + 7200 + 600))]
        assert ("x", str(DAY + 86_400)) in ops["idx:add:d:1696118400:event"]

    def test_more_than_a_thousand_members_are_split_across_operations(self) -> None:
        events = [purchase(ip=f"10.0.{i // 256}.{i % 256}") for i in range(2500)]
        ops = plan(TRAQQ, events)["bmp:d:1696118400:ip"]
        assert [len(op) - 1 for op in ops] == [1000, 1000, 500]
        assert len({member for op in ops for member in op[1:]}) == 2500


class TestEscaping:
    """Values with ':', '~' or '\\' are escaped so that every key parses back."""

    @given(st.lists(st.text(min_size=0, max_size=12), min_size=1, max_size=4))
    @settings(max_examples=300, deadline=None)
    def test_escaped_parts_split_back_exactly(self, parts: list[str]) -> None:
        assert split_escaped(join_escaped(parts)) == tuple(parts)

    def test_only_the_three_special_characters_change(self) -> None:
        assert escape("a:b~c\\d {x} é") == "a\\:b\\~c\\\\d {x} é"
        assert escape("plain-value_1.2") == "plain-value_1.2"

    def test_hostile_values_make_distinct_keys_that_parse_back(self) -> None:
        mapping = CounterMapping(count=["a~b"])
        pairs = [
            ("x:y", "z"),
            ("x", "y:z"),
            ("x~y", "z"),
            ("x", "y~z"),
            ("x\\", "~z"),
            ("x", "\\~z"),
        ]
        keys = set()
        for a, b in pairs:
            event = ms.MetricEvent("m", fields={"a": a, "b": b, "n": 1}, timestamp_ns=DAY * 10**9)
            (key,) = [k for k in plan(mapping, [event], prefix="p:x:") if k.startswith("p:x:add")]
            keys.add(key)
            parsed = parse_key(key, "p:x:")
            assert (parsed.kind, parsed.bucket, parsed.start) == ("add", "d", DAY)
            assert (parsed.names, parsed.values) == (("a", "b"), (a, b))
        assert len(keys) == len(pairs)

    def test_a_mapping_name_may_hold_an_escaped_tilde(self) -> None:
        mapping = CounterMapping(count=["odd\\~name~measurement"])
        assert mapping.metrics[0].names == ("odd~name", "measurement")


class TestMapping:
    """CounterMapping: traqq's names, JSON, and refusals."""

    def test_traqq_dict_names_are_accepted(self) -> None:
        mapping = CounterMapping.from_dict(
            {
                "bitmap": ["ip"],
                "add": ["event", "event~utm_source"],
                "add_value": [{"key": "event", "add_key": "amount"}],
            }
        )
        assert mapping == CounterMapping(
            unique=["ip"], count=["event", "event~utm_source"], sum=[("event", "amount")]
        )
        assert CounterMapping.from_dict(mapping.to_dict()) == mapping

    def test_json_text_is_accepted(self) -> None:
        mapping = CounterMapping.from_json('{"count": ["measurement"], "sum": [["org", "amount"]]}')
        assert mapping.sum == (("org", "amount"),)

    @pytest.mark.parametrize(
        ("options", "message"),
        [
            ({"count": ["a~~b"]}, "empty name"),
            ({"count": ["~a"]}, "empty name"),
            ({"count": ["a", "a"]}, "listed twice"),
            ({"sum": [("a", "x"), ("a", "y")]}, "listed twice"),
            ({"sum": [("a",)]}, "(key, value_field)"),
            ({"count": "measurement"}, "must be a list"),
        ],
    )
    def test_invalid_mappings_are_refused(self, options: dict, message: str) -> None:
        with pytest.raises(ConfigError, match=message):
            CounterMapping(**options)

    def test_unknown_dict_keys_are_refused(self) -> None:
        with pytest.raises(ConfigError, match="unknown key 'counts'"):
            CounterMapping.from_dict({"counts": ["a"]})
        with pytest.raises(ConfigError, match="given twice"):
            CounterMapping.from_dict({"add": ["a"], "count": ["b"]})


class TestEventProperty:
    """A property is the measurement, else a tag, else a field; 'event' aliases the measurement."""

    def test_resolution_order(self) -> None:
        event = ms.MetricEvent("purchase", tags={"a": "tag"}, fields={"a": 1, "b": 2.5})
        assert event_property(event, "measurement") == "purchase"
        assert event_property(event, "a") == "tag"
        assert event_property(event, "b") == 2.5
        assert event_property(event, "event") == "purchase"
        assert event_property(event, "missing") is None

    def test_a_tag_or_field_named_event_wins_over_the_alias(self) -> None:
        tagged = ms.MetricEvent("m", tags={"event": "signup"}, fields={"n": 1})
        fielded = ms.MetricEvent("m", fields={"event": "click"})
        plain = ms.MetricEvent("m", fields={"n": 1})
        assert property_values([tagged, fielded, plain], "event") == ["signup", "click", "m"]


class TestLimits:
    """Events over CounterLimits are named for dropping with reason 'limits'."""

    def test_an_over_long_value_names_its_event(self) -> None:
        limits = CounterLimits(max_value_length=12)
        events = [purchase(), purchase(utm_source="x" * 13), purchase()]
        with pytest.raises(InvalidEventError) as raised:
            plan(TRAQQ, events, limits=limits)
        assert (raised.value.indexes, raised.value.reason) == ((1,), "limits")
        assert "max_value_length=12" in str(raised.value)

    def test_an_event_feeding_too_many_keys_is_named(self) -> None:
        limits = CounterLimits(max_metrics_per_event=5)
        full = purchase()
        partial = ms.MetricEvent("purchase", fields={"n": 1}, timestamp_ns=DAY * 10**9)
        with pytest.raises(InvalidEventError) as raised:
            plan(TRAQQ, [partial, full], limits=limits)
        assert raised.value.indexes == (1,)
        assert "max_metrics_per_event=5" in str(raised.value)

    def test_too_many_compound_keys_are_named(self) -> None:
        limits = CounterLimits(max_combinations=2)
        with pytest.raises(InvalidEventError, match="max_combinations=2") as raised:
            plan(TRAQQ, [purchase()], limits=limits)
        assert raised.value.indexes == (0,)

    def test_a_mapping_name_over_max_field_length_is_refused(self) -> None:
        with pytest.raises(ConfigError, match="max_field_length"):
            RedisCounterSink(
                "redis://127.0.0.1:1/0",
                mapping=CounterMapping(count=["n" * 129]),
            )

    def test_limits_must_be_positive_ints(self) -> None:
        with pytest.raises(ConfigError, match="max_value_length"):
            CounterLimits(max_value_length=0)


def utc(*parts: int) -> int:
    return int(dt.datetime(*parts, tzinfo=dt.timezone.utc).timestamp())  # type: ignore[misc]


class TestTimeBuckets:
    """Buckets start at local midnight / the local hour, across daylight saving changes."""

    def test_utc_buckets_are_plain_arithmetic(self) -> None:
        buckets = TimeBuckets(hourly=True)
        assert buckets.starts_ns((DAY + 5000) * 10**9 + 7) == (DAY, DAY + 3600)
        assert buckets.enumerate(DAY - 1, DAY + 2 * 86_400, "d") == [
            DAY,
            DAY + 86_400,
            DAY + 2 * 86_400,
        ]

    def test_berlin_spring_forward_day_has_23_hourly_buckets(self) -> None:
        buckets = TimeBuckets(hourly=True, timezone="Europe/Berlin")
        day = utc(2024, 3, 30, 23)  # 2024-03-31 00:00 CET
        next_day = utc(2024, 3, 31, 22)  # 2024-04-01 00:00 CEST
        assert buckets.day_start(day + 5 * 3600) == day
        hours = buckets.enumerate(day, next_day - 1, "h")
        assert len(hours) == 23
        assert hours[:3] == [day, day + 3600, day + 2 * 3600]  # 00:00, 01:00, then 03:00 CEST

    def test_berlin_fall_back_day_has_25_hourly_buckets_two_for_the_repeated_hour(self) -> None:
        buckets = TimeBuckets(hourly=True, timezone="Europe/Berlin")
        day = utc(2024, 10, 26, 22)  # 2024-10-27 00:00 CEST
        hours = buckets.enumerate(day, utc(2024, 10, 27, 23) - 1, "h")
        assert len(hours) == 25
        first_two, second_two = utc(2024, 10, 27, 0), utc(2024, 10, 27, 1)  # 02:00 CEST, 02:00 CET
        assert first_two in hours
        assert second_two in hours
        assert buckets.hour_start(first_two + 1800) == first_two
        assert buckets.hour_start(second_two + 1800) == second_two

    def test_a_skipped_midnight_starts_the_day_at_the_change(self) -> None:
        buckets = TimeBuckets(timezone="America/Santiago")  # 2022-09-11 00:00 -> 01:00
        assert buckets.day_start(utc(2022, 9, 11, 12)) == utc(2022, 9, 11, 4)

    def test_a_half_hour_change_splits_the_hour_at_the_change(self) -> None:
        buckets = TimeBuckets(hourly=True, timezone="Australia/Lord_Howe")  # 02:00+11 -> 01:30+1030
        hours = buckets.enumerate(utc(2024, 4, 6, 13), utc(2024, 4, 6, 17), "h")
        assert hours == [
            utc(2024, 4, 6, 13),  # 00:00+11
            utc(2024, 4, 6, 14),  # 01:00+11
            utc(2024, 4, 6, 15),  # 01:30+1030, the repeated half hour
            utc(2024, 4, 6, 15) + 1800,  # 02:00+1030
            utc(2024, 4, 6, 16) + 1800,  # 03:00+1030
        ]

    @given(
        st.integers(min_value=utc(1990, 1, 1), max_value=utc(2040, 1, 1)),
        st.sampled_from(["Europe/Berlin", "America/New_York", "Australia/Lord_Howe",
                         "Asia/Kolkata", "America/Santiago", "Pacific/Chatham"]),
    )  # fmt: skip
    @settings(max_examples=400, deadline=None)
    def test_every_instant_lies_in_its_buckets_which_start_on_the_local_clock(
        self, instant: int, zone: str
    ) -> None:
        buckets = TimeBuckets(hourly=True, timezone=zone)
        tz = zoneinfo.ZoneInfo(zone)
        for start in (buckets.hour_start(instant), buckets.day_start(instant)):
            assert start <= instant
        hour, day = buckets.hour_start(instant), buckets.day_start(instant)
        assert buckets.hour_start(hour) == hour
        assert buckets.day_start(day) == day
        local = dt.datetime.fromtimestamp(instant, tz)
        assert dt.datetime.fromtimestamp(day, tz).date() == local.date()
        assert dt.datetime.fromtimestamp(hour, tz).hour == local.hour
        assert buckets.starts_ns(instant * 10**9 + 999) == (day, hour)

    def test_unknown_zones_are_refused(self) -> None:
        with pytest.raises(ConfigError, match="unknown time zone"):
            TimeBuckets(timezone="Mars/Olympus")
