"""The server's HTTP surface: the token, CORS, InfluxDB writes, /stats and /metrics."""

from __future__ import annotations

import base64
import gzip
import secrets
import socket
import subprocess
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.server_support import ServerProcess, stored

TOKEN = "t0ken-with-enough-entropy"


@pytest.fixture(scope="module")
def guarded(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    directory = tmp_path_factory.mktemp("guarded")
    env = {"METRICSTREAM_SERVE_TOKEN": TOKEN}
    with ServerProcess(directory, "--cors", "https://app.example", env=env) as server:
        yield server


def bearer(token: str = TOKEN) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


class TestToken:
    """With a token, every endpoint but /healthz and /readyz needs it."""

    @pytest.mark.parametrize(
        ("method", "path"),
        [("GET", "/stats"), ("GET", "/keys"), ("GET", "/keys/a/values"), ("GET", "/metrics"),
         ("POST", "/events"), ("POST", "/query"), ("POST", "/query/validate"), ("GET", "/"),
         ("GET", "/page/app.js"), ("POST", "/write?db=x"), ("POST", "/api/v2/write?bucket=b"),
         ("GET", "/schema/query.json"), ("GET", "/nowhere")],
    )  # fmt: skip
    def test_refused_without_it(self, guarded: ServerProcess, method: str, path: str) -> None:
        for headers in ({}, bearer("wrong"), {"Authorization": "Token " + TOKEN}):
            if headers.get("Authorization", "").startswith("Token") and "write" in path:
                continue
            response = httpx.request(method, guarded.url + path, headers=headers)
            assert response.status_code == 401, (path, headers)
            assert response.json() == {"error": "this server needs its token"}
            assert "www-authenticate" in response.headers

    def test_health_needs_nothing(self, guarded: ServerProcess) -> None:
        assert httpx.get(guarded.url + "/healthz").status_code == 200
        assert httpx.get(guarded.url + "/readyz").status_code == 200

    def test_the_ways_to_give_it(self, guarded: ServerProcess) -> None:
        assert httpx.get(guarded.url + "/stats", headers=bearer()).status_code == 200
        basic = base64.b64encode(f"anyone:{TOKEN}".encode()).decode()
        page = httpx.get(guarded.url + "/", headers={"Authorization": f"Basic {basic}"})
        assert page.status_code == 200
        assert "text/html" in page.headers["content-type"]
        line = b"m,host=a v=1 1\n"
        for url, headers in [
            ("/write?db=x", {"Authorization": f"Token {TOKEN}"}),
            (f"/write?db=x&u=me&p={TOKEN}", {}),
            ("/api/v2/write?bucket=b&org=o", {"Authorization": f"Token {TOKEN}"}),
        ]:
            assert httpx.post(guarded.url + url, content=line, headers=headers).status_code == 204

    def test_the_page_asks_a_browser_for_it(self, guarded: ServerProcess) -> None:
        assert httpx.get(guarded.url + "/").headers["www-authenticate"].startswith("Basic")
        assert httpx.get(guarded.url + "/stats").headers["www-authenticate"].startswith("Bearer")


class TestCors:
    """Only the origins given get CORS headers."""

    def test_the_allowed_origin(self, guarded: ServerProcess) -> None:
        response = httpx.options(
            guarded.url + "/query",
            headers={"Origin": "https://app.example", "Access-Control-Request-Method": "POST",
                     "Access-Control-Request-Headers": "authorization,content-type"},
        )  # fmt: skip
        assert response.status_code == 200
        assert response.headers["access-control-allow-origin"] == "https://app.example"

    def test_another_origin(self, guarded: ServerProcess) -> None:
        response = httpx.get(
            guarded.url + "/stats", headers={**bearer(), "Origin": "https://evil.example"}
        )
        assert "access-control-allow-origin" not in response.headers

    def test_none_without_the_option(self, tmp_path: Path) -> None:
        with ServerProcess(tmp_path) as server:
            response = httpx.get(server.url + "/stats", headers={"Origin": "https://app.example"})
            assert "access-control-allow-origin" not in response.headers


class TestInflux:
    """InfluxDB clients and curl write line protocol into the same archive."""

    def test_influxdb_client_writes_and_sees_bad_lines(self, guarded: ServerProcess) -> None:
        from influxdb_client import InfluxDBClient
        from influxdb_client.client.write_api import SYNCHRONOUS
        from influxdb_client.rest import ApiException

        before = len(stored(guarded))
        with InfluxDBClient(url=guarded.url, token=TOKEN, org="o") as client:
            writer = client.write_api(write_options=SYNCHRONOUS)
            writer.write("b", record="cpu,host=ü usage=0.5,n=3i 1714521600000000000")
            writer.write("b", record=["cpu,host=a usage=1 1714521600", "mem free=2i 1714521601"],
                         write_precision="s")  # fmt: skip
            with pytest.raises(ApiException) as caught:
                writer.write("b", record="cpu usage=1 1\ncpu usage=\ncpu usage=3 3")
        assert caught.value.status == 400
        assert "line 2" in caught.value.body
        found = stored(guarded)[before:]
        assert [(e.measurement, e.timestamp_ns) for e in found] == [
            ("cpu", 1714521600000000000), ("cpu", 1714521600000000000),
            ("mem", 1714521601000000000), ("cpu", 1), ("cpu", 3),
        ]  # fmt: skip
        assert found[0].tags == {"host": "ü"}
        assert found[0].fields["n"] == 3
        assert len({e.fields["event_id"] for e in found}) == 5

    def test_curl_with_gzip_and_a_bad_line(self, guarded: ServerProcess, tmp_path: Path) -> None:
        body = tmp_path / "lines.gz"
        body.write_bytes(
            gzip.compress(b"disk,dev=sda used=1i 10\nno fields here\ndisk used=2i 20\n")
        )
        before = len(stored(guarded))
        result = subprocess.run(
            ["curl", "-s", "-o", "-", "-w", "\n%{http_code}", "-H", "Content-Encoding: gzip",
             "--data-binary", f"@{body}", f"{guarded.url}/write?db=x&precision=n&u=x&p={TOKEN}"],
            capture_output=True, text=True, check=True, timeout=30,
        )  # fmt: skip
        text, status = result.stdout.rsplit("\n", 1)
        assert status == "400"
        assert '"line":2' in text
        assert "unable to parse 'no fields here'" in text
        assert [e.fields["used"] for e in stored(guarded)[before:]] == [1, 2]

    def test_a_line_that_sets_event_id_is_bad(self, guarded: ServerProcess) -> None:
        response = httpx.post(
            guarded.url + "/api/v2/write?bucket=b", headers={"Authorization": f"Token {TOKEN}"},
            content=b"m v=1 1\nm event_id=\"x\",v=2 2\n",
        )  # fmt: skip
        assert response.status_code == 400
        assert response.json()["code"] == "invalid"
        assert response.json()["line"] == 2

    def test_the_database_is_required(self, guarded: ServerProcess) -> None:
        response = httpx.post(guarded.url + "/write", content=b"m v=1", headers=bearer())
        assert response.json() == {"error": "database is required", "path": "db"}


class TestFigures:
    """/stats and /metrics count what was stored."""

    def test_stats_and_metrics(self, tmp_path: Path) -> None:
        with ServerProcess(tmp_path) as server:
            events = [{"ts": 1714521600000 + i, "data": {"i": i}} for i in range(30)]
            for chunk in (events[:10], events[10:]):
                assert httpx.post(server.url + "/events", json={"events": chunk}).status_code == 200
            assert httpx.post(server.url + "/events", json={"x": 1}).status_code == 400
            stats = httpx.get(server.url + "/stats").json()
            assert stats["events"] == 30
            assert stats["oldest_event"] == "2024-05-01T00:00:00Z"
            assert stats["newest_event"] == "2024-05-01T00:00:00.029000Z"
            assert stats["ingest_rate_per_second"] == 0.5
            size = sum(p.stat().st_size for p in tmp_path.glob("events-*.jsonl.zst*"))
            assert stats["archive_bytes"] == size > 0
            assert stats["status"] == "ok"
            text = httpx.get(server.url + "/metrics").text
        samples = {
            (sample.name, tuple(sorted(sample.labels.items()))): sample.value
            for family in text_string_to_metric_families(text)
            for sample in family.samples
        }
        route = (("method", "POST"), ("route", "/events"))
        assert samples[("metricstream_server_requests_total", (*route, ("status", "200")))] == 2
        assert samples[("metricstream_server_requests_total", (*route, ("status", "400")))] == 1
        assert (
            samples[("metricstream_server_events_ingested_total", (("endpoint", "events"),))] == 30
        )
        assert samples[("metricstream_server_query_seconds_count", ())] == 1


class TestTokenNeverShown:
    """Neither the token nor a wrong one is ever in the server's output, refusals and errors too."""

    def test_not_in_stdout_or_stderr(self, tmp_path: Path) -> None:
        token = "tok-" + secrets.token_hex(12)
        wrong = "bad-" + secrets.token_hex(12)
        password = "pw-" + secrets.token_hex(8)
        # A sink that is down: its failures are logged while the server runs.
        down = f"influxdb://writer:{password}@127.0.0.1:1/nowhere"
        env = {"METRICSTREAM_SERVE_TOKEN": token}
        server = ServerProcess(tmp_path, "--to", down, "--max-body-bytes", "65536", env=env)
        secrets_shown = [token, wrong, password]
        with server:
            statuses = {given: requests_carrying(server.url, given) for given in (token, wrong)}
            secrets_shown += [basic_credentials(token), basic_credentials(wrong)]
            assert statuses[wrong] == [401] * 10
            assert statuses[token] == [200, 400, 413, 415, 400, 200, 400, 400, 404, 405]
            assert malformed_request(server.url, token).startswith(b"HTTP/1.1 400 ")
            code = server.stop()
        out, err = server.output()
        assert code == 0
        assert "token required" in server.banner
        assert out == "metricstream serve: stopped\n"
        # The output looked at holds the errors: the sink's failure and the malformed request.
        assert "write to sink 'influxdb' failed" in err
        assert "Invalid HTTP request received." in err
        text = server.banner + out + err
        assert [secret for secret in secrets_shown if secret in text] == []


def basic_credentials(token: str) -> str:
    return base64.b64encode(f"anyone:{token}".encode()).decode()


def requests_carrying(url: str, token: str) -> list[int]:
    """Requests that carry `token` every way it can be given, good and bad; their statuses."""
    auth = {"Authorization": f"Bearer {token}"}
    statuses = []
    with httpx.Client(base_url=url, timeout=30) as client:
        for method, path, headers, body in [
            ("POST", "/events", auth, b'{"events": [{"data": {"n": 1}}]}'),
            ("POST", "/events", auth, b"{nope"),
            ("POST", "/events", auth, b" " * 70_000),
            ("POST", "/events", {**auth, "Content-Encoding": "br"}, b"{}"),
            ("POST", "/query", auth, b'{"data": [{"name": "x", "filters": [{"type": "like"}]}]}'),
            ("GET", "/", {"Authorization": f"Basic {basic_credentials(token)}"}, None),
            ("POST", f"/write?db=x&u=me&p={token}", {}, b"no fields here"),
            ("POST", "/api/v2/write?bucket=b", {"Authorization": f"Token {token}"}, b"m v=\n"),
            ("GET", "/nowhere", auth, None),
            ("DELETE", "/events", auth, None),
        ]:
            statuses.append(client.request(method, path, headers=headers, content=body).status_code)
    return statuses


def malformed_request(url: str, token: str) -> bytes:
    """A request with the token and a header line that is not one; the server's answer."""
    host, port = url.removeprefix("http://").rsplit(":", 1)
    with socket.create_connection((host, int(port)), timeout=30) as connection:
        connection.sendall(
            f"GET /stats HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {token}\r\n"
            f"not a header {token}\r\n\r\n".encode()
        )
        return connection.recv(4096)
