"""A streamer's counters in the Prometheus exposition format, through ``prometheus_client``.

`StreamerCollector` reads a health snapshot at each scrape and turns it into
metric families; it keeps no state and touches no global registry, so any
number of streamers can be exposed side by side. The health server
(`metricstream.streamer.operations.health_server`) serves it on ``/metrics``; an
application that already runs a Prometheus endpoint registers it there::

    from prometheus_client import REGISTRY
    REGISTRY.register(StreamerCollector(streamer.health))

``prometheus_client`` (the ``prometheus`` extra) is imported only when
metrics are collected or rendered.

Every series has a ``sink`` label:

- counters: ``metricstream_events_accepted_total``,
  ``metricstream_events_written_total``,
  ``metricstream_events_dropped_total`` (also labelled ``reason``),
  ``metricstream_write_retries_total``, ``metricstream_write_errors_total``;
- gauges: ``metricstream_events_pending``, ``metricstream_events_spooled``
  (once the spool reports it), ``metricstream_sink_connected``,
  ``metricstream_sink_healthy``, ``metricstream_sink_consecutive_failures``,
  ``metricstream_last_write_latency_seconds`` and
  ``metricstream_last_write_timestamp_seconds`` (after a first write);

and two gauges describe the streamer: ``metricstream_healthy`` and
``metricstream_running``. Beside them, without a ``sink`` label:

- ``metricstream_events_sampled_out_total``: events ``sample_rate`` left
  out (never accepted);
- ``metricstream_aggregator_series`` and
  ``metricstream_aggregator_series_folded`` (label ``aggregator``): each
  aggregator's series, and the distinct series it folded into
  ``overflow=true`` series past its ``max_series``;
- ``metricstream_on_drop_errors_total``: calls of ``on_drop`` that raised;
- ``metricstream_dead_letters_written_total`` and
  ``metricstream_dead_letters_not_written_total``, with a dead-letter
  directory.

Events dropped as ``cardinality`` (``max_series_per_measurement``) are in
``metricstream_events_dropped_total{reason="cardinality"}``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING

from metricstream.exceptions import ConfigError
from metricstream.streamer.health import SinkHealth, StreamerHealth

if TYPE_CHECKING:
    from prometheus_client.metrics_core import Metric

__all__ = ["StreamerCollector", "render_metrics"]

_INSTALL_HINT = "install the prometheus extra: pip install 'metricstream[prometheus]'"

_Value = Callable[[SinkHealth], "float | None"]


def _seconds(milliseconds: float | None) -> float | None:
    return None if milliseconds is None else round(milliseconds / 1000.0, 9)


def _unix_seconds(nanoseconds: int | None) -> float | None:
    return None if nanoseconds is None else nanoseconds / 1e9


# (type, name without the metricstream_ prefix, help, the value for one sink or None)
_SERIES: tuple[tuple[str, str, str, _Value], ...] = (
    ("counter", "events_accepted", "Events send() accepted while the sink was attached.",
     lambda s: s.events_accepted),
    ("counter", "events_written", "Events the sink confirmed written.",
     lambda s: s.events_written),
    ("counter", "write_retries", "Write retries performed.", lambda s: s.retries),
    ("counter", "write_errors", "Failed write attempts.", lambda s: s.write_errors),
    ("gauge", "events_pending", "Events accepted but neither written nor dropped yet.",
     lambda s: s.pending),
    ("gauge", "events_spooled", "Pending events held in the disk spool.",
     lambda s: getattr(s, "spooled", None)),
    ("gauge", "sink_connected", "1 while the last write or probe of the sink succeeded.",
     lambda s: int(s.connected)),
    ("gauge", "sink_healthy", "1 while the sink is connected and below the failure limit.",
     lambda s: int(s.healthy)),
    ("gauge", "sink_consecutive_failures", "Failed attempts since the last success.",
     lambda s: s.consecutive_failures),
    ("gauge", "last_write_latency_seconds", "Duration of the last successful write.",
     lambda s: _seconds(s.last_write_latency_ms)),
    ("gauge", "last_write_timestamp_seconds", "Unix time of the last successful write.",
     lambda s: _unix_seconds(s.last_write_ns)),
)  # fmt: skip


def _require_client() -> None:
    try:
        import prometheus_client  # noqa: F401
    except ImportError:
        raise ConfigError(
            "prometheus", f"prometheus_client is not installed; {_INSTALL_HINT}"
        ) from None


class StreamerCollector:
    """A ``prometheus_client`` collector of one streamer's counters (see the module doc).

    Args:
        health: Returns the snapshot to expose, typically ``streamer.health``.

    Raises:
        ConfigError: If ``prometheus_client`` is not installed.
    """

    def __init__(self, health: Callable[[], StreamerHealth]) -> None:
        _require_client()
        self._health = health

    def collect(self) -> Iterator[Metric]:
        """Yield the metric families of a fresh health snapshot."""
        return iter(_families(self._health()))


def _families(health: StreamerHealth) -> list[Metric]:
    from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

    families: list[Metric] = []
    for kind, name, doc, value in _SERIES:
        family_type = CounterMetricFamily if kind == "counter" else GaugeMetricFamily
        family = family_type(f"metricstream_{name}", doc, labels=["sink"])
        for sink_name, sink in health.sinks.items():
            sample = value(sink)
            if sample is not None:
                family.add_metric([sink_name], sample)
        if family.samples:
            families.append(family)
        if name == "events_written":
            families.append(_dropped(health))
    for name, doc, flag in (
        ("healthy", "1 while the streamer runs and every sink is healthy.", health.healthy),
        ("running", "1 until shutdown begins.", health.running),
    ):
        family = GaugeMetricFamily(f"metricstream_{name}", doc)
        family.add_metric([], int(flag))
        families.append(family)
    return families + _streamer_families(health)


def _streamer_families(health: StreamerHealth) -> list[Metric]:
    """The figures of the streamer itself: sampling, aggregators, on_drop, dead letters."""
    from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

    counters = [
        ("events_sampled_out", "Events sample_rate left out (never accepted).",
         health.sampled_out),
        ("on_drop_errors", "Calls of the on_drop callback that raised.", health.on_drop_errors),
    ]  # fmt: skip
    letters = health.dead_letters
    if letters is not None:
        counters += [
            ("dead_letters_written", "Refused events written to the dead-letter files.",
             letters.events_written),
            ("dead_letters_not_written", "Refused events the dead-letter files could not take.",
             letters.events_not_written),
        ]  # fmt: skip
    families: list[Metric] = []
    for name, doc, value in counters:
        counter = CounterMetricFamily(f"metricstream_{name}", doc)
        counter.add_metric([], value)
        families.append(counter)
    if health.aggregators:
        series = GaugeMetricFamily(
            "metricstream_aggregator_series",
            "Series an aggregator holds (its overflow series not included).",
            labels=["aggregator"],
        )
        folded = GaugeMetricFamily(
            "metricstream_aggregator_series_folded",
            "Distinct series an aggregator folded into overflow=true series past max_series.",
            labels=["aggregator"],
        )
        for name, aggregator in health.aggregators.items():
            series.add_metric([name], aggregator.series)
            folded.add_metric([name], aggregator.series_folded)
        families += [series, folded]
    return families


def _dropped(health: StreamerHealth) -> Metric:
    from prometheus_client.core import CounterMetricFamily

    family = CounterMetricFamily(
        "metricstream_events_dropped",
        "Events dropped for the sink, by reason.",
        labels=["sink", "reason"],
    )
    for sink_name, sink in health.sinks.items():
        for reason, count in sink.dropped_by_reason.items():
            family.add_metric([sink_name, reason], count)
    return family


def render_metrics(health: StreamerHealth) -> tuple[bytes, str]:
    """Render a snapshot in the Prometheus text exposition format.

    Returns:
        (the body, its content type).

    Raises:
        ConfigError: If ``prometheus_client`` is not installed.
    """
    _require_client()
    from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest

    registry = CollectorRegistry(auto_describe=False)
    registry.register(StreamerCollector(lambda: health))
    return generate_latest(registry), CONTENT_TYPE_LATEST
