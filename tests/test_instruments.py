"""The instrumentation helpers: streamer.timed, streamer.count and streamer.gauge."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable, Iterator

import pytest

import metricstream as ms
from metricstream.streamer.operations import instruments
from metricstream.testing import InMemorySink


class FakeClock:
    """perf_counter_ns replacement: returns the scripted readings, in order."""

    def __init__(self, *readings_ms: float) -> None:
        self.readings = [int(ms_ * 1_000_000) for ms_ in readings_ms]

    def __call__(self) -> int:
        return self.readings.pop(0)


@pytest.fixture
def sink() -> InMemorySink:
    return InMemorySink()


@pytest.fixture
def streamer(
    make_streamer: Callable[..., ms.EventStreamer], sink: InMemorySink
) -> ms.EventStreamer:
    return make_streamer([sink], flush_interval=0.05)


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> Callable[..., FakeClock]:
    def install(*readings_ms: float) -> FakeClock:
        fake = FakeClock(*readings_ms)
        monkeypatch.setattr(instruments, "_perf_ns", fake)
        return fake

    return install


def delivered(streamer: ms.EventStreamer, sink: InMemorySink) -> list[ms.MetricEvent]:
    assert streamer.flush(timeout=10)
    return sink.events


def summary(events: list[ms.MetricEvent]) -> list[tuple[str, dict[str, str], dict[str, object]]]:
    return [(e.measurement, dict(e.tags), dict(e.fields)) for e in events]


class TestTimedDecorator:
    """@streamer.timed records each call's duration and outcome and changes nothing else."""

    def test_a_call_sends_its_duration_and_outcome_ok(
        self, streamer: ms.EventStreamer, sink: InMemorySink, clock: Callable[..., FakeClock]
    ) -> None:
        @streamer.timed("orders.lookup", table="orders")
        def lookup(order_id: int, *, verbose: bool = False) -> tuple[int, bool]:
            return order_id, verbose

        clock(10.0, 12.5)
        assert lookup(7, verbose=True) == (7, True)
        assert summary(delivered(streamer, sink)) == [
            ("orders.lookup", {"table": "orders", "outcome": "ok"}, {"duration_ms": 2.5})
        ]

    def test_an_exception_propagates_and_is_recorded_by_type_name(
        self, streamer: ms.EventStreamer, sink: InMemorySink, clock: Callable[..., FakeClock]
    ) -> None:
        @streamer.timed("orders.lookup")
        def lookup(order_id: int) -> None:
            raise KeyError(order_id)

        clock(1.0, 4.0)
        with pytest.raises(KeyError) as info:
            lookup(3)
        assert info.value.args == (3,)
        assert summary(delivered(streamer, sink)) == [
            ("orders.lookup", {"outcome": "KeyError"}, {"duration_ms": 3.0})
        ]

    def test_the_wrapper_keeps_the_function_name_and_docstring(
        self, streamer: ms.EventStreamer
    ) -> None:
        def resize(width: int) -> int:
            """Resize the image."""
            return width

        wrapped = streamer.timed("resize")(resize)
        assert (wrapped.__name__, wrapped.__doc__, wrapped.__wrapped__) == (  # type: ignore[attr-defined]
            "resize",
            "Resize the image.",
            resize,
        )

    def test_an_async_function_is_timed_across_its_awaits(
        self, streamer: ms.EventStreamer, sink: InMemorySink, clock: Callable[..., FakeClock]
    ) -> None:
        @streamer.timed("http.fetch", host="api")
        async def fetch(path: str) -> str:
            await asyncio.sleep(0)
            return path.upper()

        clock(100.0, 107.25)
        assert asyncio.run(fetch("/x")) == "/X"
        assert asyncio.iscoroutinefunction(fetch)
        assert summary(delivered(streamer, sink)) == [
            ("http.fetch", {"host": "api", "outcome": "ok"}, {"duration_ms": 7.25})
        ]

    def test_an_async_failure_and_a_cancellation_are_recorded_and_propagate(
        self, streamer: ms.EventStreamer, sink: InMemorySink
    ) -> None:
        @streamer.timed("job")
        async def failing() -> None:
            await asyncio.sleep(0)
            raise ValueError("bad")

        @streamer.timed("job")
        async def waiting(started: asyncio.Event) -> None:
            started.set()
            await asyncio.Event().wait()

        async def scenario() -> None:
            with pytest.raises(ValueError, match="bad"):
                await failing()
            started = asyncio.Event()
            task = asyncio.create_task(waiting(started))
            await started.wait()
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task

        asyncio.run(scenario())
        outcomes = [e.tags["outcome"] for e in delivered(streamer, sink)]
        assert outcomes == ["ValueError", "CancelledError"]

    def test_generator_functions_are_refused(self, streamer: ms.EventStreamer) -> None:
        def numbers() -> Iterator[int]:
            yield 1

        async def stream() -> object:
            yield 1  # type: ignore[misc]

        for function in (numbers, stream):
            with pytest.raises(TypeError, match="generator function"):
                streamer.timed("gen")(function)

    def test_calls_from_many_threads_each_send_one_event(
        self, streamer: ms.EventStreamer, sink: InMemorySink
    ) -> None:
        @streamer.timed("work", pool="threads")
        def work(n: int) -> int:
            return n * 2

        def run() -> None:
            for n in range(250):
                work(n)

        threads = [threading.Thread(target=run) for _ in range(4)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        events = delivered(streamer, sink)
        assert len(events) == 1000
        assert {(e.measurement, tuple(e.tags.items())) for e in events} == {
            ("work", (("pool", "threads"), ("outcome", "ok")))
        }
        assert all(e.fields["duration_ms"] >= 0 for e in events)  # type: ignore[operator]


class TestTimedBlock:
    """`with streamer.timed(...)` and `async with` time a block; blocks nest."""

    def test_a_block_sends_its_duration(
        self, streamer: ms.EventStreamer, sink: InMemorySink, clock: Callable[..., FakeClock]
    ) -> None:
        clock(5.0, 5.5)
        with streamer.timed("render", template="home") as timer:
            assert isinstance(timer, instruments.Timer)
        assert summary(delivered(streamer, sink)) == [
            ("render", {"template": "home", "outcome": "ok"}, {"duration_ms": 0.5})
        ]

    def test_an_exception_in_a_block_propagates_unchanged(
        self, streamer: ms.EventStreamer, sink: InMemorySink, clock: Callable[..., FakeClock]
    ) -> None:
        error = ZeroDivisionError("boom")
        clock(0.0, 1.0)
        with pytest.raises(ZeroDivisionError) as info, streamer.timed("calc"):
            raise error
        assert info.value is error
        assert summary(delivered(streamer, sink)) == [
            ("calc", {"outcome": "ZeroDivisionError"}, {"duration_ms": 1.0})
        ]

    def test_a_timer_re_entered_inside_its_block_times_both_blocks(
        self, streamer: ms.EventStreamer, sink: InMemorySink, clock: Callable[..., FakeClock]
    ) -> None:
        timer = streamer.timed("nested")
        clock(1.0, 2.0, 5.0, 11.0, 20.0, 23.0)
        with timer, timer:  # the outer block 1 .. 11, the inner one 2 .. 5
            pass
        with timer:  # used again afterwards: 20 .. 23
            pass
        durations = [e.fields["duration_ms"] for e in delivered(streamer, sink)]
        assert durations == [3.0, 10.0, 3.0]

    def test_async_with_times_the_block(
        self, streamer: ms.EventStreamer, sink: InMemorySink, clock: Callable[..., FakeClock]
    ) -> None:
        async def handler() -> None:
            async with streamer.timed("db.query", table="users"):
                await asyncio.sleep(0)

        clock(2.0, 2.125)
        asyncio.run(handler())
        assert summary(delivered(streamer, sink)) == [
            ("db.query", {"table": "users", "outcome": "ok"}, {"duration_ms": 0.125})
        ]

    def test_events_carry_the_active_correlation_id(
        self, streamer: ms.EventStreamer, sink: InMemorySink
    ) -> None:
        with streamer.correlation("req-9"), streamer.timed("step"):
            pass
        with streamer.timed("step"):
            pass
        assert [e.correlation_id for e in delivered(streamer, sink)] == ["req-9", None]


class TestTimedValidation:
    """A bad name or tag is refused when the timer is made, before the code runs."""

    def test_an_invalid_name_or_tag_raises_at_once(self, streamer: ms.EventStreamer) -> None:
        with pytest.raises(ms.InvalidEventError, match="measurement"):
            streamer.timed("")
        with pytest.raises(ms.InvalidEventError, match="route"):
            streamer.timed("ok", route="bad\n")
        with pytest.raises(ms.InvalidEventError):
            streamer.timed("ok", route=["list"])

    def test_the_outcome_tag_is_reserved(self, streamer: ms.EventStreamer) -> None:
        with pytest.raises(ms.ConfigError, match="outcome"):
            streamer.timed("job", outcome="mine")

    def test_equal_but_differently_typed_tag_values_stay_apart(
        self, streamer: ms.EventStreamer, sink: InMemorySink
    ) -> None:
        for value in ("1", 1, True, 1.0, "1"):
            with streamer.timed("typed", flag=value):
                pass
        assert [e.tags["flag"] for e in delivered(streamer, sink)] == [
            "1",
            "1",
            "True",
            "1.0",
            "1",
        ]


class TestCountAndGauge:
    """count() and gauge() send one event each, with the documented field."""

    def test_count_sends_n_with_tags(self, streamer: ms.EventStreamer, sink: InMemorySink) -> None:
        assert streamer.count("cache.miss", region="eu") is True
        assert streamer.count("cache.miss", 5, region="us") is True
        assert streamer.count("signups") is True
        assert summary(delivered(streamer, sink)) == [
            ("cache.miss", {"region": "eu"}, {"count": 1}),
            ("cache.miss", {"region": "us"}, {"count": 5}),
            ("signups", {}, {"count": 1}),
        ]

    def test_a_gauge_is_always_a_float(
        self, streamer: ms.EventStreamer, sink: InMemorySink
    ) -> None:
        """An int reading and a float one of a series never differ in type (InfluxDB)."""
        streamer.gauge("queue.depth", 12, queue="emails")
        streamer.gauge("queue.depth", 12.5, queue="emails")
        streamer.gauge("cpu.usage", 0.75, host="a")
        events = delivered(streamer, sink)
        assert summary(events) == [
            ("queue.depth", {"queue": "emails"}, {"value": 12.0}),
            ("queue.depth", {"queue": "emails"}, {"value": 12.5}),
            ("cpu.usage", {"host": "a"}, {"value": 0.75}),
        ]
        assert [type(e.fields["value"]) for e in events] == [float, float, float]
        assert b" value=12 " in ms.EventBatch(events[:1]).influx_bytes()  # a float: no "i"

    def test_subclasses_of_int_and_float_become_plain_values(
        self, streamer: ms.EventStreamer, sink: InMemorySink
    ) -> None:
        class Size(int):
            pass

        class Ratio(float):
            pass

        streamer.count("items", Size(3))
        streamer.gauge("ratio", Ratio(0.5))
        events = delivered(streamer, sink)
        assert [
            (type(e.fields[k]), e.fields[k])
            for e, k in zip(events, ("count", "value"), strict=True)
        ] == [
            (int, 3),
            (float, 0.5),
        ]

    @pytest.mark.parametrize(
        ("call", "match"),
        [
            (lambda s: s.count("c", 1.5), "'count' must be an int"),
            (lambda s: s.count("c", True), "'count' must be an int"),
            (lambda s: s.count("c", 2**63), "int64"),
            (lambda s: s.gauge("g", "12"), "'value' must be an int or a float"),
            (lambda s: s.gauge("g", False), "'value' must be an int or a float"),
            (lambda s: s.gauge("g", float("nan")), "NaN"),
            (lambda s: s.gauge("g", float("-inf")), "infinity"),
            (lambda s: s.count("#c"), "comment"),
            (lambda s: s.gauge("g", 1, host=""), "empty"),
        ],
    )
    def test_invalid_values_names_and_tags_raise(
        self, streamer: ms.EventStreamer, call: Callable[[ms.EventStreamer], object], match: str
    ) -> None:
        with pytest.raises(ms.InvalidEventError, match=match):
            call(streamer)

    def test_after_shutdown_the_helpers_drop_and_count(self, sink: InMemorySink) -> None:
        streamer = ms.EventStreamer([sink], register_atexit=False)
        streamer.shutdown(timeout=10)
        assert streamer.count("c") is False
        assert streamer.gauge("g", 1.0) is False
        with streamer.timed("t"):
            pass
        dropped = streamer.health().sinks["memory"].dropped_by_reason["shutdown"]
        assert (dropped, sink.events) == (3, [])


class TestTagsAndOptions:
    """Tags as keywords or tags={...}; an option's name is never a tag, nor a tag an option."""

    def test_tags_as_a_dict_keywords_or_both(
        self, streamer: ms.EventStreamer, sink: InMemorySink
    ) -> None:
        streamer.count("logins", tags={"user.type": "admin"}, region="eu")
        streamer.gauge("queue", 3, name="emails")  # the measurement is positional: a tag
        streamer.count("jobs", n=4, tags={"n": "x", "value": "y"})
        with streamer.timed("render", tags={"template.name": "home"}, name="t"):
            pass
        events = delivered(streamer, sink)
        assert [(e.measurement, dict(e.tags)) for e in events] == [
            ("logins", {"user.type": "admin", "region": "eu"}),
            ("queue", {"name": "emails"}),
            ("jobs", {"n": "x", "value": "y"}),
            ("render", {"template.name": "home", "name": "t", "outcome": "ok"}),
        ]
        assert events[2].fields == {"count": 4}

    @pytest.mark.parametrize("option", instruments.OPTION_NAMES)
    @pytest.mark.parametrize("instrument", ["count", "gauge", "timed"])
    def test_an_option_name_in_tags_is_refused_naming_it(
        self, streamer: ms.EventStreamer, instrument: str, option: str
    ) -> None:
        args = ("m",) if instrument == "timed" else ("m", 1)
        with pytest.raises(ms.ConfigError) as info:
            getattr(streamer, instrument)(*args, tags={option: "x"})
        assert str(info.value) == (
            f"tags: {option!r} is an option of {instrument}(), not a tag; "
            f"send the event with send() to give it a tag named {option!r}"
        )

    def test_timestamps_where_they_mean_something(
        self, streamer: ms.EventStreamer, sink: InMemorySink
    ) -> None:
        at = 1_700_000_000_000_000_123
        streamer.count("c", timestamp=at)
        streamer.gauge("g", 1.5, timestamp=at + 1)
        assert [e.timestamp_ns for e in delivered(streamer, sink)] == [at, at + 1]
        with pytest.raises(ms.ConfigError, match="timed\\(\\) takes no timestamp"):
            streamer.timed("t", timestamp=at)
        with pytest.raises(ms.InvalidEventError, match="2001"):
            streamer.count("c", timestamp=1_700_000_000)  # seconds, not ns

    def test_a_tag_given_twice_and_tags_that_are_no_dict(self, streamer: ms.EventStreamer) -> None:
        with pytest.raises(ms.ConfigError, match="tag 'region' is given twice"):
            streamer.count("c", tags={"region": "eu"}, region="us")
        with pytest.raises(ms.ConfigError, match="must be a dict of tags, not list"):
            streamer.gauge("g", 1, tags=[("a", "b")])  # type: ignore[arg-type]
