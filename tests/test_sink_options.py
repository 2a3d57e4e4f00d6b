"""Each sink's options are declared once: its constructor, its URL and its docs agree with them."""

from __future__ import annotations

import inspect
import os
import re
import subprocess
import sys
import urllib.parse
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

import metricstream as ms
from metricstream._options import declared, text_names
from metricstream.sinks import console, influxdb, jsonl, kafka, redis_counters
from metricstream.sinks.redis_counters import CounterMapping

from . import servers


@dataclass(frozen=True)
class Case:
    """One sink: its classes, a URL without query, and a text for each URL option.

    ``texts`` maps each query option to (its text, the value the sink must
    keep), written out here rather than computed; ``url_only`` names the
    URL options that are not options of the sink, and ``elsewhere`` the
    query options another case of the same sink covers.
    """

    sink: type
    options: type
    url: Callable[[Path], str]
    url_arguments: Callable[..., dict[str, Any]]
    texts: dict[str, tuple[str, object]]
    url_only: tuple[str, ...] = ()
    elsewhere: tuple[str, ...] = ()


MAPPING_JSON = '{"count": ["measurement"]}'
A_FILE = str(Path(__file__).resolve())

CASES = {
    "console": Case(
        console.ConsoleSink,
        console.ConsoleOptions,
        lambda _: "console:",
        console.config.url_arguments,
        {
            "stream": ("stderr", "stderr"),
            "format": ("line", "line"),
            "name": ("shown", "shown"),
            "max_events_per_batch": ("7", 7),
        },
    ),
    "jsonl": Case(
        jsonl.JsonLinesSink,
        jsonl.JsonLinesOptions,
        lambda tmp: f"jsonl:{tmp}/m.jsonl",
        jsonl.config.url_arguments,
        {
            "compression": ("gzip", ms.Compression.GZIP),
            "rotate_bytes": ("4096", 4096),
            "fsync": ("yes", True),
            "file_mode": ("0o640", 0o640),
            "name": ("archive", "archive"),
        },
    ),
    "influxdb2": Case(
        influxdb.InfluxDBSink,
        influxdb.InfluxDBOptions,
        lambda _: "influxdb2://127.0.0.1:8428",
        influxdb.config.url_arguments,
        {
            "token": ("t0ken", "t0ken"),
            "org": ("acme", "acme"),
            "bucket": ("metrics", "metrics"),
            "precision": ("ms", "ms"),
            "duplicate_points": ("keep", "keep"),
            "gzip": ("off", False),
            "timeout": ("2.5", 2.5),
            "verify_ssl": ("0", False),
            "ssl_ca_cert": (A_FILE, A_FILE),
            "name": ("influx", "influx"),
        },
        url_only=("tls",),
        elsewhere=("retention_policy",),
    ),
    "influxdb": Case(
        influxdb.InfluxDBSink,
        influxdb.InfluxDBOptions,
        lambda _: "influxdb://127.0.0.1:8086/db",
        influxdb.config.url_arguments,
        {"retention_policy": ("weekly", "weekly"), "precision": ("s", "s")},
        url_only=("tls",),
        elsewhere=(
            "token", "org", "bucket", "gzip", "timeout", "verify_ssl", "ssl_ca_cert", "name",
            "duplicate_points",
        ),
    ),
    "kafka": Case(
        kafka.KafkaSink,
        kafka.KafkaOptions,
        lambda _: f"kafka://{servers.KAFKA_BOOTSTRAP}/options-test",
        kafka.config.url_arguments,
        {
            "format": ("line", "line"),
            "message": ("batch", "batch"),
            "key": ("host", "host"),
            "compression": ("gzip", "gzip"),
            "idempotence": ("false", False),
            "acks": ("1", "1"),
            "linger_ms": ("20", 20.0),
            "delivery_timeout_ms": ("30000", 30_000),
            "name": ("producer", "producer"),
            "check_timeout": ("1.5", 1.5),
            "close_timeout": ("0.5", 0.5),
        },
    ),
    "redis_counters": Case(
        redis_counters.RedisCounterSink,
        redis_counters.config.RedisCounterOptions,
        lambda _: "redis://127.0.0.1:6379/0",
        redis_counters.config.url_arguments,
        {
            "mapping": (MAPPING_JSON, CounterMapping(count=["measurement"])),
            "prefix": ("app:", "app:"),
            "cluster": ("false", False),
            "ttl_daily": ("86400", 86_400),
            "ttl_hourly": ("3600", 3_600),
            "name": ("counts", "counts"),
            "batch_ttl": ("60", 60),
            "socket_timeout": ("2", 2.0),
        },
        url_only=("hourly", "tz", *redis_counters.config._REDIS_OPTIONS),
    ),
}
"""Every built-in sink."""


@pytest.fixture(params=sorted(CASES))
def case(request: pytest.FixtureRequest) -> Case:
    return CASES[request.param]


class TestConstructor:
    """A sink's constructor takes exactly its options class's parameters."""

    def test_the_signature_is_the_options_signature(self, case: Case) -> None:
        assert inspect.signature(case.sink) == inspect.signature(case.options)
        names = [o.name for o in declared(case.options)]
        assert list(inspect.signature(case.sink).parameters) == names

    def test_every_option_is_documented_where_help_shows_it(self, case: Case) -> None:
        for documented in (case.options.__doc__ or "", case.sink.__init__.__doc__ or ""):
            for declared_option in declared(case.options):
                assert f"\n    {declared_option.name}: {declared_option.doc}" in documented


class TestUrl:
    """A sink's URL reads the options its options class declares as text, and no other."""

    def test_the_url_options_are_the_text_options(self, case: Case) -> None:
        assert sorted((*case.texts, *case.elsewhere)) == sorted(
            o.name for o in declared(case.options) if o.text_name is not None
        )
        with pytest.raises(ms.ConfigError) as info:
            case.url_arguments(f"{case.url(Path('/tmp'))}?colour=red", {})
        listed = re.search(r"known options: (.*)$", str(info.value))
        assert listed is not None
        assert sorted(listed.group(1).split(", ")) == sorted(
            (*text_names(case.options), *case.url_only)
        )

    def test_every_url_option_reaches_the_sink(self, case: Case, tmp_path: Path) -> None:
        names = {o.name: o.text_name for o in declared(case.options)}
        texts = {names[name]: text for name, (text, _) in case.texts.items()}
        url = f"{case.url(tmp_path)}?{urllib.parse.urlencode(texts)}"
        if case.sink is redis_counters.RedisCounterSink:
            url += "&hourly=true"
        sink = ms.sinks.sink_from_url(url)
        try:
            assert isinstance(sink, case.sink)
            kept = {name: getattr(sink.options, name) for name in case.texts}  # type: ignore[attr-defined]
            assert kept == {name: value for name, (_, value) in case.texts.items()}
        finally:
            sink.close()

    def test_every_url_option_is_in_the_url_documentation(self, case: Case) -> None:
        documented = case.url_arguments.__doc__ or ""
        for name in text_names(case.options):
            assert f"``{name}``" in documented or f"{name}=" in documented, name


class TestTyping:
    """A type checker sees every sink's parameters, as declared by its options."""

    def test_mypy_checks_sink_arguments(self, tmp_path: Path) -> None:
        snippet = tmp_path / "uses_sinks.py"
        snippet.write_text(
            "import metricstream as ms\n"
            "from metricstream.sinks import InfluxDBSink\n"
            "ms.sinks.KafkaSink('h:9092', 't', linger_ms='soon')\n"
            "InfluxDBSink('http://h:8086', api='v1', databse='d')\n"
            "ms.sinks.JsonLinesSink('m.jsonl', rotate_bytes=10, fsync=True)\n"
            "reveal_type(ms.sinks.ConsoleSink().options.max_events_per_batch)\n",
            encoding="utf-8",
        )
        root = Path(__file__).resolve().parents[1]
        result = subprocess.run(
            [sys.executable, "-m", "mypy", "--strict", "--no-error-summary",
             "--config-file", str(root / "pyproject.toml"),
             "--cache-dir", str(tmp_path / "cache"), str(snippet)],
            capture_output=True, text=True, cwd=tmp_path,
            env={**os.environ, "MYPYPATH": str(root)}, check=False,
        )  # fmt: skip
        found = [line.split(": ", 1)[1] for line in result.stdout.splitlines() if ": " in line]
        assert found == [
            'error: Argument "linger_ms" to "KafkaSink" has incompatible type "str"; '
            'expected "float"  [arg-type]',
            'error: Unexpected keyword argument "databse" for "InfluxDBSink"; '
            'did you mean "database"?  [call-arg]',
            'note: "InfluxDBSink" defined in "metricstream.sinks.influxdb.sink"',
            'note: Revealed type is "int | None"',
        ]
