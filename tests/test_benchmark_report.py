"""The benchmark report: every target in its table, met or missed, and the README quoting it.

Nothing here times anything: these tests read the committed run
(``benchmarks/results/results.json`` and ``REPORT.md``), the README, and the
benchmarks' source.
"""

from __future__ import annotations

import ast
import json
import re
import sys
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parent.parent
BENCHMARKS = ROOT / "benchmarks"
README = ROOT / "README.md"
RESULTS = BENCHMARKS / "results" / "results.json"

sys.path.insert(0, str(BENCHMARKS))

import _common  # noqa: E402
import _report  # noqa: E402
import readme_targets  # noqa: E402

VERDICT_WORDS = re.compile(r"\b(met|missed|target|targets)\b", re.IGNORECASE)


def table_rows(lines: list[str]) -> list[list[str]]:
    """The body rows of the Markdown table in `lines`, each split into its cells."""
    rows = [line for line in lines if line.startswith("| ")]
    assert rows, "no table"
    return [
        [cell.strip().replace("\\|", "|") for cell in re.split(r"(?<!\\)\|", row)[1:-1]]
        for row in rows[1:]
    ]


def expected_rows(data: dict[str, Any]) -> list[tuple[str, str, str, str]]:
    """(benchmark, figure, target, verdict) of every target in a run's raw data, in order."""
    rows = []
    for figure in data["figures"]:
        targets = figure.get("targets")
        if targets is None and figure.get("target") is not None:
            targets = [(figure["target"], figure["met"])]
        for text, met in targets or []:
            rows.append((figure["bench"], figure["title"], text, "met" if met else "**missed**"))
        if not targets and figure.get("key"):
            rows.append((figure["bench"], figure["title"], "-", "reported"))
    return rows


class TestTheCommittedRun:
    """README, REPORT.md and results.json hold one table of targets, every target in it."""

    def test_the_readme_quotes_the_reports_table_of_targets(self) -> None:
        _, _, quoted = readme_targets.readme_block(README.read_text(encoding="utf-8"))
        in_report = _report.report_targets_section()
        assert quoted == in_report, (
            "README.md's performance table is not REPORT.md's table of targets:"
            " `make bench` writes both (`make bench-readme` copies the committed run's)"
        )
        assert in_report == _report.targets_section(_report.load())

    def test_every_target_of_the_run_is_a_row_met_or_missed(self) -> None:
        data = json.loads(RESULTS.read_text(encoding="utf-8"))
        _, _, quoted = readme_targets.readme_block(README.read_text(encoding="utf-8"))
        rows = [(row[0], row[1], row[5], row[6]) for row in table_rows(quoted)]
        assert rows == expected_rows(data)
        assert any(verdict != "reported" for *_, verdict in rows), "the run judged no target"


class TestJudging:
    """A target is judged in one place, which prints the verdict and records it."""

    def test_met_and_missed_targets_are_printed_and_reach_the_table(
        self, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
    ) -> None:
        monkeypatch.setattr(_common, "FIGURES", [])
        monkeypatch.setattr(_common, "CURRENT_BENCH", ["demo"])
        _common.side_by_side(
            "event mode",
            ("ours", 75.0),
            ("raw loop", 100.0),
            "events/s",
            higher_is_better=True,
            target=(">= 0.8x the raw loop", False),
        )
        _common.side_by_side(
            "counters",
            ("ours", 189_290.0),
            ("naive", 9_881.0),
            "events/s",
            higher_is_better=True,
            target=[(">= 200,000 events/s", False), (">= 5x the naive port", True)],
        )
        _common.alone("pause", ("ours", 31.7), "ms", key="pause")
        _common.side_by_side("unjudged", ("ours", 2.0), ("peer", 1.0), "x", higher_is_better=True)
        printed = capsys.readouterr().out
        assert re.findall(r"target: (.*) -> (met|MISSED)", printed) == [
            (">= 0.8x the raw loop", "MISSED"),
            (">= 200,000 events/s", "MISSED"),
            (">= 5x the naive port", "met"),
        ]
        data = json.loads(json.dumps({"machine": machine(), "failed": {}, **_common.as_dicts()}))
        expected = [
            ("demo", "event mode", ">= 0.8x the raw loop", "**missed**"),
            ("demo", "counters", ">= 200,000 events/s", "**missed**"),
            ("demo", "counters", ">= 5x the naive port", "met"),
            ("demo", "pause", "-", "reported"),
        ]
        assert expected_rows(data) == expected
        rendered = table_rows(_report.targets_section(data))
        assert [(row[0], row[1], row[5], row[6]) for row in rendered] == expected
        assert [figure["met"] for figure in data["figures"]] == [False, False, None, None]

    def test_a_readme_that_quotes_another_run_is_caught(self) -> None:
        text = README.read_text(encoding="utf-8")
        assert readme_targets.main(["--check"]) == 0
        _, _, quoted = readme_targets.readme_block(text)
        better = [line.replace("**missed**", "met") for line in quoted]
        better[0] = better[0].replace("Run of", "Best run of")
        assert readme_targets.updated(text, better) != text

    def test_no_benchmark_prints_a_verdict_of_its_own(self) -> None:
        found = []
        for path in sorted(BENCHMARKS.glob("bench_*.py")):
            tree = ast.parse(path.read_text(encoding="utf-8"))
            for node in ast.walk(tree):
                if not (isinstance(node, ast.Call) and getattr(node.func, "id", None) == "print"):
                    continue
                text = " ".join(
                    part.value
                    for part in ast.walk(node)
                    if isinstance(part, ast.Constant) and isinstance(part.value, str)
                )
                if VERDICT_WORDS.search(text):
                    found.append(f"{path.name}:{node.lineno}: {text.strip()[:60]}")
        assert found == [], "judge targets with side_by_side(target=...) or alone(target=...)"


def machine() -> dict[str, Any]:
    return {"cpu": "test CPU", "cores": 2, "python": "3.x", "load_average": [0.0, 0.0, 0.0]}


class TestEachBenchmarkRecordsItsFigures:
    """The benchmarks record every figure the report shows, the best case never alone.

    Nothing is timed: the measuring functions are replaced or sized down, and
    only the keys of the recorded figures are checked.
    """

    @pytest.fixture
    def recorded(self, monkeypatch: pytest.MonkeyPatch) -> Any:
        monkeypatch.setattr(_common, "FIGURES", [])
        monkeypatch.setattr(_common, "CURRENT_BENCH", ["probe"])
        return lambda: {figure.key for figure in _common.FIGURES}

    def test_encode_reports_repeated_series_100_series_and_new_series(
        self, monkeypatch: pytest.MonkeyPatch, recorded: Any, capsys: pytest.CaptureFixture[str]
    ) -> None:
        import bench_encode

        monkeypatch.setattr(
            bench_encode, "_alternating", lambda ours, peer: ([(1.0, 1.0)], [(2.0, 2.0)])
        )
        monkeypatch.setattr(bench_encode, "_report", lambda label, func: None)
        bench_encode.main()
        assert {"encode", "encode_distinct", "encode_new_series", "encode_only"} <= recorded()

    def test_send_reports_the_whole_process_beside_the_calling_thread(
        self, monkeypatch: pytest.MonkeyPatch, recorded: Any, capsys: pytest.CaptureFixture[str]
    ) -> None:
        import bench_send

        monkeypatch.setattr(bench_send, "CALLS", 30)
        monkeypatch.setattr(bench_send, "ROUNDS", 1)
        monkeypatch.setattr(bench_send, "CHUNKS", 3)
        bench_send.main()
        assert {"send", "send_otel", "send_process"} <= recorded()

    def test_query_reports_cold_and_without_the_cache_beside_warm(
        self, recorded: Any, capsys: pytest.CaptureFixture[str]
    ) -> None:
        import bench_query

        ways = dict.fromkeys(["scan", "warm", "cold", "archive"], 1.0)
        bench_query.report("count", ways, ways)
        assert {"query_count_warm", "query_count_cold", "query_count_archive"} <= recorded()
