"""The documentation's code runs: the sink of docs/architecture.md works as written."""

from __future__ import annotations

import csv
import re
from pathlib import Path

import pytest

import metricstream as ms
from metricstream import registry

from .support import sample

ARCHITECTURE = Path(__file__).resolve().parent.parent / "docs" / "architecture.md"


def writing_a_sink_code() -> str:
    """The first Python block under the "Writing a sink" heading."""
    text = ARCHITECTURE.read_text(encoding="utf-8")
    section = text[text.index("## Writing a sink") :]
    match = re.search(r"```python\n(.*?)```", section, re.S)
    assert match is not None
    return match.group(1)


class TestWritingASink:
    """The CSV sink of docs/architecture.md streams events, directly and by URL."""

    def test_the_documented_sink_delivers_every_field_as_a_row(
        self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, make_streamer
    ) -> None:
        monkeypatch.setattr(registry, "_runtime", {})
        namespace: dict[str, object] = {}
        exec(compile(writing_a_sink_code(), str(ARCHITECTURE), "exec"), namespace)
        path = tmp_path / "out.csv"
        sink = ms.sinks.sink_from_url(f"csv:{path}")
        assert type(sink).__name__ == "CsvSink"
        streamer = make_streamer([sink], batch_size=7)
        events = [sample(i, host="a") for i in range(20)]
        streamer.send_many(events)
        assert streamer.flush(10) is True
        with open(path, newline="") as file:
            rows = list(csv.reader(file))
        assert rows == [[str(e.timestamp_ns), "m", "value", str(e.fields["value"])] for e in events]
        health = streamer.health().sinks["csv"]
        assert (health.events_written, health.events_dropped) == (20, 0)

    def test_the_documented_sink_takes_its_declared_options(
        self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """Its constructor and its URL take the options its options class declares."""
        monkeypatch.setattr(registry, "_runtime", {})
        namespace: dict[str, object] = {}
        exec(compile(writing_a_sink_code(), str(ARCHITECTURE), "exec"), namespace)
        sink = ms.sinks.sink_from_url(f"csv:{tmp_path}/out.csv?dialect=unix&name=audit")
        options = sink.options  # type: ignore[attr-defined]
        assert (options.path, options.dialect, sink.name) == (
            str(tmp_path / "out.csv"), "unix", "audit"
        )  # fmt: skip
        with pytest.raises(ms.ConfigError) as info:
            ms.sinks.sink_from_url(f"csv:{tmp_path}/out.csv?dialect=tsv")
        assert str(info.value) == "dialect: must be one of 'excel', 'unix', not 'tsv'"

    def test_the_architecture_map_names_modules_that_exist(self) -> None:
        text = ARCHITECTURE.read_text(encoding="utf-8")
        package = Path(ms.__file__).parent
        named = set(re.findall(r"`((?:[a-z_]+/)*[a-z_]+\.py)`", text))
        assert named, "the map names no modules"
        roots = (package, package.parent)
        missing = sorted(name for name in named if not any((r / name).exists() for r in roots))
        assert missing == []
