"""The metricstream command: the demo workload, its accounting, and cat."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

import metricstream as ms
from metricstream.cli import COMMANDS, EVENT_MIX, AnalyticsWorkload, main
from metricstream.sinks.jsonl import read_events


def accounting(output: str) -> dict[str, tuple[int, int, int]]:
    """Parse the final accounting lines: sink -> (written, dropped, pending)."""
    rows = re.findall(
        r"^  (\S+)\s+written\s+([\d,]+)\s+dropped\s+([\d,]+).*?pending ([\d,]+)\s+OK", output, re.M
    )
    return {
        name: (int(w.replace(",", "")), int(d.replace(",", "")), int(p.replace(",", "")))
        for name, w, d, p in rows
    }


class TestDemo:
    """`metricstream demo` streams the workload and ends with a balanced accounting."""

    def test_default_sinks_write_everything_and_balance(
        self, tmp_path: Path, capsys: pytest.CaptureFixture[str]
    ) -> None:
        status = main(
            [
                "demo",
                "--duration",
                "1.5",
                "--rate",
                "400",
                "--seed",
                "7",
                "--output-dir",
                str(tmp_path),
            ]
        )
        output = capsys.readouterr().out
        assert status == 0
        sent = int(
            re.search(r"Final accounting \(([\d,]+) events sent\)", output)
            .group(1)
            .replace(",", "")
        )  # type: ignore[union-attr]
        rows = accounting(output)
        assert rows == {"console": (sent, 0, 0), "jsonl": (sent, 0, 0)}
        stored = list(read_events(tmp_path / "events.jsonl.zst"))
        assert len(stored) == sent
        assert {e.measurement for e in stored} <= {kind for kind, _ in EVENT_MIX}
        assert "Sample events, as line protocol and as JSON:" in output
        assert re.search(
            r"^\[\s*1\.\ds\] sent [\d,]+ \([\d,]+/s\) \| console: written", output, re.M
        )

    def test_sink_urls_replace_the_defaults(
        self, tmp_path: Path, capsys: pytest.CaptureFixture[str]
    ) -> None:
        target = tmp_path / "out.jsonl"
        status = main(["demo", "--duration", "1", "--rate", "300", "--sink", f"jsonl:{target}"])
        output = capsys.readouterr().out
        assert status == 0
        rows = accounting(output)
        assert list(rows) == ["jsonl"]
        assert len(list(read_events(target))) == rows["jsonl"][0]

    def test_a_bad_sink_url_is_reported_with_status_2(
        self, capsys: pytest.CaptureFixture[str]
    ) -> None:
        assert main(["demo", "--duration", "1", "--sink", "carrier-pigeon://coop"]) == 2
        assert "unknown sink URL scheme" in capsys.readouterr().err

    @pytest.mark.parametrize("args", [["--rate", "0"], ["--duration", "-1"], ["--batch-size", "0"]])
    def test_invalid_numbers_are_refused_by_the_parser(self, args: list[str]) -> None:
        with pytest.raises(SystemExit) as info:
            main(["demo", *args])
        assert info.value.code == 2


class TestWorkload:
    """The simulated workload has the documented shape."""

    def test_mix_tags_and_purchase_amounts(self) -> None:
        events = AnalyticsWorkload(seed=3).events(20_000)
        counts = {kind: 0 for kind, _ in EVENT_MIX}
        for event in events:
            counts[event.measurement] += 1
            assert set(event.tags) == {"org", "user", "path", "utm_source"}
            assert event.tags["user"].startswith(event.tags["org"] + "-u")
            if event.measurement == "purchase":
                assert 5 <= event.fields["amount"] <= 500  # type: ignore[operator]
        for kind, share in EVENT_MIX:
            assert abs(counts[kind] / 20_000 - share) < 0.02, kind
        assert len({e.tags["org"] for e in events}) > 450

    def test_the_same_seed_gives_the_same_events(self) -> None:
        first = [(e.measurement, e.tags) for e in AnalyticsWorkload(seed=5).events(50)]
        second = [(e.measurement, e.tags) for e in AnalyticsWorkload(seed=5).events(50)]
        assert first == second


class TestCat:
    """`metricstream cat` prints what a JSON Lines file holds."""

    def test_prints_line_protocol(self, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
        path = tmp_path / "e.jsonl.zst"
        sink = ms.sinks.JsonLinesSink(path)
        events = [
            ms.MetricEvent("m", tags={"h": "a"}, fields={"v": i}, timestamp_ns=i, before_2001=True)
            for i in range(3)
        ]
        sink.write(sink.prepare(ms.EventBatch(events)))
        sink.close()
        assert main(["cat", str(path)]) == 0
        assert capsys.readouterr().out == "m,h=a v=0i 0\nm,h=a v=1i 1\nm,h=a v=2i 2\n"

    def test_a_missing_file_is_an_error_with_status_1(
        self, tmp_path: Path, capsys: pytest.CaptureFixture[str]
    ) -> None:
        assert main(["cat", str(tmp_path / "missing.jsonl")]) == 1
        assert "missing.jsonl" in capsys.readouterr().err


class TestModuleEntryPoint:
    """`python -m metricstream` runs the same command."""

    def test_help(self) -> None:
        result = subprocess.run(
            [sys.executable, "-m", "metricstream", "--help"],
            capture_output=True,
            text=True,
            check=False,
        )
        assert result.returncode == 0
        listed = re.findall(r"^    (\w+)\s", result.stdout, re.M)
        assert listed == [command.__name__.rsplit(".", 1)[1] for command in COMMANDS]
        assert "example" in result.stdout


class TestExamples:
    """The examples run as documented."""

    def test_quickstart(self, tmp_path: Path) -> None:
        script = Path(__file__).resolve().parent.parent / "examples" / "quickstart.py"
        result = subprocess.run(
            [sys.executable, str(script)], cwd=tmp_path, capture_output=True, text=True, check=False
        )
        assert result.returncode == 0, result.stderr
        lines = result.stdout.splitlines()
        assert lines[0].startswith(
            "http_requests,route=/api/orders,status=200 latency_ms=12.5,count=1i "
        )
        assert ms.MetricEvent.from_json(lines[1]).correlation_id == "req-42"
        assert lines[-3:] == [
            "console: written 4, dropped 0",
            "jsonl: written 4, dropped 0",
            "read back: 4 events in the file",
        ]

    def test_quickstart_run_twice_gives_the_same_figures_and_leaves_only_its_archive(
        self, tmp_path: Path
    ) -> None:
        script = Path(__file__).resolve().parent.parent / "examples" / "quickstart.py"
        for _ in range(2):
            result = subprocess.run(
                [sys.executable, str(script)], cwd=tmp_path, capture_output=True, text=True,
                check=False,
            )  # fmt: skip
            assert result.returncode == 0, result.stderr
            assert result.stdout.splitlines()[-1] == "read back: 4 events in the file"
        assert sorted(p.name for p in tmp_path.iterdir()) == ["quickstart.jsonl.zst"]


class TestHostileInput:
    """Bad arguments and odd files get clear answers, never tracebacks."""

    @pytest.mark.parametrize(
        ("rate", "message"),
        [("inf", "must be a finite number > 0"), ("1e300", "must be at most 10,000,000")],
    )
    def test_an_impossible_rate_is_refused(
        self, rate: str, message: str, capsys: pytest.CaptureFixture[str]
    ) -> None:
        with pytest.raises(SystemExit) as info:
            main(["demo", "--rate", rate])
        assert info.value.code == 2
        assert message in capsys.readouterr().err

    def test_cat_of_a_file_that_is_not_json_lines_says_so_and_fails(self, tmp_path: Path) -> None:
        path = tmp_path / "notes.txt"
        path.write_text("shopping list\n")
        result = subprocess.run(
            [sys.executable, "-m", "metricstream", "cat", str(path)],
            capture_output=True,
            text=True,
            check=False,
        )
        assert result.returncode == 1
        assert f"{path} is not a JSON Lines file" in result.stderr
        assert "Traceback" not in result.stderr

    def test_cat_into_a_closed_pipe_ends_quietly(self, tmp_path: Path) -> None:
        path = tmp_path / "events.jsonl.zst"
        sink = ms.sinks.JsonLinesSink(path)
        sink.write(
            sink.prepare(ms.EventBatch([ms.event_from_sample("m", i) for i in range(20_000)]))
        )
        sink.close()
        command = f"{sys.executable} -m metricstream cat {path} | head -1; exit ${{PIPESTATUS[0]}}"
        result = subprocess.run(
            ["bash", "-c", command], capture_output=True, text=True, check=False
        )
        assert (result.returncode, result.stderr) == (0, "")
        assert result.stdout.startswith("m value=0")

    @pytest.mark.parametrize("command", [c.__name__.rsplit(".", 1)[1] for c in COMMANDS])
    def test_help_is_plain_text_with_an_example(self, command: str) -> None:
        result = subprocess.run(
            [sys.executable, "-m", "metricstream", command, "--help"],
            capture_output=True,
            text=True,
            check=False,
        )
        assert result.returncode == 0
        assert "``" not in result.stdout
        assert "example" in result.stdout


class TestDemoArchiveQuery:
    """The demo's archive answers the README's funnel in one command."""

    def test_the_funnel_of_the_demo_matches_a_reference_over_its_events(
        self, tmp_path: Path, capsys: pytest.CaptureFixture[str]
    ) -> None:
        import orjson

        assert main(["demo", "--duration", "1.5", "--rate", "2000", "--seed", "3",
                     "--output-dir", str(tmp_path)]) == 0  # fmt: skip
        archive = tmp_path / "events.jsonl.zst"
        assert f"metricstream query {archive} --funnel" in capsys.readouterr().out
        status = main(["query", str(archive), "--funnel", "page_view,click,signup",
                       "--match", "org", "--format", "json"])  # fmt: skip
        assert status == 0
        answer = orjson.loads(capsys.readouterr().out)
        steps = ("page_view", "click", "signup")
        reached = dict.fromkeys(steps, 0)
        by_org: dict[str, list[ms.MetricEvent]] = {}
        for event in read_events(archive):
            by_org.setdefault(event.tags["org"], []).append(event)
        for events in by_org.values():
            after = -1
            for step in steps:
                times = [
                    e.timestamp_ns
                    for e in events
                    if e.measurement == step and e.timestamp_ns > after
                ]
                if not times:
                    break
                after = min(times)
                reached[step] += 1
        assert [(s["step"], s["count"]) for s in answer["funnel"]] == list(reached.items())
