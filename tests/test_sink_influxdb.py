"""InfluxDBSink against real servers: InfluxDB 1.6 (v1 API) and VictoriaMetrics (v2 API).

Every round trip writes through the sink and reads back through the server's
own query API, comparing exact values and stored types. Fault tests use real
failures: wrong credentials, a missing database, type conflicts, a server that
is stopped and restarted, a server with a small ``max-body-size``. Statuses
InfluxDB 1.6 never sends on its own (429, 503 with Retry-After) come from a
real HTTP server on loopback.
"""

from __future__ import annotations

import base64
import contextlib
import gc
import gzip
import http.server
import json
import logging
import math
import os
import re
import select
import shutil
import ssl
import struct
import subprocess
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime, timezone
from email.utils import format_datetime
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from metricstream import EventBatch, MetricEvent, UInt
from metricstream.codecs.compression import Compression
from metricstream.codecs.lineprotocol import PRECISIONS
from metricstream.exceptions import (
    ConfigError,
    InvalidEventError,
    PermanentSinkError,
    TransientSinkError,
)
from metricstream.sinks import InfluxDBSink, Sink, sink_from_url
from metricstream.sinks.influxdb import InfluxDBPayload, from_url, parse_retry_after
from metricstream.streamer import EventStreamer, RetryConfig
from metricstream.streamer.health import SinkHealth

from .influx_readback import (
    influx_query,
    influx_v1_events,
    quote_identifier,
    vm_events,
    vm_regex,
    vm_samples,
)
from .servers import (
    INFLUXDB_AUTH_PASSWORD,
    INFLUXDB_AUTH_URL,
    INFLUXDB_AUTH_USER,
    INFLUXDB_V1_URL,
    VM_URL,
    InfluxdProcess,
    free_port,
    require_influxd,
    require_url,
)

RUN_ID = uuid.uuid4().hex[:10]
"""Makes database and measurement names unique to this test run."""

BASE_NS = 1_700_000_000_000_000_000
INFLUX_MIN_NS = -9_223_372_036_854_775_806
INFLUX_MAX_NS = 9_223_372_036_854_775_806
"""The timestamp range InfluxDB 1.6 stores (it refuses the two int64 extremes)."""

HOSTILE_STRINGS = [
    'say "hi"',
    "back\\slash",
    "ends with backslash\\",
    'both \\" mixed',
    "line\nbreak and\ttab\rreturn",
    "unicode é ☃ 𝄞 日本",
    "",
    "=,  \"'",
]


# --- helpers: reading back ------------------------------------------------------

Row = tuple[str, int, tuple[tuple[str, str], ...], tuple[tuple[str, str, object], ...]]
"""(measurement, timestamp_ns, sorted tags, sorted (field, stored type, value))."""

_TYPE_NAMES = {bool: "boolean", int: "integer", float: "float", str: "string", UInt: "unsigned"}


def _canonical(value: object) -> object:
    """Make values comparable exactly: floats by their bits (keeps -0.0 and exactness)."""
    if isinstance(value, float):
        return struct.pack("<d", value).hex()
    return value


def rows(events: list[MetricEvent]) -> list[Row]:
    """Events in a canonical, sorted form that shows each field's type."""
    return sorted(
        (
            (
                e.measurement,
                e.timestamp_ns,
                tuple(sorted(e.tags.items())),
                tuple(
                    sorted((k, _TYPE_NAMES[type(v)], _canonical(v)) for k, v in e.fields.items())
                ),
            )
            for e in events
        ),
        key=repr,
    )


def truncate(timestamp_ns: int, precision: str) -> int:
    """`timestamp_ns` cut to `precision`, toward zero (as the encoder writes it)."""
    magnitude = abs(timestamp_ns) // PRECISIONS[precision] * PRECISIONS[precision]
    return magnitude if timestamp_ns >= 0 else -magnitude


def expected_rows(events: list[MetricEvent], precision: str = "ns") -> list[Row]:
    """What InfluxDB should hold after the events were written at `precision`."""
    return rows(
        [
            e.copy().with_timestamp(truncate(e.timestamp_ns, precision), before_2001=True)
            for e in events
        ]
    )


def influx_rows(url: str, db: str, auth: tuple[str, str] | None = None) -> list[Row]:
    """Everything in database `db`, with each field's stored type."""
    return rows(influx_v1_events(url, db, auth=auth))


def influx_count(url: str, db: str, measurement: str, field_key: str) -> int:
    q = f"SELECT COUNT({quote_identifier(field_key)}) FROM {quote_identifier(measurement)}"
    series = influx_query(url, q, db=db)["results"][0].get("series", [])
    return int(series[0]["values"][0][1]) if series else 0


def create_database(url: str, db: str) -> None:
    influx_query(url, f"CREATE DATABASE {quote_identifier(db)}")


def drop_database(url: str, db: str) -> None:
    influx_query(url, f"DROP DATABASE {quote_identifier(db)}")


# --- helpers: a scripted HTTP server on loopback --------------------------------


@dataclass
class Received:
    """One request the loopback server received."""

    method: str
    path: str
    headers: dict[str, str]
    body: bytes
    status: int = 0

    @property
    def text(self) -> str:
        if self.headers.get("Content-Encoding") == "gzip":
            return gzip.decompress(self.body).decode()
        return self.body.decode()


Reply = tuple[int, dict[str, str], bytes]


@dataclass
class LoopbackServer:
    """A real HTTP/1.1 server on 127.0.0.1 that answers by a Python function."""

    respond: Callable[[Received], Reply]
    received: list[Received] = field(default_factory=list)
    port: int = 0
    tls: bool = False

    @property
    def url(self) -> str:
        return f"{'https' if self.tls else 'http'}://127.0.0.1:{self.port}"


@pytest.fixture
def loopback() -> Iterator[Callable[[Callable[[Received], Reply]], LoopbackServer]]:
    """Start loopback servers on demand; stop them after the test."""
    servers: list[http.server.ThreadingHTTPServer] = []

    def start(
        respond: Callable[[Received], Reply], *, tls: tuple[str, str] | None = None
    ) -> LoopbackServer:
        """Serve `respond` on a free port; `tls` is (certificate file, key file)."""
        state = LoopbackServer(respond, tls=tls is not None)

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def _handle(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                request = Received(
                    self.command, self.path, dict(self.headers.items()), self.rfile.read(length)
                )
                state.received.append(request)
                status, headers, body = state.respond(request)
                request.status = status
                self.send_response(status)
                for key, value in headers.items():
                    self.send_header(key, value)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                # A client whose timeout the reply outlasted has gone; so has its socket.
                with contextlib.suppress(BrokenPipeError, ConnectionResetError):
                    self.wfile.write(body)

            do_GET = do_POST = _handle  # noqa: N815

            def log_message(self, format: str, *args: Any) -> None:
                pass

        server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        if tls is not None:
            context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            context.load_cert_chain(*tls)
            server.socket = context.wrap_socket(server.socket, server_side=True)
        servers.append(server)
        state.port = server.server_address[1]
        threading.Thread(target=server.serve_forever, daemon=True).start()
        return state

    yield start
    for server in servers:
        server.shutdown()
        server.server_close()


def ok(_request: Received) -> Reply:
    return 204, {}, b""


@pytest.fixture(scope="module")
def certificate(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, str]:
    """A self-signed certificate for 127.0.0.1 (certificate file, key file), made by openssl."""
    openssl = shutil.which("openssl")
    if openssl is None:
        pytest.fail("openssl is needed to make a test certificate: apt-get install -y openssl")
    directory = tmp_path_factory.mktemp("tls")
    cert, key = str(directory / "cert.pem"), str(directory / "key.pem")
    subprocess.run(
        [
            openssl, "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
            "-nodes", "-keyout", key, "-out", cert, "-days", "2", "-subj", "/CN=127.0.0.1",
            "-addext", "subjectAltName=IP:127.0.0.1",
        ],
        check=True,
        capture_output=True,
    )  # fmt: skip
    return cert, key


# --- helpers: events ------------------------------------------------------------


def events_all_types(prefix: str, count: int, *, start_ns: int = BASE_NS) -> list[MetricEvent]:
    """`count` events exercising every field type InfluxDB 1.6 stores and hostile names."""
    events = []
    for i in range(count):
        text = HOSTILE_STRINGS[i % len(HOSTILE_STRINGS)] + f" #{i}"
        events.append(
            MetricEvent(
                f"{prefix} cpu,load=x" if i % 2 else f"{prefix}_plain",
                tags={
                    "host name": f"h {i % 7}",
                    "k,=ey": "v,a=l ue",
                    "région": "é☃",
                    "path": "C:\\dir\\file",
                },
                fields={
                    "float": (i - count / 2) * 0.37 + 1e-9 * i,
                    "int": (i * 7_919) * (-1) ** i,
                    "big": 2**63 - 1 - i,
                    "small": -(2**63) + i,
                    "flag": i % 3 == 0,
                    "text": text,
                    "f k,=ey": 1.5 * i,
                },
                timestamp_ns=start_ns + i * 1_000_000_000,
            )
        )
    return events


def numeric_events(prefix: str, count: int) -> list[MetricEvent]:
    """Events VictoriaMetrics stores exactly: numbers with at most 12 significant digits."""
    now_ms = time.time_ns() // 1_000_000 - 3_600_000
    return [
        MetricEvent(
            prefix if i % 2 else f"{prefix} sp,ace",
            tags={"host name": f"h {i % 5}", "k,=ey": "v,a=l ue", "uni": "é☃"},
            fields={
                "float": i * 0.25 - 100.5,
                "int": i * 1_000_003 - 7,
                "flag": i % 2 == 0,
                "f k,=ey": -1.5 * i,
            },
            timestamp_ns=(now_ms + i) * 1_000_000 + 123_456,
        )
        for i in range(count)
    ]


def expected_vm(
    events: list[MetricEvent],
) -> list[tuple[str, tuple[tuple[str, str], ...], int, float]]:
    """VictoriaMetrics' view: one series per field (measurement_field), ms, float64."""
    return sorted(
        (
            f"{e.measurement}_{key}",
            tuple(sorted(e.tags.items())),
            e.timestamp_ns // 1_000_000,
            float(value),
        )
        for e in events
        for key, value in e.fields.items()
    )


def write_batches(sink: InfluxDBSink, events: list[MetricEvent], size: int = 1000) -> None:
    for start in range(0, len(events), size):
        payload = sink.prepare(EventBatch(events[start : start + size]))
        sink.write(payload)
        assert payload.done


# --- fixtures -------------------------------------------------------------------


@pytest.fixture(scope="module")
def v1_server() -> str:
    require_url("InfluxDB 1.6 (v1 API)", INFLUXDB_V1_URL)
    return INFLUXDB_V1_URL


@pytest.fixture(scope="module")
def vm_server() -> Iterator[str]:
    """VictoriaMetrics; the series this run wrote are deleted afterwards."""
    require_url("VictoriaMetrics", VM_URL)
    yield VM_URL
    match = urllib.parse.urlencode({"match[]": f'{{__name__=~"ms(v2|st)_{RUN_ID}.*"}}'})
    urllib.request.urlopen(
        f"{VM_URL}/api/v1/admin/tsdb/delete_series", data=match.encode(), timeout=30
    ).read()


@pytest.fixture(scope="module")
def auth_server() -> str:
    require_url("InfluxDB 1.6 with auth", INFLUXDB_AUTH_URL)
    return INFLUXDB_AUTH_URL


@pytest.fixture
def fresh_db(v1_server: str, request: pytest.FixtureRequest) -> Iterator[str]:
    """A new database on the shared InfluxDB 1.6, dropped after the test."""
    db = f"ms_{RUN_ID}_{request.node.name}"[:120].translate(str.maketrans("[]-.", "____"))
    create_database(v1_server, db)
    yield db
    drop_database(v1_server, db)


@pytest.fixture(scope="module")
def small_influxd() -> Iterator[InfluxdProcess]:
    """A private InfluxDB 1.6 that refuses bodies over 20,000 bytes (413)."""
    binary = require_influxd()
    with InfluxdProcess(binary, http_options={"max-body-size": 20_000}) as server:
        yield server


@pytest.fixture(scope="module")
def influxd() -> Iterator[InfluxdProcess]:
    """A private InfluxDB 1.6 for tests that stop it or change its limits."""
    binary = require_influxd()
    with InfluxdProcess(binary) as server:
        yield server


# --- tests ----------------------------------------------------------------------


class TestConstruction:
    """The constructor validates every option and names the bad one."""

    @pytest.mark.parametrize(
        ("kwargs", "option"),
        [
            ({"url": "ftp://h:1"}, "url"),
            ({"url": ""}, "url"),
            ({"url": "http://"}, "url"),
            ({"url": "http://h:99999"}, "url"),
            ({"url": "http://u:p@h:8086"}, "url"),
            ({"url": "http://h:8086?db=x"}, "url"),
            ({"api": "v3"}, "api"),
            ({"precision": "n"}, "precision"),
            ({"precision": "h"}, "precision"),
            ({"timeout": 0}, "timeout"),
            ({"timeout": -1.0}, "timeout"),
            ({"timeout": math.inf}, "timeout"),
            ({"timeout": True}, "timeout"),
            ({"gzip": "yes"}, "gzip"),
            ({"verify_ssl": 1}, "verify_ssl"),
            ({"ssl_ca_cert": "/nonexistent/ca.pem"}, "ssl_ca_cert"),
            ({"name": ""}, "name"),
            ({"bucket": ""}, "bucket"),
            ({"bucket": None}, "bucket"),
            ({"org": None}, "org"),
            ({"database": "db"}, "database"),
            ({"retention_policy": "rp"}, "retention_policy"),
            ({"username": "u", "password": "p"}, "username"),
        ],
    )
    def test_v2_bad_option_is_named(self, kwargs: dict[str, Any], option: str) -> None:
        options: dict[str, Any] = {"url": "http://127.0.0.1:8086", "org": "o", "bucket": "b"}
        options.update(kwargs)
        with pytest.raises(ConfigError) as info:
            InfluxDBSink(options.pop("url"), **options)
        assert info.value.option == option

    @pytest.mark.parametrize(
        ("kwargs", "option"),
        [
            ({"database": None}, "database"),
            ({"database": ""}, "database"),
            ({"token": "t"}, "token"),
            ({"org": "o"}, "org"),
            ({"bucket": "b"}, "bucket"),
            ({"username": "u"}, "password"),
            ({"password": "p"}, "username"),
            ({"retention_policy": ""}, "retention_policy"),
        ],
    )
    def test_v1_bad_option_is_named(self, kwargs: dict[str, Any], option: str) -> None:
        options: dict[str, Any] = {"api": "v1", "database": "db"}
        options.update(kwargs)
        with pytest.raises(ConfigError) as info:
            InfluxDBSink("http://127.0.0.1:8086", **options)
        assert info.value.option == option

    def test_v2_requires_org_and_says_servers_that_ignore_it_take_any(self) -> None:
        with pytest.raises(ConfigError) as info:
            InfluxDBSink("http://127.0.0.1:8428", bucket="b")
        assert str(info.value) == (
            "org: required with api='v2': InfluxDB 2.x needs the organization; "
            "VictoriaMetrics and InfluxDB 3 ignore it, so any name works there"
        )

    def test_credentials_in_the_url_are_refused_without_echoing_them(self) -> None:
        with pytest.raises(ConfigError) as info:
            InfluxDBSink("http://admin:hunter2@127.0.0.1:8086", api="v1", database="db")
        assert "hunter2" not in str(info.value)

    def test_defaults_are_v2_ns_gzip_10s_named_influxdb(self) -> None:
        sink = InfluxDBSink("http://127.0.0.1:8086/", org="o", bucket="b")
        o = sink.options
        assert (sink.name, o.api, o.url, o.precision, sink.gzip, o.timeout) == (
            "influxdb", "v2", "http://127.0.0.1:8086", "ns", True, 10.0
        )  # fmt: skip
        sink.close()

    def test_path_prefix_is_kept(self) -> None:
        sink = InfluxDBSink("https://proxy.example:443/influx/", api="v1", database="d")
        assert sink.options.url == "https://proxy.example:443/influx"
        sink.close()

    def test_satisfies_the_sink_protocol(self) -> None:
        sink = InfluxDBSink("http://127.0.0.1:8086", api="v1", database="d")
        assert isinstance(sink, Sink)
        sink.close()

    def test_importing_the_sinks_package_does_not_import_influxdb_client(self) -> None:
        import subprocess
        import sys

        code = (
            "import sys, metricstream.sinks, metricstream.sinks.influxdb; "
            "print(sorted(m for m in ('influxdb_client', 'urllib3') if m in sys.modules))"
        )
        out = subprocess.run(
            [sys.executable, "-c", code], capture_output=True, text=True, check=True
        ).stdout
        assert out.strip() == "[]"


class TestRedaction:
    """Passwords and tokens appear in no repr or error message."""

    def test_repr_v1_hides_password_and_user(self) -> None:
        sink = InfluxDBSink(
            "http://127.0.0.1:8086", api="v1", database="db", username="admin", password="s3cr3t"
        )
        assert repr(sink) == (
            "InfluxDBSink(name='influxdb', url='http://127.0.0.1:8086', api='v1', "
            "database='db', retention_policy=None, precision='ns', gzip=True)"
        )
        sink.close()

    def test_repr_v2_hides_token(self) -> None:
        sink = InfluxDBSink("http://127.0.0.1:8086", org="o", bucket="b", token="tok-XYZ")
        assert "tok-XYZ" not in repr(sink)
        assert repr(sink) == (
            "InfluxDBSink(name='influxdb', url='http://127.0.0.1:8086', api='v2', "
            "org='o', bucket='b', precision='ns', gzip=True)"
        )
        sink.close()

    def test_url_errors_hide_the_password(self) -> None:
        with pytest.raises(ConfigError) as info:
            from_url("influxdb://admin:s3cr3t@127.0.0.1:8086/db?bogus=1")
        assert info.value.option == "bogus"
        assert "s3cr3t" not in str(info.value)
        assert "admin:***@" in str(info.value)

    def test_token_in_url_is_hidden_in_errors(self) -> None:
        with pytest.raises(ConfigError) as info:
            from_url("influxdb2://127.0.0.1:8086?bucket=b&org=o&token=tok-XYZ&nope=1")
        assert "tok-XYZ" not in str(info.value)


SECRET = "Zq7k/Wx8m?Yv9n#Ut6p@Sr5q Qp4r'On3s\"Ml2t&Lk1u=Jh0v"
"""A password or token holding every URL delimiter, a space and both quotes."""
SECRET_PIECES = re.findall(r"[A-Z][a-z][0-9][a-z]", SECRET)
"""Its letter-digit runs: any of them in a text means (part of) the secret leaked."""


def leaks(*texts: str) -> list[str]:
    """The texts holding a piece of `SECRET`, raw or percent-encoded."""
    return [text for text in texts if any(piece in text for piece in SECRET_PIECES)]


def log_texts(caplog: pytest.LogCaptureFixture) -> list[str]:
    """Every captured log record as a handler would print it, traceback included."""
    formatter = logging.Formatter("%(levelname)s %(name)s %(message)s")
    return [formatter.format(record) for record in caplog.records]


class TestCredentials:
    """Credentials are checked when the sink is built; none shows in a message, repr or log."""

    @pytest.mark.parametrize("bad", ["\n", "\r\n", "\x00", "\t", "\x1b", "\x7f", "\x85"], ids=repr)
    @pytest.mark.parametrize(
        ("api", "option"), [("v2", "token"), ("v1", "password"), ("v1", "username")]
    )
    def test_a_control_character_is_refused_without_showing_the_credential(
        self, caplog: pytest.LogCaptureFixture, bad: str, api: str, option: str
    ) -> None:
        caplog.set_level(logging.DEBUG, logger="metricstream")
        credentials = {"username": "Zq7kuser", "password": SECRET}
        if api == "v2":
            credentials = {"token": SECRET}
        credentials[option] = credentials[option] + bad
        with pytest.raises(ConfigError) as info:
            make_sink("http://127.0.0.1:1", api, **credentials)
        where = "at its end" if bad[-1:] == bad else "at position"
        assert info.value.option == option
        assert f"contains a control character (U+{ord(bad[0]):04X}) " in str(info.value)
        assert where in str(info.value) or bad == "\r\n"
        assert leaks(str(info.value), repr(info.value), *log_texts(caplog)) == []

    def test_a_control_character_in_the_middle_is_located_not_shown(self) -> None:
        with pytest.raises(ConfigError) as info:
            InfluxDBSink("http://127.0.0.1:1", org="o", bucket="b", token="Zq7k\x00Wx8m")
        assert str(info.value) == (
            "token: contains a control character (U+0000) at position 4; a credential read "
            "from a file or an environment variable may keep its trailing newline"
        )

    def test_a_token_from_the_environment_with_its_newline_is_refused(
        self, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        monkeypatch.setenv("INFLUX_TOKEN", SECRET + "\n")
        with pytest.raises(ConfigError) as info:
            sink_from_url("influxdb2://127.0.0.1:8428?org=o&bucket=b")
        assert (info.value.option, leaks(str(info.value))) == ("token", [])

    def test_a_token_beyond_latin_1_is_refused(self) -> None:
        with pytest.raises(ConfigError) as info:
            InfluxDBSink("http://127.0.0.1:1", org="o", bucket="b", token="Zq7k\u20acWx8m")
        assert str(info.value) == (
            "token: holds a character an HTTP header cannot carry at position 4"
        )

    def test_a_user_name_with_a_colon_is_refused(self) -> None:
        with pytest.raises(ConfigError) as info:
            make_sink("http://127.0.0.1:1", "v1", username="a:b", password="p")
        assert info.value.option == "username"

    @pytest.mark.parametrize(
        "template",
        [
            "influxdb://admin:{}@127.0.0.1:8086/db",
            "influxdb://admin:{}@127.0.0.1:8086/db?bogus=1",
            "influxdb://admin:{}@127.0.0.1:8086/db?precision=h",
            "influxdb://admin:{}@127.0.0.1:8086",
            "influxdb://admin:{}@127.0.0.1:port/db",
            "influxdb2://admin:{}@127.0.0.1?org=o&bucket=b",
            "influxdb2://127.0.0.1?org=o&bucket=b&token={}",
            "influxdb2://127.0.0.1?org=o&bucket=b&token={}&nope=1",
            "influxdb2://127.0.0.1?token={}&org=o&bucket=b&precision=h",
        ],
    )
    @pytest.mark.parametrize("encoded", [False, True], ids=["raw", "percent-encoded"])
    @pytest.mark.parametrize("expanded", [False, True], ids=["literal", "from-${VAR}"])
    def test_a_secret_with_url_delimiters_never_shows(
        self,
        monkeypatch: pytest.MonkeyPatch,
        caplog: pytest.LogCaptureFixture,
        template: str,
        encoded: bool,
        expanded: bool,
    ) -> None:
        """Whether the URL is refused or builds a sink, no piece of the secret is shown."""
        caplog.set_level(logging.DEBUG, logger="metricstream")
        secret = urllib.parse.quote(SECRET, safe="") if encoded else SECRET
        monkeypatch.setenv("MS_TEST_SECRET", secret)
        url = template.format("${MS_TEST_SECRET}" if expanded else secret)
        build = sink_from_url if expanded else from_url
        try:
            sink = build(url)
        except ConfigError as exc:
            shown = [str(exc), repr(exc), exc.option]
        else:
            shown = [repr(sink), str(vars(sink).get("_target"))]
            sink.close()
        assert leaks(*shown, *log_texts(caplog)) == []

    def test_raw_delimiters_in_a_password_are_refused_with_a_hint(self) -> None:
        with pytest.raises(ConfigError) as info:
            from_url(f"influxdb://admin:{SECRET}@127.0.0.1:8086/db")
        assert str(info.value) == (
            "url: has an '@' after the host: percent-encode '/', '?', '#' and '@' in a user "
            "name or password (%2F, %3F, %23, %40), and '@' elsewhere"
        )

    def test_a_percent_encoded_password_is_sent_whole(
        self, loopback: Callable[..., LoopbackServer]
    ) -> None:
        server = loopback(ok)
        encoded = urllib.parse.quote(SECRET, safe="")
        sink = from_url(f"influxdb://admin:{encoded}@127.0.0.1:{server.port}/db")
        sink.write(
            sink.prepare(
                EventBatch([MetricEvent("m", fields={"v": 1}, timestamp_ns=1, before_2001=True)])
            )
        )
        (request,) = [r for r in server.received if r.method == "POST"]
        credentials = base64.b64encode(f"admin:{SECRET}".encode()).decode()
        assert request.headers["Authorization"] == f"Basic {credentials}"
        assert leaks(repr(sink)) == []
        sink.close()

    @pytest.mark.servers
    def test_a_password_with_every_delimiter_authenticates_and_a_wrong_one_never_shows(
        self, auth_server: str, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """A real InfluxDB 1.6 user whose password holds every URL delimiter."""
        caplog.set_level(logging.DEBUG, logger="metricstream")
        admin = (INFLUXDB_AUTH_USER, INFLUXDB_AUTH_PASSWORD)
        user, measurement = f"delims_{RUN_ID}", f"delims_{RUN_ID}"
        quoted = SECRET.replace("\\", "\\\\").replace("'", "\\'")
        influx_query(auth_server, f"CREATE USER \"{user}\" WITH PASSWORD '{quoted}'", auth=admin)
        host, port = auth_server.removeprefix("http://").split(":")
        try:
            influx_query(auth_server, f'GRANT WRITE ON "metricstream_test" TO "{user}"', auth=admin)
            events = [MetricEvent(measurement, fields={"v": i}, timestamp_ns=BASE_NS + i)
                      for i in range(20)]  # fmt: skip
            results = {}
            for password in (SECRET, SECRET + "x"):
                monkeypatch.setenv("MS_TEST_SECRET", urllib.parse.quote(password, safe=""))
                url = f"influxdb://{user}:${{MS_TEST_SECRET}}@{host}:{port}/metricstream_test"
                sink = sink_from_url(url)
                results[password] = stream([sink], events, batch_size=20)["influxdb"]
                assert leaks(repr(sink)) == []
            right, wrong = results[SECRET], results[SECRET + "x"]
            assert counts(right) == (20, 0, {})
            assert counts(wrong) == (0, 0, {"rejected": 20})
            assert wrong.last_error == (
                f"PermanentSinkError: write to {auth_server} failed: authentication failed for "
                f"user {user!r}: HTTP 401: authorization failed"
            )
            stored = influx_v1_events(auth_server, "metricstream_test", measurement, auth=admin)
            assert stored == events
            health = [json.dumps(h.to_dict()) for h in (right, wrong)]
            assert leaks(*health, *log_texts(caplog)) == []
        finally:
            influx_query(
                auth_server, f'DROP MEASUREMENT "{measurement}"', db="metricstream_test", auth=admin
            )
            influx_query(auth_server, f'DROP USER "{user}"', auth=admin)


class TestFromUrl:
    """influxdb:// and influxdb2:// URLs map onto constructor options."""

    def test_v1_url_with_everything(self) -> None:
        sink = from_url(
            "influxdb://ad%40min:p%3Ass@127.0.0.1:9999/my%20db"
            "?rp=week&precision=ms&gzip=false&timeout=2.5&name=metrics&tls=true&verify_ssl=0"
        )
        options = sink.options
        assert (options.api, options.url, options.database, options.retention_policy) == (
            "v1", "https://127.0.0.1:9999", "my db", "week"
        )  # fmt: skip
        assert (options.precision, sink.gzip, options.timeout, sink.name, options.verify_ssl) == (
            "ms", False, 2.5, "metrics", False
        )  # fmt: skip
        assert (options.username, options.password) == ("ad@min", "p:ss")
        assert "p:ss" not in repr(sink)
        sink.close()

    def test_v1_default_port_and_plain_http(self) -> None:
        sink = sink_from_url("influxdb://db.example/metrics")
        assert isinstance(sink, InfluxDBSink)
        assert (sink.options.url, sink.options.database, sink.gzip) == (
            "http://db.example:8086", "metrics", True
        )  # fmt: skip
        sink.close()

    def test_v2_url_sets_org_bucket_precision_and_gzip(
        self, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        monkeypatch.delenv("INFLUX_TOKEN", raising=False)
        sink = from_url("influxdb2://127.0.0.1:8428?org=o&bucket=b&precision=s&gzip=1")
        options = sink.options
        assert (options.api, options.url, options.org, options.bucket, options.precision) == (
            "v2", "http://127.0.0.1:8428", "o", "b", "s"
        )  # fmt: skip
        assert sink.gzip is True
        assert sink.options.token is None
        sink.close()

    def test_v2_token_from_environment(self, monkeypatch: pytest.MonkeyPatch) -> None:
        monkeypatch.setenv("INFLUX_TOKEN", "env-token")
        sink = from_url("influxdb2://127.0.0.1:8428?org=o&bucket=b")
        assert sink._transport.client.token == "env-token"
        sink.close()

    def test_v2_token_in_url_beats_environment_and_override_beats_both(
        self, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        monkeypatch.setenv("INFLUX_TOKEN", "env-token")
        sink = from_url("influxdb2://h:1?org=o&bucket=b&token=url-token")
        assert sink._transport.client.token == "url-token"
        sink.close()
        sink = from_url("influxdb2://h:1?org=o&bucket=b&token=url-token", token="kw-token")
        assert sink._transport.client.token == "kw-token"
        sink.close()

    def test_token_variable_expanded_by_sink_from_url(
        self, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        monkeypatch.setenv("MY_TOKEN", "expanded")
        sink = sink_from_url("influxdb2://h:1?org=o&bucket=b&token=${MY_TOKEN}")
        assert sink._transport.client.token == "expanded"
        sink.close()

    def test_overrides_replace_url_options(self) -> None:
        sink = from_url("influxdb://h/db?precision=s", precision="us", name="n2", gzip=False)
        assert (sink.options.precision, sink.name, sink.gzip) == ("us", "n2", False)
        sink.close()

    def test_ipv6_host(self) -> None:
        sink = from_url("influxdb://[::1]:8086/db")
        assert sink.options.url == "http://[::1]:8086"
        sink.close()

    @pytest.mark.parametrize(
        ("url", "option"),
        [
            ("influxdb://h:8086", "database"),
            ("influxdb://h:8086/", "database"),
            ("influxdb://h:8086/db/rp", "database"),
            ("influxdb://h:8086/db?org=o", "org"),
            ("influxdb://h:8086/db?gzip=maybe", "gzip"),
            ("influxdb://h:8086/db?tls=yesplease", "tls"),
            ("influxdb://h:8086/db?timeout=soon", "timeout"),
            ("influxdb://h:8086/db?timeout=0", "timeout"),
            ("influxdb://h:8086/db?precision=h", "precision"),
            ("influxdb://h:8086/db?rp=a&rp=b", "rp"),
            ("influxdb://h:port/db", "url"),
            ("influxdb:///db", "url"),
            ("influxdb2://h:8086?org=o", "bucket"),
            ("influxdb2://h:8086?bucket=b", "org"),
            ("influxdb2://h:8086/b?org=o&bucket=b", "url"),
            ("influxdb2://u:p@h:8086?org=o&bucket=b", "url"),
            ("influxdb2://h:8086?org=o&bucket=b&rp=x", "retention_policy"),
            ("influxdb2://h:8086?org=o&bucket=b&database=x", "database"),
            ("http://h:8086", "url"),
        ],
    )
    def test_bad_url_names_the_option(self, url: str, option: str) -> None:
        with pytest.raises(ConfigError) as info:
            from_url(url)
        assert info.value.option == option

    @pytest.mark.parametrize(("key", "value"), [("api", "v2"), ("colour", "red")])
    def test_bad_override_names_it(self, key: str, value: str) -> None:
        with pytest.raises(ConfigError) as info:
            from_url("influxdb://h/db", **{key: value})
        assert info.value.option == key


class TestCompressionChoice:
    """gzip=None follows the streamer's compression; an explicit gzip wins."""

    @pytest.mark.parametrize(
        ("own", "streamer", "expected"),
        [
            (None, None, True),
            (None, Compression.NONE, False),
            (None, Compression.GZIP, True),
            (None, Compression.ZSTD, True),
            (None, "none", False),
            (True, Compression.NONE, True),
            (False, Compression.GZIP, False),
            (False, Compression.ZSTD, False),
        ],
    )
    def test_inherit_compression(
        self, own: bool | None, streamer: Compression | str | None, expected: bool
    ) -> None:
        sink = InfluxDBSink("http://127.0.0.1:1", api="v1", database="d", gzip=own)
        sink.inherit_compression(streamer)
        assert sink.gzip is expected
        payload = sink.prepare(EventBatch([MetricEvent("m", fields={"v": 1})]))
        assert payload.gzipped is expected
        sink.close()

    def test_unknown_codec_is_a_config_error(self) -> None:
        sink = InfluxDBSink("http://127.0.0.1:1", api="v1", database="d")
        with pytest.raises(ConfigError) as info:
            sink.inherit_compression("brotli")
        assert info.value.option == "compression"
        sink.close()


def reachable(root: object) -> list[object]:
    """Every object reachable from `root` through references (types excluded)."""
    seen: dict[int, object] = {}
    stack = [root]
    while stack:
        obj = stack.pop()
        if id(obj) in seen or isinstance(obj, type):
            continue
        seen[id(obj)] = obj
        stack.extend(gc.get_referents(obj))
    return list(seen.values())


class TestPrepare:
    """prepare() shares the batch's line protocol, compresses it once, and keeps nothing else."""

    def test_payload_body_is_the_batch_encoding_compressed(self) -> None:
        batch = EventBatch(
            [
                MetricEvent("m", fields={"v": i}, timestamp_ns=i * 1001, before_2001=True)
                for i in range(3)
            ]
        )
        sink = InfluxDBSink("http://127.0.0.1:1", api="v1", database="d", precision="us")
        payload = sink.prepare(batch)
        assert gzip.decompress(payload.body) == batch.influx_bytes("us")
        assert payload.lines() == b"m v=0i 0\nm v=1i 1\nm v=2i 2"
        assert (len(payload), payload.count, payload.events_written, payload.done) == (
            3, 3, 0, False
        )  # fmt: skip
        sink.close()

    def test_uncompressed_body_is_the_shared_line_protocol_itself(self) -> None:
        batch = EventBatch([MetricEvent("m", fields={"v": 1.5}, timestamp_ns=5, before_2001=True)])
        sink = InfluxDBSink("http://127.0.0.1:1", api="v1", database="d", gzip=False)
        payload = sink.prepare(batch)
        assert payload.body is batch.influx_bytes("ns")
        assert payload.body == b"m v=1.5 5"
        sink.close()

    def test_a_gzipped_payload_keeps_neither_the_events_nor_the_line_protocol(self) -> None:
        events = events_all_types("mem", 2000)
        batch = EventBatch(events)
        sink = InfluxDBSink("http://127.0.0.1:1", api="v1", database="d")
        payload = sink.prepare(batch)
        held = reachable(payload)
        assert [o for o in held if isinstance(o, MetricEvent)] == []
        assert [o for o in held if isinstance(o, (bytes, bytearray, str))] == [payload.body]
        assert payload.lines() == batch.influx_bytes("ns")
        assert len(payload.body) * 4 < len(batch.influx_bytes("ns"))
        sink.close()

    def test_an_uncompressed_payload_keeps_only_the_line_protocol(self) -> None:
        batch = EventBatch(events_all_types("mem", 200))
        sink = InfluxDBSink("http://127.0.0.1:1", api="v1", database="d", gzip=False)
        held = reachable(sink.prepare(batch))
        assert [o for o in held if isinstance(o, MetricEvent)] == []
        assert [o for o in held if isinstance(o, (bytes, str))] == [batch.influx_bytes("ns")]
        sink.close()

    def test_empty_batch_sends_nothing(self, loopback: Callable[..., LoopbackServer]) -> None:
        server = loopback(ok)
        sink = InfluxDBSink(server.url, api="v1", database="d")
        payload = sink.prepare(EventBatch([]))
        sink.write(payload)
        assert (payload.done, server.received) == (True, [])
        sink.close()


class TestPrepareRefuses:
    """prepare() refuses the first event InfluxDB cannot store, naming it (InvalidEventError)."""

    @pytest.mark.parametrize("char", [" ", ",", "=", '"'])
    @pytest.mark.parametrize("api", ["v1", "v2"])
    @pytest.mark.parametrize("element", ["measurement", "tag key", "tag value", "field key"])
    def test_backslash_right_before_a_delimiter_in_any_name(
        self, char: str, api: str, element: str
    ) -> None:
        name = f"a\\{char}b"
        fine = MetricEvent(
            "ok", tags={"t": "x y"}, fields={"s": 'say \\ "hi"'}, timestamp_ns=1, before_2001=True
        )
        tags, fields = {"t": "x"}, {"f": 1.0}
        measurement = name if element == "measurement" else "m"
        if element == "tag key":
            tags = {name: "x"}
        elif element == "tag value":
            tags = {"t": name}
        elif element == "field key":
            fields = {name: 1.0}
        bad = MetricEvent(measurement, tags=tags, fields=fields, timestamp_ns=2, before_2001=True)
        sink = make_sink("http://127.0.0.1:1", api)
        with pytest.raises(InvalidEventError) as info:
            sink.prepare(EventBatch([fine, bad, bad.copy()]))
        what = "tag value of 't'" if element == "tag value" else element
        assert (info.value.key, info.value.indexes) == (name, (1, 2))
        assert str(info.value) == (
            f"event {measurement!r}: {what} {name!r} has a backslash right before {char!r}; "
            "InfluxDB and VictoriaMetrics read that as an escape, so the point would be lost "
            "or stored under another name"
        )
        sink.close()

    @pytest.mark.parametrize("api", ["v1", "v2"])
    def test_backslashes_elsewhere_and_escaped_delimiters_are_fine(self, api: str) -> None:
        events = [
            MetricEvent("a\\b c,d", tags={"k\\ey=1": "v\\al ue"}, fields={"f\\x": 1}),
            MetricEvent("m", fields={"s": 'quote " and \\ " and \\= and \\,'}),
            MetricEvent("m", tags={"k": "a=b"}, fields={"v": 2}),
        ]
        sink = make_sink("http://127.0.0.1:1", api)
        assert sink.prepare(EventBatch(events)).count == 3
        sink.close()

    def test_unsigned_fields_are_refused_for_v1_only(self) -> None:
        events = [
            MetricEvent("m", fields={"s": "x=5u y"}, timestamp_ns=1, before_2001=True),
            MetricEvent("u", fields={"a": 1, "n": UInt(3)}, timestamp_ns=2, before_2001=True),
        ]
        v1 = make_sink("http://127.0.0.1:1", "v1")
        with pytest.raises(InvalidEventError) as info:
            v1.prepare(EventBatch(events))
        assert (info.value.key, info.value.indexes) == ("n", (1,))
        assert str(info.value) == (
            "event 'u': field 'n' is unsigned (UInt(3)), which InfluxDB 1.x cannot store; "
            "send it as an int or float"
        )
        assert v1.prepare(EventBatch(events[:1])).count == 1
        v2 = make_sink("http://127.0.0.1:1", "v2")
        assert v2.prepare(EventBatch(events)).count == 2
        v1.close()
        v2.close()

    def test_every_refused_event_is_named_and_the_first_described(self) -> None:
        ok = MetricEvent("ok", fields={"s": 'a "quoted" value'}, timestamp_ns=1, before_2001=True)
        events = [
            ok,
            MetricEvent("u", fields={"n": UInt(1)}, timestamp_ns=1, before_2001=True),
            ok,
            MetricEvent(
                "bs", tags={"t": "a\\,b"}, fields={"n": UInt(2)}, timestamp_ns=1, before_2001=True
            ),
            MetricEvent("t", fields={"v": 1}, timestamp_ns=2**63 - 1),
            ok,
            MetricEvent("bs", fields={"a\\=b": 1}, timestamp_ns=1, before_2001=True),
        ]
        v1 = make_sink("http://127.0.0.1:1", "v1")
        with pytest.raises(InvalidEventError) as info:
            v1.prepare(EventBatch(events))
        assert (info.value.key, info.value.indexes) == ("n", (1, 3, 4, 6))
        assert str(info.value) == (
            "event 'u': field 'n' is unsigned (UInt(1)), which InfluxDB 1.x cannot store; "
            "send it as an int or float"
        )
        v2 = make_sink("http://127.0.0.1:1", "v2")
        with pytest.raises(InvalidEventError) as info:
            v2.prepare(EventBatch(events))
        assert (info.value.key, info.value.indexes) == ("a\\,b", (3, 6))
        v1.close()
        v2.close()

    @pytest.mark.parametrize("timestamp", [2**63 - 1, -(2**63), -(2**63) + 1])
    def test_int64_extreme_timestamps_are_refused_for_v1_at_ns(self, timestamp: int) -> None:
        events = [MetricEvent("t", fields={"v": 1}, timestamp_ns=timestamp, before_2001=True)]
        v1 = make_sink("http://127.0.0.1:1", "v1")
        with pytest.raises(InvalidEventError) as info:
            v1.prepare(EventBatch(events))
        assert (info.value.key, info.value.indexes) == (None, (0,))
        assert str(info.value) == (
            f"event 't': timestamp {timestamp} is outside the range InfluxDB 1.x stores "
            "(-9223372036854775806 to 9223372036854775806)"
        )
        edges = [
            MetricEvent("t", fields={"v": 1}, timestamp_ns=INFLUX_MIN_NS, before_2001=True),
            MetricEvent("t", fields={"v": "922337203685477580"}, timestamp_ns=INFLUX_MAX_NS),
        ]
        assert v1.prepare(EventBatch(edges)).count == 2
        coarse = InfluxDBSink("http://127.0.0.1:1", api="v1", database="d", precision="us")
        assert coarse.prepare(EventBatch(events)).count == 1
        v1.close()
        coarse.close()

    def test_a_newline_in_a_string_field_is_refused_for_v2_only(self) -> None:
        events = [
            MetricEvent("m", fields={"s": "one line", "n": 1.0}, timestamp_ns=1, before_2001=True),
            MetricEvent(
                "nl", fields={"n": 2.0, "s": "two\nlines"}, timestamp_ns=2, before_2001=True
            ),
            MetricEvent("m", fields={"s": "tab\tand\rreturn"}, timestamp_ns=3, before_2001=True),
            MetricEvent("nl", fields={"a": "\n", "b": "x\ny"}, timestamp_ns=4, before_2001=True),
        ]
        v2 = make_sink("http://127.0.0.1:1", "v2")
        with pytest.raises(InvalidEventError) as info:
            v2.prepare(EventBatch(events))
        assert (info.value.key, info.value.indexes) == ("s", (1, 3))
        assert str(info.value) == (
            "event 'nl': string field 's' holds a newline, which line protocol cannot carry "
            "through api='v2' (VictoriaMetrics loses the point, InfluxDB 2.x/3.x do not support "
            "it); replace the newlines, or write to InfluxDB 1.x with api='v1'"
        )
        assert v2.prepare(EventBatch([events[0], events[2]])).count == 2
        v1 = make_sink("http://127.0.0.1:1", "v1")
        assert v1.prepare(EventBatch(events)).count == 4
        v1.close()
        v2.close()


class TestWire:
    """What goes over the wire, seen by a real HTTP server on loopback."""

    def test_v1_request_has_the_query_basic_auth_and_one_gzip_layer(
        self, loopback: Callable[..., LoopbackServer]
    ) -> None:
        server = loopback(ok)
        sink = InfluxDBSink(
            server.url, api="v1", database="my db", retention_policy="r&p",
            username="admin", password="pa:ss", precision="us",
        )  # fmt: skip
        batch = EventBatch(
            [MetricEvent("m", fields={"v": 1}, timestamp_ns=1_234_567, before_2001=True)]
        )
        sink.write(sink.prepare(batch))
        (request,) = server.received
        assert (request.method, request.path) == ("POST", "/write?db=my+db&rp=r%26p&precision=u")
        assert (
            request.headers["Authorization"] == "Basic " + base64.b64encode(b"admin:pa:ss").decode()
        )
        assert request.headers["Content-Encoding"] == "gzip"
        assert request.headers["Content-Type"] == "text/plain; charset=utf-8"
        # Decompressing once gives the line protocol: the body is not compressed twice.
        assert gzip.decompress(request.body) == b"m v=1i 1234"
        sink.close()

    @pytest.mark.parametrize(
        ("precision", "sent"), [("ns", "n"), ("us", "u"), ("ms", "ms"), ("s", "s")]
    )
    def test_v1_precision_names(
        self, loopback: Callable[..., LoopbackServer], precision: str, sent: str
    ) -> None:
        server = loopback(ok)
        sink = InfluxDBSink(server.url, api="v1", database="d", precision=precision)
        sink.write(sink.prepare(EventBatch([MetricEvent("m", fields={"v": 1})])))
        assert server.received[0].path == f"/write?db=d&precision={sent}"
        sink.close()

    def test_v2_request_through_influxdb_client(
        self, loopback: Callable[..., LoopbackServer]
    ) -> None:
        server = loopback(ok)
        sink = InfluxDBSink(server.url, org="my org", bucket="b/rp", token="tok", precision="ms")
        batch = EventBatch(
            [MetricEvent("m", fields={"v": True}, timestamp_ns=1_234_567_890, before_2001=True)]
        )
        sink.write(sink.prepare(batch))
        (request,) = server.received
        assert request.method == "POST"
        assert request.path == "/api/v2/write?org=my+org&bucket=b%2Frp&precision=ms"
        assert request.headers["Authorization"] == "Token tok"
        assert request.headers["Content-Encoding"] == "gzip"
        assert gzip.decompress(request.body) == b"m v=true 1234"
        sink.close()

    def test_v2_uncompressed_body_has_no_content_encoding(
        self, loopback: Callable[..., LoopbackServer]
    ) -> None:
        server = loopback(ok)
        sink = InfluxDBSink(server.url, org="o", bucket="b", gzip=False)
        sink.write(
            sink.prepare(
                EventBatch([MetricEvent("m", fields={"v": "x"}, timestamp_ns=1, before_2001=True)])
            )
        )
        (request,) = server.received
        assert "Content-Encoding" not in request.headers
        assert request.body == b'm v="x" 1'
        sink.close()


class TestClose:
    """close() releases connections once; the sink refuses work afterwards."""

    @pytest.mark.parametrize("api", ["v1", "v2"])
    def test_close_is_idempotent_and_final(
        self, loopback: Callable[..., LoopbackServer], api: str
    ) -> None:
        server = loopback(ok)
        sink = make_sink(server.url, api)
        sink.write(
            sink.prepare(
                EventBatch([MetricEvent("m", fields={"v": 1}, timestamp_ns=1, before_2001=True)])
            )
        )
        sink.close()
        sink.close()
        payload = sink.prepare(
            EventBatch([MetricEvent("m", fields={"v": 2}, timestamp_ns=2, before_2001=True)])
        )
        with pytest.raises(PermanentSinkError) as info:
            sink.write(payload)
        assert str(info.value) == "sink 'influxdb' is closed"
        with pytest.raises(PermanentSinkError):
            sink.check()
        assert [r.text for r in server.received if r.method == "POST"] == ["m v=1i 1"]


class TestTls:
    """https: the certificate is verified against a CA file, or not at all when asked."""

    @pytest.mark.parametrize("api", ["v1", "v2"])
    def test_verified_with_the_ca_file(
        self, loopback: Callable[..., LoopbackServer], certificate: tuple[str, str], api: str
    ) -> None:
        server = loopback(ok, tls=certificate)
        sink = make_sink(server.url, api, ssl_ca_cert=certificate[0])
        sink.write(
            sink.prepare(
                EventBatch([MetricEvent("m", fields={"v": 1}, timestamp_ns=1, before_2001=True)])
            )
        )
        assert [r.text for r in server.received] == ["m v=1i 1"]
        assert sink.check() is None
        sink.close()

    @pytest.mark.parametrize("api", ["v1", "v2"])
    def test_unknown_certificate_is_transient_and_named(
        self, loopback: Callable[..., LoopbackServer], certificate: tuple[str, str], api: str
    ) -> None:
        server = loopback(ok, tls=certificate)
        sink = make_sink(server.url, api)
        with pytest.raises(TransientSinkError) as info:
            sink.write(sink.prepare(EventBatch([MetricEvent("m", fields={"v": 1})])))
        message = str(info.value)
        assert message.startswith(
            f"write to {server.url} failed: SSLError: [SSL: CERTIFICATE_VERIFY_FAILED] "
            "certificate verify failed: self-signed certificate"
        )
        assert "\n" not in message
        assert server.received == []
        sink.close()

    @pytest.mark.filterwarnings("ignore::urllib3.exceptions.InsecureRequestWarning")
    @pytest.mark.parametrize("api", ["v1", "v2"])
    def test_verification_switched_off(
        self, loopback: Callable[..., LoopbackServer], certificate: tuple[str, str], api: str
    ) -> None:
        server = loopback(ok, tls=certificate)
        sink = make_sink(server.url, api, verify_ssl=False)
        sink.write(
            sink.prepare(
                EventBatch([MetricEvent("m", fields={"v": 2}, timestamp_ns=1, before_2001=True)])
            )
        )
        assert [r.text for r in server.received] == ["m v=2i 1"]
        sink.close()

    def test_url_with_tls_and_ca_file(
        self, loopback: Callable[..., LoopbackServer], certificate: tuple[str, str]
    ) -> None:
        server = loopback(ok, tls=certificate)
        query = urllib.parse.urlencode({"tls": "true", "ssl_ca_cert": certificate[0]})
        sink = sink_from_url(f"influxdb://127.0.0.1:{server.port}/db?{query}")
        sink.write(
            sink.prepare(
                EventBatch([MetricEvent("m", fields={"v": 3}, timestamp_ns=1, before_2001=True)])
            )
        )
        assert [(r.path, r.text) for r in server.received] == [
            ("/write?db=db&precision=n", "m v=3i 1")
        ]
        sink.close()


class TestRetryAfter:
    """Retry-After is read as delay-seconds or an HTTP-date."""

    @pytest.mark.parametrize(
        ("value", "expected"),
        [
            ("120", 120.0),
            (" 7 ", 7.0),
            ("0", 0.0),
            ("1.5", 1.5),
            ("-1", None),
            ("nan", None),
            ("inf", None),
            ("", None),
            (None, None),
            ("soon", None),
            ("Wed, 21 Oct 2015 07:28:30 GMT", 30.0),
            ("Wed, 21 Oct 2015 07:27:00 GMT", 0.0),
            ("Wednesday, 21-Oct-15 07:28:10 GMT", 10.0),
        ],
    )
    def test_parse_seconds_and_http_dates(self, value: str | None, expected: float | None) -> None:
        now = datetime(2015, 10, 21, 7, 28, 0, tzinfo=timezone.utc).timestamp()
        assert parse_retry_after(value, now=now) == expected

    @pytest.mark.parametrize("api", ["v1", "v2"])
    def test_429_with_seconds_is_transient_with_retry_after(
        self, loopback: Callable[..., LoopbackServer], api: str
    ) -> None:
        server = loopback(lambda _r: (429, {"Retry-After": "7"}, b'{"error":"slow down"}'))
        sink = make_sink(server.url, api)
        with pytest.raises(TransientSinkError) as info:
            sink.write(sink.prepare(EventBatch([MetricEvent("m", fields={"v": 1})])))
        assert info.value.retry_after == 7.0
        assert str(info.value) == f"write to {server.url} failed: HTTP 429: slow down"
        sink.close()

    @pytest.mark.parametrize("api", ["v1", "v2"])
    def test_503_with_http_date(self, loopback: Callable[..., LoopbackServer], api: str) -> None:
        """An HTTP-date already past means "retry now": retry_after is 0 s."""
        when = format_datetime(datetime(2015, 10, 21, 7, 28, tzinfo=timezone.utc), usegmt=True)
        server = loopback(lambda _r: (503, {"Retry-After": when}, b"maintenance"))
        sink = make_sink(server.url, api)
        with pytest.raises(TransientSinkError) as info:
            sink.write(sink.prepare(EventBatch([MetricEvent("m", fields={"v": 1})])))
        assert info.value.retry_after == 0.0
        assert str(info.value) == f"write to {server.url} failed: HTTP 503: maintenance"
        sink.close()

    @pytest.mark.parametrize(("status", "api"), [(500, "v1"), (502, "v2"), (408, "v1")])
    def test_other_retryable_statuses_have_no_retry_after(
        self, loopback: Callable[..., LoopbackServer], status: int, api: str
    ) -> None:
        server = loopback(lambda _r: (status, {}, b""))
        sink = make_sink(server.url, api)
        with pytest.raises(TransientSinkError) as info:
            sink.write(sink.prepare(EventBatch([MetricEvent("m", fields={"v": 1})])))
        assert info.value.retry_after is None
        sink.close()

    @pytest.mark.parametrize("api", ["v1", "v2"])
    def test_other_4xx_is_permanent_rejection(
        self, loopback: Callable[..., LoopbackServer], api: str
    ) -> None:
        server = loopback(lambda _r: (422, {}, b'{"message":"partial write: bad line"}'))
        sink = make_sink(server.url, api)
        with pytest.raises(PermanentSinkError) as info:
            sink.write(sink.prepare(EventBatch([MetricEvent("m", fields={"v": 1})])))
        assert (info.value.reason, info.value.unhealthy) == ("rejected", False)
        assert str(info.value) == f"write to {server.url} failed: HTTP 422: partial write: bad line"
        sink.close()


class TestStatusMapping:
    """Statuses not covered by the real-server tests, from a loopback server."""

    @pytest.mark.parametrize(
        ("token", "who"),
        [("tok-SECRET", "the server refused the token"), (None, "no token was given")],
    )
    @pytest.mark.parametrize(
        ("status", "verb"), [(401, "authentication failed"), (403, "permission denied")]
    )
    def test_v2_401_and_403_are_permanent_unhealthy_and_never_show_the_token(
        self,
        loopback: Callable[..., LoopbackServer],
        token: str | None,
        who: str,
        status: int,
        verb: str,
    ) -> None:
        body = b'{"code":"unauthorized","message":"unauthorized access"}'
        server = loopback(lambda _r: (status, {"Content-Type": "application/json"}, body))
        sink = InfluxDBSink(server.url, org="o", bucket="b", token=token)
        with pytest.raises(PermanentSinkError) as info:
            sink.write(sink.prepare(EventBatch([MetricEvent("m", fields={"v": 1})])))
        assert str(info.value) == (
            f"write to {server.url} failed: {verb}: {who}: HTTP {status}: unauthorized access"
        )
        assert info.value.unhealthy is True
        sink.close()

    def test_v2_404_names_bucket_and_org(self, loopback: Callable[..., LoopbackServer]) -> None:
        body = b'{"code":"not found","message":"bucket \\"b\\" not found"}'
        server = loopback(lambda _r: (404, {}, body))
        sink = InfluxDBSink(server.url, org="o", bucket="b")
        with pytest.raises(PermanentSinkError) as info:
            sink.write(sink.prepare(EventBatch([MetricEvent("m", fields={"v": 1})])))
        assert str(info.value) == (
            f"write to {server.url} failed: bucket 'b' or org 'o' not found (or the server has "
            "no /api/v2/write; for InfluxDB 1.x use api='v1'): HTTP 404: bucket \"b\" not found"
        )
        assert info.value.unhealthy is True
        sink.close()

    @pytest.mark.parametrize("api", ["v1", "v2"])
    def test_redirect_is_permanent_and_names_the_target_without_secrets(
        self, loopback: Callable[..., LoopbackServer], api: str
    ) -> None:
        server = loopback(lambda _r: (307, {"Location": "https://u:pw@elsewhere:8086/"}, b""))
        sink = make_sink(server.url, api)
        with pytest.raises(PermanentSinkError) as info:
            sink.write(sink.prepare(EventBatch([MetricEvent("m", fields={"v": 1})])))
        assert str(info.value) == (
            f"write to {server.url} failed: HTTP 307: redirected to "
            "'https://u:***@elsewhere:8086/'; point url at that address"
        )
        assert len(server.received) == 1
        sink.close()

    def test_error_message_falls_back_to_the_x_influxdb_error_header(
        self, loopback: Callable[..., LoopbackServer]
    ) -> None:
        server = loopback(lambda _r: (400, {"X-Influxdb-Error": "bad thing"}, b""))
        sink = make_sink(server.url, "v1")
        with pytest.raises(PermanentSinkError) as info:
            sink.write(sink.prepare(EventBatch([MetricEvent("m", fields={"v": 1})])))
        assert str(info.value) == f"write to {server.url} failed: HTTP 400: bad thing"
        sink.close()


def make_sink(url: str, api: str, **kwargs: Any) -> InfluxDBSink:
    if api == "v1":
        return InfluxDBSink(url, api="v1", database="d", **kwargs)
    return InfluxDBSink(url, org="o", bucket="b", **kwargs)


class TestSplitting:
    """413 splits a batch; every event is written exactly once, even across retries."""

    @staticmethod
    def limited(max_lines: int, fail_on: set[int] | None = None) -> Callable[[Received], Reply]:
        """Answer 413 above `max_lines` lines, and 503 to the listed (1-based) other requests."""
        seen = [0]
        fail = fail_on or set()

        def respond(request: Received) -> Reply:
            if request.text.count("\n") + 1 > max_lines:
                return 413, {}, b'{"error":"Request Entity Too Large"}'
            seen[0] += 1
            if seen[0] in fail:
                return 503, {"Retry-After": "1"}, b"busy"
            return 204, {}, b""

        return respond

    @staticmethod
    def accepted_lines(server: LoopbackServer) -> list[str]:
        """The lines of every request the server answered with 204, in order."""
        return [
            line
            for request in server.received
            if request.status == 204
            for line in request.text.split("\n")
        ]

    @pytest.mark.parametrize("api", ["v1", "v2"])
    def test_split_writes_each_event_once_in_order(
        self, loopback: Callable[..., LoopbackServer], api: str
    ) -> None:
        server = loopback(self.limited(3))
        sink = make_sink(server.url, api)
        events = [
            MetricEvent("m", fields={"v": i}, timestamp_ns=i, before_2001=True) for i in range(10)
        ]
        payload = sink.prepare(EventBatch(events))
        sink.write(payload)
        assert self.accepted_lines(server) == [f"m v={i}i {i}" for i in range(10)]
        # 10 -> 5+5 -> (2+3)+(2+3): one 413 each for the 10 and the two 5s.
        assert [r.status for r in server.received] == [413, 413, 204, 204, 413, 204, 204]
        assert (payload.events_written, payload.events_rejected, payload.done) == (10, 0, True)
        sink.close()

    @pytest.mark.parametrize("api", ["v1", "v2"])
    def test_retry_after_partial_split_resends_only_the_rest(
        self, loopback: Callable[..., LoopbackServer], api: str
    ) -> None:
        server = loopback(self.limited(5, fail_on={2}))
        sink = make_sink(server.url, api)
        events = [
            MetricEvent("m", fields={"v": i}, timestamp_ns=i, before_2001=True) for i in range(10)
        ]
        payload = sink.prepare(EventBatch(events))
        with pytest.raises(TransientSinkError) as info:
            sink.write(payload)
        assert info.value.retry_after == 1.0
        assert (payload.events_written, payload.done) == (5, False)
        sink.write(payload)  # what the lane's retry does
        assert self.accepted_lines(server) == [f"m v={i}i {i}" for i in range(10)]
        assert (payload.events_written, payload.done) == (10, True)
        sink.write(payload)  # a completed payload sends nothing more
        assert len(server.received) == 4
        sink.close()

    def test_single_line_still_too_large_is_rejected_others_written(
        self, loopback: Callable[..., LoopbackServer]
    ) -> None:
        def respond(request: Received) -> Reply:
            if len(request.text) > 40:
                return 413, {}, b'{"error":"Request Entity Too Large"}'
            return 204, {}, b""

        server = loopback(respond)
        sink = make_sink(server.url, "v1")
        events = [
            MetricEvent("m", fields={"v": i}, timestamp_ns=i, before_2001=True) for i in range(4)
        ]
        events.insert(
            2, MetricEvent("m", fields={"v": "x" * 100}, timestamp_ns=99, before_2001=True)
        )
        payload = sink.prepare(EventBatch(events))
        with pytest.raises(PermanentSinkError) as info:
            sink.write(payload)
        assert (info.value.reason, info.value.unhealthy, info.value.written) == (
            "rejected", False, 4
        )  # fmt: skip
        assert str(info.value).startswith(
            "event 2 of the batch is too large for the server even alone"
        )
        assert self.accepted_lines(server) == [f"m v={i}i {i}" for i in range(4)]
        assert (payload.events_written, payload.events_rejected, payload.done) == (4, 1, True)
        sink.close()


class TestCollapsedPoints:
    """Events InfluxDB 1.6 would collapse into one point are dropped as collapsed, not written."""

    def stream(self, sink: InfluxDBSink, events: list[MetricEvent]) -> SinkHealth:
        streamer = EventStreamer(
            [sink], batch_size=len(events), flush_interval=60, register_atexit=False
        )
        streamer.send_many(events)
        assert streamer.flush(30) is True
        health = streamer.health().sinks[sink.name]
        streamer.shutdown(5)
        return health

    @pytest.mark.servers
    @pytest.mark.parametrize("precision", ["ms", "s"])
    def test_one_series_a_microsecond_apart(self, fresh_db: str, precision: str) -> None:
        events = [
            MetricEvent("burst", {"host": "a"}, {"i": i}, BASE_NS + 123_456 + i * 1_000)
            for i in range(1000)
        ]
        sink = InfluxDBSink(INFLUXDB_V1_URL, api="v1", database=fresh_db, precision=precision)
        health = self.stream(sink, events)
        last: dict[int, int] = {}  # the server keeps the last point of each timestamp
        for event in events:
            last[truncate(event.timestamp_ns, precision)] = int(event.fields["i"])  # type: ignore[call-overload]
        assert (health.events_written, health.dropped_by_reason) == (
            len(last),
            {**dict.fromkeys(health.dropped_by_reason, 0), "collapsed": 1000 - len(last)},
        )
        stored = [(r[1], r[3]) for r in influx_rows(INFLUXDB_V1_URL, fresh_db)]
        assert stored == [(moment, (("i", "integer", i),)) for moment, i in sorted(last.items())]

    @pytest.mark.servers
    def test_a_point_with_fields_of_its_own_is_merged_and_written(self, fresh_db: str) -> None:
        events = [
            MetricEvent("merge", {"host": "a"}, {"x": 1}, BASE_NS + 1),  # overwritten whole
            MetricEvent("merge", {"host": "a"}, {"y": 2}, BASE_NS + 2),
            MetricEvent("merge", {"host": "a"}, {"x": 3}, BASE_NS + 3),
            MetricEvent("merge", {"host": "b"}, {"x": 4}, BASE_NS + 4),  # another series
            MetricEvent("other", {"host": "a"}, {"x": 5}, BASE_NS + 5),  # another measurement
            MetricEvent("merge", {"host": "a"}, {"u": UInt(1)}, BASE_NS + 6),  # v1 refuses it
        ]
        sink = InfluxDBSink(INFLUXDB_V1_URL, api="v1", database=fresh_db, precision="ms")
        health = self.stream(sink, events)
        dropped = health.dropped_by_reason
        assert (health.events_written, dropped["collapsed"], dropped["invalid"]) == (4, 1, 1)
        assert influx_rows(INFLUXDB_V1_URL, fresh_db) == [
            ("merge", BASE_NS, (("host", "a"),), (("x", "integer", 3), ("y", "integer", 2))),
            ("merge", BASE_NS, (("host", "b"),), (("x", "integer", 4),)),
            ("other", BASE_NS, (("host", "a"),), (("x", "integer", 5),)),
        ]

    def test_keep_writes_every_point(self) -> None:
        sink = InfluxDBSink(
            "http://127.0.0.1:1", api="v1", database="d", precision="s", duplicate_points="keep"
        )
        payload = sink.prepare(EventBatch([MetricEvent("k", fields={"v": i}) for i in range(3)]))
        assert payload.count == 3
        sink.close()


@pytest.mark.servers
class TestV1RoundTrip:
    """Thousands of events through the v1 API into InfluxDB 1.6, read back exactly."""

    @pytest.mark.parametrize("gzip_on", [True, False])
    @pytest.mark.parametrize("precision", ["ns", "us", "ms", "s"])
    def test_every_event_every_value(self, fresh_db: str, precision: str, gzip_on: bool) -> None:
        events = events_all_types(f"rt {precision}", 2500)
        sink = InfluxDBSink(
            INFLUXDB_V1_URL, api="v1", database=fresh_db, precision=precision, gzip=gzip_on
        )
        write_batches(sink, events)
        assert influx_rows(INFLUXDB_V1_URL, fresh_db) == expected_rows(events, precision)
        sink.check()
        sink.close()

    def test_sub_precision_digits_are_truncated_toward_zero(self, fresh_db: str) -> None:
        events = [
            MetricEvent("trunc", fields={"v": 1}, timestamp_ns=BASE_NS + 999_999_999),
            MetricEvent("trunc", fields={"v": 2}, timestamp_ns=-1, before_2001=True),
        ]
        sink = InfluxDBSink(INFLUXDB_V1_URL, api="v1", database=fresh_db, precision="s")
        write_batches(sink, events)
        stored = [(r[1], r[3][0][2]) for r in influx_rows(INFLUXDB_V1_URL, fresh_db)]
        assert sorted(stored) == [(0, 2), (BASE_NS, 1)]
        sink.close()

    def test_largest_string_value(self, fresh_db: str) -> None:
        text = "é" * (32 * 1024)  # 64 KiB of UTF-8, the most an event accepts
        events = [MetricEvent("big", fields={"s": text}, timestamp_ns=BASE_NS)]
        sink = InfluxDBSink(INFLUXDB_V1_URL, api="v1", database=fresh_db)
        write_batches(sink, events)
        assert influx_rows(INFLUXDB_V1_URL, fresh_db) == expected_rows(events)
        sink.close()

    def test_timestamp_range_edges_that_influxdb_stores(self, fresh_db: str) -> None:
        events = [
            MetricEvent("edge", fields={"v": 1}, timestamp_ns=INFLUX_MIN_NS, before_2001=True),
            MetricEvent("edge", fields={"v": 2}, timestamp_ns=INFLUX_MAX_NS),
            MetricEvent("edge", fields={"v": 3}, timestamp_ns=0, before_2001=True),
        ]
        sink = InfluxDBSink(INFLUXDB_V1_URL, api="v1", database=fresh_db)
        write_batches(sink, events)
        assert influx_rows(INFLUXDB_V1_URL, fresh_db) == expected_rows(events)
        sink.close()

    def test_writes_to_a_named_retention_policy(self, fresh_db: str) -> None:
        influx_query(
            INFLUXDB_V1_URL,
            f'CREATE RETENTION POLICY "r p" ON "{fresh_db}" DURATION INF REPLICATION 1',
        )
        sink = InfluxDBSink(INFLUXDB_V1_URL, api="v1", database=fresh_db, retention_policy="r p")
        write_batches(sink, [MetricEvent("inrp", fields={"v": 1}, timestamp_ns=BASE_NS)])
        q = 'SELECT "v" FROM "r p"."inrp"'
        assert influx_query(INFLUXDB_V1_URL, q, db=fresh_db)["results"][0]["series"][0][
            "values"
        ] == [[BASE_NS, 1]]
        sink.close()

    def test_auth_server_with_right_credentials(self, auth_server: str) -> None:
        measurement = f"auth_ok_{RUN_ID}"
        sink = InfluxDBSink(
            auth_server, api="v1", database="metricstream_test",
            username=INFLUXDB_AUTH_USER, password=INFLUXDB_AUTH_PASSWORD,
        )  # fmt: skip
        events = [
            MetricEvent(measurement, fields={"v": i}, timestamp_ns=BASE_NS + i) for i in range(50)
        ]
        write_batches(sink, events)
        auth = (INFLUXDB_AUTH_USER, INFLUXDB_AUTH_PASSWORD)
        q = f'SELECT "v" FROM "{measurement}"'
        values = influx_query(auth_server, q, db="metricstream_test", auth=auth)
        assert values["results"][0]["series"][0]["values"] == [[BASE_NS + i, i] for i in range(50)]
        influx_query(
            auth_server, f'DROP MEASUREMENT "{measurement}"', db="metricstream_test", auth=auth
        )
        sink.close()


def post_lines(url: str, path: str, body: str) -> tuple[int, str]:
    """POST raw line protocol (past the sink's checks); return the status and error text."""
    request = urllib.request.Request(f"{url}{path}", data=body.encode(), method="POST")
    try:
        with urllib.request.urlopen(request, timeout=30) as resp:
            return resp.status, resp.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())["error"]


@pytest.mark.servers
class TestServerLimits:
    """Why prepare() refuses some valid events: what the real servers do with them."""

    def test_influxdb_1_6_refuses_unsigned_fields(self, fresh_db: str) -> None:
        status, error = post_lines(INFLUXDB_V1_URL, f"/write?db={fresh_db}", "u v=3u 1")
        assert (status, error) == (400, "unable to parse 'u v=3u 1': invalid number")

    @pytest.mark.parametrize("timestamp", [2**63 - 1, -(2**63), -(2**63) + 1])
    def test_influxdb_1_6_refuses_int64_extreme_timestamps(
        self, fresh_db: str, timestamp: int
    ) -> None:
        status, error = post_lines(INFLUXDB_V1_URL, f"/write?db={fresh_db}", f"t v=1i {timestamp}")
        assert (status, error) == (
            400,
            f"unable to parse 't v=1i {timestamp}': time outside range "
            "-9223372036854775806 - 9223372036854775806",
        )

    def test_influxdb_1_6_loses_a_measurement_with_backslash_before_space_after_a_204(
        self, fresh_db: str
    ) -> None:
        lost = MetricEvent("lost a\\ b", fields={"f": 1.0}, timestamp_ns=1, before_2001=True)
        kept = MetricEvent("kept", fields={"g": 2.0}, timestamp_ns=1, before_2001=True)
        body = f"{lost.to_influx_line()}\n{kept.to_influx_line()}"
        assert post_lines(INFLUXDB_V1_URL, f"/write?db={fresh_db}", body) == (204, "")
        assert influx_v1_events(INFLUXDB_V1_URL, fresh_db) == [kept]

    def test_influxdb_1_6_refuses_a_field_key_with_backslash_before_space(
        self, fresh_db: str
    ) -> None:
        line = MetricEvent(
            "bs", fields={"a\\ b": 1}, timestamp_ns=1, before_2001=True
        ).to_influx_line()
        status, error = post_lines(INFLUXDB_V1_URL, f"/write?db={fresh_db}", line)
        assert (status, error) == (400, "unable to parse 'bs a\\\\ b=1i 1': invalid field format")

    def test_influxdb_1_6_drops_the_backslash_before_a_quote_in_a_measurement(
        self, fresh_db: str
    ) -> None:
        line = MetricEvent(
            'q a\\"b', fields={"f": 1.0}, timestamp_ns=1, before_2001=True
        ).to_influx_line()
        assert post_lines(INFLUXDB_V1_URL, f"/write?db={fresh_db}", line) == (204, "")
        stored = influx_v1_events(INFLUXDB_V1_URL, fresh_db)
        assert [e.measurement for e in stored] == ['q a"b']

    @pytest.mark.parametrize(
        ("tags", "fields", "suffix", "stored"),
        [
            # Lost without a trace: a backslash before a space or comma.
            ({"t": "x"}, {"f": 1.0}, "a\\ b", []),
            ({"t": "a\\,b"}, {"f": 1.0}, "", []),
            ({"a\\ b": "x"}, {"f": 1.0}, "", []),
            # Stored under other names: a backslash before '='.
            ({"t": "x"}, {"f": 1.0}, "a\\=b", [("a=b_f", (("t", "x"),))]),
            ({"a\\=b": "x"}, {"f": 1.0}, "", [("_f", (("a\\", "b=x"),))]),
        ],
    )
    def test_victoriametrics_loses_or_renames_names_with_backslash_before_a_delimiter(
        self,
        vm_server: str,
        tags: dict[str, str],
        fields: dict[str, float],
        suffix: str,
        stored: list[tuple[str, tuple[tuple[str, str], ...]]],
    ) -> None:
        prefix = f"msv2_{RUN_ID}_bs_{uuid.uuid4().hex[:8]}"
        now_ms = time.time_ns() // 1_000_000 - 60_000
        event = MetricEvent(prefix + suffix, tags=tags, fields=fields, timestamp_ns=now_ms * 10**6)
        marker = MetricEvent(prefix + "_marker", fields={"m": 1.0}, timestamp_ns=now_ms * 10**6)
        body = f"{event.to_influx_line()}\n{marker.to_influx_line()}"
        assert post_lines(vm_server, "/api/v2/write?org=o&bucket=b", body) == (204, "")
        samples = vm_samples(vm_server, vm_regex(prefix), len(stored) + 1)
        assert [(name.removeprefix(prefix), labels) for name, labels, _, _ in samples] == sorted(
            [*stored, ("_marker_m", ())]
        )

    def test_victoriametrics_loses_a_point_whose_string_field_holds_a_newline(
        self, vm_server: str, fresh_db: str
    ) -> None:
        """Why api='v2' refuses them: a 204, and the point is gone (InfluxDB 1.6 keeps it)."""
        prefix = f"msv2_{RUN_ID}_nl_{uuid.uuid4().hex[:8]}"
        now_ms = time.time_ns() // 1_000_000 - 60_000
        lost = MetricEvent(prefix, fields={"n": 1.0, "s": "a\nb"}, timestamp_ns=now_ms * 10**6)
        marker = MetricEvent(prefix + "_marker", fields={"m": 1.0}, timestamp_ns=now_ms * 10**6)
        body = f"{lost.to_influx_line()}\n{marker.to_influx_line()}"
        assert post_lines(vm_server, "/api/v2/write?org=o&bucket=b", body) == (204, "")
        samples = vm_samples(vm_server, vm_regex(prefix), 1)
        assert [name for name, _, _, _ in samples] == [f"{prefix}_marker_m"]
        assert post_lines(INFLUXDB_V1_URL, f"/write?db={fresh_db}", body) == (204, "")
        assert influx_v1_events(INFLUXDB_V1_URL, fresh_db, prefix) == [lost]


class TestV1Faults:
    """Real failures of InfluxDB 1.6 map to the right error, with a clear message."""

    @pytest.mark.servers
    def test_wrong_password_is_permanent_unhealthy_and_never_shows_the_password(
        self, auth_server: str
    ) -> None:
        sink = InfluxDBSink(
            auth_server, api="v1", database="metricstream_test",
            username=INFLUXDB_AUTH_USER, password="wrong-Secret-42",
        )  # fmt: skip
        payload = sink.prepare(EventBatch([MetricEvent("m", fields={"v": 1})]))
        with pytest.raises(PermanentSinkError) as info:
            sink.write(payload)
        assert str(info.value) == (
            f"write to {auth_server} failed: authentication failed for user "
            f"{INFLUXDB_AUTH_USER!r}: HTTP 401: authorization failed"
        )
        assert (info.value.unhealthy, info.value.reason, info.value.sink) == (
            True,
            "rejected",
            "influxdb",
        )
        assert (payload.events_written, payload.done) == (0, False)
        # The server answers /ping, but the sink reports what stops every write.
        with pytest.raises(PermanentSinkError) as checked:
            sink.check()
        assert checked.value is info.value
        assert "wrong-Secret-42" not in repr(sink) + str(info.value)
        sink.close()

    @pytest.mark.servers
    def test_no_credentials_on_an_auth_server(self, auth_server: str) -> None:
        sink = InfluxDBSink(auth_server, api="v1", database="metricstream_test")
        with pytest.raises(PermanentSinkError) as info:
            sink.write(sink.prepare(EventBatch([MetricEvent("m", fields={"v": 1})])))
        assert str(info.value) == (
            f"write to {auth_server} failed: authentication failed: no username and password "
            "were given: HTTP 401: unable to parse authentication credentials"
        )
        assert info.value.unhealthy is True
        sink.close()

    @pytest.mark.servers
    def test_user_without_write_permission_is_403(self, auth_server: str) -> None:
        admin = (INFLUXDB_AUTH_USER, INFLUXDB_AUTH_PASSWORD)
        user = f"reader_{RUN_ID}"
        influx_query(auth_server, f"CREATE USER \"{user}\" WITH PASSWORD 'pw-{RUN_ID}'", auth=admin)
        try:
            sink = InfluxDBSink(
                auth_server, api="v1", database="metricstream_test", username=user,
                password=f"pw-{RUN_ID}",
            )  # fmt: skip
            with pytest.raises(PermanentSinkError) as info:
                sink.write(sink.prepare(EventBatch([MetricEvent("m", fields={"v": 1})])))
            assert str(info.value) == (
                f"write to {auth_server} failed: permission denied for user {user!r}: HTTP 403: "
                f'"{user}" user is not authorized to write to database "metricstream_test"'
            )
            assert info.value.unhealthy is True
            assert f"pw-{RUN_ID}" not in str(info.value)
            sink.close()
        finally:
            influx_query(auth_server, f'DROP USER "{user}"', auth=admin)

    @pytest.mark.servers
    def test_missing_database_names_it(self, v1_server: str) -> None:
        db = f"missing_{RUN_ID}"
        sink = InfluxDBSink(v1_server, api="v1", database=db)
        with pytest.raises(PermanentSinkError) as info:
            sink.write(sink.prepare(EventBatch([MetricEvent("m", fields={"v": 1})])))
        assert str(info.value) == (
            f"write to {v1_server} failed: database {db!r} not found: HTTP 404: "
            f'database not found: "{db}"'
        )
        assert (info.value.unhealthy, info.value.reason) == (True, "rejected")
        with pytest.raises(PermanentSinkError):
            sink.check()
        sink.close()

    @pytest.mark.servers
    def test_check_clears_once_a_write_succeeds(self, v1_server: str) -> None:
        db = f"late_{RUN_ID}"
        sink = InfluxDBSink(v1_server, api="v1", database=db)
        with pytest.raises(PermanentSinkError):
            sink.write(sink.prepare(EventBatch([MetricEvent("m", fields={"v": 1})])))
        create_database(v1_server, db)
        try:
            sink.write(sink.prepare(EventBatch([MetricEvent("m", fields={"v": 1})])))
            assert sink.check() is None
        finally:
            drop_database(v1_server, db)
            sink.close()

    @pytest.mark.servers
    def test_missing_retention_policy_is_permanent_not_retried(self, fresh_db: str) -> None:
        sink = InfluxDBSink(INFLUXDB_V1_URL, api="v1", database=fresh_db, retention_policy="nope")
        with pytest.raises(PermanentSinkError) as info:
            sink.write(sink.prepare(EventBatch([MetricEvent("m", fields={"v": 1})])))
        assert str(info.value) == (
            f"write to {INFLUXDB_V1_URL} failed: retention policy 'nope' not found in database "
            f"{fresh_db!r} (retention policy not found: nope)"
        )
        assert info.value.unhealthy is True
        sink.close()

    @pytest.mark.servers
    def test_field_type_conflict_is_rejected_with_the_servers_message(self, fresh_db: str) -> None:
        sink = InfluxDBSink(INFLUXDB_V1_URL, api="v1", database=fresh_db)
        write_batches(sink, [MetricEvent("conflict", fields={"v": 1.5}, timestamp_ns=BASE_NS)])
        payload = sink.prepare(
            EventBatch([MetricEvent("conflict", fields={"v": "text"}, timestamp_ns=BASE_NS + 1)])
        )
        with pytest.raises(PermanentSinkError) as info:
            sink.write(payload)
        assert str(info.value) == (
            f"write to {INFLUXDB_V1_URL} failed: HTTP 400: partial write: field type conflict: "
            'input field "v" on measurement "conflict" is type string, already exists as type '
            "float dropped=1"
        )
        assert (info.value.reason, info.value.unhealthy) == ("rejected", False)
        assert sink.check() is None  # a rejected batch does not make the sink unhealthy
        sink.close()

    @pytest.mark.parametrize("api", ["v1", "v2"])
    def test_connection_refused_is_transient(self, api: str) -> None:
        url = f"http://127.0.0.1:{free_port()}"
        sink = make_sink(url, api)
        payload = sink.prepare(EventBatch([MetricEvent("m", fields={"v": 1})]))
        with pytest.raises(TransientSinkError) as info:
            sink.write(payload)
        assert (
            str(info.value)
            == f"write to {url} failed: cannot connect: [Errno 111] Connection refused"
        )
        assert info.value.retry_after is None
        with pytest.raises(TransientSinkError) as checked:
            sink.check()
        assert (
            str(checked.value)
            == f"ping to {url} failed: cannot connect: [Errno 111] Connection refused"
        )
        sink.close()

    @pytest.mark.parametrize("api", ["v1", "v2"])
    def test_timeout_is_transient(self, loopback: Callable[..., LoopbackServer], api: str) -> None:
        release = threading.Event()

        def stall(_request: Received) -> Reply:
            release.wait(10)
            return 204, {}, b""

        server = loopback(stall)
        sink = make_sink(server.url, api, timeout=0.2)
        try:
            with pytest.raises(TransientSinkError) as info:
                sink.write(sink.prepare(EventBatch([MetricEvent("m", fields={"v": 1})])))
            assert str(info.value) == f"write to {server.url} failed: timed out (ReadTimeoutError)"
        finally:
            release.set()
            sink.close()

    @pytest.mark.servers
    def test_server_stopped_mid_stream_then_restarted(self, influxd: InfluxdProcess) -> None:
        db = f"restart_{RUN_ID}"
        influxd.create_database(db)
        sink = InfluxDBSink(influxd.url, api="v1", database=db)
        events = [MetricEvent("r", fields={"v": i}, timestamp_ns=BASE_NS + i) for i in range(3000)]
        first = sink.prepare(EventBatch(events[:1000]))
        second = sink.prepare(EventBatch(events[1000:2000]))
        third = sink.prepare(EventBatch(events[2000:]))
        sink.write(first)
        influxd.stop()
        with pytest.raises(TransientSinkError):
            sink.write(second)
        with pytest.raises(TransientSinkError):
            sink.check()
        influxd.start()
        sink.write(second)
        sink.write(third)
        sink.check()
        assert influx_rows(influxd.url, db) == expected_rows(events)
        sink.close()


@pytest.mark.servers
class TestMaxBodySize:
    """A real InfluxDB 1.6 with a small max-body-size: 413 splits, every event lands once."""

    @pytest.mark.parametrize("gzip_on", [False, True])
    def test_oversized_batches_are_split_and_fully_written(
        self, small_influxd: InfluxdProcess, gzip_on: bool
    ) -> None:
        db = f"split_{RUN_ID}_{int(gzip_on)}"
        small_influxd.create_database(db)
        events = events_all_types("split", 3000)
        sink = InfluxDBSink(small_influxd.url, api="v1", database=db, gzip=gzip_on)
        payload = sink.prepare(EventBatch(events))
        # InfluxDB 1.6 compares max-body-size with the bytes on the wire
        # (compressed when gzipped).
        assert len(payload.body) > 20_000
        sink.write(payload)
        assert (payload.events_written, payload.done) == (3000, True)
        assert influx_rows(small_influxd.url, db) == expected_rows(events)
        sink.close()

    def test_single_event_over_the_limit_is_rejected_the_rest_written(
        self, small_influxd: InfluxdProcess
    ) -> None:
        db = f"toolarge_{RUN_ID}"
        small_influxd.create_database(db)
        events = [MetricEvent("tl", fields={"v": i}, timestamp_ns=BASE_NS + i) for i in range(500)]
        huge = MetricEvent("tl", fields={"v": 9999, "s": "x" * 30_000}, timestamp_ns=BASE_NS - 1)
        sink = InfluxDBSink(small_influxd.url, api="v1", database=db, gzip=False)
        payload = sink.prepare(EventBatch([*events[:250], huge, *events[250:]]))
        with pytest.raises(PermanentSinkError) as info:
            sink.write(payload)
        assert str(info.value) == (
            "event 250 of the batch is too large for the server "
            f"even alone ({len(huge.to_influx_line().encode())} bytes): write to "
            f"{small_influxd.url} failed: HTTP 413: Request Entity Too Large"
        )
        assert info.value.written == 500
        assert (payload.events_written, payload.events_rejected) == (500, 1)
        assert influx_rows(small_influxd.url, db) == expected_rows(events)
        sink.close()


@pytest.mark.servers
class TestV2VictoriaMetrics:
    """The v2 API through influxdb-client into VictoriaMetrics, read back exactly."""

    @pytest.mark.parametrize("precision", ["ns", "us", "ms", "s"])
    def test_thousands_of_events_round_trip_exactly(self, vm_server: str, precision: str) -> None:
        prefix = f"msv2_{RUN_ID}_{precision}"
        events = numeric_events(prefix, 3000)
        sink = InfluxDBSink(
            vm_server, org="o", bucket="b", precision=precision, duplicate_points="keep"
        )
        write_batches(sink, events)
        truncated = [e.copy().with_timestamp(truncate(e.timestamp_ns, precision)) for e in events]
        expected = expected_vm(truncated)
        assert vm_samples(vm_server, vm_regex(prefix), len(expected)) == expected
        sink.check()
        sink.close()

    def test_uncompressed_bodies_are_written_too(self, vm_server: str) -> None:
        prefix = f"msv2_{RUN_ID}_plain"
        events = numeric_events(prefix, 200)
        sink = InfluxDBSink(vm_server, org="o", bucket="b", gzip=False)
        write_batches(sink, events)
        assert vm_samples(vm_server, vm_regex(prefix), 800) == expected_vm(events)
        sink.close()

    def test_string_fields_are_accepted_and_numeric_siblings_stored(self, vm_server: str) -> None:
        """VictoriaMetrics keeps numbers only; a string field must not fail the write."""
        prefix = f"msv2_{RUN_ID}_str"
        now_ns = (time.time_ns() // 1_000_000 - 60_000) * 1_000_000
        events = [
            MetricEvent(
                prefix,
                fields={"n": float(i), "s": f'te"xt {i}'},
                timestamp_ns=now_ns + i * 1_000_000,
            )
            for i in range(10)
        ]
        sink = InfluxDBSink(vm_server, org="o", bucket="b")
        write_batches(sink, events)
        numeric = [s for s in vm_samples(vm_server, vm_regex(prefix), 20) if s[0] == f"{prefix}_n"]
        assert numeric == [
            (f"{prefix}_n", (), now_ns // 1_000_000 + i, float(i)) for i in range(10)
        ]
        sink.close()


# --- exact accounting through an EventStreamer -------------------------------------


def stream(
    sinks: list[Sink], events: list[MetricEvent], *, batch_size: int
) -> dict[str, SinkHealth]:
    """Send copies of `events` through a streamer, flush, shut down; return each sink's health."""
    streamer = EventStreamer(
        sinks, batch_size=batch_size, flush_interval=60.0, register_atexit=False
    )
    with streamer:
        assert streamer.send_many(e.copy() for e in events) == len(events)
        assert streamer.flush(timeout=120) is True
        health = streamer.health()
    return dict(health.sinks)


def counts(health: SinkHealth) -> tuple[int, int, dict[str, int]]:
    """(written, pending, the non-zero drop counts by reason)."""
    dropped = {reason: n for reason, n in health.dropped_by_reason.items() if n}
    return health.events_written, health.pending, dropped


class TestPartialWriteCounting:
    """How "partial write" answers are counted, from a server scripted like InfluxDB 1.6."""

    HOUR_NS = 3600 * 10**9

    @staticmethod
    def posts(server: LoopbackServer) -> list[tuple[int, int]]:
        """(lines, status) of every write request, in order."""
        return [(r.text.count("\n") + 1, r.status) for r in server.received if r.method == "POST"]

    def test_unparseable_lines_reported_as_dropped_0_are_isolated_by_halving(
        self, loopback: Callable[..., LoopbackServer]
    ) -> None:
        """InfluxDB 1.6 stores the lines it parses and says dropped=0 for the others."""

        def respond(request: Received) -> Reply:
            lines = request.text.split("\n")
            bad = [line for line in lines if "bad" in line]
            if request.method != "POST" or not bad:
                return 204, {}, b""
            error = "\n".join(f"unable to parse '{line}': invalid field format" for line in bad)
            if len(bad) < len(lines):
                error = f"partial write: {error} dropped=0"
            return 400, {}, json.dumps({"error": error}).encode()

        server = loopback(respond)
        events = [
            MetricEvent(
                "m",
                fields={"v": "bad" if i in (3, 4, 9) else "ok"},
                timestamp_ns=i,
                before_2001=True,
            )
            for i in range(12)
        ]
        sink = make_sink(server.url, "v1")
        payload = sink.prepare(EventBatch(events))
        with pytest.raises(PermanentSinkError) as info:
            sink.write(payload)
        assert (info.value.written, payload.events_written, payload.events_rejected) == (9, 9, 3)
        assert self.posts(server) == [
            (12, 400), (6, 400), (3, 204), (3, 400), (1, 400), (2, 400), (1, 400), (1, 204),
            (6, 400), (3, 204), (3, 400), (1, 400), (2, 204),
        ]  # fmt: skip
        sink.close()

    @staticmethod
    def one_shard_at_a_time(request: Received) -> Reply:
        """Refuse lines with "bad"; report only the first hour's count, as InfluxDB 1.6 does."""
        lines = request.text.split("\n")
        bad_by_hour: dict[int, int] = {}
        for line in lines:
            hour = int(line.rsplit(" ", 1)[1]) // TestPartialWriteCounting.HOUR_NS
            bad_by_hour[hour] = bad_by_hour.get(hour, 0) + ("bad" in line)
        reported = next((n for _, n in sorted(bad_by_hour.items()) if n), 0)
        if request.method != "POST" or not reported:
            return 204, {}, b""
        error = (
            'partial write: field type conflict: input field "v" on measurement "m" is type '
            f"string, already exists as type integer dropped={reported}"
        )
        return 400, {}, json.dumps({"error": error}).encode()

    def test_body_within_one_hour_trusts_the_count_in_one_request(
        self, loopback: Callable[..., LoopbackServer]
    ) -> None:
        server = loopback(self.one_shard_at_a_time)
        events = [
            MetricEvent("m", fields={"v": "bad" if i % 4 == 0 else i}, timestamp_ns=BASE_NS + i)
            for i in range(10)
        ]
        sink = make_sink(server.url, "v1")
        payload = sink.prepare(EventBatch(events))
        with pytest.raises(PermanentSinkError) as info:
            sink.write(payload)
        assert (info.value.written, payload.events_rejected) == (7, 3)
        assert str(info.value) == (
            f"write to {server.url} failed: HTTP 400: partial write: field type conflict: input "
            'field "v" on measurement "m" is type string, already exists as type integer dropped=3'
        )
        assert self.posts(server) == [(10, 400)]
        sink.close()

    def test_body_spanning_hours_is_halved_until_each_part_is_in_one_hour(
        self, loopback: Callable[..., LoopbackServer]
    ) -> None:
        server = loopback(self.one_shard_at_a_time)
        hour_start = BASE_NS - BASE_NS % self.HOUR_NS
        events = [
            MetricEvent(
                "m",
                fields={"v": "bad" if i in (1, 4, 8) else i},
                timestamp_ns=hour_start + (i // 6) * self.HOUR_NS + i,
            )
            for i in range(12)
        ]
        sink = make_sink(server.url, "v1")
        payload = sink.prepare(EventBatch(events))
        with pytest.raises(PermanentSinkError) as info:
            sink.write(payload)
        # The server reports 2 of the 3 refused lines; halving finds the third.
        assert (info.value.written, payload.events_rejected) == (9, 3)
        assert self.posts(server) == [(12, 400), (6, 400), (6, 400)]
        sink.close()


class TestPartialFailuresThroughStreamer:
    """Batches the server stores in part: written and dropped counts match what it stored."""

    def test_split_batch_with_a_refused_half_counts_the_written_halves(
        self, loopback: Callable[..., LoopbackServer]
    ) -> None:
        """10 -> 5+5 -> (2+3)+(2+3) by 413s; the half with the bad line gets a 400."""

        def respond(request: Received) -> Reply:
            if request.text.count("\n") >= 3:
                return 413, {}, b'{"error":"Request Entity Too Large"}'
            if "v=6i" in request.text:
                return 400, {}, b'{"error":"bad line"}'
            return 204, {}, b""

        server = loopback(respond)
        events = [
            MetricEvent("m", fields={"v": i}, timestamp_ns=i, before_2001=True) for i in range(10)
        ]
        health = stream([make_sink(server.url, "v1")], events, batch_size=10)["influxdb"]
        assert counts(health) == (8, 0, {"rejected": 2})
        assert health.last_error == (
            f"PermanentSinkError: write to {server.url} failed: HTTP 400: bad line"
        )
        accepted = [r.text for r in server.received if r.method == "POST" and r.status == 204]
        assert accepted == [
            "m v=0i 0\nm v=1i 1",
            "m v=2i 2\nm v=3i 3\nm v=4i 4",
            "m v=7i 7\nm v=8i 8\nm v=9i 9",
        ]

    @pytest.mark.servers
    def test_event_too_large_even_alone_is_the_only_one_dropped(
        self, small_influxd: InfluxdProcess
    ) -> None:
        db = f"toolarge_stream_{RUN_ID}"
        small_influxd.create_database(db)
        events = [MetricEvent("tl", fields={"v": i}, timestamp_ns=BASE_NS + i) for i in range(600)]
        huge = MetricEvent("tl", fields={"v": -1, "s": "x" * 30_000}, timestamp_ns=BASE_NS - 1)
        sink = InfluxDBSink(small_influxd.url, api="v1", database=db, gzip=False)
        health = stream([sink], [*events[:300], huge, *events[300:]], batch_size=601)["influxdb"]
        assert counts(health) == (600, 0, {"rejected": 1})
        assert influx_v1_events(small_influxd.url, db) == events

    @pytest.mark.servers
    @pytest.mark.parametrize("gzip_on", [True, False])
    def test_type_conflicts_drop_exactly_the_conflicting_events(
        self, fresh_db: str, gzip_on: bool
    ) -> None:
        """InfluxDB 1.6 answers "partial write: ... dropped=N" and stores the other lines."""
        first = MetricEvent("pw", tags={"h": "a"}, fields={"v": 0}, timestamp_ns=BASE_NS)
        sink = InfluxDBSink(INFLUXDB_V1_URL, api="v1", database=fresh_db, gzip=gzip_on)
        sink.write(sink.prepare(EventBatch([first])))
        events = [
            MetricEvent(
                "pw",
                tags={"h": "ab"[i % 2]},
                fields={"v": f"text {i}" if i % 7 == 3 else i, "w": i * 0.5},
                timestamp_ns=BASE_NS + (i + 1) * 1_000_000_000,
            )
            for i in range(300)
        ]
        conflicting = [e for e in events if isinstance(e.fields["v"], str)]
        health = stream([sink], events, batch_size=100)["influxdb"]
        assert len(conflicting) == 43
        assert counts(health) == (257, 0, {"rejected": 43})
        assert health.last_error == (
            f"PermanentSinkError: write to {INFLUXDB_V1_URL} failed: HTTP 400: partial write: "
            'field type conflict: input field "v" on measurement "pw" is type string, already '
            "exists as type integer dropped=14"
        )
        stored = [first, *(e for e in events if e not in conflicting)]
        assert influx_v1_events(INFLUXDB_V1_URL, fresh_db, "pw") == stored

    @staticmethod
    def shard_group_events() -> tuple[list[MetricEvent], list[MetricEvent], list[MetricEvent]]:
        """Integer points in three shard groups, then a batch with 1, 2 and 3 string
        conflicts in them (returns the first points, the batch, its conflicting events)."""
        week_ns = 7 * 24 * 3600 * 10**9
        firsts = [
            MetricEvent("sg", fields={"v": 0}, timestamp_ns=BASE_NS + g * 2 * week_ns)
            for g in range(3)
        ]
        batch = []
        for g in range(3):
            for i in range(10):
                value: int | str = f"s{i}" if i < g + 1 else i + 1
                batch.append(
                    MetricEvent(
                        "sg", fields={"v": value}, timestamp_ns=firsts[g].timestamp_ns + i + 1
                    )
                )
        return firsts, batch, [e for e in batch if isinstance(e.fields["v"], str)]

    @pytest.mark.servers
    def test_influxdb_1_6_reports_the_drops_of_one_shard_group_only(self, fresh_db: str) -> None:
        """Why the sink does not trust dropped=N for bodies spanning more than an hour."""
        firsts, batch, conflicting = self.shard_group_events()
        body = "\n".join(e.to_influx_line() for e in firsts)
        assert post_lines(INFLUXDB_V1_URL, f"/write?db={fresh_db}", body) == (204, "")
        body = "\n".join(e.to_influx_line() for e in batch)
        status, error = post_lines(INFLUXDB_V1_URL, f"/write?db={fresh_db}", body)
        reported = int(error.rsplit("dropped=", 1)[1])
        assert (status, len(conflicting), reported in (1, 2, 3)) == (400, 6, True)
        stored = [e for e in batch if e not in conflicting]
        assert influx_v1_events(INFLUXDB_V1_URL, fresh_db) == sorted(
            [*firsts, *stored], key=lambda e: e.timestamp_ns
        )

    @pytest.mark.servers
    def test_partial_write_across_shard_groups_is_counted_exactly(self, fresh_db: str) -> None:
        firsts, batch, conflicting = self.shard_group_events()
        sink = InfluxDBSink(INFLUXDB_V1_URL, api="v1", database=fresh_db)
        sink.write(sink.prepare(EventBatch(firsts)))
        health = stream([sink], batch, batch_size=30)["influxdb"]
        assert counts(health) == (24, 0, {"rejected": 6})
        stored = [e for e in batch if e not in conflicting]
        assert influx_v1_events(INFLUXDB_V1_URL, fresh_db) == sorted(
            [*firsts, *stored], key=lambda e: e.timestamp_ns
        )

    def test_unhealthy_error_after_a_written_half_counts_that_half(
        self, loopback: Callable[..., LoopbackServer]
    ) -> None:
        """A 413 split whose second half meets a 401: the first half stays counted as written."""
        answers = iter([(413, b"{}"), (204, b""), (401, b'{"error":"authorization failed"}')])

        def respond(request: Received) -> Reply:
            status, body = next(answers) if request.method == "POST" else (204, b"")
            return status, {}, body

        server = loopback(respond)
        events = [
            MetricEvent("m", fields={"v": i}, timestamp_ns=i, before_2001=True) for i in range(10)
        ]
        health = stream([make_sink(server.url, "v1")], events, batch_size=10)["influxdb"]
        assert counts(health) == (5, 0, {"rejected": 5})
        assert (health.connected, health.healthy) == (False, False)

    def test_refused_events_stay_rejected_when_the_rest_of_a_split_exhausts_its_retries(
        self, loopback: Callable[..., LoopbackServer], caplog: pytest.LogCaptureFixture
    ) -> None:
        """100 -> 50 + 50 by a 413; the first half is a partial write (dropped=3), the
        second half meets 503s until the retries run out."""

        def respond(request: Received) -> Reply:
            lines = request.text.split("\n")
            if request.method != "POST":
                return 204, {}, b""
            if len(lines) > 50:
                return 413, {}, b'{"error":"Request Entity Too Large"}'
            if lines[0].startswith("m v=0i "):
                error = (
                    'partial write: field type conflict: input field "v" on measurement "m" '
                    "is type integer, already exists as type string dropped=3"
                )
                return 400, {}, json.dumps({"error": error}).encode()
            return 503, {}, b"overloaded"

        caplog.set_level(logging.WARNING, logger="metricstream")
        server = loopback(respond)
        retry = RetryConfig(max_retries=2, initial_delay_ms=1, max_delay_ms=1, jitter=False)
        streamer = EventStreamer(
            [make_sink(server.url, "v1")], batch_size=100, flush_interval=60, retry=retry,
            register_atexit=False,
        )  # fmt: skip
        with streamer:
            events = [
                MetricEvent("m", fields={"v": i}, timestamp_ns=BASE_NS + i) for i in range(100)
            ]
            assert streamer.send_many(events) == 100
            assert streamer.flush(timeout=60) is True
            health = streamer.health().sinks["influxdb"]
        assert counts(health) == (47, 0, {"rejected": 3, "retries_exhausted": 50})
        assert TestPartialWriteCounting.posts(server) == [
            (100, 413), (50, 400), (50, 503), (50, 503), (50, 503)
        ]  # fmt: skip
        dropped = [r.getMessage() for r in caplog.records if "dropped" in r.getMessage()]
        assert len(dropped) == 1
        assert "dropped 53 events of batch" in dropped[0]
        assert "(rejected: 3, retries_exhausted: 50)" in dropped[0]


def unstorable_events(prefix: str, *, v1: bool) -> list[MetricEvent]:
    """One event per kind of name (and, for v1, value and timestamp) the server cannot store."""
    ts = (time.time_ns() // 1_000_000 - 120_000) * 1_000_000
    events = []
    for n, char in enumerate(' ,="'):
        name = f"a\\{char}b"
        events += [
            MetricEvent(f"{prefix}_{name}", fields={"f": 1.0}, timestamp_ns=ts + n),
            MetricEvent(prefix, tags={name: "x"}, fields={"f": 2.0}, timestamp_ns=ts + n),
            MetricEvent(prefix, tags={"t": name}, fields={"f": 3.0}, timestamp_ns=ts + n),
            MetricEvent(prefix, fields={name: 4.0}, timestamp_ns=ts + n),
        ]
    if v1:
        events += [
            MetricEvent(prefix, fields={"f": 5.0, "u": UInt(7)}, timestamp_ns=ts),
            MetricEvent(prefix, fields={"f": 6.0}, timestamp_ns=2**63 - 1),
            MetricEvent(prefix, fields={"f": 7.0}, timestamp_ns=-(2**63), before_2001=True),
        ]
    return events


def storable_events(prefix: str, count: int) -> list[MetricEvent]:
    """Events both servers store exactly: float fields, names with escapes but no misread."""
    ts = (time.time_ns() // 1_000_000 - 60_000) * 1_000_000
    return [
        MetricEvent(
            prefix,
            tags={"host name": f"h {i % 3}", "seq": str(i), "pa\\th": "C:\\dir"},
            fields={"f": i + 0.25, "g,=": -i * 1.5},
            timestamp_ns=ts + i * 1_000_000,
        )
        for i in range(count)
    ]


@pytest.mark.servers
class TestUnstorableEventsThroughStreamer:
    """Events the server cannot store are dropped as invalid, one by one; the rest are written."""

    def test_influxdb_1_6(self, fresh_db: str) -> None:
        good = storable_events("ok", 200)
        bad = unstorable_events("bad", v1=True)
        assert len(bad) == 19
        mixed = good[:100] + bad + good[100:]
        sink = InfluxDBSink(INFLUXDB_V1_URL, api="v1", database=fresh_db)
        health = stream([sink], mixed, batch_size=100)["influxdb"]
        assert counts(health) == (200, 0, {"invalid": 19})
        assert influx_v1_events(INFLUXDB_V1_URL, fresh_db) == good

    def test_victoriametrics(self, vm_server: str) -> None:
        """VictoriaMetrics stores unsigned fields (as floats): only the names are refused."""
        prefix = f"msv2_{RUN_ID}_names"
        good = storable_events(prefix, 200)
        bad = unstorable_events(f"{prefix}_bad", v1=False)
        unsigned = MetricEvent(
            prefix, tags={"seq": "u"}, fields={"f": UInt(7)}, timestamp_ns=good[0].timestamp_ns
        )
        mixed = good[:100] + bad + [unsigned] + good[100:]
        sink = InfluxDBSink(vm_server, org="o", bucket="b")
        health = stream([sink], mixed, batch_size=100)["influxdb"]
        assert counts(health) == (201, 0, {"invalid": 16})
        stored = vm_events(vm_server, prefix, 201)
        as_float = MetricEvent(
            prefix, tags={"seq": "u"}, fields={"f": 7.0}, timestamp_ns=good[0].timestamp_ns
        )
        assert sorted(stored, key=repr) == sorted([*good, as_float], key=repr)

    def test_victoriametrics_a_string_with_a_newline_is_dropped_as_invalid_not_lost(
        self, vm_server: str
    ) -> None:
        """Five events, one with a newline in a string: four written and stored, one invalid."""
        prefix = f"msv2_{RUN_ID}_nlstream"
        ts = (time.time_ns() // 1_000_000 - 60_000) * 1_000_000
        events = [
            MetricEvent(
                prefix,
                tags={"seq": str(i)},
                fields={"n": float(i), "s": "two\nlines" if i == 2 else f"line {i}"},
                timestamp_ns=ts + i * 1_000_000,
            )
            for i in range(5)
        ]
        sink = InfluxDBSink(vm_server, org="o", bucket="b")
        health = stream([sink], events, batch_size=5)["influxdb"]
        assert counts(health) == (4, 0, {"invalid": 1})
        # VictoriaMetrics stores a string field as a 0 sample.
        stored = [
            MetricEvent(prefix, tags=e.tags, fields={"n": e.fields["n"], "s": 0.0},
                        timestamp_ns=e.timestamp_ns)
            for e in events if e.tags["seq"] != "2"
        ]  # fmt: skip
        assert vm_events(vm_server, prefix, 4) == stored


class TestMemoryBehindADeadServer:
    """Payloads queued behind a dead server hold compressed bytes, not events."""

    def test_queued_payloads_hold_no_events_and_a_fraction_of_the_line_protocol(self) -> None:
        count, batch_size = 50_000, 1000
        url = f"http://127.0.0.1:{free_port()}"
        sink = InfluxDBSink(url, api="v1", database="d")
        retry = RetryConfig(
            max_retries=100, initial_delay_ms=60_000, max_delay_ms=60_000, max_elapsed_ms=600_000
        )
        streamer = EventStreamer(
            [sink], batch_size=batch_size, flush_interval=60, retry=retry, register_atexit=False
        )

        def alive() -> list[object]:
            """The events, and the batches holding their parts, still in memory."""
            return [
                o
                for o in gc.get_objects()
                if (isinstance(o, MetricEvent) and o.measurement == "deadsrv")
                or (
                    isinstance(o, EventBatch)
                    and len(o)
                    and o.columns().measurements[0] == "deadsrv"
                )
            ]

        def queued() -> list[InfluxDBPayload]:
            return [o for o in gc.get_objects() if isinstance(o, InfluxDBPayload)]

        def event(i: int) -> MetricEvent:
            return MetricEvent(
                "deadsrv", tags={"host": f"web-{i % 20}"}, fields={"latency": i * 0.25, "n": i},
                timestamp_ns=BASE_NS + i * 1000,
            )  # fmt: skip

        line_protocol_bytes = sum(len(event(i).to_influx_line()) + 1 for i in range(count))
        try:
            assert streamer.send_many(event(i) for i in range(count)) == count
            deadline = time.monotonic() + 60
            while alive() or len(queued()) < count // batch_size:
                assert time.monotonic() < deadline, "events still held after 60 s"
                time.sleep(0.1)
            gc.collect()
            payloads = queued()
            assert (len(payloads), sum(p.count for p in payloads)) == (count // batch_size, count)
            assert streamer.health().sinks["influxdb"].pending == count
            queued_bytes = sum(len(p.body) for p in payloads)
            assert queued_bytes * 5 < line_protocol_bytes
        finally:
            streamer.shutdown(timeout=2)
        health = streamer.health().sinks["influxdb"]
        assert counts(health) == (0, 0, {"shutdown": count})


def pool_locks(sink: InfluxDBSink) -> list[Any]:
    """The locks of the connection pools a sink's transport uses now."""
    transport: Any = sink._transport
    if sink.options.api == "v1":
        return [transport.pool.pools.lock]
    return [transport.client.api_client.rest_client.pool_manager.pools.lock]


@contextlib.contextmanager
def held_by_another_thread(locks: list[Any]) -> Iterator[None]:
    """Hold `locks` in a thread of their own for the duration of the block."""
    held, release = threading.Event(), threading.Event()

    def hold() -> None:
        for lock in locks:
            lock.acquire()
        held.set()
        release.wait()
        for lock in locks:
            lock.release()

    holder = threading.Thread(target=hold)
    holder.start()
    try:
        assert held.wait(30), "the pool locks were not free within 30 s"
        yield
    finally:
        release.set()
        holder.join()


def fork_and_run(body: Callable[[], dict[str, Any]], timeout: float = 90.0) -> dict[str, Any]:
    """Run `body` in a forked child; return what it returned (or its error), or fail on a hang."""
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: never returns into pytest
        try:
            os.close(read_end)
            try:
                result = body()
            except BaseException as exc:
                result = {"error": repr(exc)}
            os.write(write_end, json.dumps(result).encode())
        finally:
            os._exit(0)
    os.close(write_end)
    chunks, deadline = [], time.monotonic() + timeout
    try:
        while True:
            ready, _, _ = select.select([read_end], [], [], max(0.0, deadline - time.monotonic()))
            if not ready:
                os.kill(pid, 9)
                pytest.fail(f"the forked child hung for {timeout} s")
            chunk = os.read(read_end, 65536)
            if not chunk:
                break
            chunks.append(chunk)
    finally:
        os.close(read_end)
        os.waitpid(pid, 0)
    result: dict[str, Any] = json.loads(b"".join(chunks))
    return result


@pytest.mark.servers
@pytest.mark.skipif(not hasattr(os, "fork"), reason="os.fork is POSIX-only")
class TestFork:
    """A child forked while the parent streams writes through connections of its own."""

    def test_children_forked_while_four_threads_send_write_to_both_servers(
        self, fresh_db: str, vm_server: str
    ) -> None:
        """At each fork a parent thread holds both sinks' pool locks, as a writer might."""
        prefix = f"msv2_{RUN_ID}_fork"
        ts = (time.time_ns() // 1_000_000 - 600_000) * 1_000_000
        sinks = [
            InfluxDBSink(INFLUXDB_V1_URL, api="v1", database=fresh_db, name="influx1"),
            InfluxDBSink(vm_server, org="o", bucket="b", name="vm"),
        ]
        streamer = EventStreamer(sinks, batch_size=100, flush_interval=0.01, register_atexit=False)
        forks_done = threading.Event()
        sent = [0] * 4

        def event(who: str, i: int) -> MetricEvent:
            return MetricEvent(prefix, tags={"who": who}, fields={"n": float(i)},
                               timestamp_ns=ts + i * 1_000_000)  # fmt: skip

        def send(thread: int) -> None:
            while not forks_done.is_set() or sent[thread] < 200:
                streamer.send(event(f"parent{thread}", sent[thread]))
                sent[thread] += 1
                time.sleep(0.001)

        def child(index: int) -> dict[str, Any]:
            accepted = streamer.send_many(event(f"child{index}", i) for i in range(300))
            flushed = streamer.flush(timeout=30)
            health = streamer.health().sinks
            streamer.shutdown(timeout=5)
            written = {name: [h.events_written, h.events_dropped, h.pending]
                       for name, h in health.items()}  # fmt: skip
            return {"accepted": accepted, "flushed": flushed, "written": written}

        senders = [threading.Thread(target=send, args=(k,)) for k in range(4)]
        for sender in senders:
            sender.start()
        try:
            for index in range(3):
                while min(sent) < 50 * (index + 1):
                    time.sleep(0.01)
                with held_by_another_thread([lock for s in sinks for lock in pool_locks(s)]):
                    result = fork_and_run(lambda index=index: child(index))
                assert result == {
                    "accepted": 300, "flushed": True,
                    "written": {"influx1": [300, 0, 0], "vm": [300, 0, 0]},
                }  # fmt: skip
        finally:
            forks_done.set()
            for sender in senders:
                sender.join()
            flushed = streamer.flush(timeout=60)
            parent = streamer.health().sinks
            streamer.shutdown(timeout=10)
        assert flushed is True
        total = sum(sent)
        assert [parent[name].events_written for name in ("influx1", "vm")] == [total, total]
        expected = [
            *(event(f"parent{k}", i) for k in range(4) for i in range(sent[k])),
            *(event(f"child{c}", i) for c in range(3) for i in range(300)),
        ]
        key = lambda e: (e.tags["who"], e.timestamp_ns)  # noqa: E731
        assert sorted(influx_v1_events(INFLUXDB_V1_URL, fresh_db), key=key) == sorted(
            expected, key=key
        )
        stored = vm_events(vm_server, prefix, len(expected))
        assert sorted(stored, key=key) == sorted(expected, key=key)


class TestThroughStreamer:
    """Events sent through an EventStreamer reach InfluxDB 1.6 and VictoriaMetrics."""

    @staticmethod
    def wait_for(condition: Callable[[], bool], timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        while not condition():
            assert time.monotonic() < deadline, "condition not met in time"
            time.sleep(0.05)

    @pytest.mark.servers
    def test_thousands_of_events_to_both_servers(self, fresh_db: str, vm_server: str) -> None:
        prefix = f"msst_{RUN_ID}"
        events = numeric_events(prefix, 5000)
        v1 = InfluxDBSink(INFLUXDB_V1_URL, api="v1", database=fresh_db, name="influx1")
        v2 = InfluxDBSink(vm_server, org="o", bucket="b", name="vm")
        streamer = EventStreamer(
            [v1, v2], batch_size=700, flush_interval=0.1, register_atexit=False
        )
        with streamer:
            assert streamer.send_many(event.copy() for event in events) == 5000
            assert streamer.flush(timeout=60) is True
            health = streamer.health()
        for name in ("influx1", "vm"):
            sink = health.sinks[name]
            assert (sink.events_accepted, sink.events_written, sink.events_dropped) == (
                5000,
                5000,
                0,
            )
        assert influx_rows(INFLUXDB_V1_URL, fresh_db) == expected_rows(events)
        expected = expected_vm(events)
        assert vm_samples(vm_server, vm_regex(prefix), len(expected)) == expected

    @pytest.mark.servers
    def test_server_stopped_and_restarted_mid_stream(self, influxd: InfluxdProcess) -> None:
        db = f"stream_restart_{RUN_ID}"
        influxd.create_database(db)
        sink = InfluxDBSink(influxd.url, api="v1", database=db, name="influx", timeout=2.0)
        retry = RetryConfig(
            max_retries=1000, initial_delay_ms=20, max_delay_ms=200, max_elapsed_ms=120_000
        )
        events = [MetricEvent("sr", fields={"v": i}, timestamp_ns=BASE_NS + i) for i in range(4000)]
        streamer = EventStreamer(
            [sink], batch_size=500, flush_interval=0.05, retry=retry, register_atexit=False
        )
        try:
            assert streamer.send_many(e.copy() for e in events[:2000]) == 2000
            assert streamer.flush(timeout=30) is True
            influxd.stop()
            assert streamer.send_many(e.copy() for e in events[2000:]) == 2000
            self.wait_for(lambda: streamer.health().sinks["influx"].retries >= 3)
            assert streamer.health().sinks["influx"].connected is False
            influxd.start()
            assert streamer.flush(timeout=60) is True
            health = streamer.health().sinks["influx"]
        finally:
            assert streamer.shutdown(timeout=30) is True
        assert (health.events_written, health.events_dropped, health.pending) == (4000, 0, 0)
        assert health.retries >= 3
        assert health.connected is True
        assert influx_rows(influxd.url, db) == expected_rows(events)

    @pytest.mark.servers
    def test_wrong_credentials_drop_as_rejected_and_mark_unhealthy(self, auth_server: str) -> None:
        sink = InfluxDBSink(
            auth_server,
            api="v1",
            database="metricstream_test",
            username=INFLUXDB_AUTH_USER,
            password="Wrong-pw-77",
            name="influx",
        )
        streamer = EventStreamer([sink], batch_size=100, flush_interval=0.05, register_atexit=False)
        with streamer:
            streamer.send_many(MetricEvent("m", fields={"v": i}) for i in range(250))
            assert streamer.flush(timeout=30) is True
            health = streamer.health()
        sink_health = health.sinks["influx"]
        assert (sink_health.events_written, sink_health.dropped_by_reason["rejected"]) == (0, 250)
        assert (health.healthy, sink_health.healthy, sink_health.connected) == (False, False, False)
        assert sink_health.last_error == (
            f"PermanentSinkError: write to {auth_server} failed: authentication failed for user "
            f"{INFLUXDB_AUTH_USER!r}: HTTP 401: authorization failed"
        )
        assert "Wrong-pw-77" not in health.to_json()

    @pytest.mark.parametrize(
        ("streamer_compression", "own", "encoding"),
        [
            ("none", None, None),
            ("zstd", None, "gzip"),
            ("none", True, "gzip"),
            ("gzip", False, None),
        ],
    )
    def test_streamer_compression_is_the_default_and_the_sinks_own_wins(
        self,
        loopback: Callable[..., LoopbackServer],
        streamer_compression: str,
        own: bool | None,
        encoding: str | None,
    ) -> None:
        server = loopback(ok)
        sink = InfluxDBSink(server.url, api="v1", database="d", gzip=own)
        with EventStreamer(
            [sink], compression=streamer_compression, flush_interval=0.05, register_atexit=False
        ) as streamer:
            streamer.send(MetricEvent("m", fields={"v": 1}, timestamp_ns=1, before_2001=True))
            assert streamer.flush(timeout=10) is True
        (request,) = [r for r in server.received if r.method == "POST"]
        assert request.headers.get("Content-Encoding") == encoding
        assert request.text == "m v=1i 1"


# --- property: hostile but valid events round-trip through InfluxDB 1.6 ---------

_NAME_CHARS = st.sampled_from([*" ,=\"'\\#.-_/:;{}[]()aZ09é☃𝄞日", "\\ ", "\\,", "\\=", '\\"'])
_CONTROL_CHARS = [chr(c) for c in range(0x20)] + ["\x7f"]
_name_chars = _NAME_CHARS | st.characters(
    blacklist_categories=["Cs"], blacklist_characters=_CONTROL_CHARS
)


def influxdb_reads_back(event: MetricEvent) -> bool:
    """False for events with a name InfluxDB misreads, which the sink refuses.

    InfluxDB reads a backslash as escaping whatever follows it, while line
    protocol writes a literal backslash as is. So a literal backslash right
    before a space, comma, ``=`` or ``"`` (written ``\\\\ ``, ``\\\\,``,
    ``\\\\=``, ``\\"``) is misread by InfluxDB 1.6:

    - measurement: before a space or comma the point is lost after a 204 (the
      series exists, its fields do not); before ``=`` or ``"`` the backslash
      is dropped;
    - field key: before a space, comma or ``=`` the write fails (400); before
      ``"`` the backslash is dropped;
    - tag key or value: the entry itself is stored right, but the server's
      line splitter may then join the next line to it (400 for the batch).
    """
    names = [event.measurement, *event.tags, *event.tags.values(), *event.fields]
    return not any(f"\\{c}" in name for name in names for c in ' ,="')


_names = (
    st.lists(_name_chars, min_size=1, max_size=8)
    .map("".join)
    .filter(lambda s: not s.endswith("\\"))
)
_keys = _names.filter(lambda s: s not in ("time", "_measurement", "_field"))
_measurements = _names.filter(lambda s: not s.startswith("#"))
_strings = st.text(st.characters(blacklist_categories=["Cs"]), max_size=40) | st.sampled_from(
    HOSTILE_STRINGS
)
_values_by_type: dict[str, st.SearchStrategy[Any]] = {
    "float": st.floats(allow_nan=False, allow_infinity=False),
    "integer": st.integers(-(2**63), 2**63 - 1),
    "boolean": st.booleans(),
    "string": _strings,
}


@st.composite
def hostile_batches(draw: st.DrawFn) -> tuple[list[MetricEvent], str]:
    """Events with hostile names and values; each field key keeps one type per example."""
    precision = draw(st.sampled_from(sorted(PRECISIONS)))
    measurements = draw(st.lists(_measurements, min_size=1, max_size=3, unique=True))
    field_types = draw(
        st.dictionaries(_keys, st.sampled_from(sorted(_values_by_type)), min_size=1, max_size=5)
    )
    tag_keys = draw(st.lists(_keys, max_size=4, unique=True))
    base = draw(
        st.sampled_from([BASE_NS, 0, -(10**18), INFLUX_MIN_NS + 10**12, INFLUX_MAX_NS - 10**15])
    )
    count = draw(st.integers(1, 30))
    events = []
    for i in range(count):
        keys = draw(st.lists(st.sampled_from(sorted(field_types)), min_size=1, unique=True))
        fields = {k: draw(_values_by_type[field_types[k]]) for k in keys}
        tags = (
            {k: draw(_names) for k in draw(st.lists(st.sampled_from(tag_keys), unique=True))}
            if tag_keys
            else {}
        )
        events.append(
            MetricEvent(
                draw(st.sampled_from(measurements)),
                tags=tags,
                fields=fields,
                timestamp_ns=base + i * PRECISIONS[precision],
                before_2001=True,
            )
        )
    return events, precision


@pytest.mark.servers
class TestHostileRoundTrip:
    """Hypothesis: hostile but valid events come back from InfluxDB 1.6 exactly, or are refused."""

    @settings(
        max_examples=200,
        deadline=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
    )
    @given(case=hostile_batches())
    def test_hostile_events_round_trip_exactly_or_are_refused_one_by_one(
        self, v1_server: str, case: tuple[list[MetricEvent], str]
    ) -> None:
        """prepare() refuses exactly the events InfluxDB would misread; the rest round-trip."""
        events, precision = case
        readable = [e for e in events if influxdb_reads_back(e)]
        db = f"hyp_{RUN_ID}_{uuid.uuid4().hex[:8]}"
        create_database(v1_server, db)
        try:
            sink = InfluxDBSink(v1_server, api="v1", database=db, precision=precision)
            for event in events:
                if event not in readable:
                    with pytest.raises(InvalidEventError):
                        sink.prepare(EventBatch([event]))
            if len(readable) < len(events):
                with pytest.raises(InvalidEventError) as info:
                    sink.prepare(EventBatch(events))
                unreadable = [i for i, e in enumerate(events) if not influxdb_reads_back(e)]
                assert info.value.indexes == tuple(unreadable)
            write_batches(sink, readable)
            sink.close()
            assert influx_rows(v1_server, db) == expected_rows(readable, precision)
        finally:
            drop_database(v1_server, db)
