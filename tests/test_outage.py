"""A server restart under the default configuration: nothing is lost, and the probes say so.

InfluxDB takes 10-30 s to restart. A private ``influxd`` is stopped for 30 s
while the application keeps sending; the streamer runs with every option at
its default (the retry policy among them). While the server is down the
test checks what an operator would look at: health says disconnected,
pending grows by exactly what was sent, nothing is dropped, ``/livez``
answers 200 (restarting the process would not help) and ``/readyz`` 503.
Once the server is back, everything sent is in InfluxDB, exactly once.
"""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
import uuid

import pytest

import metricstream as ms
from metricstream.sinks import InfluxDBSink

from .influx_readback import influx_v1_events
from .servers import InfluxdProcess, require_influxd
from .support import wait_until

OUTAGE_SECONDS = 30.0
"""How long the server stays down: a slow restart."""

T0 = 1_700_000_000_000_000_000


def probe(url: str) -> tuple[int, dict[str, object]]:
    """GET a probe; return (status, decoded JSON body), for 503 too."""
    try:
        with urllib.request.urlopen(url, timeout=10) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


@pytest.mark.servers
@pytest.mark.faults
class TestAnInfluxDBRestart:
    """Under the default configuration, a 30 s outage of InfluxDB loses nothing."""

    def test_a_30_s_outage_loses_nothing_and_the_probes_tell_it_right(self) -> None:
        with InfluxdProcess(require_influxd()) as influx:
            db = f"outage_{uuid.uuid4().hex[:8]}"
            influx.create_database(db)
            streamer = ms.EventStreamer([InfluxDBSink(influx.url, api="v1", database=db)])
            try:
                self.check_outage(streamer, influx)
                events = influx_v1_events(influx.url, db)
            finally:
                streamer.shutdown(5)
        assert [(e.timestamp_ns, e.fields["value"], e.tags["phase"]) for e in events] == [
            (T0 + i, i, phase) for i, phase in enumerate(self.phases)
        ]

    def check_outage(self, streamer: ms.EventStreamer, influx: InfluxdProcess) -> None:
        assert streamer.config.retry_policy == ms.RetryConfig()
        assert (ms.RetryConfig().max_retries, ms.RetryConfig().max_elapsed_ms) == (None, None)
        self.phases: list[str] = []
        host, port = streamer.serve_health()
        base = f"http://{host}:{port}"
        self.send(streamer, 500, "before")
        assert streamer.flush(30) is True
        influx.stop()
        outage_ends = time.monotonic() + OUTAGE_SECONDS
        self.send(streamer, 500, "during")
        assert wait_until(lambda: not streamer.health().sinks["influxdb"].healthy, 30)
        assert probe(base + "/readyz") == (
            503,
            {
                "ready": False,
                "policy": "all",
                "sinks": {"influxdb": False},
            },
        )
        while time.monotonic() < outage_ends:
            health = streamer.health().sinks["influxdb"]
            assert (health.connected, health.events_dropped) == (False, 0)
            assert health.events_written == 500
            assert health.pending == len(self.phases) - 500
            assert probe(base + "/livez") == (200, {"live": True, "error": None})
            self.send(streamer, 100, "during")
            time.sleep(1.0)  # the outage itself
        influx.start()
        assert streamer.flush(60) is True
        health = streamer.health().sinks["influxdb"]
        assert (health.events_written, health.events_dropped, health.pending) == (
            len(self.phases),
            0,
            0,
        )
        assert health.dropped_by_reason == dict.fromkeys(ms.DROP_REASONS, 0)
        assert health.retries > 0
        assert probe(base + "/readyz")[0] == 200
        assert probe(base + "/livez")[0] == 200

    def send(self, streamer: ms.EventStreamer, count: int, phase: str) -> None:
        for _ in range(count):
            i = len(self.phases)
            assert streamer.send(
                ms.event_from_sample("restart", i, {"phase": phase}, timestamp_ns=T0 + i)
            )
            self.phases.append(phase)
