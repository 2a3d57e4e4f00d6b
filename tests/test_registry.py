"""Sink URL schemes come from a registry: built-in modules, entry points, run time."""

from __future__ import annotations

from pathlib import Path

import pytest

import metricstream as ms
from metricstream import registry
from metricstream.testing import InMemorySink


def memory_from_url(url: str, **overrides: object) -> InMemorySink:
    """A factory for the tests' own scheme: ``mem:NAME``."""
    return InMemorySink(name=str(overrides.get("name") or url.partition(":")[2] or "memory"))


@pytest.fixture
def clean_runtime(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(registry, "_runtime", {})


class TestBuiltinSchemes:
    """Every built-in sink module registers its schemes by declaring them."""

    def test_the_built_in_schemes_are_found(self) -> None:
        found = ms.sinks.schemes()
        assert {"console", "jsonl", "influxdb", "influxdb2"} <= set(found)
        assert found["console"] == "metricstream.sinks.console.sink"

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
        dist = tmp_path / "thirdparty_sink-1.0.dist-info"
        dist.mkdir()
        (dist / "METADATA").write_text(
            "Metadata-Version: 2.1\nName: thirdparty-sink\nVersion: 1.0\n"
        )
        (dist / "entry_points.txt").write_text(
            "[metricstream.sinks]\nthirdparty = tests.test_registry:memory_from_url\n"
        )
        monkeypatch.syspath_prepend(str(tmp_path))
        assert ms.sinks.schemes()["thirdparty"] == "entry point tests.test_registry:memory_from_url"
        sink = ms.sinks.sink_from_url("thirdparty:from-plugin")
        assert isinstance(sink, InMemorySink)
        assert sink.name == "from-plugin"
