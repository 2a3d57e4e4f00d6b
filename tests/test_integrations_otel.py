"""The OpenTelemetry exporter, driven by the real SDK and checked against InMemoryMetricReader."""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterable, Iterator
from typing import Any

import pytest
from opentelemetry.metrics import CallbackOptions, Observation
from opentelemetry.sdk.metrics import (
    Counter,
    Histogram,
    MeterProvider,
    ObservableCounter,
    ObservableUpDownCounter,
    UpDownCounter,
)
from opentelemetry.sdk.metrics.export import (
    AggregationTemporality,
    HistogramDataPoint,
    InMemoryMetricReader,
    Metric,
    MetricExportResult,
    MetricsData,
    NumberDataPoint,
    PeriodicExportingMetricReader,
)
from opentelemetry.sdk.metrics.view import ExponentialBucketHistogramAggregation, View
from opentelemetry.sdk.resources import Resource

import metricstream as ms
from metricstream.integrations.otel import DEFAULT_TEMPORALITY, MetricStreamExporter
from metricstream.testing import InMemorySink

Key = tuple[str, frozenset[tuple[str, str]]]


@pytest.fixture
def sink() -> InMemorySink:
    return InMemorySink()


@pytest.fixture
def streamer(
    make_streamer: Callable[..., ms.EventStreamer], sink: InMemorySink
) -> ms.EventStreamer:
    return make_streamer([sink], flush_interval=0.05)


class Pipeline:
    """A MeterProvider with two readers on the same instruments.

    ``periodic`` drives a `MetricStreamExporter` (the interval is an hour, so
    it exports only when flushed or shut down); ``reference`` is the SDK's own
    InMemoryMetricReader with the same temporality, read independently.
    """

    def __init__(self, streamer: ms.EventStreamer, **exporter_options: Any) -> None:
        self.exporter = MetricStreamExporter(streamer, **exporter_options)
        self.periodic = PeriodicExportingMetricReader(
            self.exporter, export_interval_millis=3_600_000
        )
        self.reference = InMemoryMetricReader(preferred_temporality=dict(DEFAULT_TEMPORALITY))
        self.provider = MeterProvider(
            metric_readers=[self.periodic, self.reference],
            resource=Resource.create({"service.name": "checkout", "host.name": "web-1"}),
            views=[
                View(
                    instrument_name="payload.size",
                    aggregation=ExponentialBucketHistogramAggregation(),
                )
            ],
        )
        self.meter = self.provider.get_meter("tests")

    def export(self) -> None:
        assert self.periodic.force_flush(timeout_millis=10_000)

    def expected(self) -> dict[Key, dict[str, object]]:
        """The reference reader's points, as the events the exporter should send."""
        data = self.reference.get_metrics_data()
        assert data is not None
        return expected_events(data)

    def close(self) -> None:
        self.provider.shutdown()


@pytest.fixture
def pipeline(streamer: ms.EventStreamer) -> Iterator[Pipeline]:
    pipeline = Pipeline(streamer)
    yield pipeline
    pipeline.close()


def tag_text(value: object) -> str:
    if isinstance(value, tuple):
        return ",".join(tag_text(v) for v in value)
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def bound_field(bound: float) -> str:
    """A bound's field, written exactly: the integer for a whole number, else its repr."""
    exact = str(int(bound)) if float(bound).is_integer() and abs(bound) < 1e16 else repr(bound)
    return f"le_{exact}"


def expected_events(data: MetricsData) -> dict[Key, dict[str, object]]:
    """Compute, from the reference's data points, each event's key and fields."""
    expected: dict[Key, dict[str, object]] = {}
    for resource_metrics in data.resource_metrics:
        service = resource_metrics.resource.attributes["service.name"]
        for scope in resource_metrics.scope_metrics:
            for metric in scope.metrics:
                for point in metric.data.data_points:
                    tags = {"service.name": str(service)}
                    tags.update({k: tag_text(v) for k, v in (point.attributes or {}).items()})
                    key = (metric.name, frozenset(tags.items()))
                    assert key not in expected
                    expected[key] = point_fields(point)
    return expected


def point_fields(point: Any) -> dict[str, object]:
    if isinstance(point, NumberDataPoint):
        return {"value": point.value}
    fields: dict[str, object] = {"count": point.count, "sum": float(point.sum)}
    if point.count:
        fields.update(min=float(point.min), max=float(point.max))
    if isinstance(point, HistogramDataPoint):
        bounds = [bound_field(bound) for bound in point.explicit_bounds] + ["le_inf"]
        fields.update(zip(bounds, itertools.accumulate(point.bucket_counts), strict=True))
    else:
        fields.update(scale=point.scale, zero_count=point.zero_count)
    return fields


def received(streamer: ms.EventStreamer, sink: InMemorySink) -> dict[Key, dict[str, object]]:
    assert streamer.flush(timeout=10)
    events: dict[Key, dict[str, object]] = {}
    for event in sink.events:
        key = (event.measurement, frozenset(event.tags.items()))
        assert key not in events, key
        events[key] = dict(event.fields)
    sink.events.clear()
    return events


def types_of(events: dict[Key, dict[str, object]]) -> dict[Key, dict[str, type]]:
    return {key: {k: type(v) for k, v in fields.items()} for key, fields in events.items()}


class Instruments:
    """One instrument of every synchronous kind, and a round of measurements on them."""

    def __init__(self, meter: Any) -> None:
        self.requests = meter.create_counter("http.requests")
        self.inflight = meter.create_up_down_counter("http.inflight")
        self.latency = meter.create_histogram(
            "http.latency_ms", explicit_bucket_boundaries_advisory=[5, 25, 100]
        )
        self.temperature = meter.create_gauge("room.temperature")
        self.payload = meter.create_histogram("payload.size")  # exponential (see the view)

    def record(self, round_: int) -> None:
        for i in range(20 * round_):
            route = ("/orders", "/users", "/")[i % 3]
            self.requests.add(1 + i % 2, {"route": route, "method": "GET"})
            self.inflight.add(1 if i % 4 else -1, {"route": route})
            self.latency.record(0.5 + i * 3.25, {"route": route, "cached": i % 2 == 0})
            self.payload.record(2**i % 1000)
        self.temperature.set(21.5 + round_, {"room": "lab", "sensors": ("a", "b")})


class TestValuesEqualTheReference:
    """The exporter's events hold exactly the reference reader's values, round after round."""

    def test_counters_up_down_counters_gauges_and_histograms(
        self, pipeline: Pipeline, streamer: ms.EventStreamer, sink: InMemorySink
    ) -> None:
        meter = pipeline.meter
        jobs_done = [0]  # a running total, as an observable counter reports

        def observe(options: CallbackOptions) -> Iterable[Observation]:
            return [Observation(jobs_done[0], {"queue": "emails"})]

        meter.create_observable_counter("jobs.done", callbacks=[observe])
        meter.create_observable_gauge(
            "queue.depth", callbacks=[lambda options: [Observation(12, {"queue": "emails"})]]
        )
        meter.create_observable_up_down_counter(
            "pool.size", callbacks=[lambda options: [Observation(-3.5)]]
        )
        instruments = Instruments(meter)
        for round_ in (1, 2):
            jobs_done[0] += 7 * round_
            instruments.record(round_)
            pipeline.export()
            ours = received(streamer, sink)
            reference = pipeline.expected()
            assert ours == reference
            assert types_of(ours) == types_of(reference)
            assert len(ours) == 17

    def test_deltas_for_counters_and_histograms_and_totals_for_up_down_counters(
        self, pipeline: Pipeline, streamer: ms.EventStreamer, sink: InMemorySink
    ) -> None:
        requests = pipeline.meter.create_counter("requests")
        inflight = pipeline.meter.create_up_down_counter("inflight")
        latency = pipeline.meter.create_histogram("latency")
        values = []
        for amount in (5, 3):
            requests.add(amount)
            inflight.add(amount)
            latency.record(amount)
            pipeline.export()
            events = received(streamer, sink)
            values.append(
                {
                    key[0]: (f.get("value"), f.get("count"), f.get("sum"))
                    for key, f in events.items()
                }
            )
        assert values == [
            {"requests": (5, None, None), "inflight": (5, None, None), "latency": (None, 1, 5.0)},
            {"requests": (3, None, None), "inflight": (8, None, None), "latency": (None, 1, 3.0)},
        ]

    def test_the_temporality_asked_of_the_sdk(self, streamer: ms.EventStreamer) -> None:
        exporter = MetricStreamExporter(
            streamer, preferred_temporality={UpDownCounter: AggregationTemporality.DELTA}
        )
        delta, cumulative = AggregationTemporality.DELTA, AggregationTemporality.CUMULATIVE
        assert exporter._preferred_temporality == {
            Counter: delta,
            ObservableCounter: delta,
            Histogram: delta,
            UpDownCounter: delta,
            ObservableUpDownCounter: cumulative,
        }

    def test_close_bounds_keep_fields_of_their_own_and_bools_read_true_or_false(
        self, pipeline: Pipeline, streamer: ms.EventStreamer, sink: InMemorySink
    ) -> None:
        """1000000 and 1000001 were both ``le_1e+06`` once, one count overwriting the other."""
        histogram = pipeline.meter.create_histogram(
            "upload.bytes", explicit_bucket_boundaries_advisory=[1_000_000, 1_000_001, 2.5e6]
        )
        for value in (999_999, 1_000_000, 1_000_001, 1_000_001, 3e6):
            histogram.record(value, {"cached": True, "retried": False})
        pipeline.export()
        got = received(streamer, sink).items()
        [(key, fields)] = [(key, fields) for key, fields in got if key[0] == "upload.bytes"]
        assert {k: v for k, v in fields.items() if k.startswith("le_")} == {
            "le_1000000": 2,
            "le_1000001": 4,
            "le_2500000": 4,
            "le_inf": 5,
        }
        assert fields["count"] == 5
        assert {"cached": "true", "retried": "false"}.items() <= dict(key[1]).items()

    def test_resource_tags_are_chosen_and_point_attributes_win(
        self, streamer: ms.EventStreamer, sink: InMemorySink
    ) -> None:
        pipeline = Pipeline(streamer, resource_tags=("host.name", "service.name"))
        try:
            counter = pipeline.meter.create_counter("c")
            counter.add(1, {"host.name": "override", "empty": "", "none": ()})
            counter.add(2)
            pipeline.export()
            assert streamer.flush(timeout=10)
            tags = sorted(sorted(e.tags.items()) for e in sink.events)
            assert tags == [
                [("host.name", "override"), ("service.name", "checkout")],
                [("host.name", "web-1"), ("service.name", "checkout")],
            ]
        finally:
            pipeline.close()


class TestNeverRaisesIntoTheSdk:
    """Failures become FAILURE results and counters, never exceptions."""

    def test_a_point_that_cannot_be_an_event_is_skipped_and_counted(
        self, pipeline: Pipeline, streamer: ms.EventStreamer, sink: InMemorySink
    ) -> None:
        counter = pipeline.meter.create_counter("orders")
        counter.add(1, {"region": "eu"})
        counter.add(1, {"region": "bad\\"})  # a tag value cannot end with a backslash
        metrics_data = pipeline.reference.get_metrics_data()
        assert metrics_data is not None
        result = pipeline.exporter.export(metrics_data)
        assert result is MetricExportResult.FAILURE
        assert (pipeline.exporter.points_exported, pipeline.exporter.points_failed) == (1, 1)
        assert streamer.flush(timeout=10)
        assert [e.tags["region"] for e in sink.events] == ["eu"]

    def test_a_past_deadline_skips_and_counts_every_point(
        self, pipeline: Pipeline, sink: InMemorySink
    ) -> None:
        pipeline.meter.create_counter("a").add(1)
        pipeline.meter.create_counter("b").add(1)
        metrics_data = pipeline.reference.get_metrics_data()
        assert metrics_data is not None
        assert (
            pipeline.exporter.export(metrics_data, timeout_millis=-1) is MetricExportResult.FAILURE
        )
        assert (pipeline.exporter.points_exported, pipeline.exporter.points_failed) == (0, 2)

    def test_events_the_streamer_drops_make_the_export_fail(self, sink: InMemorySink) -> None:
        streamer = ms.EventStreamer([sink], register_atexit=False)
        pipeline = Pipeline(streamer)
        try:
            pipeline.meter.create_counter("late").add(1)
            streamer.shutdown(timeout=10)
            metrics_data = pipeline.reference.get_metrics_data()
            assert metrics_data is not None
            assert pipeline.exporter.export(metrics_data) is MetricExportResult.FAILURE
            assert streamer.health().sinks["memory"].dropped_by_reason["shutdown"] == 1
        finally:
            pipeline.close()

    def test_a_metric_of_an_unknown_kind_fails_alone(
        self, pipeline: Pipeline, streamer: ms.EventStreamer, sink: InMemorySink
    ) -> None:
        pipeline.meter.create_counter("known").add(2)
        data = pipeline.reference.get_metrics_data()
        assert data is not None
        scope = data.resource_metrics[0].scope_metrics[0]
        odd = Metric(name="odd", description=None, unit=None, data=object())  # type: ignore[arg-type]
        scope.metrics.insert(0, odd)  # type: ignore[attr-defined]
        assert pipeline.exporter.export(data) is MetricExportResult.FAILURE
        assert (pipeline.exporter.points_exported, pipeline.exporter.points_failed) == (1, 1)
        assert streamer.flush(timeout=10)
        assert [e.measurement for e in sink.events] == ["known"]

    def test_garbage_in_is_a_failure_not_an_exception(self, streamer: ms.EventStreamer) -> None:
        exporter = MetricStreamExporter(streamer)
        assert exporter.export("not metrics data") is MetricExportResult.FAILURE  # type: ignore[arg-type]


class TestShutdown:
    """shutdown() takes what the SDK passes, flushes the streamer and refuses later exports."""

    def test_provider_shutdown_exports_the_last_points_and_flushes(
        self, streamer: ms.EventStreamer, sink: InMemorySink
    ) -> None:
        pipeline = Pipeline(streamer)
        pipeline.meter.create_counter("final").add(4)
        pipeline.provider.shutdown(timeout_millis=10_000)
        assert [(e.measurement, e.fields) for e in sink.events] == [("final", {"value": 4})]
        assert (
            pipeline.exporter.export(MetricsData(resource_metrics=[])) is MetricExportResult.FAILURE
        )

    def test_shutdown_accepts_timeout_millis_and_the_sdks_timeout_keyword(
        self, streamer: ms.EventStreamer
    ) -> None:
        first, second = MetricStreamExporter(streamer), MetricStreamExporter(streamer)
        first.shutdown(timeout_millis=500)
        second.shutdown(timeout=500.0, extra="ignored")
        assert first.force_flush(timeout_millis=1000) is True

    def test_force_flush_reports_a_streamer_that_cannot_flush(self) -> None:
        class NoFlush:
            def send(self, event: ms.MetricEvent) -> bool:
                return True

        exporter = MetricStreamExporter(NoFlush())  # type: ignore[arg-type]
        assert exporter.force_flush() is False
        exporter.shutdown()
