"""Plug metricstream under the instrumentation an application already has.

- `metricstream.integrations.logging`: `EventHandler`, a `logging.Handler`
  that turns log records into events (how many warnings and errors, from
  which logger, in which request);
- `metricstream.integrations.otel`: `MetricStreamExporter`, an OpenTelemetry
  SDK metric exporter that delivers counters, up-down counters, gauges and
  histograms through any metricstream sink (extra ``otel``).

Each module is imported on its own, so the OpenTelemetry SDK is needed only
by the exporter.
"""

from __future__ import annotations

__all__: list[str] = []
