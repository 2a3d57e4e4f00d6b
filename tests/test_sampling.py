"""Sampling: about one event in N kept, each standing for N; the rest counted apart, exactly.

The bound. With a rate of 1/N over n events, the number kept K is binomial
(n, p = 1/N), so the weighted count W = N*K has mean n and standard
deviation N*sqrt(n*p*(1-p)) = sqrt(n*(N-1)). For n = 1,000,000 and N = 10
that is 3,000 (0.3% of n). The tests allow six standard deviations
(18,000): a correct sampler misses that once in about 500 million seeds,
while a sampler off by 2% in its probability (or weighting kept events by
anything but N) misses it for almost every seed. The seed is fixed, so the
test is deterministic.
"""

from __future__ import annotations

import math
import threading
from pathlib import Path

import pytest

import metricstream as ms
from metricstream.sinks import JsonLinesSink
from metricstream.streamer.engine.sampling import Sampler, check_sample_rate
from metricstream.testing import InMemorySink

from .support import FAST_RETRY, assert_balanced

SEED = 20_240_611
T0 = 1_700_000_000_000_000_000


def six_sigma(n: int, weight: int) -> float:
    return 6 * math.sqrt(n * (weight - 1))


def streamer_with(*sinks: object, **options: object) -> ms.EventStreamer:
    options.setdefault("register_atexit", False)
    options.setdefault("retry", FAST_RETRY)
    options.setdefault("sample_seed", SEED)
    return ms.EventStreamer(list(sinks), **options)  # type: ignore[arg-type]


class TestWeightedCounts:
    """A million events: the weighted count within six standard deviations, the rest exact."""

    def test_a_million_events_at_one_in_ten(self) -> None:
        sink = InMemorySink()
        n = 1_000_000
        streamer = streamer_with(sink, max_buffer=n)
        event = ms.event_from_sample("page_view", 1, {"path": "/"}, timestamp_ns=T0)
        send = streamer.send
        for _ in range(n):
            send(event, sample_rate=0.1)
        assert streamer.shutdown(30)
        health = streamer.health()
        kept = len(sink.events)
        assert kept + health.sampled_out == n
        assert_balanced(health, kept)
        assert {tuple(e.fields.items()) for e in sink.events} == {
            (("value", 1), ("samplerate", 10))
        }
        weighted = sum(e.fields["samplerate"] for e in sink.events)
        assert abs(weighted - n) <= six_sigma(n, 10), (weighted, n)

    def test_the_query_sums_samplerate_as_the_weighted_count(self, tmp_path: Path) -> None:
        """Through a JSON Lines archive to `metricstream.query`, with two rates and none."""
        query = pytest.importorskip("metricstream.query")
        path = tmp_path / "events.jsonl"
        streamer = streamer_with(JsonLinesSink(path), max_buffer=100_000, batch_size=10_000)
        sent = {"signup": (200_000, 0.01), "login": (100_000, 0.5), "error": (500, None)}
        for measurement, (count, rate) in sent.items():
            event = ms.event_from_sample(measurement, 1, timestamp_ns=T0)
            for _ in range(count):
                streamer.send(event, sample_rate=rate)
        assert streamer.shutdown(30)
        archive = query.Archive(path, cache=False)
        kept = sum(count for count, _ in sent.values()) - streamer.health().sampled_out
        assert sum(archive.events(m).count().value for m in sent) == kept
        for measurement, (count, rate) in sent.items():
            weighted = archive.events(measurement).weighted_count().value
            weight = 1 if rate is None else round(1 / rate)
            assert abs(weighted - count) <= six_sigma(count, weight), (measurement, weighted)
        assert archive.events("error").weighted_count().value == 500

    def test_eight_threads_lose_no_count(self) -> None:
        """Kept plus sampled out is every call, with 8 threads drawing at once."""
        sink = InMemorySink()
        streamer = streamer_with(sink, max_buffer=200_000)
        threads, per_thread = 8, 20_000
        barrier = threading.Barrier(threads)

        def work() -> None:
            barrier.wait()
            for i in range(per_thread):
                streamer.count("jobs", tags={"kind": "a"}, sample_rate=0.25)
                streamer.gauge("depth", i, sample_rate=0.5)

        runners = [threading.Thread(target=work) for _ in range(threads)]
        for runner in runners:
            runner.start()
        for runner in runners:
            runner.join()
        assert streamer.shutdown(30)
        health = streamer.health()
        assert len(sink.events) + health.sampled_out == 2 * threads * per_thread
        assert_balanced(health, len(sink.events))
        weights = {e.measurement: e.fields["samplerate"] for e in sink.events}
        assert weights == {"jobs": 4, "depth": 2}
        for measurement, weight in weights.items():
            kept = [e for e in sink.events if e.measurement == measurement]
            weighted = sum(e.fields["samplerate"] for e in kept)
            n = threads * per_thread
            assert abs(weighted - n) <= six_sigma(n, weight), (measurement, weighted)


class TestKeptEvents:
    """A kept event is the one sent, plus its weight; the caller's event is not changed."""

    def test_the_weight_is_added_or_multiplied_and_the_event_left_alone(self) -> None:
        sink = InMemorySink()
        streamer = streamer_with(sink)
        plain = ms.event_from_sample("m", 1.5, timestamp_ns=T0)
        presampled = ms.MetricEvent("m", fields={"value": 2, "samplerate": 5}, timestamp_ns=T0)
        every = ms.event_from_sample("m", 3, timestamp_ns=T0)
        assert streamer.send(plain, sample_rate=1) is True
        assert streamer.send(every) is True
        for _ in range(200):
            streamer.send(presampled, sample_rate=0.5)
        assert streamer.shutdown(10)
        assert [e.fields for e in sink.events[:2]] == [{"value": 1.5}, {"value": 3}]
        assert {tuple(e.fields.items()) for e in sink.events[2:]} == {
            (("value", 2), ("samplerate", 10))
        }
        assert presampled.fields == {"value": 2, "samplerate": 5}
        assert 200 - len(sink.events[2:]) == streamer.health().sampled_out

    def test_a_seed_repeats_the_draws_and_the_system_varies_them(self) -> None:
        seeded = [Sampler(7), Sampler(7)]
        draws = [[sampler.draw(0.5) for _ in range(64)] for sampler in seeded]
        assert draws[0] == draws[1]
        assert set(draws[0]) == {0, 2}
        assert seeded[0].sampled_out == draws[0].count(0)
        first, second = ([s.draw(0.5) for _ in range(64)] for s in (Sampler(), Sampler()))
        assert first != second  # equal once in 2**64

    def test_the_instruments_sample_too(self) -> None:
        sink = InMemorySink()
        streamer = streamer_with(sink)
        for _ in range(400):
            streamer.count("c", sample_rate=0.25)
        with streamer.timed("t", sample_rate=1 / 3):
            pass
        assert streamer.shutdown(10)
        counts = [e for e in sink.events if e.measurement == "c"]
        assert {e.fields["samplerate"] for e in counts} == {4}
        assert len(counts) + sum(e.measurement == "t" for e in sink.events) + (
            streamer.health().sampled_out
        ) == 401


class TestRates:
    """A rate is 1/N for a whole N, so each kept event stands for a whole number of events."""

    @pytest.mark.parametrize(
        ("rate", "weight"), [(1, 1), (0.5, 2), (0.1, 10), (0.01, 100), (1 / 3, 3)]
    )
    def test_valid_rates(self, rate: float, weight: int) -> None:
        assert check_sample_rate(rate) == weight

    @pytest.mark.parametrize(
        ("rate", "says"),
        [
            (0.3, "must be 1/N for a whole N"),
            (0, "must be in (0, 1]"),
            (1.5, "must be in (0, 1]"),
            (-0.1, "must be in (0, 1]"),
            (float("nan"), "must be in (0, 1]"),
            (True, "must be a number"),
            ("0.1", "must be a number"),
        ],
    )
    def test_invalid_rates_name_the_option(self, rate: object, says: str) -> None:
        streamer = streamer_with(InMemorySink())
        try:
            for call in (
                lambda: streamer.send(ms.event_from_sample("m", 1), sample_rate=rate),  # type: ignore[arg-type]
                lambda: streamer.count("c", sample_rate=rate),  # type: ignore[arg-type]
                lambda: streamer.timed("t", sample_rate=rate),  # type: ignore[arg-type]
            ):
                with pytest.raises(ms.ConfigError) as info:
                    call()
                assert info.value.option == "sample_rate"
                assert says in str(info.value)
        finally:
            streamer.shutdown(10)
        assert streamer.health().sinks["memory"].events_accepted == 0
