"""`MetricStreamExporter`: OpenTelemetry SDK metrics delivered through metricstream.

::

    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.metrics.export import PeriodicExportingMetricReader
    from metricstream.integrations.otel import MetricStreamExporter

    reader = PeriodicExportingMetricReader(MetricStreamExporter(streamer))
    provider = MeterProvider(metric_readers=[reader])

Every data point becomes one event, timestamped with the point's time:
measurement = the instrument's name; tags = the point's attributes (plus the
resource attributes named in ``resource_tags``, ``service.name`` by
default); fields by kind of metric:

- sums (counters, up-down counters, observable ones) and gauges: ``value``,
  an int or a float as recorded (record one kind per instrument: InfluxDB
  refuses a field whose type changes);
- histograms: ``count``, ``sum``, ``min`` and ``max`` (floats; min and max
  when the point has measurements), and one field per bound,
  ``le_<bound>``, then ``le_inf``: the cumulative count of values at most
  that bound, as Prometheus means it and as the in-process aggregator
  writes it (``le_inf`` equals ``count``). A bound is written exactly, by
  the aggregation core's one naming function
  (`metricstream.aggregate.bucket_bounds`): ``5``, ``0.25``, ``1000000``
  and ``1000001`` are four fields;
- exponential histograms: ``count``, ``sum``, ``min``, ``max``, ``scale``
  and ``zero_count`` (their buckets are not sent).

Attribute values become tag values: bools as ``true`` and ``false`` (as
OpenTelemetry writes them), ints and floats as metricstream writes them
(``3``, ``0.5``), sequences joined with commas; an empty value is left out
(line protocol cannot carry one).

The exporter prefers delta temporality for counters, observable counters
and histograms (each event holds what happened in its interval, which is
what a time series database sums), and cumulative for up-down counters.

It never raises into the SDK: `export` returns `MetricExportResult.FAILURE`
when a point cannot be converted (it is skipped, counted in
``points_failed`` and logged, at most once a minute per kind) or when the
streamer drops one (counted there, with its reason), and stops at the
``timeout_millis`` deadline. `EventStreamer.send` never waits unless the
streamer was built with ``overflow="block"``; then each point may wait up to
its ``block_timeout``.
"""

from __future__ import annotations

import functools
import math
import threading
import time
from collections.abc import Iterable, Iterator, Mapping
from typing import TYPE_CHECKING, Any

from metricstream._log import RateLimitedLog, logger
from metricstream.aggregate import bucket_bounds
from metricstream.event import FieldValue, MetricEvent
from metricstream.exceptions import MetricStreamError

try:
    from opentelemetry.sdk.metrics import (
        Counter,
        Histogram,
        ObservableCounter,
        ObservableUpDownCounter,
        UpDownCounter,
    )
    from opentelemetry.sdk.metrics.export import (
        AggregationTemporality,
        ExponentialHistogram,
        Gauge,
        MetricExporter,
        MetricExportResult,
        MetricsData,
        Sum,
    )
    from opentelemetry.sdk.metrics.export import Histogram as HistogramData
except ImportError as exc:  # pragma: no cover - depends on the installed extras
    raise ImportError(
        "metricstream.integrations.otel needs the OpenTelemetry SDK: "
        "pip install 'metricstream[otel]'"
    ) from exc

if TYPE_CHECKING:
    from opentelemetry.sdk.metrics.view import Aggregation

    from metricstream.streamer.streamer import EventStreamer

__all__ = ["DEFAULT_TEMPORALITY", "MetricStreamExporter"]

DEFAULT_TEMPORALITY: dict[type, AggregationTemporality] = {
    Counter: AggregationTemporality.DELTA,
    ObservableCounter: AggregationTemporality.DELTA,
    Histogram: AggregationTemporality.DELTA,
    UpDownCounter: AggregationTemporality.CUMULATIVE,
    ObservableUpDownCounter: AggregationTemporality.CUMULATIVE,
}
"""The temporality `MetricStreamExporter` asks for, by instrument class."""

_log = logger.getChild("otel")


def _tag_value(value: object) -> str | int | float:
    """An attribute value as a tag value: bools lower case, sequences joined with commas."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (str, int, float)):
        return value
    if value is None:
        return ""
    if isinstance(value, (list, tuple)):
        return ",".join(str(_tag_value(item)) for item in value)
    return str(value)


@functools.lru_cache(maxsize=256)
def _bucket_names(bounds: tuple[float, ...]) -> tuple[str, ...]:
    """The ``le_`` field of each bound, then ``le_inf`` (`bucket_bounds`'s names)."""
    return bucket_bounds(bounds)[1]


def _histogram_fields(point: Any, buckets: bool) -> dict[str, FieldValue]:
    """Fields of a (exponential) histogram point: count, sum, min, max, [buckets]."""
    # sum, min and max are floats even when every value recorded was an int, so
    # the field types of a series never change (InfluxDB refuses that).
    fields: dict[str, FieldValue] = {"count": point.count, "sum": float(point.sum)}
    if point.count and math.isfinite(point.min) and math.isfinite(point.max):
        fields["min"] = float(point.min)
        fields["max"] = float(point.max)
    if buckets:
        running = 0
        bounds = tuple(point.explicit_bounds)
        names = _bucket_names(bounds) if bounds else ("le_inf",)
        for name, count in zip(names, point.bucket_counts, strict=False):
            running += count
            fields[name] = running
    else:
        fields["scale"] = point.scale
        fields["zero_count"] = point.zero_count
    return fields


def _points(metric: Any) -> Iterator[tuple[Any, dict[str, FieldValue]]]:
    """Yield (data point, fields) for each point of a metric the exporter knows."""
    data = metric.data
    point: Any
    if isinstance(data, (Sum, Gauge)):
        for point in data.data_points:
            yield point, {"value": point.value}
    elif isinstance(data, HistogramData):
        for point in data.data_points:
            yield point, _histogram_fields(point, buckets=True)
    elif isinstance(data, ExponentialHistogram):
        for point in data.data_points:
            yield point, _histogram_fields(point, buckets=False)
    else:
        raise TypeError(f"metric {metric.name!r} has data of unknown kind {type(data).__name__}")


class MetricStreamExporter(MetricExporter):
    """An OpenTelemetry metric exporter that sends every data point as an event.

    Args:
        streamer: Where the events go. The exporter does not own it:
            `shutdown` flushes it but leaves it running.
        resource_tags: Resource attributes copied into every event's tags
            (a point's own attribute of the same name wins).
        preferred_temporality: Temporality by instrument class, over
            `DEFAULT_TEMPORALITY`.
        preferred_aggregation: Aggregation by instrument class (see
            `opentelemetry.sdk.metrics.export.MetricReader`).

    Attributes:
        points_exported: Data points the streamer accepted.
        points_failed: Data points that could not be converted, or came
            after the deadline or the shutdown.
    """

    def __init__(
        self,
        streamer: EventStreamer,
        *,
        resource_tags: Iterable[str] = ("service.name",),
        preferred_temporality: Mapping[type, AggregationTemporality] | None = None,
        preferred_aggregation: dict[type, Aggregation] | None = None,
    ) -> None:
        if not callable(getattr(streamer, "send", None)):
            raise TypeError(f"streamer must be an EventStreamer, not {type(streamer).__name__}")
        super().__init__(
            preferred_temporality={**DEFAULT_TEMPORALITY, **(preferred_temporality or {})},
            preferred_aggregation=preferred_aggregation,
        )
        self.streamer = streamer
        self.resource_tags: tuple[str, ...] = tuple(resource_tags)
        self.points_exported = 0
        self.points_failed = 0
        self._closed = threading.Event()
        self._warnings = RateLimitedLog(_log)

    def export(
        self, metrics_data: MetricsData, timeout_millis: float = 10_000, **kwargs: Any
    ) -> MetricExportResult:
        """Send every data point as an event; never raises.

        Args:
            metrics_data: What the SDK collected.
            timeout_millis: The points not sent by this deadline are
                skipped and counted as failed.
            **kwargs: Accepted for forward compatibility with the SDK.

        Returns:
            ``SUCCESS`` when the streamer accepted every point, else ``FAILURE``.
        """
        if self._closed.is_set():
            self._warnings.warning(
                "shutdown", "OpenTelemetry export after the exporter was shut down"
            )
            return MetricExportResult.FAILURE
        try:
            deadline = time.monotonic() + max(0.0, float(timeout_millis)) / 1000
            accepted, failed = self._export(metrics_data, deadline)
        except Exception as exc:  # the SDK must never see an exception from an exporter
            self._warnings.error(
                ("export", type(exc).__name__), "OpenTelemetry export failed: %s", exc
            )
            return MetricExportResult.FAILURE
        self.points_exported += accepted
        self.points_failed += failed
        return MetricExportResult.SUCCESS if failed == 0 else MetricExportResult.FAILURE

    def _export(self, metrics_data: MetricsData, deadline: float) -> tuple[int, int]:
        """Send the points before the deadline; return (accepted, failed or dropped)."""
        accepted = failed = 0
        send = self.streamer.send
        for resource_metrics in metrics_data.resource_metrics:
            resource = resource_metrics.resource.attributes
            shared = {key: resource[key] for key in self.resource_tags if key in resource}
            for scope_metrics in resource_metrics.scope_metrics:
                for metric in scope_metrics.metrics:
                    try:
                        points = list(_points(metric))
                    except (TypeError, MetricStreamError) as exc:  # unknown kind, bad bounds
                        self._warnings.warning(("kind", metric.name), "%s", exc)
                        failed += 1
                        continue
                    if time.monotonic() > deadline:
                        failed += len(points)
                        continue
                    for point, fields in points:
                        event = self._event(metric.name, shared, point, fields)
                        if event is None:
                            failed += 1
                        elif send(event):
                            accepted += 1
                        else:
                            failed += 1
        if failed and time.monotonic() > deadline:
            self._warnings.warning("timeout", "OpenTelemetry export passed its deadline")
        return accepted, failed

    def _event(
        self,
        name: str,
        shared: Mapping[str, object],
        point: Any,
        fields: dict[str, FieldValue],
    ) -> MetricEvent | None:
        """Build the event of one point, or log why it cannot be one and return None."""
        attributes: Mapping[str, object] = point.attributes or {}
        tags: dict[str, str | int | float | bool] = {}
        for key, value in {**shared, **attributes}.items():
            tag = _tag_value(value)
            if tag != "":
                tags[key] = tag
        try:
            return MetricEvent(name, tags=tags, fields=fields, timestamp_ns=point.time_unix_nano)
        except MetricStreamError as exc:
            self._warnings.warning(
                ("invalid", name),
                "OpenTelemetry metric %r has a point that cannot be an event: %s",
                name,
                exc,
            )
            return None

    def force_flush(self, timeout_millis: float = 10_000) -> bool:
        """Wait until the streamer delivered what it accepted, up to `timeout_millis`.

        Returns:
            True if everything was written or dropped in time; never raises.
        """
        return self._flush(timeout_millis)

    def shutdown(self, timeout_millis: float = 30_000, **kwargs: Any) -> None:
        """Refuse further exports and flush the streamer within the timeout; never raises.

        Args:
            timeout_millis: The most time to spend.
            **kwargs: What the SDK passes; ``timeout`` (milliseconds, as
                `PeriodicExportingMetricReader` gives what is left of its own
                deadline) replaces `timeout_millis`.
        """
        self._closed.set()
        timeout = kwargs.get("timeout", timeout_millis)
        self._flush(timeout if isinstance(timeout, (int, float)) else timeout_millis)

    def _flush(self, timeout_millis: float) -> bool:
        try:
            return bool(self.streamer.flush(timeout=max(0.0, float(timeout_millis)) / 1000))
        except Exception as exc:  # the SDK must never see an exception from an exporter
            self._warnings.error(
                ("flush", type(exc).__name__), "flushing for OpenTelemetry: %s", exc
            )
            return False

    def __repr__(self) -> str:
        return (
            f"MetricStreamExporter(streamer={self.streamer!r}, "
            f"exported={self.points_exported}, failed={self.points_failed})"
        )
