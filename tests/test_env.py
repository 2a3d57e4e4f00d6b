"""EventStreamer.from_env: the METRICSTREAM_* variables, and errors naming variable and value."""

from __future__ import annotations

import json
import socket
import urllib.request
from pathlib import Path

import pytest

import metricstream as ms
from metricstream.codecs.compression import Compression
from metricstream.sinks import ConsoleSink, JsonLinesSink
from metricstream.streamer import StreamerConfig
from metricstream.streamer.operations.env import split_sink_urls
from metricstream.testing import InMemorySink

from .support import sample

MIB2 = 2 * 1024 * 1024


def from_env(environ: dict[str, str], **overrides: object) -> ms.EventStreamer:
    overrides.setdefault("register_atexit", False)
    return ms.EventStreamer.from_env(environ=environ, **overrides)


class TestVariables:
    """Each variable sets its option; unset and empty ones leave the defaults."""

    def test_every_variable_sets_its_option(self, tmp_path: Path) -> None:
        archive = tmp_path / "events.jsonl"
        streamer = from_env(
            {
                "METRICSTREAM_SINKS": f"console:json, jsonl:{archive}",
                "METRICSTREAM_DEFAULT_TAGS": "service=checkout, region = eu-west-1",
                "METRICSTREAM_BATCH_SIZE": "250",
                "METRICSTREAM_FLUSH_INTERVAL": "0.5",
                "METRICSTREAM_MAX_BUFFER": "5000",
                "METRICSTREAM_OVERFLOW": "drop_newest",
                "METRICSTREAM_COMPRESSION": "gzip",
                "METRICSTREAM_SELF_METRICS_INTERVAL": "30",
                "METRICSTREAM_HEALTH_PORT": "0",
            }
        )
        try:
            config = streamer.config
            assert (
                config.batch_size,
                config.flush_interval,
                config.max_buffer,
                config.overflow,
                config.compression,
                config.self_metrics_interval,
            ) == (250, 0.5, 5000, "drop_newest", Compression.GZIP, 30.0)
            assert config.default_tags == {"service": "checkout", "region": "eu-west-1"}
            assert [type(s) for s in streamer.sinks] == [ConsoleSink, JsonLinesSink]
            server = streamer._endpoint.server
            assert server is not None
            with urllib.request.urlopen(server.url + "/healthz", timeout=10) as response:
                assert sorted(json.loads(response.read())["sinks"]) == ["console", "jsonl"]
        finally:
            streamer.shutdown(5)

    def test_the_spool_variables_set_the_spool(self, tmp_path: Path) -> None:
        streamer = from_env(
            {
                "METRICSTREAM_SINKS": "console:",
                "METRICSTREAM_SPOOL_DIR": str(tmp_path / "spool"),
                "METRICSTREAM_SPOOL_MAX_BYTES": "2097152",
                "METRICSTREAM_SPOOL_FSYNC": "interval",
            }
        )
        try:
            config = streamer.config
            assert (config.spool_dir, config.spool_max_bytes, config.spool_fsync) == (
                str(tmp_path / "spool"),
                2_097_152,
                "interval",
            )
            assert (tmp_path / "spool" / "segments").is_dir()
        finally:
            streamer.shutdown(5)

    def test_every_option_with_a_text_form_is_read_from_its_own_variable(self) -> None:
        streamer = ms.EventStreamer.from_env(
            environ={
                "METRICSTREAM_SINKS": "console:",
                "METRICSTREAM_FLUSH_JITTER": "0.25",
                "METRICSTREAM_OVERFLOW": " Block ",
                "METRICSTREAM_BLOCK_TIMEOUT": "0.5",
                "METRICSTREAM_CORRELATION_PREFIX": "checkout",
                "METRICSTREAM_UNHEALTHY_AFTER": "7",
                "METRICSTREAM_PROBE_INTERVAL": "2.5",
                "METRICSTREAM_REGISTER_ATEXIT": "no",
                "METRICSTREAM_MAX_SERIES_PER_MEASUREMENT": "500",
                "METRICSTREAM_SAMPLE_SEED": "42",
                "METRICSTREAM_DEAD_LETTER_DIR": " /tmp/dead letters ",
                "METRICSTREAM_DEAD_LETTER_MAX_BYTES": "2097152",
            }
        )
        try:
            config = streamer.config
            assert (
                config.flush_jitter,
                config.overflow,
                config.block_timeout,
                config.correlation_prefix,
                config.unhealthy_after,
                config.probe_interval,
                config.register_atexit,
                config.max_series_per_measurement,
                config.sample_seed,
                config.dead_letter_dir,
                config.dead_letter_max_bytes,
            ) == (0.25, "block", 0.5, "checkout", 7, 2.5, False, 500, 42, "/tmp/dead letters", MIB2)
        finally:
            streamer.shutdown(5)

    def test_unset_and_empty_variables_leave_the_defaults(self) -> None:
        streamer = from_env({"METRICSTREAM_SINKS": "console:", "METRICSTREAM_BATCH_SIZE": " "})
        try:
            assert streamer.config == StreamerConfig(register_atexit=False)
            assert streamer._endpoint.server is None
        finally:
            streamer.shutdown(5)

    def test_overrides_win_and_their_variables_are_not_read(self) -> None:
        sink = InMemorySink()
        streamer = from_env(
            {"METRICSTREAM_SINKS": "no-such-scheme://x", "METRICSTREAM_BATCH_SIZE": "lots"},
            sinks=[sink],
            batch_size=3,
        )
        try:
            streamer.send_many(sample(i) for i in range(3))
            assert streamer.flush(10)
            assert (streamer.config.batch_size, len(sink.events)) == (3, 3)
        finally:
            streamer.shutdown(5)

    @pytest.mark.parametrize(
        ("text", "urls"),
        [
            ("console:", ["console:"]),
            ("console:json,jsonl:/tmp/a.jsonl", ["console:json", "jsonl:/tmp/a.jsonl"]),
            (" console: , jsonl:/tmp/a.jsonl ", ["console:", "jsonl:/tmp/a.jsonl"]),
            ("kafka://a:9092,b:9092/topic,console:", ["kafka://a:9092,b:9092/topic", "console:"]),
            ("console:,carrier-pigeon://coop", ["console:", "carrier-pigeon://coop"]),
            ("", []),
        ],
    )
    def test_sink_urls_split_only_where_a_scheme_follows(self, text: str, urls: list[str]) -> None:
        assert split_sink_urls(text) == urls


class TestErrors:
    """A bad value is a ConfigError naming the variable and the value, without secrets."""

    @pytest.mark.parametrize(
        ("variable", "value", "problem"),
        [
            ("METRICSTREAM_BATCH_SIZE", "ten", "must be an integer >= 1"),
            ("METRICSTREAM_BATCH_SIZE", "0", "must be an integer >= 1"),
            ("METRICSTREAM_MAX_BUFFER", "1e6", "must be an integer >= 1"),
            ("METRICSTREAM_FLUSH_INTERVAL", "-1", "must be a number of seconds > 0"),
            ("METRICSTREAM_FLUSH_INTERVAL", "nan", "must be a number of seconds > 0"),
            ("METRICSTREAM_OVERFLOW", "drop_all", "must be one of 'drop_oldest', 'drop_newest'"),
            ("METRICSTREAM_COMPRESSION", "lzma", "lzma"),
            ("METRICSTREAM_DEFAULT_TAGS", "service", "'service' is not key=value"),
            ("METRICSTREAM_DEFAULT_TAGS", "=x", "'=x' is not key=value"),
            ("METRICSTREAM_DEFAULT_TAGS", "a=\x01", "control character"),
            ("METRICSTREAM_SELF_METRICS_INTERVAL", "0", "must be a number of seconds > 0"),
            ("METRICSTREAM_HEALTH_PORT", "http", "must be an integer between 0 and 65535"),
            ("METRICSTREAM_HEALTH_PORT", "65536", "must be an integer between 0 and 65535"),
            ("METRICSTREAM_SPOOL_FSYNC", "often", "must be one of 'batch', 'interval', 'never'"),
            ("METRICSTREAM_SPOOL_MAX_BYTES", "10", "must be an integer >= 1048576"),
            ("METRICSTREAM_UNHEALTHY_AFTER", "0", "must be an integer >= 1"),
            ("METRICSTREAM_PROBE_INTERVAL", "soon", "must be a number of seconds > 0"),
            ("METRICSTREAM_BLOCK_TIMEOUT", "-1", "must be a number of seconds >= 0"),
            ("METRICSTREAM_DEFAULT_TAGS", "a=1,b=2,a=3", "tag 'a' is given twice"),
            ("METRICSTREAM_DEFAULT_TAGS", "a=1, a =1", "tag 'a' is given twice"),
        ],
    )
    def test_a_bad_value_names_the_variable_and_the_value(
        self, variable: str, value: str, problem: str
    ) -> None:
        with pytest.raises(ms.ConfigError) as info:
            from_env({"METRICSTREAM_SINKS": "console:", variable: value})
        message = str(info.value)
        assert info.value.option == variable
        assert message.startswith(f"{variable}: {value!r}")
        assert problem in message

    def test_options_that_disagree_name_the_variable(self) -> None:
        with pytest.raises(ms.ConfigError) as info:
            from_env(
                {
                    "METRICSTREAM_SINKS": "console:",
                    "METRICSTREAM_BATCH_SIZE": "500",
                    "METRICSTREAM_MAX_BUFFER": "100",
                }
            )
        assert str(info.value) == "METRICSTREAM_BATCH_SIZE: '500': 500 exceeds max_buffer=100"

    def test_missing_sinks_are_named(self) -> None:
        with pytest.raises(ms.ConfigError, match=r"^METRICSTREAM_SINKS: is not set"):
            from_env({})

    def test_a_bad_sink_url_is_named_without_its_password(self) -> None:
        url = "carrier-pigeon://admin:hunter2@coop:1/loft?token=s3cr3t"
        with pytest.raises(ms.ConfigError) as info:
            from_env({"METRICSTREAM_SINKS": f"console:,{url}"})
        message = str(info.value)
        assert message.startswith("METRICSTREAM_SINKS: 'carrier-pigeon://admin:***@coop:1/loft")
        assert "unknown sink URL scheme" in message
        assert "hunter2" not in message
        assert "s3cr3t" not in message

    def test_sinks_built_before_an_error_are_closed(self, tmp_path: Path) -> None:
        archive = tmp_path / "events.jsonl"
        with pytest.raises(ms.ConfigError, match=r"^METRICSTREAM_BATCH_SIZE: '50'"):
            from_env(
                {
                    "METRICSTREAM_SINKS": f"jsonl:{archive}",
                    "METRICSTREAM_BATCH_SIZE": "50",
                    "METRICSTREAM_MAX_BUFFER": "10",
                }
            )
        JsonLinesSink(archive).close()  # the file's writer lock was released

    def test_a_taken_health_port_names_the_variable_and_releases_the_sinks(
        self, tmp_path: Path
    ) -> None:
        archive = tmp_path / "events.jsonl"
        with socket.socket() as taken:
            taken.bind(("127.0.0.1", 0))
            taken.listen()
            port = taken.getsockname()[1]
            with pytest.raises(ms.ConfigError) as info:
                from_env(
                    {
                        "METRICSTREAM_SINKS": f"jsonl:{archive}",
                        "METRICSTREAM_HEALTH_PORT": str(port),
                    }
                )
        assert str(info.value).startswith(
            f"METRICSTREAM_HEALTH_PORT: '{port}': cannot listen on 127.0.0.1:{port}"
        )
        JsonLinesSink(archive).close()


class TestSpoolDirectoryErrors:
    """A spool directory that cannot be used is named by its variable, never by spool_dir."""

    @pytest.mark.parametrize("inside", ["segments", "acks"])
    def test_a_file_where_the_spool_keeps_a_directory(self, tmp_path: Path, inside: str) -> None:
        (tmp_path / inside).write_text("not a directory")
        with pytest.raises(ms.ConfigError) as info:
            from_env({"METRICSTREAM_SINKS": "console:", "METRICSTREAM_SPOOL_DIR": str(tmp_path)})
        assert info.value.option == "METRICSTREAM_SPOOL_DIR"
        assert str(info.value).startswith(
            f"METRICSTREAM_SPOOL_DIR: {str(tmp_path)!r}: cannot use {str(tmp_path)!r}: "
        )

    def test_a_spool_in_use_by_another_streamer(self, tmp_path: Path) -> None:
        first = from_env(
            {"METRICSTREAM_SINKS": "console:", "METRICSTREAM_SPOOL_DIR": str(tmp_path)}
        )
        try:
            with pytest.raises(ms.ConfigError) as info:
                from_env(
                    {"METRICSTREAM_SINKS": "console:", "METRICSTREAM_SPOOL_DIR": str(tmp_path)}
                )
            assert info.value.option == "METRICSTREAM_SPOOL_DIR"
            assert "is in use by another streamer" in str(info.value)
        finally:
            first.shutdown(5)


class TestUnknownVariables:
    """A METRICSTREAM_* variable metricstream does not read is reported, with the closest one."""

    @pytest.mark.parametrize(
        ("written", "meant"),
        [
            ("METRICSTREAM_BATCHSIZE", "METRICSTREAM_BATCH_SIZE"),
            ("METRICSTREAM_SPOOLDIR", "METRICSTREAM_SPOOL_DIR"),
            ("METRICSTREAM_SPOOL_MAX_BYTE", "METRICSTREAM_SPOOL_MAX_BYTES"),
            ("METRICSTREAM_SINK", "METRICSTREAM_SINKS"),
            ("METRICSTREAM_HEALTH_READYZ", "METRICSTREAM_HEALTH_READY"),
        ],
    )
    def test_a_misspelled_variable_is_warned_about_naming_the_closest(
        self, written: str, meant: str
    ) -> None:
        environ = {"METRICSTREAM_SINKS": "console:", written: "5"}
        if written == "METRICSTREAM_SINK":
            environ = {"METRICSTREAM_SINKS": "console:", written: "console:"}
        with pytest.warns(UserWarning, match=written) as caught:
            streamer = from_env(environ)
        streamer.shutdown(5)
        [warning] = [w for w in caught if w.category is UserWarning]
        assert str(warning.message) == (
            f"{written} is not a variable metricstream reads; it is ignored; did you mean {meant}?"
        )
        assert warning.filename == __file__  # it points at the from_env call

    def test_a_variable_like_no_other_is_warned_about_without_a_guess(self) -> None:
        with pytest.warns(UserWarning, match="METRICSTREAM_ZZZ") as caught:
            from_env({"METRICSTREAM_SINKS": "console:", "METRICSTREAM_ZZZ": "1"}).shutdown(5)
        assert [str(w.message) for w in caught if w.category is UserWarning] == [
            "METRICSTREAM_ZZZ is not a variable metricstream reads; it is ignored"
        ]

    def test_every_variable_read_is_known_and_none_warns(
        self, recwarn: pytest.WarningsRecorder
    ) -> None:
        from metricstream.streamer.operations.env import known_variables

        environ = dict.fromkeys(known_variables(), "")
        environ["METRICSTREAM_SINKS"] = "console:"
        from_env(environ).shutdown(5)
        assert [str(w.message) for w in recwarn if w.category is UserWarning] == []


class TestHealthReadiness:
    """METRICSTREAM_HEALTH_READY chooses what /readyz asks of the sinks."""

    def test_the_policy_is_read_with_the_port(self) -> None:
        streamer = from_env(
            {
                "METRICSTREAM_SINKS": "console:",
                "METRICSTREAM_HEALTH_PORT": "0",
                "METRICSTREAM_HEALTH_READY": " Any ",
            }
        )
        try:
            host, port = streamer.serve_health()
            with urllib.request.urlopen(f"http://{host}:{port}/readyz", timeout=10) as answer:
                assert json.loads(answer.read())["policy"] == "any"
        finally:
            streamer.shutdown(5)

    def test_a_bad_policy_names_the_variable(self) -> None:
        with pytest.raises(ms.ConfigError) as info:
            from_env(
                {
                    "METRICSTREAM_SINKS": "console:",
                    "METRICSTREAM_HEALTH_PORT": "0",
                    "METRICSTREAM_HEALTH_READY": "most",
                }
            )
        assert str(info.value) == (
            "METRICSTREAM_HEALTH_READY: 'most': must be one of 'all', 'any', not 'most'"
        )


class TestOpenTelemetryVariables:
    """OTEL_SERVICE_NAME and OTEL_RESOURCE_ATTRIBUTES give default tags, under ours."""

    def config(self, environ: dict[str, str], **overrides: object) -> StreamerConfig:
        streamer = from_env({"METRICSTREAM_SINKS": "console:", **environ}, **overrides)
        streamer.shutdown(5)
        return streamer.config

    def test_the_service_name_and_the_resource_attributes_become_tags(self) -> None:
        config = self.config(
            {
                "OTEL_RESOURCE_ATTRIBUTES": "deployment.environment=prod, team = a%2Cb%3Dc,empty=",
                "OTEL_SERVICE_NAME": "checkout",
            }
        )
        assert config.default_tags == {
            "deployment.environment": "prod",
            "team": "a,b=c",
            "service.name": "checkout",
        }

    def test_precedence_ours_then_the_service_name_then_the_attributes(self) -> None:
        environ = {
            "OTEL_RESOURCE_ATTRIBUTES": "service.name=from-attributes,region=eu,zone=a",
            "OTEL_SERVICE_NAME": "from-service-name",
            "METRICSTREAM_DEFAULT_TAGS": "zone=b",
        }
        assert self.config(environ).default_tags == {
            "service.name": "from-service-name",
            "region": "eu",
            "zone": "b",
        }
        assert self.config(environ, default_tags={"only": "this"}).default_tags == {"only": "this"}
        del environ["OTEL_SERVICE_NAME"]
        assert self.config(environ).default_tags["service.name"] == "from-attributes"

    def test_the_tags_reach_the_events(self) -> None:
        sink = InMemorySink()
        streamer = from_env({"OTEL_SERVICE_NAME": "checkout"}, sinks=[sink])
        try:
            streamer.send(sample(1))
            assert streamer.flush(10)
        finally:
            streamer.shutdown(5)
        assert [dict(event.tags) for event in sink.events] == [{"service.name": "checkout"}]

    @pytest.mark.parametrize(
        ("variable", "value", "says"),
        [
            ("OTEL_RESOURCE_ATTRIBUTES", "region", "'region' is not key=value"),
            ("OTEL_RESOURCE_ATTRIBUTES", "=eu", "'=eu' is not key=value"),
            ("OTEL_RESOURCE_ATTRIBUTES", "a=%01", "control character"),
            ("OTEL_SERVICE_NAME", "bad\x01name", "control character"),
        ],
    )
    def test_a_bad_value_names_the_variable(self, variable: str, value: str, says: str) -> None:
        with pytest.raises(ms.ConfigError) as info:
            from_env({"METRICSTREAM_SINKS": "console:", variable: value})
        assert info.value.option == variable
        assert says in str(info.value)
