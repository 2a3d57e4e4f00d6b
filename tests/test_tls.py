"""TLS against real servers, with certificates the tests make.

Redis over TLS is tested with the Redis counter sink
(`tests/test_sink_redis_counters.py`); InfluxDB 1.6 here. The Kafka broker
the tests run (Tansu) serves no TLS, so Kafka's TLS (librdkafka's
``security.protocol=SSL`` and ``ssl.*`` options, passed through
``producer_config``) is documented but not exercised locally.
"""

from __future__ import annotations

import json
import ssl
import subprocess
import urllib.parse
import urllib.request
from pathlib import Path

import pytest

import metricstream as ms
from metricstream.sinks import InfluxDBSink

from .servers import InfluxdProcess, require_influxd

BASE_NS = 1_750_000_000_000_000_000


@pytest.mark.servers
class TestInfluxDBOverTLS:
    """InfluxDB 1.6 serving https with a certificate the test makes: the sink verifies it."""

    def test_events_arrive_over_https_and_a_wrong_ca_is_refused(self, tmp_path: Path) -> None:
        require_influxd()
        cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
        subprocess.run(
            ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=localhost",
             "-addext", "subjectAltName=IP:127.0.0.1,DNS:localhost", "-days", "1",
             "-keyout", str(key), "-out", str(cert)],
            check=True, capture_output=True,
        )  # fmt: skip
        options = {
            "https-enabled": True,
            "https-certificate": str(cert),
            "https-private-key": str(key),
        }
        server = InfluxdProcess(http_options=options)
        # The process's own readiness probe speaks plain http: start it by hand.
        server.ping = lambda: _https_ping(server.http_port, cert)  # type: ignore[method-assign]
        with server:
            url = f"https://127.0.0.1:{server.http_port}"
            _https_query(server.http_port, cert, 'CREATE DATABASE "tls"')
            sink = InfluxDBSink(url, api="v1", database="tls", ssl_ca_cert=cert)
            streamer = ms.EventStreamer([sink], register_atexit=False)
            streamer.send_many(
                ms.MetricEvent("tls", {"run": "0"}, {"i": i}, BASE_NS + i) for i in range(200)
            )
            assert streamer.flush(30) is True
            assert streamer.health().sinks["influxdb"].events_written == 200
            streamer.shutdown(5)
            stored = _https_query(server.http_port, cert, 'SELECT count("i") FROM "tls"', "tls")
            assert stored["results"][0]["series"][0]["values"][0][1] == 200
            other = tmp_path / "other.pem"
            subprocess.run(
                ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=other",
                 "-days", "1", "-keyout", str(tmp_path / "other.key"), "-out", str(other)],
                check=True, capture_output=True,
            )  # fmt: skip
            wrong = InfluxDBSink(url, api="v1", database="tls", ssl_ca_cert=other, name="wrong")
            with pytest.raises(ms.TransientSinkError, match=r"(?i)certificate|ssl"):
                wrong.write(wrong.prepare(ms.EventBatch([ms.event_from_sample("tls", 1.0)])))
            wrong.close()


def _https_context(cert: Path) -> ssl.SSLContext:
    return ssl.create_default_context(cafile=str(cert))


def _https_ping(port: int, cert: Path) -> bool:
    try:
        with urllib.request.urlopen(
            f"https://127.0.0.1:{port}/ping", timeout=2, context=_https_context(cert)
        ) as response:
            return bool(response.status == 204)
    except OSError:
        return False


def _https_query(port: int, cert: Path, q: str, db: str | None = None) -> dict[str, object]:
    params = {"q": q, **({"db": db} if db else {})}
    request = urllib.request.Request(
        f"https://127.0.0.1:{port}/query",
        data=urllib.parse.urlencode(params).encode(),
        method="POST",
    )
    with urllib.request.urlopen(request, timeout=10, context=_https_context(cert)) as response:
        result: dict[str, object] = json.loads(response.read())
    return result
