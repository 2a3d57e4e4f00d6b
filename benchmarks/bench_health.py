"""The health endpoint: what scraping it costs the application, and one scrape against its peer.

1. The application-thread cost of ``send(event_from_sample(...))`` while a
   client scrapes ``/metrics`` and ``/status.json`` every 10 ms (far more
   often than Prometheus or a status page would), beside the same cost with
   no server at all. Runs alternate; medians are reported.
2. One ``GET /metrics`` over HTTP for a streamer with two sinks, against
   prometheus_client's own ``start_http_server`` exposing the same series
   from a registry of ordinary ``Counter`` and ``Gauge`` objects.
"""

from __future__ import annotations

import os
import statistics
import sys
import threading
import time
import urllib.request

sys.path.insert(0, os.path.dirname(__file__))

from _common import NullSink, send_samples, side_by_side

import metricstream as ms

CALLS = 50_000
ROUNDS = 5
SCRAPES = 300


class NamedNullSink(NullSink):
    def __init__(self, name: str) -> None:
        self.name = name


def streamer() -> ms.EventStreamer:
    return ms.EventStreamer(
        [NamedNullSink("a"), NamedNullSink("b")],
        batch_size=1000,
        max_buffer=1_000_000,
        register_atexit=False,
    )


def send_cost(scraped: bool) -> tuple[float, float]:
    """(wall ns, sending-thread CPU ns) per send(), scraped every 10 ms or not served."""
    subject = streamer()
    stop = threading.Event()
    scraper = None
    if scraped:
        host, port = subject.serve_health()

        def scrape() -> None:
            while not stop.wait(0.01):
                for path in ("/metrics", "/status.json"):
                    urllib.request.urlopen(f"http://{host}:{port}{path}", timeout=10).read()

        scraper = threading.Thread(target=scrape, daemon=True)
        scraper.start()
    send_samples(subject, 5_000)
    started, cpu_started = time.perf_counter_ns(), time.thread_time_ns()
    send_samples(subject, CALLS)
    elapsed = (time.perf_counter_ns() - started) / CALLS
    cpu = (time.thread_time_ns() - cpu_started) / CALLS
    stop.set()
    if scraper is not None:
        scraper.join()
    subject.shutdown(10)
    return elapsed, cpu


def scrape_ms(url: str) -> float:
    """Median milliseconds per GET of `url`."""
    times = []
    for _ in range(SCRAPES):
        started = time.perf_counter()
        with urllib.request.urlopen(url, timeout=10) as response:
            response.read()
        times.append((time.perf_counter() - started) * 1000)
    return statistics.median(times)


def prometheus_peer_url() -> str:
    """A prometheus_client HTTP server exposing the same series as the streamer."""
    import prometheus_client

    registry = prometheus_client.CollectorRegistry()
    counters = [
        prometheus_client.Counter(f"metricstream_{name}", doc, ["sink"], registry=registry)
        for name, doc in (
            ("events_accepted", "accepted"),
            ("events_written", "written"),
            ("write_retries", "retries"),
            ("write_errors", "errors"),
        )
    ]
    dropped = prometheus_client.Counter(
        "metricstream_events_dropped", "dropped", ["sink", "reason"], registry=registry
    )
    gauges = [
        prometheus_client.Gauge(f"metricstream_{name}", name, ["sink"], registry=registry)
        for name in (
            "events_pending",
            "sink_connected",
            "sink_healthy",
            "sink_consecutive_failures",
            "last_write_latency_seconds",
            "last_write_timestamp_seconds",
        )
    ]
    for sink in ("a", "b"):
        for counter in counters:
            counter.labels(sink).inc(1000)
        for reason in ms.DROP_REASONS:
            dropped.labels(sink, reason).inc(0)
        for gauge in gauges:
            gauge.labels(sink).set(1)
    for name in ("healthy", "running"):
        prometheus_client.Gauge(f"metricstream_{name}", name, registry=registry).set(1)
    server, _ = prometheus_client.start_http_server(0, addr="127.0.0.1", registry=registry)
    return f"http://127.0.0.1:{server.server_port}/metrics"


def main() -> dict[str, float]:
    quiet, scraped = [], []
    for _ in range(ROUNDS):
        quiet.append(send_cost(scraped=False))
        scraped.append(send_cost(scraped=True))
    overhead = side_by_side(
        "send(event_from_sample(...)) while /metrics and /status.json are scraped every 10 ms",
        ("metricstream, scraped (median)", statistics.median(w for w, _ in scraped)),
        ("metricstream, no health server (median)", statistics.median(w for w, _ in quiet)),
        "ns/event",
        higher_is_better=False,
    )
    side_by_side(
        "the same, CPU time of the sending thread",
        ("metricstream, scraped (median)", statistics.median(c for _, c in scraped)),
        ("metricstream, no health server (median)", statistics.median(c for _, c in quiet)),
        "ns/event",
        higher_is_better=False,
    )

    subject = streamer()
    send_samples(subject, 2000)
    subject.flush(10)
    host, port = subject.serve_health()
    ours = f"http://{host}:{port}/metrics"
    peer = prometheus_peer_url()
    scrape_ms(ours)
    scrape_ms(peer)
    ours_ms, peer_ms = [], []
    for _ in range(3):
        ours_ms.append(scrape_ms(ours))
        peer_ms.append(scrape_ms(peer))
    ratio = side_by_side(
        "one GET /metrics, 2 sinks (16 series each), over HTTP on loopback",
        ("metricstream serve_health", statistics.median(ours_ms)),
        ("prometheus_client start_http_server", statistics.median(peer_ms)),
        "ms",
        higher_is_better=False,
    )
    subject.shutdown(10)
    return {"scrape_overhead_ratio": overhead, "scrape_ratio": ratio}


if __name__ == "__main__":
    main()
