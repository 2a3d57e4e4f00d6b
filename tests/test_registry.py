"""Sink URL schemes come from a registry: entry points (built-in and third-party), run time."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

import metricstream as ms
from metricstream import registry
from metricstream.sinks import console, influxdb, jsonl, kafka, redis_counters
from metricstream.testing import InMemorySink

ROOT = Path(__file__).resolve().parents[1]
SINK_FOLDERS = (console, jsonl, influxdb, kafka, redis_counters)

OPTIONAL_LIBRARIES = (
    "confluent_kafka",
    "duckdb",
    "influxdb_client",
    "jsonschema",
    "opentelemetry",
    "prometheus_client",
    "redis",
    "urllib3",
)
"""Client libraries of the extras: no ``import metricstream`` may load one."""


def memory_from_url(url: str, **overrides: object) -> InMemorySink:
    """A factory for the tests' own scheme: ``mem:NAME``."""
    return InMemorySink(name=str(overrides.get("name") or url.partition(":")[2] or "memory"))


@pytest.fixture
def clean_runtime(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(registry, "_runtime", {})


def pyproject_entry_points() -> dict[str, str]:
    """The ``metricstream.sinks`` entry points pyproject.toml declares."""
    text = (ROOT / "pyproject.toml").read_text(encoding="utf-8")
    section = text.split('[project.entry-points."metricstream.sinks"]\n', 1)[1].split("\n[", 1)[0]
    pairs = re.findall(r'^"?([a-z0-9+.-]+)"? = "([^"]+)"$', section, flags=re.MULTILINE)
    return dict(pairs)


def install_entry_points(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, lines: str, name: str = "thirdparty-sink"
) -> None:
    """Make a distribution with these ``metricstream.sinks`` entry points importable."""
    dist = tmp_path / f"{name.replace('-', '_')}-1.0.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: 1.0\n")
    (dist / "entry_points.txt").write_text(f"[metricstream.sinks]\n{lines}")
    monkeypatch.syspath_prepend(str(tmp_path))


class TestBuiltinSchemes:
    """The built-in sinks register their schemes as entry points, as third-party sinks do."""

    def test_every_sink_folder_s_schemes_are_entry_points_to_its_from_url(self) -> None:
        in_pyproject = pyproject_entry_points()
        expected = {
            scheme: f"{folder.__name__}:from_url"
            for folder in SINK_FOLDERS
            for scheme in folder.SCHEMES
        }
        assert in_pyproject == expected
        installed = {s: v for s, v in ms.sinks.schemes().items() if v.startswith("metricstream.")}
        assert installed == expected, "entry points are stale: run pip install -e ."

    def test_a_built_in_scheme_builds_its_sink(self, tmp_path: Path) -> None:
        sink = ms.sinks.sink_from_url(f"jsonl:{tmp_path}/m.jsonl?name=built-in")
        assert isinstance(sink, ms.sinks.JsonLinesSink)
        assert sink.name == "built-in"
        sink.close()

    def test_an_unknown_scheme_lists_the_known_ones_without_secrets(self) -> None:
        with pytest.raises(ms.ConfigError) as info:
            ms.sinks.sink_from_url("nosuch://user:hunter2@host/x")
        assert "hunter2" not in str(info.value)
        assert "nosuch://user:***@host/x" in str(info.value)
        assert "console:" in str(info.value)


class TestRuntimeRegistration:
    """register_scheme() plugs a sink in without editing the package."""

    @pytest.mark.usefixtures("clean_runtime")
    def test_a_registered_scheme_builds_its_sink(self) -> None:
        ms.sinks.register_scheme("mem", memory_from_url)
        sink = ms.sinks.sink_from_url("mem:audit")
        assert isinstance(sink, InMemorySink)
        assert sink.name == "audit"
        assert ms.sinks.sink_from_url("mem:x", name="y").name == "y"
        assert ms.sinks.schemes()["mem"] == __name__

    @pytest.mark.usefixtures("clean_runtime")
    def test_registering_twice_needs_replace(self) -> None:
        ms.sinks.register_scheme("mem", memory_from_url)
        with pytest.raises(ms.ConfigError, match="registered already"):
            ms.sinks.register_scheme("mem", memory_from_url)
        ms.sinks.register_scheme("mem", memory_from_url, replace=True)

    @pytest.mark.usefixtures("clean_runtime")
    def test_a_run_time_scheme_wins_over_a_built_in_one(self) -> None:
        ms.sinks.register_scheme("console", memory_from_url)
        assert isinstance(ms.sinks.sink_from_url("console:json"), InMemorySink)

    @pytest.mark.parametrize(
        ("scheme", "factory", "option"),
        [("Bad Scheme", memory_from_url, "scheme"), ("ok", "not callable", "factory")],
    )
    def test_bad_registrations_are_refused(self, scheme: str, factory: object, option: str) -> None:
        with pytest.raises(ms.ConfigError) as info:
            ms.sinks.register_scheme(scheme, factory)  # type: ignore[arg-type]
        assert info.value.option == option


class TestEntryPoints:
    """A third-party package registers a scheme through the metricstream.sinks group."""

    def test_an_installed_entry_point_is_used(
        self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        install_entry_points(
            tmp_path, monkeypatch, "thirdparty = tests.test_registry:memory_from_url\n"
        )
        assert ms.sinks.schemes()["thirdparty"] == "tests.test_registry:memory_from_url"
        sink = ms.sinks.sink_from_url("thirdparty:from-plugin")
        assert isinstance(sink, InMemorySink)
        assert sink.name == "from-plugin"

    def test_a_third_party_entry_point_wins_over_a_built_in_one(
        self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        install_entry_points(
            tmp_path, monkeypatch, "console = tests.test_registry:memory_from_url\n"
        )
        assert ms.sinks.schemes()["console"] == "tests.test_registry:memory_from_url"
        assert isinstance(ms.sinks.sink_from_url("console:json"), InMemorySink)

    def test_an_entry_point_that_is_not_callable_is_refused(
        self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        install_entry_points(tmp_path, monkeypatch, "notcallable = tests.test_registry:ROOT\n")
        with pytest.raises(ms.ConfigError, match="is not callable"):
            ms.sinks.sink_from_url("notcallable:x")


class TestImportCost:
    """``import metricstream`` imports no sink and no client library; names load on use."""

    def modules_after(self, code: str) -> set[str]:
        """The modules a fresh interpreter holds after running `code`."""
        script = f"import sys, json\n{code}\nprint(json.dumps(sorted(sys.modules)))"
        result = subprocess.run(
            [sys.executable, "-c", script], capture_output=True, text=True, check=True
        )
        return set(json.loads(result.stdout))

    def test_import_metricstream_loads_no_sink_and_no_client_library(self) -> None:
        loaded = self.modules_after("import metricstream")
        sink_modules = sorted(m for m in loaded if m.startswith("metricstream.sinks."))
        assert sink_modules == []
        libraries = sorted(
            m for m in loaded for lib in OPTIONAL_LIBRARIES if m == lib or m.startswith(lib + ".")
        )
        assert libraries == []
        assert "importlib.metadata" not in loaded

    def test_a_sink_name_loads_its_own_folder_only(self) -> None:
        loaded = self.modules_after("import metricstream as ms\nms.sinks.KafkaSink")
        folders = {m.split(".")[2] for m in loaded if m.startswith("metricstream.sinks.")}
        assert folders == {"kafka", "_url"}
        assert "confluent_kafka" not in loaded

    def test_every_exported_sink_name_is_the_one_in_its_folder(self) -> None:
        assert ms.sinks.InfluxDBSink is influxdb.InfluxDBSink
        assert ms.sinks.RedisCounterReader is redis_counters.RedisCounterReader
        assert ms.sinks.jsonl is jsonl
        for name in ms.sinks.__all__:
            assert getattr(ms.sinks, name) is not None
        assert set(ms.sinks.__all__) <= set(dir(ms.sinks))
        with pytest.raises(AttributeError, match="no attribute 'NoSuchSink'"):
            ms.sinks.NoSuchSink  # noqa: B018

    def test_the_version_is_read_on_first_use(self) -> None:
        loaded = self.modules_after(
            "import metricstream\nassert isinstance(metricstream.__version__, str)"
        )
        assert "importlib.metadata" in loaded
