"""The health endpoint: /healthz, /metrics (parsed by prometheus_client), its lifecycle."""

from __future__ import annotations

import gc
import json
import os
import socket
import urllib.error
import urllib.request
from typing import Any

import pytest
from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

import metricstream as ms
from metricstream.exceptions import TransientSinkError
from metricstream.streamer.operations.health_server import ThroughputHistory
from metricstream.streamer.operations.prometheus import StreamerCollector
from metricstream.testing import FaultySink, InMemorySink

from .support import FAST_RETRY, assert_balanced, sample, wait_until
from .test_fork import run_child


def get(url: str, method: str = "GET") -> tuple[int, dict[str, str], bytes]:
    """Fetch `url`; return (status, headers, body), for error statuses too."""
    request = urllib.request.Request(url, method=method)
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, dict(response.headers), response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, dict(exc.headers), exc.read()


def refuses(base: str) -> bool:
    """True when nothing accepts connections at `base` any more."""
    try:
        urllib.request.urlopen(base + "/healthz", timeout=2).close()
    except urllib.error.HTTPError:
        return False
    except OSError:
        return True
    return False


def serve(streamer: ms.EventStreamer) -> str:
    host, port = streamer.serve_health()
    return f"http://{host}:{port}"


def metric_values(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample of an exposition, keyed by (name, sorted labels)."""
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


class LeakySink(InMemorySink):
    """A sink whose writes fail with a message holding credentials."""

    def write(self, payload: Any) -> None:
        raise TransientSinkError(
            "POST http://admin:hunter2@db:8086/write?token=s3cr3t failed; "
            "Authorization: Bearer abc.def.ghi"
        )


class TestHealthz:
    """GET /healthz: 200 or 503 with every sink's health, credentials removed."""

    def test_a_healthy_streamer_answers_200_with_its_exact_health(self, make_streamer) -> None:
        streamer = make_streamer([InMemorySink("a"), InMemorySink("b")], batch_size=7)
        base = serve(streamer)
        streamer.send_many(sample(i) for i in range(50))
        assert streamer.flush(10)
        status, headers, body = get(base + "/healthz")
        assert status == 200
        assert headers["Content-Type"] == "application/json"
        assert json.loads(body) == streamer.health().to_dict()
        assert [json.loads(body)["sinks"][n]["events_written"] for n in ("a", "b")] == [50, 50]

    def test_an_unhealthy_streamer_answers_503(self, make_streamer) -> None:
        streamer = make_streamer([InMemorySink(), FaultySink(then="transient")], batch_size=5)
        base = serve(streamer)
        streamer.send_many(sample(i) for i in range(5))
        assert wait_until(lambda: not streamer.is_healthy(), 10)
        status, _, body = get(base + "/healthz")
        document = json.loads(body)
        assert (status, document["healthy"], document["sinks"]["faulty"]["healthy"]) == (
            503,
            False,
            False,
        )
        assert document["sinks"]["memory"]["healthy"] is True

    def test_credentials_leave_by_no_endpoint(self, make_streamer) -> None:
        streamer = make_streamer([LeakySink("leaky")], batch_size=1)
        base = serve(streamer)
        streamer.send(sample(1))
        assert wait_until(lambda: streamer.health().sinks["leaky"].last_error is not None)
        bodies = [get(base + path)[2].decode() for path in ("/healthz", "/status.json", "/metrics")]
        for body in bodies:
            for secret in ("hunter2", "s3cr3t", "abc.def.ghi"):
                assert secret not in body
        assert (
            "http://admin:***@db:8086/write?token=***"
            in json.loads(bodies[0])["sinks"]["leaky"]["last_error"]
        )

    def test_head_answers_without_a_body_and_unknown_paths_are_404(self, make_streamer) -> None:
        base = serve(make_streamer([InMemorySink()]))
        status, headers, body = get(base + "/healthz", method="HEAD")
        assert (status, body) == (200, b"")
        assert int(headers["Content-Length"]) > 0
        assert get(base + "/nothing-here")[0] == 404

    def test_the_status_page_is_self_contained(self, make_streamer) -> None:
        status, headers, body = get(serve(make_streamer([InMemorySink()])) + "/")
        page = body.decode()
        assert (status, headers["Content-Type"]) == (200, "text/html; charset=utf-8")
        assert "status.json" in page
        for external in ("http://", "https://", "<link", "src="):
            assert external not in page.replace("http://www.w3.org/2000/svg", "")


def probe(url: str) -> tuple[int, object]:
    status, _, body = get(url)
    return status, json.loads(body)


class TestProbes:
    """/livez fails only when the streamer's own threads died; /readyz follows its sinks."""

    def test_a_sink_that_is_down_fails_readiness_not_liveness(self, make_streamer) -> None:
        streamer = make_streamer([InMemorySink(), FaultySink(then="transient")], batch_size=5)
        host, port = streamer.serve_health()
        base = f"http://{host}:{port}"
        assert probe(base + "/readyz") == (
            200,
            {"ready": True, "policy": "all", "sinks": {"memory": True, "faulty": True}},
        )
        streamer.send_many(sample(i) for i in range(5))
        assert wait_until(lambda: not streamer.health().sinks["faulty"].healthy, 10)
        assert probe(base + "/livez") == (200, {"live": True, "error": None})
        assert probe(base + "/readyz") == (
            503,
            {"ready": False, "policy": "all", "sinks": {"memory": True, "faulty": False}},
        )
        assert get(base + "/healthz")[0] == 503
        assert streamer.serve_health(ready="any") == (host, port)
        assert probe(base + "/readyz") == (
            200,
            {"ready": True, "policy": "any", "sinks": {"memory": True, "faulty": False}},
        )

    def test_a_dead_batcher_fails_liveness(self, make_streamer, monkeypatch) -> None:
        streamer = make_streamer([InMemorySink()], batch_size=5)
        base = serve(streamer)

        def explode() -> bool:
            raise RuntimeError("simulated bug")

        monkeypatch.setattr(streamer._pipeline.batcher, "_cut_and_distribute", explode)
        streamer.send_many(sample(i) for i in range(5))
        assert streamer.flush(30) is False
        assert probe(base + "/livez") == (
            503,
            {"live": False, "error": "batcher died: RuntimeError: simulated bug"},
        )
        assert probe(base + "/readyz")[0] == 503
        assert streamer.health().live is False

    def test_a_dead_lane_thread_fails_liveness(self, make_streamer, monkeypatch) -> None:
        sink = InMemorySink()
        streamer = make_streamer([sink], batch_size=5)
        base = serve(streamer)
        lane = streamer._pipeline.lanes[0]

        def explode(_work: object) -> None:
            raise RuntimeError("simulated bug")

        monkeypatch.setattr(lane, "_deliver", explode)
        streamer.send_many(sample(i) for i in range(5))
        assert wait_until(lambda: not streamer.health().live, 10)
        assert probe(base + "/livez") == (503, {"live": False, "error": None})
        assert streamer.health().sinks["memory"].last_error == (
            "lane thread died: RuntimeError: simulated bug"
        )

    def test_an_unknown_readiness_policy_is_refused(self, make_streamer) -> None:
        streamer = make_streamer([InMemorySink()])
        with pytest.raises(ms.ConfigError) as info:
            streamer.serve_health(ready="most")
        assert str(info.value) == "ready: must be one of 'all', 'any', not 'most'"


class TestMetrics:
    """GET /metrics: the counters per sink, in the exposition format prometheus_client parses."""

    def test_metrics_parse_and_equal_the_health_snapshot(self, make_streamer) -> None:
        streamer = make_streamer(
            [InMemorySink("archive"), FaultySink(then=FaultySink.permanent(), name="warehouse")],
            batch_size=20,
        )
        base = serve(streamer)
        streamer.send_many(sample(i) for i in range(120))
        assert streamer.flush(10)
        status, headers, body = get(base + "/metrics")
        assert status == 200
        assert headers["Content-Type"] == CONTENT_TYPE_LATEST
        values = metric_values(body.decode())
        health = streamer.health()
        for name, sink in health.sinks.items():
            label = (("sink", name),)
            assert values["metricstream_events_accepted_total", label] == sink.events_accepted
            assert values["metricstream_events_written_total", label] == sink.events_written
            assert values["metricstream_events_pending", label] == sink.pending
            assert values["metricstream_write_retries_total", label] == sink.retries
            assert values["metricstream_write_errors_total", label] == sink.write_errors
            assert values["metricstream_sink_healthy", label] == int(sink.healthy)
            for reason, count in sink.dropped_by_reason.items():
                key = (("reason", reason), ("sink", name))
                assert values["metricstream_events_dropped_total", key] == count
        rejected = (("reason", "rejected"), ("sink", "warehouse"))
        assert values["metricstream_events_written_total", (("sink", "archive"),)] == 120
        assert values["metricstream_events_dropped_total", rejected] == 120
        assert ("metricstream_last_write_latency_seconds", (("sink", "archive"),)) in values
        assert ("metricstream_last_write_latency_seconds", (("sink", "warehouse"),)) not in values
        assert (values["metricstream_healthy", ()], values["metricstream_running", ()]) == (0, 1)

    def test_the_collector_plugs_into_any_registry_and_leaves_the_global_one_alone(
        self, make_streamer
    ) -> None:
        before = set(REGISTRY._names_to_collectors)
        streamer = make_streamer([InMemorySink("x")], batch_size=3)
        base = serve(streamer)
        streamer.send_many(sample(i) for i in range(9))
        assert streamer.flush(10)
        get(base + "/metrics")
        registry = CollectorRegistry()
        registry.register(StreamerCollector(streamer.health))
        values = metric_values(generate_latest(registry).decode())
        assert values["metricstream_events_written_total", (("sink", "x"),)] == 9
        assert set(REGISTRY._names_to_collectors) == before

    def test_two_streamers_serve_side_by_side(self, make_streamer) -> None:
        first, second = make_streamer([InMemorySink()]), make_streamer([InMemorySink()])
        bases = [serve(first), serve(second)]
        assert bases[0] != bases[1]
        first.send_many(sample(i) for i in range(4))
        second.send(sample(0))
        assert first.flush(10)
        assert second.flush(10)
        written = [
            metric_values(get(base + "/metrics")[2].decode())[
                "metricstream_events_written_total", (("sink", "memory"),)
            ]
            for base in bases
        ]
        assert written == [4, 1]


class TestLifecycle:
    """The server runs beside the streamer and stops with it."""

    def test_shutdown_stops_the_server(self, make_streamer) -> None:
        streamer = make_streamer([InMemorySink()])
        base = serve(streamer)
        assert get(base + "/healthz")[0] == 200
        assert streamer.shutdown(5)
        assert wait_until(lambda: refuses(base), 5)

    def test_a_collected_streamer_stops_its_server(self) -> None:
        streamer = ms.EventStreamer([InMemorySink()], register_atexit=False, retry=FAST_RETRY)
        base = serve(streamer)
        del streamer
        gc.collect()
        assert wait_until(lambda: refuses(base), 10)

    def test_serving_twice_returns_the_running_address(self, make_streamer) -> None:
        streamer = make_streamer([InMemorySink()])
        address = streamer.serve_health()
        assert streamer.serve_health() == address
        assert streamer.serve_health(port=address[1]) == address
        with socket.socket() as other:
            other.bind(("127.0.0.1", 0))
            elsewhere = other.getsockname()[1]
        with pytest.raises(ms.ConfigError, match="served on"):
            streamer.serve_health(port=elsewhere)

    def test_a_shut_down_streamer_serves_nothing(self, make_streamer) -> None:
        streamer = make_streamer([InMemorySink()])
        streamer.shutdown(5)
        with pytest.raises(ms.ConfigError, match="shut down"):
            streamer.serve_health()

    @pytest.mark.parametrize(("host", "port"), [("", 0), ("127.0.0.1", -1), ("127.0.0.1", 70000)])
    def test_a_bad_address_is_a_config_error(self, make_streamer, host: str, port: int) -> None:
        with pytest.raises(ms.ConfigError):
            make_streamer([InMemorySink()]).serve_health(host, port)

    def test_a_taken_port_is_a_config_error_naming_it(self, make_streamer) -> None:
        with socket.socket() as taken:
            taken.bind(("127.0.0.1", 0))
            taken.listen()
            port = taken.getsockname()[1]
            with pytest.raises(ms.ConfigError, match=f"cannot listen on 127.0.0.1:{port}"):
                make_streamer([InMemorySink()]).serve_health(port=port)

    @pytest.mark.skipif(not hasattr(os, "fork"), reason="os.fork is POSIX-only")
    def test_a_forked_child_does_not_serve_and_the_parent_still_does(self, make_streamer) -> None:
        streamer = make_streamer([InMemorySink()])
        base = serve(streamer)

        def child() -> dict[str, object]:
            return {"serving": streamer._endpoint.server is not None}

        _, report = run_child(child)
        assert report == {"serving": False}
        assert get(base + "/healthz")[0] == 200


class TestHistory:
    """The throughput history the status page charts."""

    def test_status_json_samples_cumulative_counts(self, make_streamer) -> None:
        streamer = make_streamer([InMemorySink()], batch_size=10)
        base = serve(streamer)
        streamer.send_many(sample(i) for i in range(30))
        assert streamer.flush(10)

        def history() -> dict[str, Any]:
            return json.loads(get(base + "/status.json")[2])["history"]  # type: ignore[no-any-return]

        assert wait_until(lambda: history()["sinks"]["memory"]["written"][-1] == 30, 10)
        seen = history()
        assert seen["times"] == sorted(seen["times"])
        assert len(seen["times"]) == len(seen["sinks"]["memory"]["written"])
        assert_balanced(streamer.health(), sent=30)

    def test_the_history_is_bounded(self) -> None:
        history = ThroughputHistory(interval=1.0, span=5.0)
        health = ms.StreamerHealth(healthy=True, running=True, events_accepted=0)
        for at in range(20):
            history.record(health, at=float(at))
        assert history.to_dict()["times"] == [14.0, 15.0, 16.0, 17.0, 18.0, 19.0]
