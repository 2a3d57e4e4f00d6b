"""The relay's options and their errors, its command line and its metrics, without a broker."""

from __future__ import annotations

import pytest

from metricstream.cli import main as cli_main
from metricstream.exceptions import ConfigError
from metricstream.relay import KafkaSource, Relay, RelayOptions, parse_source
from metricstream.relay.stats import RelayCounters, RelayHealth, render_relay_metrics
from metricstream.testing import InMemorySink

URL = "kafka://a:1,b:2/t1,t2?group=g"


class TestSourceUrls:
    """A kafka:// source URL reads into a KafkaSource; every mistake names the option."""

    def test_a_full_url(self) -> None:
        source = parse_source(f"{URL}&dlq=dead&start=latest&session.timeout.ms=2000")
        assert source == KafkaSource(
            "a:1,b:2",
            ("t1", "t2"),
            group="g",
            start="latest",
            dlq="dead",
            consumer_config={"session.timeout.ms": "2000"},
        )
        settings = source.consumer_settings()
        assert settings["group.id"] == "g"
        assert settings["enable.auto.commit"] is False
        assert settings["auto.offset.reset"] == "latest"
        assert settings["session.timeout.ms"] == "2000"
        assert parse_source(URL, start="latest").start == "latest"

    @pytest.mark.parametrize(
        ("url", "option"),
        [
            ("http://a:1/t?group=g", "source"),
            ("kafka://user:secret@a:1/t?group=g", "source"),
            ("kafka:///t?group=g", "bootstrap_servers"),
            ("kafka://a:1/?group=g", "topics"),
            ("kafka://a:1/t", "group"),
            ("kafka://a:1/t?group=g&colour=red", "colour"),
            ("kafka://a:1/t?group=g&start=never", "start"),
            ("kafka://a:1/bad topic?group=g", "topics"),
            ("kafka://a:1/t,t?group=g", "topics"),
            ("kafka://a:1/t?group=g&enable.auto.commit=true", "consumer_config"),
            ("kafka://a:1/t?group=g&dlq=no%20good", "dlq"),
        ],
    )
    def test_mistakes_name_the_option(self, url: str, option: str) -> None:
        with pytest.raises(ConfigError) as caught:
            parse_source(url)
        assert caught.value.option == option
        assert "secret" not in str(caught.value)


class TestRelayOptions:
    """Options that cannot work together are refused when the relay is built."""

    @pytest.mark.parametrize(
        ("options", "option"),
        [
            ({"windows": "tumbling 60s"}, "name"),
            ({"windows": "hopping 60s", "name": "w"}, "window"),
            ({"windows": "tumbling 60s", "name": "w", "by": "window"}, "by"),
            ({"windows": "tumbling 60s", "name": "w", "aggregates": "avg:x"}, "aggregates"),
            ({"late_to": [InMemorySink()]}, "late_to"),
            ({"max_buffer": 100, "max_batch_events": 1000}, "max_batch_events"),
            ({"health_port": 70000}, "health_port"),
        ],
    )
    def test_refused(self, options: dict[str, object], option: str) -> None:
        with pytest.raises(ConfigError) as caught:
            RelayOptions(URL, [InMemorySink()], **options)  # type: ignore[arg-type]
        assert caught.value.option == option

    def test_a_cooperative_assignment_is_refused(self) -> None:
        url = f"{URL}&partition.assignment.strategy=cooperative-sticky"
        with pytest.raises(ConfigError, match="eagerly"):
            RelayOptions(url, [InMemorySink()])

    def test_no_sink_is_refused(self) -> None:
        with pytest.raises(ConfigError) as caught:
            RelayOptions(URL, [])
        assert caught.value.option == "sinks"

    def test_a_window_text_builds_windows_with_the_options(self) -> None:
        relay = Relay(URL, [InMemorySink()], windows="session gap 30s", name="s", by="host",
                      aggregates="count,max:x", allowed_lateness=2, idle_timeout=5)  # fmt: skip
        try:
            windows = relay.windows
            assert windows is not None
            assert (windows.measurement, windows.by, windows.window.kind) == (
                "s",
                ("host",),
                "session",
            )
            assert windows.watermark.allowed_lateness_ns == 2_000_000_000
            assert windows.watermark.idle_timeout_ns == 5_000_000_000
        finally:
            relay.streamer.shutdown(1)


class TestCommandLine:
    """``metricstream relay`` refuses a bad source or sink before it starts, with status 2."""

    @pytest.mark.parametrize(
        ("args", "message"),
        [
            (["--from", "kafka://a:1/t", "--to", "console:"], "names no consumer group"),
            (["--from", URL, "--to", "nosuch://x"], "nosuch"),
            (["--from", URL, "--to", "console:", "--window", "tumbling 1m"], "--name"),
        ],
    )
    def test_bad_options(
        self, args: list[str], message: str, capsys: pytest.CaptureFixture[str]
    ) -> None:
        assert cli_main(["relay", *args]) == 2
        assert message in capsys.readouterr().err

    def test_a_bad_duration_is_refused_by_the_parser(self) -> None:
        with pytest.raises(SystemExit) as caught:
            cli_main(["relay", "--from", URL, "--to", "console:", "--allowed-lateness", "soon"])
        assert caught.value.code == 2


class TestMetrics:
    """/metrics renders the streamer's series and the relay's, from one snapshot."""

    def test_the_relay_series(self) -> None:
        counters = RelayCounters("kafka://a:1/t?group=g")
        counters.assigned([("t", 0), ("t", 1)])
        counters.update(("t", 0), committed=90, position=95, end=100, paused=True)
        counters.add("messages", 95)
        counters.add("dead_letters_failed", 2)
        counters.running = True
        health = RelayHealth(True, True, 0, {}, None, relay=counters.snapshot())
        body, content_type = render_relay_metrics(health)
        text = body.decode()
        assert content_type.startswith("text/plain")
        assert 'metricstream_relay_consumer_lag{partition="0",topic="t"} 10.0' in text
        assert 'metricstream_relay_committed_offset{partition="0",topic="t"} 90.0' in text
        assert "metricstream_relay_messages_total 95.0" in text
        assert 'metricstream_relay_dead_letters_total{outcome="failed"} 2.0' in text
        assert "metricstream_relay_partitions_paused 1.0" in text
        assert "metricstream_relay_partitions_assigned 2.0" in text
        assert "metricstream_healthy 1.0" in text
        assert health.to_dict()["relay"]["partitions"]["t/0"]["lag"] == 10
