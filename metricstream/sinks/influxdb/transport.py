"""The two write APIs, each a small transport: ``post`` a body, ``ping``, ``close``.

- `V1Transport`: ``POST /write?db=&rp=&precision=`` for InfluxDB 1.x, with
  HTTP basic auth when a username is given, through `urllib3` (the HTTP
  client influxdb-client itself uses);
- `V2Transport`: ``POST /api/v2/write?org=&bucket=&precision=`` for InfluxDB
  2.x/3.x and compatible servers such as VictoriaMetrics, through
  influxdb-client, synchronously and with its own retries switched off (the
  streamer's lane retries).

influxdb-client's ``WriteApi`` can only gzip by compressing every request
itself (at level 9, on every attempt); `V2Transport` therefore calls
``WriteService.post_write`` -- the endpoint binding ``WriteApi`` uses in
synchronous mode -- with the sink's pre-compressed body and
``Content-Encoding: gzip``, so each body is compressed once.

A transport returns the answer (`Response` is its shape, whatever the
status) or lets the client's exception through; `errors` translates both.
Each transport owns its connection pool: `open_transport` builds a new one
(a forked child needs its own, see `InfluxDBSink.after_fork`).
"""

from __future__ import annotations

import base64
import importlib
import urllib.parse
from typing import Any, Protocol

from metricstream.exceptions import ConfigError
from metricstream.sinks.influxdb.config import InfluxDBOptions
from metricstream.sinks.influxdb.errors import Response

__all__ = ["Transport", "V1Transport", "V2Transport", "open_transport"]

_V1_PRECISION = {"ns": "n", "us": "u", "ms": "ms", "s": "s"}
"""InfluxDB 1.x names for the precisions. It reads an unknown name such as
``us`` as nanoseconds without complaint, so the short forms are required."""

_OK = Response(204, {}, b"")


class Transport(Protocol):
    """What the sink needs from a write API."""

    def post(self, body: bytes, *, gzipped: bool) -> Response:
        """Send one request body; return the answer (any status)."""
        ...

    def ping(self) -> Response:
        """Ask the server whether it is up; return the answer (any status)."""
        ...

    def close(self) -> None:
        """Release the connections."""
        ...


class V1Transport:
    """``POST /write`` and ``GET /ping`` for InfluxDB 1.x, over urllib3."""

    def __init__(self, settings: InfluxDBOptions) -> None:
        try:
            import urllib3  # optional: installed with influxdb-client
        except ImportError:  # pragma: no cover - depends on the installation
            raise ConfigError(
                "api", "api='v1' needs urllib3: pip install 'metricstream[influxdb]'"
            ) from None
        params = {"db": settings.database or ""}
        if settings.retention_policy is not None:
            params["rp"] = settings.retention_policy
        params["precision"] = _V1_PRECISION[settings.precision]
        self.write_url = f"{settings.url}/write?{urllib.parse.urlencode(params)}"
        self.ping_url = f"{settings.url}/ping"
        self.auth_headers: dict[str, str] = {}
        if settings.username is not None:
            pair = f"{settings.username}:{settings.password or ''}".encode()
            self.auth_headers["Authorization"] = f"Basic {base64.b64encode(pair).decode()}"
        self.timeout = urllib3.Timeout(total=settings.timeout)
        pool_options: dict[str, Any] = {}
        if settings.url.startswith("https:"):
            pool_options["cert_reqs"] = "CERT_REQUIRED" if settings.verify_ssl else "CERT_NONE"
            if settings.ssl_ca_cert is not None:
                pool_options["ca_certs"] = settings.ssl_ca_cert
        self.pool = urllib3.PoolManager(num_pools=2, maxsize=2, retries=False, **pool_options)

    def post(self, body: bytes, *, gzipped: bool) -> Response:
        """Send one request body to ``/write``; return the answer."""
        headers = {"Content-Type": "text/plain; charset=utf-8", **self.auth_headers}
        if gzipped:
            headers["Content-Encoding"] = "gzip"
        resp = self.pool.request(
            "POST",
            self.write_url,
            body=body,
            headers=headers,
            timeout=self.timeout,
            retries=False,
            redirect=False,
        )
        return Response(resp.status, resp.headers, resp.data)

    def ping(self) -> Response:
        """``GET /ping``; return the answer."""
        resp = self.pool.request(
            "GET", self.ping_url, timeout=self.timeout, retries=False, redirect=False
        )
        return Response(resp.status, resp.headers, resp.data)

    def close(self) -> None:
        """Close the pooled connections."""
        self.pool.clear()


class V2Transport:
    """``POST /api/v2/write`` and ``GET /ping`` through influxdb-client."""

    def __init__(self, settings: InfluxDBOptions) -> None:
        try:
            # Typed as Any: influxdb-client ships py.typed but leaves most calls unannotated.
            client_module: Any = importlib.import_module("influxdb_client")
        except ImportError:  # pragma: no cover - depends on the installation
            raise ConfigError(
                "api",
                "api='v2' needs influxdb-client: pip install 'metricstream[influxdb]'",
            ) from None
        # enable_gzip stays off: bodies arrive already compressed (see module doc).
        self.client = client_module.InfluxDBClient(
            url=settings.url,
            token=settings.token,
            org=settings.org,
            timeout=max(1, round(settings.timeout * 1000)),
            enable_gzip=False,
            verify_ssl=settings.verify_ssl,
            ssl_ca_cert=settings.ssl_ca_cert,
            retries=False,
        )
        self.write_service = client_module.WriteService(self.client.api_client)
        self.ping_service = client_module.PingService(self.client.api_client)
        self.org = settings.org
        self.bucket = settings.bucket
        self.precision = settings.precision

    def post(self, body: bytes, *, gzipped: bool) -> Response:
        """Send one request body to ``/api/v2/write``; return the answer.

        Raises:
            Exception: influxdb-client's ``ApiException`` for an answer
                outside 2xx, urllib3's errors for transport failures.
        """
        options: dict[str, str] = {"content_encoding": "gzip"} if gzipped else {}
        self.write_service.post_write(
            org=self.org,
            bucket=self.bucket,
            body=body,
            precision=self.precision,
            content_type="text/plain; charset=utf-8",
            **options,
        )
        return _OK

    def ping(self) -> Response:
        """``GET /ping``; return the answer (see `post` for what it raises)."""
        self.ping_service.get_ping()
        return _OK

    def close(self) -> None:
        """Close the client and its connections."""
        self.client.close()


def open_transport(settings: InfluxDBOptions) -> V1Transport | V2Transport:
    """Build the transport of `settings.api`, with a connection pool of its own.

    Raises:
        ConfigError: If the API's client library is not installed.
    """
    return V1Transport(settings) if settings.api == "v1" else V2Transport(settings)
