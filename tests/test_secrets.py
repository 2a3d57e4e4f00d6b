"""Secrets appear nowhere: not in repr, str, logs at DEBUG, health, the HTTP endpoint or errors.

Every network sink is given credentials and pointed where they fail (a
wrong password, a broker without SASL, a Redis without a password), so that
errors, retries, probes and logs all happen; then everything the library
said is searched for the secrets.
"""

from __future__ import annotations

import logging
import threading
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable

import pytest

import metricstream as ms
from metricstream.sinks import CounterMapping, InfluxDBSink, KafkaSink, RedisCounterSink

from .servers import (
    INFLUXDB_AUTH_URL,
    KAFKA_BOOTSTRAP,
    REDIS_URL,
    VM_URL,
    RedisProcess,
    host_port,
    require,
    require_url,
)
from .support import DEADLINE_MARGIN

SECRET = f"Sec/ret?#@{uuid.uuid4().hex[:6]} 'pw"
"""A password with every character that once broke redaction."""
TOKEN = f"tok{uuid.uuid4().hex}"
SASL = f"sasl-{uuid.uuid4().hex}"


def probe_noting(check: Callable[[], None], probed: threading.Event) -> Callable[[], None]:
    """`check`, which also sets `probed` each time it has run (raising or not)."""

    def noted() -> None:
        try:
            check()
        finally:
            probed.set()

    return noted


def fetch(url: str) -> str:
    try:
        with urllib.request.urlopen(url, timeout=10) as response:
            return str(response.read().decode())
    except urllib.error.HTTPError as exc:
        return str(exc.read().decode())


class TestSecretsAppearNowhere:
    """Search everything the library says for three secrets."""

    @pytest.mark.servers
    def test_failing_sinks_with_credentials_leak_nothing(
        self, caplog: pytest.LogCaptureFixture, request: pytest.FixtureRequest
    ) -> None:
        require_url("influxdb (auth)", INFLUXDB_AUTH_URL)
        require_url("victoria-metrics", VM_URL)
        require_url("redis", REDIS_URL)
        require("kafka", *host_port(f"kafka://{KAFKA_BOOTSTRAP}"))
        redis = RedisProcess("--requirepass", "another-password")
        redis.start()
        request.addfinalizer(redis.stop)
        sinks: list[ms.Sink] = [
            InfluxDBSink(
                INFLUXDB_AUTH_URL, api="v1", database="metricstream_test",
                username="admin", password=SECRET, name="influx-v1",
            ),
            InfluxDBSink(VM_URL, org="o", bucket="b", token=TOKEN, name="influx-v2"),
            KafkaSink(
                KAFKA_BOOTSTRAP,
                f"secrets-{uuid.uuid4().hex[:8]}",
                delivery_timeout_ms=1500,
                producer_config={
                    "security.protocol": "SASL_PLAINTEXT",
                    "sasl.mechanism": "PLAIN",
                    "sasl.username": "user",
                    "sasl.password": SASL,
                },
            ),
            RedisCounterSink(
                redis.url(SECRET),
                mapping=CounterMapping(count=["measurement"]),
            ),
        ]  # fmt: skip
        said: list[str] = [repr(sink) for sink in sinks] + [str(sink) for sink in sinks]
        failing = ("influx-v1", "kafka", "redis-counters")
        probed = {sink.name: threading.Event() for sink in sinks if sink.name in failing}
        for sink in sinks:
            if sink.name in probed:
                sink.check = probe_noting(sink.check, probed[sink.name])  # type: ignore[method-assign]
        with caplog.at_level(logging.DEBUG):
            streamer = ms.EventStreamer(
                sinks,
                batch_size=10,
                retry=ms.RetryConfig(max_retries=1, initial_delay_ms=1, max_delay_ms=5),
                probe_interval=0.1,
                register_atexit=False,
            )
            address = streamer.serve_health()
            base = f"http://{address[0]}:{address[1]}"
            streamer.send_many(ms.event_from_sample("m", i) for i in range(30))
            streamer.flush(20)
            # The failing sinks' probes have run too, and logged what they log.
            assert all(event.wait(DEADLINE_MARGIN) for event in probed.values())
            health = streamer.health()
            said += [
                repr(streamer),
                health.to_json(),
                fetch(f"{base}/healthz"),
                fetch(f"{base}/metrics"),
                fetch(f"{base}/status.json"),
            ]
            streamer.shutdown(5)
        said += [record.getMessage() for record in caplog.records]
        said += [str(record.exc_info[1]) for record in caplog.records if record.exc_info]
        for name in failing:
            assert health.sinks[name].write_errors > 0, name
        text = "\n".join(said)
        for secret in (SECRET, TOKEN, SASL, urllib.request.quote(SECRET, safe="")):
            assert secret not in text

    @pytest.mark.parametrize(
        "url",
        [
            f"influxdb://admin:{SECRET}@127.0.0.1:1/db?precision=xx",
            f"influxdb2://127.0.0.1:1?org=o&bucket=b&token={TOKEN}&unknown=1",
            f"redis://:{SECRET}@127.0.0.1:1/0?unknown=1",
            f"kafka://127.0.0.1:1/topic?sasl.password={SASL}&format=yaml",
            f"jsonl://user:{SECRET}@host/x.jsonl",
            f"nosuchscheme://user:{SECRET}@host/",
        ],
        ids=lambda url: url.split(":", 1)[0],
    )
    def test_configuration_errors_leak_nothing(self, url: str) -> None:
        with pytest.raises(ms.ConfigError) as info:
            ms.sinks.sink_from_url(url)
        for secret in (SECRET, TOKEN, SASL):
            assert secret not in str(info.value)
            assert secret not in repr(info.value)
