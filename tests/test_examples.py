"""The examples run as their docstrings say, and print what they promise."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from metricstream.sinks.jsonl import read_events
from tests.influx_readback import influx_query, quote_identifier
from tests.servers import (
    INFLUXDB_V1_URL,
    KAFKA_BOOTSTRAP,
    REDIS_URL,
    host_port,
    require,
    require_url,
)

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


def run_example(
    name: str, *args: str, cwd: Path, env: dict[str, str] | None = None, status: int = 0
) -> subprocess.CompletedProcess[str]:
    """Run ``python examples/NAME ARGS`` in `cwd`; assert it exits with `status`."""
    result = subprocess.run(
        [sys.executable, str(EXAMPLES / name), *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        env=env,
    )
    assert result.returncode == status, result.stdout + result.stderr
    return result


class TestWebApp:
    """web_app.py: every request timed under its own correlation id, failures by name."""

    def test_routes_outcomes_and_correlation(self, tmp_path: Path) -> None:
        result = run_example("web_app.py", "--requests", "100", "--clients", "3", cwd=tmp_path)
        rows = re.findall(r"^(/\S*)\s+(\S+)\s+(\d+)\s+[\d.]+\s+[\d.]+$", result.stdout, re.M)
        assert sorted(rows) == [
            ("/boom", "RuntimeError", "20"),
            ("/orders", "ok", "40"),
            ("/orders/{id}", "KeyError", "20"),
            ("/orders/{id}", "ok", "20"),
        ]
        assert "db.query_ms events: 40, 40 inside their request" in result.stdout
        assert "responses counted by the app: 200 x60, 404 x20, 500 x20" in result.stdout
        assert "statuses seen by the clients: 200 x60, 404 x20, 500 x20" in result.stdout
        events = list(read_events(tmp_path / "web_app.jsonl.zst"))
        requests = [e for e in events if e.measurement == "http.request_ms"]
        assert sorted(e.correlation_id for e in requests) == sorted(f"req-{i}" for i in range(100))


class TestOtelBridge:
    """otel_bridge.py: OpenTelemetry counts and sums arrive intact through metricstream."""

    def test_totals_read_back_equal_the_ones_placed(self, tmp_path: Path) -> None:
        result = run_example("otel_bridge.py", "--orders", "40", cwd=tmp_path)
        placed = re.findall(r"placed\s+(\d+)\s+read back\s+(\d+)", result.stdout)
        assert placed
        assert all(a == b for a, b in placed)
        assert sum(int(a) for a, _ in placed) == 40
        amounts = re.search(r"placed ([\d.]+) EUR, read back ([\d.]+) EUR", result.stdout)
        assert amounts is not None
        assert amounts.group(1) == amounts.group(2)


class TestLoggingEvents:
    """logging_events.py: warnings and errors become events; metricstream's own do not."""

    def test_the_tally_and_no_feedback(self, tmp_path: Path) -> None:
        result = run_example("logging_events.py", cwd=tmp_path)
        assert "5 log events in logging_events.jsonl.zst:" in result.stdout
        assert re.search(r"^  ERROR\s+shop.inventory\s+3$", result.stdout, re.M)
        assert re.search(r"^  WARNING\s+shop.payments\s+2$", result.stdout, re.M)
        assert "events from metricstream's own log lines: 0" in result.stdout
        assert "sink 'flaky' dropped" in result.stderr  # metricstream did log it
        events = list(read_events(tmp_path / "logging_events.jsonl.zst"))
        assert [e.correlation_id for e in events] == [f"order-{n}" for n in (3, 4, 5, 6, 8)]


class TestInfluxDashboard:
    """influx_dashboard.py: against the real InfluxDB 1.6, the last minute matches what was sent."""

    @pytest.mark.servers
    def test_the_dashboard_agrees_with_the_events_sent(self, tmp_path: Path) -> None:
        require_url("InfluxDB 1.6 (v1 API)", INFLUXDB_V1_URL)
        database = f"example_{uuid.uuid4().hex[:10]}"
        env = {**os.environ, "INFLUXDB_URL": INFLUXDB_V1_URL}
        try:
            result = run_example(
                "influx_dashboard.py",
                "--database",
                database,
                "--requests",
                "300",
                cwd=tmp_path,
                env=env,
            )
        finally:
            influx_query(INFLUXDB_V1_URL, f"DROP DATABASE {quote_identifier(database)}")
        assert "written 300, dropped 0" in result.stdout
        counts = re.findall(r"^  /\S+\s+(\d+) \((\d+)\)", result.stdout, re.M)
        assert len(counts) == 4
        assert all(ours == theirs for ours, theirs in counts)
        assert sum(int(n) for n, _ in counts) == 300
        assert "InfluxDB agrees with what was sent: yes" in result.stdout

    def test_a_missing_server_fails_clearly(self, tmp_path: Path) -> None:
        env = {**os.environ, "INFLUXDB_URL": "http://127.0.0.1:9"}
        result = run_example("influx_dashboard.py", cwd=tmp_path, env=env, status=1)
        assert "InfluxDB is not reachable at http://127.0.0.1:9" in result.stderr


class TestDocstrings:
    """Each example's docstring says how to run it."""

    @pytest.mark.parametrize(
        "name",
        [
            "quickstart.py",
            "web_app.py",
            "influx_dashboard.py",
            "otel_bridge.py",
            "logging_events.py",
        ],
    )
    def test_the_docstring_gives_the_command(self, name: str) -> None:
        source = (EXAMPLES / name).read_text(encoding="utf-8")
        assert re.search(rf"Run with ``python examples/{re.escape(name)}", source)


class TestAnalyticsPipeline:
    """analytics_pipeline.py: Kafka reads back every event; Redis counters equal what was sent."""

    @pytest.mark.servers
    def test_the_stream_and_the_dashboard_match_what_was_sent(self, tmp_path: Path) -> None:
        require_url("redis", REDIS_URL)
        require("kafka", *host_port(f"kafka://{KAFKA_BOOTSTRAP}"))
        env = {**os.environ, "KAFKA_BOOTSTRAP": KAFKA_BOOTSTRAP, "REDIS_URL": REDIS_URL}
        result = run_example("analytics_pipeline.py", "--events", "5000", cwd=tmp_path, env=env)
        out = result.stdout
        assert re.search(r"^kafka\s+written 5,000 dropped 0$", out, re.M)
        assert re.search(r"^redis-counters\s+written 5,000 dropped 0$", out, re.M)
        assert "5,000 events read back (sent 5,000)" in out
        assert "the same events as sent: True" in out
        rows = re.findall(r"^  (\w+)\s+([\d,]+)\s+([\d,]+)$", out, re.M)
        assert len(rows) == 5
        assert all(counted == sent for _, counted, sent in rows)
        revenue = re.findall(r"^  (\w+)\s+([\d,.]+)\s+([\d,.]+)$", out, re.M)
        assert revenue
        assert all(summed == sent for _, summed, sent in revenue)

    def test_a_missing_server_is_a_clear_failure(self, tmp_path: Path) -> None:
        env = {**os.environ, "KAFKA_BOOTSTRAP": "127.0.0.1:1", "REDIS_URL": REDIS_URL}
        result = run_example("analytics_pipeline.py", cwd=tmp_path, env=env, status=1)
        assert "Kafka does not answer at 127.0.0.1:1: set KAFKA_BOOTSTRAP" in result.stdout


class TestServerAddresses:
    """The examples that use servers take their addresses from documented variables."""

    @pytest.mark.parametrize(
        ("name", "defaults"),
        [
            ("influx_dashboard.py", {"INFLUXDB_URL": ("INFLUXDB_URL", "http://localhost:8086")}),
            (
                "analytics_pipeline.py",
                {
                    "KAFKA_BOOTSTRAP": ("KAFKA", "localhost:9092"),
                    "REDIS_URL": ("REDIS", "redis://localhost:6379/0"),
                },
            ),
        ],
    )
    def test_without_the_variables_the_usual_local_ports_and_the_docstring_says_so(
        self, name: str, defaults: dict[str, tuple[str, str]]
    ) -> None:
        clean = {k: v for k, v in os.environ.items() if k not in defaults}
        constants = [constant for constant, _ in defaults.values()]
        shown = subprocess.run(
            [sys.executable, "-c", "import runpy, sys; namespace = runpy.run_path(sys.argv[1]); "
             "print(*(namespace[name] for name in sys.argv[2:]))", str(EXAMPLES / name),
             *constants],
            capture_output=True, text=True, check=True, env=clean,
        )  # fmt: skip
        assert shown.stdout.split() == [default for _, default in defaults.values()]
        docstring = " ".join((EXAMPLES / name).read_text(encoding="utf-8").split('"""')[1].split())
        for variable, (_, default) in defaults.items():
            assert f"``${variable}`` (default ``{default}``)" in docstring
