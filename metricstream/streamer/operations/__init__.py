"""What runs beside the engine: instruments, health endpoint, metrics, environment, lifecycle.

These modules may import the engine (`metricstream.streamer.engine`); the
engine never imports them. `EventStreamer` delegates to them:

- `instruments`: `timed`, `count` and `gauge`;
- `endpoint`: `HealthEndpoint`, which `serve_health` starts and `shutdown`
  stops; `health_server`, `prometheus`, ``status_page.html``: the server,
  its Prometheus metrics and its status page;
- `self_metrics`: self-telemetry, periodic work the engine's batcher runs;
- `env`: configuration from ``METRICSTREAM_*`` variables (`from_env`);
- `lifecycle`: interpreter exit, garbage collection and fork.
"""
