"""What runs beside the engine: instruments, health endpoint, metrics, environment, lifecycle.

- `instruments`: `timed`, `count` and `gauge`;
- `health_server`, `prometheus`, ``status_page.html``: the health endpoint,
  Prometheus metrics and the status page;
- `self_metrics`: self-telemetry events;
- `env`: configuration from ``METRICSTREAM_*`` variables;
- `lifecycle`: interpreter exit and fork;
- `facade`: the streamer's operational methods.
"""
