"""The health endpoint: a small HTTP server beside a streamer.

`EventStreamer.serve_health` starts one; it serves

- ``GET /livez``: 200 while the streamer's threads work (`StreamerHealth.live`),
  503 once one died: a liveness probe, which a sink that is down never
  fails;
- ``GET /readyz``: 200 while the streamer runs and its sinks are healthy,
  all of them or any one (`StreamerHealth.ready`, ``ready=`` of the
  server), 503 when not: a readiness probe;
- ``GET /healthz``: 200 when the streamer is healthy, 503 when not, with the
  health snapshot as JSON (credentials removed), for dashboards and load
  balancers;
- ``GET /metrics``: the counters in the Prometheus text format
  (`metricstream.streamer.operations.prometheus`; needs ``prometheus_client``);
- ``GET /``: a self-contained status page (``status_page.html``, no external
  assets) that polls ``/status.json`` every second;
- ``GET /status.json``: the snapshot plus the throughput history the page
  charts: each sink's cumulative written and dropped counts, sampled every
  second for the last five minutes.

It runs on its own daemon thread (``metricstream-health``), which also takes
the history samples, and each request on a short-lived daemon thread of its
own (`http.server.ThreadingHTTPServer`); it reads health snapshots only and
never touches the `send` path. It holds the streamer weakly: a streamer that
is garbage-collected stops its server, and `EventStreamer.shutdown` stops it
too. Request lines are logged at DEBUG level on the ``metricstream`` logger.
"""

from __future__ import annotations

import logging
import socket
import socketserver
import sys
import threading
import time
from collections import deque
from collections.abc import Callable
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from importlib import resources
from typing import Any

import orjson

from metricstream._log import RateLimitedLog, logger
from metricstream._secrets import scrub_secrets
from metricstream.exceptions import ConfigError
from metricstream.streamer.health import READY_POLICIES, StreamerHealth

__all__ = ["HealthServer", "ThroughputHistory", "scrubbed"]

HealthSource = Callable[[], "StreamerHealth | None"]
"""Returns a fresh snapshot, or None once the streamer is gone."""

MetricsRenderer = Callable[[StreamerHealth], "tuple[bytes, str]"]
"""Renders a snapshot for ``/metrics``: (the body, its content type)."""

_ROUTES = frozenset({"/livez", "/readyz", "/healthz", "/status.json", "/metrics"})
_POLL_SECONDS = 0.1
_REQUEST_TIMEOUT = 10.0
_warnings = RateLimitedLog(logger)


def scrubbed(value: Any) -> Any:
    """Return plain JSON-ready data with credentials removed from every string."""
    if isinstance(value, str):
        return scrub_secrets(value)
    if isinstance(value, dict):
        return {scrub_secrets(str(key)): scrubbed(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [scrubbed(item) for item in value]
    return value


class ThroughputHistory:
    """Cumulative written and dropped counts per sink, sampled at a fixed interval.

    Holds the last ``span / interval`` samples, so its size is bounded.

    Args:
        interval: Seconds between two samples.
        span: Seconds of history kept.
    """

    def __init__(self, interval: float = 1.0, span: float = 300.0) -> None:
        self.interval = interval
        self._lock = threading.Lock()
        self._samples: deque[tuple[float, dict[str, tuple[int, int]]]] = deque(
            maxlen=int(span / interval) + 1
        )

    def record(self, health: StreamerHealth, at: float | None = None) -> None:
        """Add a sample taken from `health` at Unix time `at` (now when None)."""
        counts = {
            name: (sink.events_written, sink.events_dropped) for name, sink in health.sinks.items()
        }
        with self._lock:
            self._samples.append((time.time() if at is None else at, counts))

    def to_dict(self) -> dict[str, Any]:
        """Return the samples as columns: ``times`` and, per sink, ``written`` and ``dropped``."""
        with self._lock:
            samples = list(self._samples)
        names = list(samples[-1][1]) if samples else []
        return {
            "interval_s": self.interval,
            "times": [round(at, 3) for at, _ in samples],
            "sinks": {
                name: {
                    "written": [counts.get(name, (0, 0))[0] for _, counts in samples],
                    "dropped": [counts.get(name, (0, 0))[1] for _, counts in samples],
                }
                for name in names
            },
        }


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False  # a slow client must never hold up a shutdown
    owner: HealthServer

    def server_bind(self) -> None:
        # HTTPServer.server_bind asks the resolver for a fully qualified name,
        # which can take seconds where DNS is unreachable; nothing here uses it.
        socketserver.TCPServer.server_bind(self)
        host, port = self.server_address[:2]
        self.server_name = str(host)
        self.server_port = int(port)

    def handle_error(self, request: Any, client_address: Any) -> None:
        exc = sys.exc_info()[1]
        # A client that hangs up early is routine; anything else is worth a warning.
        routine = isinstance(exc, (ConnectionError, TimeoutError))
        level = logging.DEBUG if routine else logging.WARNING
        _warnings.log(
            level,
            ("health-server", "request", level),
            "health server: a request from %s failed: %s",
            client_address[0] if isinstance(client_address, tuple) else client_address,
            scrub_secrets(f"{type(exc).__name__}: {exc}"),
        )


class _Server6(_Server):
    address_family = socket.AF_INET6


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    timeout = _REQUEST_TIMEOUT
    server_version = "metricstream"

    def do_GET(self) -> None:
        self._answer(send_body=True)

    def do_HEAD(self) -> None:
        self._answer(send_body=False)

    def _answer(self, *, send_body: bool) -> None:
        try:
            status, content_type, body = self.server.owner.route(self.path)
        except Exception as exc:
            problem = scrub_secrets(f"{type(exc).__name__}: {exc}")
            _warnings.error(
                ("health-server", "answer"),
                "health server: answering %s failed: %s",
                self.path.split("?", 1)[0][:100],
                problem,
            )
            status, content_type = HTTPStatus.INTERNAL_SERVER_ERROR, "text/plain; charset=utf-8"
            body = f"{problem}\n".encode()
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        self.end_headers()
        if send_body:
            self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        logger.debug("health server: %s " + format, self.client_address[0], *args)


def _probe(answer: dict[str, Any], passed: bool) -> tuple[int, str, bytes]:
    status = HTTPStatus.OK if passed else HTTPStatus.SERVICE_UNAVAILABLE
    return status, "application/json", orjson.dumps(scrubbed(answer))


def _status_page() -> bytes:
    page = resources.files("metricstream.streamer.operations").joinpath("status_page.html")
    return page.read_bytes()


class HealthServer:
    """An HTTP server for one streamer's health (see the module doc).

    Args:
        source: Returns a fresh health snapshot, or None once the streamer
            is gone (the server then stops).
        host: The address to listen on (``"127.0.0.1"``, ``"0.0.0.0"``,
            ``"::1"``...).
        port: The port; 0 picks a free one.
        history: Where throughput samples are kept.
        ready: When ``/readyz`` answers 200: ``"all"`` sinks healthy, or ``"any"``.
        metrics: Renders ``/metrics`` from a snapshot (default: the
            streamer's series, `render_metrics`); a service that adds series
            of its own (the relay) passes its renderer.

    Raises:
        ConfigError: If the address cannot be listened on, or `ready` is
            neither ``"all"`` nor ``"any"``.
    """

    def __init__(
        self,
        source: HealthSource,
        host: str = "127.0.0.1",
        port: int = 0,
        history: ThroughputHistory | None = None,
        ready: str = "all",
        *,
        metrics: MetricsRenderer | None = None,
    ) -> None:
        self._source = source
        self.ready: str = READY_POLICIES.check("ready", ready)
        self._render_metrics = metrics
        self.history = ThroughputHistory() if history is None else history
        self._stopping = threading.Event()
        self._page = _status_page()
        server_type = _Server6 if ":" in host else _Server
        try:
            self._httpd = server_type((host, port), _Handler)
        except OSError as exc:
            raise ConfigError("port", f"cannot listen on {host}:{port}: {exc}") from exc
        self._httpd.owner = self
        self._thread = threading.Thread(target=self._serve, name="metricstream-health", daemon=True)

    @property
    def address(self) -> tuple[str, int]:
        """The (host, port) the server listens on."""
        host, port = self._httpd.server_address[:2]
        return str(host), int(port)

    @property
    def url(self) -> str:
        """The base URL, e.g. ``http://127.0.0.1:9464``."""
        host, port = self.address
        return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"

    def start(self) -> None:
        """Start serving on the server's own daemon thread."""
        self._thread.start()
        logger.info("serving health on %s (/livez, /readyz, /healthz, /metrics, /)", self.url)

    def stop(self, deadline: float | None = None) -> None:
        """Stop serving and close the socket, waiting for the thread until `deadline`.

        Args:
            deadline: A `time.monotonic` deadline; None waits up to 1 s.
        """
        self._stopping.set()
        if self._thread.is_alive() and self._thread is not threading.current_thread():
            wait = 1.0 if deadline is None else max(0.0, deadline - time.monotonic())
            self._thread.join(wait)
        self._httpd.server_close()

    def after_fork_in_child(self) -> None:
        """Close the listening socket a forked child inherited (its thread stayed behind)."""
        self._stopping.set()
        self._httpd.socket.close()

    # --- the server thread ----------------------------------------------------

    def _serve(self) -> None:
        httpd = self._httpd
        httpd.timeout = _POLL_SECONDS
        next_sample = 0.0
        try:
            while not self._stopping.is_set():
                now = time.monotonic()
                if now >= next_sample:
                    next_sample = now + self.history.interval
                    health = self._source()
                    if health is None:
                        logger.info("the streamer is gone; health server stopped")
                        break
                    self.history.record(health)
                httpd.handle_request()
        except (OSError, ValueError):
            if not self._stopping.is_set():
                logger.exception("the health server stopped")
        finally:
            if not self._stopping.is_set():
                httpd.server_close()

    # --- answers --------------------------------------------------------------

    def route(self, path: str) -> tuple[int, str, bytes]:
        """Answer a GET of `path`.

        Returns:
            (HTTP status, content type, body).
        """
        path = path.split("?", 1)[0]
        if path in ("/", "/index.html"):
            return HTTPStatus.OK, "text/html; charset=utf-8", self._page
        if path not in _ROUTES:
            return HTTPStatus.NOT_FOUND, "text/plain; charset=utf-8", b"not found\n"
        health = self._source()
        if health is None:
            return HTTPStatus.SERVICE_UNAVAILABLE, "text/plain; charset=utf-8", b"gone\n"
        if path == "/metrics":
            return self._metrics(health)
        if path == "/livez":
            return _probe({"live": health.live, "error": health.error}, health.live)
        if path == "/readyz":
            ready = health.ready(self.ready)
            sinks = {name: sink.healthy for name, sink in health.sinks.items()}
            return _probe({"ready": ready, "policy": self.ready, "sinks": sinks}, ready)
        data = scrubbed(health.to_dict())
        if path == "/status.json":
            data = {"health": data, "history": self.history.to_dict()}
            return HTTPStatus.OK, "application/json", orjson.dumps(data)
        status = HTTPStatus.OK if health.healthy else HTTPStatus.SERVICE_UNAVAILABLE
        return status, "application/json", orjson.dumps(data, option=orjson.OPT_INDENT_2)

    def _metrics(self, health: StreamerHealth) -> tuple[int, str, bytes]:
        from metricstream.streamer.operations.prometheus import render_metrics

        render = self._render_metrics or render_metrics
        try:
            body, content_type = render(health)
        except ConfigError as exc:
            _warnings.warning(("health-server", "prometheus"), "%s", exc)
            return HTTPStatus.NOT_IMPLEMENTED, "text/plain; charset=utf-8", f"{exc}\n".encode()
        return HTTPStatus.OK, content_type, body
