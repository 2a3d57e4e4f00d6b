"""`metricstream health`, and the demo's health endpoint (`metricstream demo --health-port`)."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from metricstream.cli import main
from metricstream.cli.health import health_url
from metricstream.testing import FaultySink, InMemorySink

from .servers import free_port
from .support import sample, wait_until


def table(output: str) -> dict[str, list[str]]:
    """The rows of the sinks table, by sink (the header row under "sink")."""
    rows = {}
    for line in output.splitlines():
        cells = re.split(r"\s{2,}", line.strip())
        if len(cells) == 8:
            rows[cells[0]] = cells
    return rows


def answers(port: int) -> bool:
    try:
        urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=2).close()
    except urllib.error.HTTPError:
        return True
    except OSError:
        return False
    return True


class TestHealthCommand:
    """`metricstream health URL` prints a running streamer's health as a table or JSON."""

    def test_the_table_shows_every_sink_exactly(
        self, make_streamer, capsys: pytest.CaptureFixture[str]
    ) -> None:
        streamer = make_streamer(
            [InMemorySink("archive"), FaultySink(then=FaultySink.permanent(), name="warehouse")],
            batch_size=10,
        )
        host, port = streamer.serve_health()
        streamer.send_many(sample(i) for i in range(40))
        assert streamer.flush(10)
        errors = streamer.health().sinks["warehouse"].write_errors

        status = main(["health", f"http://{host}:{port}"])

        output = capsys.readouterr().out
        assert status == 1
        assert output.splitlines()[0] == (
            f"http://{host}:{port}/healthz: UNHEALTHY, running, 40 events accepted"
        )
        rows = table(output)
        assert rows["sink"] == [
            "sink", "state", "written", "pending", "dropped", "retries", "errors", "last write"
        ]  # fmt: skip
        assert rows["archive"][:7] == ["archive", "healthy", "40", "0", "0", "0", "0"]
        assert rows["archive"][7].endswith(" s ago")
        assert rows["warehouse"] == [
            "warehouse", "failing", "0", "0", "40", "0", str(errors), "never"
        ]  # fmt: skip
        assert "  warehouse dropped: rejected 40" in output
        assert (
            "  warehouse last error: PermanentSinkError: scripted permanent failure of warehouse"
            in output
        )

    def test_a_healthy_streamer_exits_0_and_a_port_alone_will_do(
        self, make_streamer, capsys: pytest.CaptureFixture[str]
    ) -> None:
        _, port = make_streamer([InMemorySink()]).serve_health()
        assert main(["health", str(port)]) == 0
        assert table(capsys.readouterr().out)["memory"][:2] == ["memory", "healthy"]

    @pytest.mark.parametrize("flags", [["--format", "json"], ["--json"]])
    def test_json_prints_the_document(
        self, flags: list[str], make_streamer, capsys: pytest.CaptureFixture[str]
    ) -> None:
        streamer = make_streamer([InMemorySink()])
        _, port = streamer.serve_health()
        streamer.send(sample(1))
        assert streamer.flush(10)
        assert main(["health", f"127.0.0.1:{port}", *flags]) == 0
        printed = capsys.readouterr()
        assert json.loads(printed.out) == streamer.health().to_dict()
        deprecated = "metricstream health: warning: --json is deprecated; use --format json\n"
        assert printed.err == (deprecated if flags == ["--json"] else "")

    def test_an_unreachable_endpoint_exits_1(self, capsys: pytest.CaptureFixture[str]) -> None:
        port = free_port()
        assert main(["health", str(port), "--timeout", "2"]) == 1
        assert f"cannot reach http://127.0.0.1:{port}/healthz" in capsys.readouterr().err

    def test_an_answer_that_is_not_a_health_document_exits_1(
        self, make_streamer, capsys: pytest.CaptureFixture[str]
    ) -> None:
        _, port = make_streamer([InMemorySink()]).serve_health()
        assert main(["health", f"http://127.0.0.1:{port}/index.html"]) == 1
        assert "answered 200 without a health document" in capsys.readouterr().err

    @pytest.mark.parametrize(
        ("given", "url"),
        [
            ("9464", "http://127.0.0.1:9464/healthz"),
            ("db:9464", "http://db:9464/healthz"),
            ("http://db:9464", "http://db:9464/healthz"),
            ("http://db:9464/", "http://db:9464/healthz"),
            ("https://db/ops/healthz", "https://db/ops/healthz"),
        ],
    )
    def test_the_url_may_be_short(self, given: str, url: str) -> None:
        assert health_url(given) == url


class TestDemoHealthPort:
    """`metricstream demo --health-port` serves /healthz and /metrics while it runs."""

    def test_the_running_demo_answers_health_and_metrics(
        self, tmp_path: Path, capsys: pytest.CaptureFixture[str]
    ) -> None:
        port = free_port()
        demo = subprocess.Popen(
            [sys.executable, "-m", "metricstream", "demo", "--duration", "3", "--rate", "300",
             "--output-dir", str(tmp_path), "--health-port", str(port)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )  # fmt: skip
        try:
            assert wait_until(lambda: answers(port), 30)
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=10) as r:
                assert sorted(json.loads(r.read())["sinks"]) == ["console", "jsonl"]
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as r:
                families = {f.name: f for f in text_string_to_metric_families(r.read().decode())}
            written = families["metricstream_events_written"].samples
            assert sorted(s.labels["sink"] for s in written) == ["console", "jsonl"]
            assert main(["health", str(port)]) in (0, 1)
            assert sorted(table(capsys.readouterr().out)) == ["console", "jsonl", "sink"]
        finally:
            out, err = demo.communicate(timeout=60)
        assert demo.returncode == 0, err
        assert f"Health: http://127.0.0.1:{port}/ (status page), /healthz, /metrics" in out
