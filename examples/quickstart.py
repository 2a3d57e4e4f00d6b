"""Build a few events, print them in both wire formats, then stream them.

Run with ``python examples/quickstart.py``; it writes ``quickstart.jsonl.zst``
in the current directory, a new file at each run (a `JsonLinesSink` appends
to a file that exists, so the previous run's file is removed first).
"""

from __future__ import annotations

from pathlib import Path

import metricstream as ms
from metricstream.sinks.jsonl import read_events

ARCHIVE = Path("quickstart.jsonl.zst")


def main() -> None:
    request = (
        ms.MetricEvent("http_requests")
        .with_tag("route", "/api/orders")
        .with_tag("status", 200)
        .with_field("latency_ms", 12.5)
        .with_field("count", 1)
        .with_correlation_id("req-42")
    )
    cpu = ms.event_from_sample("cpu.usage", 0.73, {"host": "web-1"})
    for event in (request, cpu):
        print(event.to_influx_line())
        print(event.to_json())

    ARCHIVE.unlink(missing_ok=True)
    with ms.EventStreamer(
        [ms.sinks.ConsoleSink(format="pretty"), ms.sinks.JsonLinesSink(ARCHIVE)],
        batch_size=100,
        flush_interval=0.5,
    ) as streamer:
        streamer.send(request)
        with streamer.correlation() as cid:
            for latency in (3.2, 4.8, 2.9):
                streamer.send(ms.event_from_sample("db.query_ms", latency, {"table": "orders"}))
        streamer.flush(timeout=5)
        health = streamer.health()
    print(f"\ncorrelation id of the db queries: {cid}")
    for name, sink in health.sinks.items():
        print(f"{name}: written {sink.events_written}, dropped {sink.events_dropped}")
    # The sink kept a lock file beside the archive while it wrote; it is closed now.
    ARCHIVE.with_name(f".{ARCHIVE.name}.lock").unlink(missing_ok=True)
    print(f"read back: {sum(1 for _ in read_events(ARCHIVE))} events in the file")


if __name__ == "__main__":
    main()
