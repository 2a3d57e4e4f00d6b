"""A small WSGI app instrumented with metricstream, driven by a load from the standard library.

Run with ``python examples/web_app.py [--requests 200] [--clients 4]``.

It serves the app on a free port of 127.0.0.1 (``wsgiref``, a thread per
request), sends it requests from a few client threads with ``urllib``, then
prints what the events say about each route. Every request runs under its
own correlation id (the client's ``X-Request-Id`` header) and is timed with
``streamer.timed``; the database call inside it is timed with a decorator,
so both events carry the same id. Failures are recorded by exception name
(``outcome=KeyError``) and still become the right HTTP status. The events go
to ``web_app.jsonl.zst`` in the current directory, a new file at each run.
"""

from __future__ import annotations

import argparse
import statistics
import threading
import urllib.error
import urllib.request
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable
from pathlib import Path
from socketserver import ThreadingMixIn
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

import metricstream as ms
from metricstream.sinks.jsonl import read_events

OUTPUT = Path("web_app.jsonl.zst")
PATHS = ["/orders", "/orders", "/orders/42", "/orders/7", "/boom"]
"""The load cycles through these: two listings, a found order, a missing one, a crash."""
ORDERS = {42: "espresso machine", 43: "grinder"}

StartResponse = Callable[[str, list[tuple[str, str]]], Any]
WsgiApp = Callable[[dict[str, Any], StartResponse], Iterable[bytes]]


def make_app(streamer: ms.EventStreamer) -> WsgiApp:
    """The application: two routes, each instrumented, plus one that always fails."""

    @streamer.timed("db.query_ms", table="orders")
    def load_order(order_id: int) -> str:
        return ORDERS[order_id]  # KeyError for an unknown order

    def route_of(path: str) -> str:
        return "/orders/{id}" if path.startswith("/orders/") else path

    def handle(path: str) -> tuple[str, bytes]:
        if path == "/orders":
            return "200 OK", ", ".join(ORDERS.values()).encode()
        if path.startswith("/orders/"):
            return "200 OK", load_order(int(path.rsplit("/", 1)[1])).encode()
        if path == "/boom":
            raise RuntimeError("the payment provider is down")
        return "404 Not Found", b"no such page"

    def app(environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        path = environ["PATH_INFO"]
        request_id = environ.get("HTTP_X_REQUEST_ID") or None
        with streamer.correlation(request_id):
            try:
                with streamer.timed("http.request_ms", route=route_of(path)):
                    status, body = handle(path)
            except KeyError:
                status, body = "404 Not Found", b"no such order"
            except Exception:
                status, body = "500 Internal Server Error", b"sorry"
            streamer.count("http.responses", status=status[:3])
        start_response(status, [("Content-Type", "text/plain")])
        return [body]

    return app


class QuietHandler(WSGIRequestHandler):
    """No access log on stderr."""

    def log_message(self, format: str, *args: Any) -> None:
        pass


class ThreadingWSGIServer(ThreadingMixIn, WSGIServer):
    """One thread per request, as a production server would run the app concurrently."""

    daemon_threads = True


def drive(base_url: str, requests: int, clients: int) -> Counter[int]:
    """Send `requests` requests from `clients` threads; return the statuses seen."""
    statuses: Counter[int] = Counter()
    lock = threading.Lock()

    def client(indexes: range) -> None:
        for i in indexes:
            url = base_url + PATHS[i % len(PATHS)]  # always the http:// server above
            request = urllib.request.Request(url, headers={"X-Request-Id": f"req-{i}"})  # noqa: S310
            try:
                with urllib.request.urlopen(request, timeout=30) as response:  # noqa: S310
                    status = response.status
            except urllib.error.HTTPError as error:
                status = error.code
            with lock:
                statuses[status] += 1

    threads = [
        threading.Thread(target=client, args=(range(n, requests, clients),)) for n in range(clients)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return statuses


def report(events: list[ms.MetricEvent], statuses: Counter[int]) -> None:
    """Print the per-route table, the correlation check and the client's view."""
    durations: dict[tuple[str, str], list[float]] = defaultdict(list)
    request_ids: dict[str, str] = {}
    for event in events:
        if event.measurement == "http.request_ms":
            key = (event.tags["route"], event.tags["outcome"])
            durations[key].append(float(event.fields["duration_ms"]))
            request_ids[str(event.correlation_id)] = event.tags["route"]
    print(f"{'route':<14} {'outcome':<14} {'requests':>8} {'p50 ms':>8} {'max ms':>8}")
    for (route, outcome), values in sorted(durations.items()):
        print(
            f"{route:<14} {outcome:<14} {len(values):>8} "
            f"{statistics.median(values):>8.3f} {max(values):>8.3f}"
        )
    queries = [e for e in events if e.measurement == "db.query_ms"]
    joined = sum(1 for e in queries if request_ids.get(str(e.correlation_id)) == "/orders/{id}")
    print(
        f"db.query_ms events: {len(queries)}, {joined} inside their request (same correlation id)"
    )
    responses = Counter(e.tags["status"] for e in events if e.measurement == "http.responses")
    print(
        "responses counted by the app:",
        ", ".join(f"{s} x{n}" for s, n in sorted(responses.items())),
    )
    print(
        "statuses seen by the clients:", ", ".join(f"{s} x{n}" for s, n in sorted(statuses.items()))
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=200)
    parser.add_argument("--clients", type=int, default=4)
    args = parser.parse_args()

    OUTPUT.unlink(missing_ok=True)  # a new file at each run: the sink appends
    streamer = ms.EventStreamer([ms.sinks.JsonLinesSink(OUTPUT)], flush_interval=0.5)
    server = make_server("127.0.0.1", 0, make_app(streamer), ThreadingWSGIServer, QuietHandler)
    serving = threading.Thread(target=server.serve_forever, daemon=True)
    serving.start()
    base_url = f"http://127.0.0.1:{server.server_port}"
    print(f"serving on {base_url}; sending {args.requests} requests from {args.clients} clients")
    try:
        statuses = drive(base_url, args.requests, args.clients)
    finally:
        server.shutdown()
        server.server_close()
        streamer.shutdown(timeout=10)
    OUTPUT.with_name(f".{OUTPUT.name}.lock").unlink(missing_ok=True)  # the closed sink's lock
    written = streamer.health().sinks["jsonl"].events_written
    print(f"{written} events written to {OUTPUT}\n")
    report(list(read_events(OUTPUT)), statuses)


if __name__ == "__main__":
    main()
