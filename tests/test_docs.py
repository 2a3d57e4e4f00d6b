"""The documentation is true: the architecture's sink runs, the README's defaults are the code's."""

from __future__ import annotations

import ast
import csv
import re
from pathlib import Path

import pytest

import metricstream as ms
from metricstream import registry

from .support import sample

ROOT = Path(__file__).resolve().parent.parent
ARCHITECTURE = ROOT / "docs" / "architecture.md"
README = ROOT / "README.md"


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


def shown(value: object) -> str:
    """A default as the README writes it: ``1_000``, ``"batch"``, ``None``, ``RetryConfig()``."""
    if isinstance(value, ms.RetryConfig):
        return "RetryConfig()" if value == ms.RetryConfig() else repr(value)
    if isinstance(value, str):
        return f'"{value}"'
    if isinstance(value, int) and not isinstance(value, bool):
        return f"{value:_}"
    return repr(value)


def readme_rows(first_header: str) -> list[list[str]]:
    """The rows of the README table whose header starts with `first_header`, cells stripped."""
    lines = README.read_text(encoding="utf-8").splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith(f"| {first_header} |"))
    rows = []
    for line in lines[start + 2 :]:
        if not line.startswith("|"):
            break
        rows.append([cell.strip() for cell in line.strip().strip("|").split(" | ")])
    return rows


class TestTheReadmeDefaults:
    """The README's defaults, variables and survival table are the code's own."""

    def test_the_options_table_is_the_declaration(self) -> None:
        from metricstream._options import declared
        from metricstream.streamer import StreamerConfig
        from metricstream.streamer.operations.env import variable

        expected = [
            [
                f"`{option.name}`",
                f"`{shown(option.default)}`",
                f"`{variable(option.text_name)}`" if option.text_name else "-",
                option.doc,
            ]
            for option in declared(StreamerConfig)
        ]
        assert readme_rows("option") == expected

    def test_the_retry_table_holds_every_field_and_its_default(self) -> None:
        import dataclasses

        rows = readme_rows("`RetryConfig` field")
        expected = [
            [f"`{field.name}`", f"`{shown(field.default)}`"]
            for field in dataclasses.fields(ms.RetryConfig)
        ]
        assert [row[:2] for row in rows] == expected

    def test_every_variable_read_is_in_the_readme_and_every_one_there_is_read(self) -> None:
        from metricstream.streamer.operations.env import ENV_PREFIX, known_variables

        literal = re.compile(r"^METRICSTREAM_[A-Z0-9_]+$")
        in_code = set()
        for path in Path(ms.__file__).parent.rglob("*.py"):
            for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
                if (
                    isinstance(node, ast.Constant)
                    and isinstance(node.value, str)
                    and literal.match(node.value)
                ):
                    in_code.add(node.value)
        assert in_code - {ENV_PREFIX} <= set(known_variables())
        tooling = set()  # the examples, the tests, the CI and the server scripts read these
        for pattern in (
            "examples/*.py",
            "tests/servers.py",
            "tests/conftest.py",
            ".ci/*",
            "scripts/*",
        ):
            for path in ROOT.glob(pattern):
                tooling |= set(re.findall(r"METRICSTREAM_[A-Z0-9_]+", path.read_text()))
        text = README.read_text(encoding="utf-8")
        misspelled = set(re.findall(r"(METRICSTREAM_[A-Z0-9_]+) is\s+not a variable", text))
        documented = set(re.findall(r"METRICSTREAM_[A-Z0-9_]+", text)) - misspelled
        assert set(known_variables()) <= documented
        assert documented - set(known_variables()) <= tooling
        assert {"METRICSTREAM_SPOOL_DIR", "METRICSTREAM_SPOOL_MAX_BYTES"} <= documented

    def test_the_survival_table_states_the_defaults(self) -> None:
        from metricstream.streamer import StreamerConfig

        defaults = StreamerConfig()
        rows = {row[0]: row[1] for row in readme_rows("configuration")}
        memory = rows["memory only (the default: `spool_dir=None`)"]
        assert defaults.spool_dir is None
        assert f"`max_buffer={shown(defaults.max_buffer)}`" in memory
        assert f"`overflow={shown(defaults.overflow)}`" in memory
        retry = ms.RetryConfig()
        assert (retry.max_retries, retry.max_elapsed_ms) == (None, None)
        assert memory.startswith("retried without limit (`RetryConfig()`)")
        spooled = rows['`spool_dir=...`, `spool_fsync="never"`']
        assert f"`spool_max_bytes={shown(defaults.spool_max_bytes)}`" in spooled
        assert f"`spool_fsync={shown(defaults.spool_fsync)}` (the default with a spool)" in rows
