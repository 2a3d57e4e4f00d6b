"""Distributions and sets within their documented bounds; every accumulator merges exactly."""

from __future__ import annotations

import math
import random
import sys
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from metricstream import ConfigError
from metricstream.aggregate import (
    QUANTILES,
    Aggregator,
    Buckets,
    Quantiles,
    Stats,
    Total,
    Unique,
)
from metricstream.aggregate._sketches import HLL_RELATIVE_ERROR, RELATIVE_ACCURACY

INTERVAL = 10_000_000_000


def exact_quantile(values: list[float], q: float) -> float:
    """The value of rank floor(q * (n - 1)) among the sorted values."""
    ordered = sorted(values)
    return ordered[math.floor(q * (len(ordered) - 1))]


def within_bound(estimate: float, exact: float) -> bool:
    """Within the sketch's relative accuracy (plus float rounding)."""
    return abs(estimate - exact) <= RELATIVE_ACCURACY * abs(exact) * (1 + 1e-9) + 1e-300


magnitudes = st.one_of(
    st.floats(1e-6, 1e9),
    st.floats(-1e9, -1e-6),
    st.just(0.0),
    st.integers(-10_000, 10_000).map(float),
)


class TestDistributions:
    """Each quantile is within 1% of the exact value of its rank; the rest is exact."""

    @settings(max_examples=80, deadline=None)
    @given(st.lists(magnitudes, min_size=1, max_size=2500))
    def test_quantiles_are_within_the_bound_of_the_exact_ones(self, values: list[float]) -> None:
        aggregator = Aggregator(10, clock=lambda: 0)
        for value in values:
            aggregator.distribution("lat", value, {"route": "/a"})
        (event,) = aggregator.collect(INTERVAL)
        for q, prefix in QUANTILES:
            estimate = event.fields[prefix]
            assert isinstance(estimate, float)
            assert within_bound(estimate, exact_quantile(values, q)), (prefix, estimate)
        total = 0.0
        for value in values:
            total += value
        assert (event.fields["min"], event.fields["max"]) == (min(values), max(values))
        assert (event.fields["sum"], event.fields["count"]) == (total, len(values))

    @pytest.mark.parametrize("seed", [1, 2, 3])
    def test_the_tail_of_a_heavy_tailed_stream_is_within_the_bound(self, seed: int) -> None:
        rng = random.Random(seed)
        values = [rng.lognormvariate(3, 2) for _ in range(100_000)]
        sketch = Quantiles()
        for value in values:
            sketch.add(value)
        for q in (0.5, 0.9, 0.99, 0.999):
            assert within_bound(sketch.quantile(q), exact_quantile(values, q)), q

    @settings(max_examples=40, deadline=None)
    @given(st.lists(magnitudes, min_size=1, max_size=1500), st.integers(0, 1500))
    def test_merged_sketches_keep_the_bound(self, values: list[float], cut: int) -> None:
        left, right = Quantiles(), Quantiles()
        for value in values[:cut]:
            left.add(value)
        for value in values[cut:]:
            right.add(value)
        left.merge(right)
        assert left.stats.count == len(values)
        for q, _ in QUANTILES:
            assert within_bound(left.quantile(q), exact_quantile(values, q))

    def test_an_empty_sketch_has_no_quantile(self) -> None:
        with pytest.raises(ValueError, match="no values"):
            Quantiles().quantile(0.5)


class TestSets:
    """Distinct members: exact below the limit, within three standard errors above it."""

    @settings(max_examples=60, deadline=None)
    @given(st.lists(st.one_of(st.text(min_size=0, max_size=4), st.integers(-50, 50)), max_size=400))
    def test_below_the_limit_the_count_is_exact(self, members: list[Any]) -> None:
        aggregator = Aggregator(10, clock=lambda: 0)
        for member in members:
            aggregator.set("users", member)
        expected = len({m if isinstance(m, str) else repr(m) for m in members})
        got = aggregator.collect(INTERVAL)
        assert [event.fields for event in got] == ([{"unique": expected}] if members else [])

    @pytest.mark.parametrize(("seed", "distinct"), [(1, 1_001), (2, 5_000), (3, 40_000)])
    def test_above_the_limit_the_estimate_is_within_the_bound(
        self, seed: int, distinct: int
    ) -> None:
        rng = random.Random(seed)
        members = [f"user-{seed}-{i}" for i in range(distinct)]
        stream = members + [rng.choice(members) for _ in range(distinct)]
        rng.shuffle(stream)
        aggregator = Aggregator(10, clock=lambda: 0)
        for member in stream:
            aggregator.set("users", member)
        (event,) = aggregator.collect(INTERVAL)
        estimate = event.fields["unique"]
        assert isinstance(estimate, int)
        assert abs(estimate - distinct) <= 3 * HLL_RELATIVE_ERROR * distinct

    @pytest.mark.parametrize(
        ("left_size", "right_size"), [(10, 20), (600, 600), (10, 5000), (5000, 10), (4000, 9000)]
    )
    def test_merged_sets_count_the_union(self, left_size: int, right_size: int) -> None:
        left, right = Unique(1000), Unique(1000)
        for i in range(left_size):
            left.add(f"m{i}")
        for i in range(left_size // 2, left_size // 2 + right_size):
            right.add(f"m{i}")
        left.merge(right)
        union = max(left_size, left_size // 2 + right_size)
        if union <= 1000:
            assert left.estimate() == union
        else:
            assert abs(left.estimate() - union) <= 3 * HLL_RELATIVE_ERROR * union

    def test_a_member_that_is_not_text_or_a_number_is_refused(self) -> None:
        aggregator = Aggregator(10, clock=lambda: 0)
        with pytest.raises(ValueError, match=r"'users'.*str, int or float"):
            aggregator.set("users", True)
        with pytest.raises(ValueError, match="'users'"):
            aggregator.set("users", None)  # type: ignore[arg-type]


class TestMerging:
    """Two accumulators merged hold what one would have held for both streams."""

    @settings(max_examples=60, deadline=None)
    @given(
        st.lists(st.tuples(st.floats(-1e6, 1e6, allow_nan=False), st.integers(0, 20)), max_size=60),
        st.integers(0, 60),
    )
    def test_stats_totals_and_buckets_merge_exactly(
        self, values: list[tuple[float, int]], cut: int
    ) -> None:
        bounds = (-1.0, 0.0, 10.0)
        whole, parts = (
            (Stats(), Total(), Buckets(4)),
            [(Stats(), Total(), Buckets(4)) for _ in "ab"],
        )
        for position, (value, time) in enumerate(values):
            for stats, total, buckets in (whole, parts[position >= cut]):
                stats.add(value, time)
                total.add(time)
                index = sum(1 for bound in bounds if bound < value)
                buckets.add(index, value)
        for mine, theirs in zip(parts[0], parts[1], strict=True):
            mine.merge(theirs)  # type: ignore[attr-defined]
        stats, total, buckets = parts[0]
        assert (stats.count, stats.min, stats.max) == (whole[0].count, whole[0].min, whole[0].max)
        assert stats.sum == pytest.approx(whole[0].sum, rel=1e-9, abs=1e-6)
        if values:
            latest = max(time for _, time in values)
            assert (stats.last_time, stats.last in {v for v, t in values if t == latest}) == (
                latest,
                True,
            )
        assert total.count == whole[1].count
        assert buckets.counts == whole[2].counts


class TestMissingExtra:
    """Without the aggregate extra, the error names it; nothing is half recorded."""

    def test_a_distribution_without_ddsketch(self, monkeypatch: pytest.MonkeyPatch) -> None:
        monkeypatch.setitem(sys.modules, "ddsketch", None)
        aggregator = Aggregator(10, clock=lambda: 0)
        with pytest.raises(ConfigError, match=r"metricstream\[aggregate\]") as caught:
            aggregator.distribution("lat", 1.0)
        assert caught.value.option == "distribution"

    def test_a_set_past_its_limit_without_datasketches(
        self, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        monkeypatch.setitem(sys.modules, "datasketches", None)
        aggregator = Aggregator(10, clock=lambda: 0, exact_unique=2)
        aggregator.set("users", "a")
        aggregator.set("users", "b")
        aggregator.set("users", "a")
        with pytest.raises(ConfigError, match=r"metricstream\[aggregate\]"):
            aggregator.set("users", "c")
        assert [e.fields for e in aggregator.collect(INTERVAL)] == [{"unique": 2}]
