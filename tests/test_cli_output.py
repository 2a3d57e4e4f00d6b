"""What the commands print: the version, JSON on request, honest outcomes, progress bars."""

from __future__ import annotations

import argparse
import fcntl
import json
import os
import pty
import re
import struct
import subprocess
import sys
import termios
from pathlib import Path

import pytest

import metricstream as ms
from metricstream.cli import COMMANDS, build_parser, main
from metricstream.cli._report import OUTCOMES, outcome
from metricstream.sinks.jsonl import read_events
from metricstream.testing import FaultySink

from .support import NO_REASONS, faulty_scheme, spool_left_by_a_dead_sink


def subcommand_parsers() -> dict[str, argparse.ArgumentParser]:
    """Every command's parser (and the counters actions'), by its program name."""
    found: dict[str, argparse.ArgumentParser] = {}

    def visit(parser: argparse.ArgumentParser) -> None:
        for action in parser._actions:
            if isinstance(action, argparse._SubParsersAction):
                for sub in action.choices.values():
                    found[sub.prog] = sub
                    visit(sub)

    visit(build_parser())
    return found


@pytest.fixture(scope="module")
def failing_scheme() -> str:
    """A sink URL scheme, ``test-refuse:NAME``, whose sink refuses every write for good."""
    return faulty_scheme("test-refuse", "permanent")


class TestVersion:
    """`metricstream --version` prints the installed version."""

    def test_the_version_is_the_package_metadata(self, capsys: pytest.CaptureFixture[str]) -> None:
        with pytest.raises(SystemExit) as info:
            main(["--version"])
        assert info.value.code == 0
        assert capsys.readouterr().out == f"metricstream {ms.__version__}\n"


class TestJsonFormat:
    """`--format json` is the one flag for JSON on every command."""

    def test_every_command_that_reports_takes_format_json(self) -> None:
        parsers = subcommand_parsers()
        names = {f"metricstream {c.__name__.rsplit('.', 1)[1]}" for c in COMMANDS}
        assert names <= set(parsers)
        for prog, parser in parsers.items():
            if prog == "metricstream serve":  # it serves until stopped: no report to format
                continue
            formats = [a for a in parser._actions if "--format" in a.option_strings]
            if prog.startswith("metricstream counters "):
                formats += [
                    a
                    for a in parsers["metricstream counters"]._actions
                    if "--format" in a.option_strings
                ]
            assert formats, prog
            assert all("json" in (action.choices or ()) for action in formats), prog

    def test_the_demo_prints_one_document_and_its_events_go_to_stderr(
        self, tmp_path: Path, capsys: pytest.CaptureFixture[str]
    ) -> None:
        status = main(
            [
                "demo",
                "--duration",
                "1",
                "--rate",
                "200",
                "--seed",
                "1",
                "--output-dir",
                str(tmp_path),
                "--format",
                "json",
            ]
        )
        printed = capsys.readouterr()
        assert status == 0
        document = json.loads(printed.out)
        sent = document["events_sent"]
        stored = len(list(read_events(tmp_path / "events.jsonl.zst")))
        assert sent == stored > 0
        assert document["delivered"] is True
        assert {name: (s["written"], s["outcome"]) for name, s in document["sinks"].items()} == {
            "console": (sent, "delivered"),
            "jsonl": (sent, "delivered"),
        }
        assert "Sample events" in printed.err

    def test_pipe_prints_the_input_and_the_accounting(
        self, tmp_path: Path, capsys: pytest.CaptureFixture[str]
    ) -> None:
        source = tmp_path / "in.lp"
        source.write_text("m v=1 1\nnot line protocol\nm v=2 2\n", encoding="utf-8")
        out = tmp_path / "o.jsonl"
        status = main(
            ["pipe", "--input", str(source), "--sink", f"jsonl:{out}", "--format", "json"]
        )
        assert status == 0
        document = json.loads(capsys.readouterr().out)
        assert document == {
            "lines": 3,
            "bad_lines": 1,
            "interrupted": False,
            "events_sent": 2,
            "delivered": True,
            "sinks": {
                "jsonl": {
                    "accepted": 2,
                    "written": 2,
                    "dropped": 0,
                    "dropped_by_reason": {},
                    "spooled": 0,
                    "pending": 0,
                    "outcome": "delivered",
                    "last_error": None,
                }
            },
        }

    def test_counters_explain_gives_the_commands_as_a_list(
        self, capsys: pytest.CaptureFixture[str]
    ) -> None:
        mapping = '{"count": ["measurement~utm_source"]}'
        event = "purchase,utm_source=google amount=9.5 1696118400000000000"
        assert main(["counters", "--prefix", "", "explain", "--mapping", mapping, event]) == 0
        text = capsys.readouterr().out.splitlines()
        assert (
            main(
                [
                    "counters",
                    "--prefix",
                    "",
                    "explain",
                    "--mapping",
                    mapping,
                    event,
                    "--format",
                    "json",
                ]
            )
            == 0
        )
        document = json.loads(capsys.readouterr().out)
        assert document["buckets"] == {"day": 1696118400, "hour": None}
        assert [f"  {' '.join(words)}" for words in document["commands"]] == text[-2:]

    def test_spool_inspect_and_replay(
        self, tmp_path: Path, capsys: pytest.CaptureFixture[str]
    ) -> None:
        spool = spool_left_by_a_dead_sink(tmp_path / "spool", 30)
        assert main(["spool", "inspect", str(spool), "--format", "json"]) == 0
        assert json.loads(capsys.readouterr().out)["sinks"]["lost"]["events"] == 30
        assert main(["spool", "inspect", str(spool), "--json"]) == 0
        printed = capsys.readouterr()
        assert json.loads(printed.out)["sinks"]["lost"]["events"] == 30
        assert printed.err == (
            "metricstream spool: warning: --json is deprecated; use --format json\n"
        )
        target = tmp_path / "copy.jsonl"
        assert (
            main(
                [
                    "spool",
                    "replay",
                    str(spool),
                    "--sink",
                    f"jsonl:{target}",
                    "--all",
                    "--format",
                    "json",
                ]
            )
            == 0
        )
        document = json.loads(capsys.readouterr().out)
        assert document["sinks"]["jsonl"]["written"] == 30
        assert len(list(read_events(target))) == 30


class TestOutcome:
    """The final accounting says what happened; OK only when every event was written."""

    @pytest.mark.parametrize(
        ("written", "dropped", "spooled", "pending", "expected"),
        [
            (10, 0, 0, 0, "delivered"),
            (0, 0, 0, 0, "delivered"),
            (7, 0, 3, 0, "spooled"),
            (7, 3, 0, 0, "partial"),
            (4, 3, 3, 0, "partial"),
            (0, 10, 0, 0, "failed"),
            (0, 4, 6, 0, "failed"),
            (0, 0, 10, 0, "failed"),
            (9, 0, 0, 1, "unbalanced"),
            (9, 0, 0, 0, "unbalanced"),
        ],
    )
    def test_each_outcome(
        self, written: int, dropped: int, spooled: int, pending: int, expected: str
    ) -> None:
        accepted = 0 if (written, dropped, spooled) == (0, 0, 0) else 10
        sink = ms.SinkHealth(
            name="s",
            connected=True,
            healthy=True,
            last_write_ns=None,
            events_accepted=accepted,
            events_written=written,
            events_dropped=dropped,
            dropped_by_reason={**NO_REASONS, "rejected": dropped},
            write_errors=0,
            retries=0,
            pending=pending,
            consecutive_failures=0,
            last_error=None,
            last_write_latency_ms=None,
            spooled=spooled,
        )
        assert outcome(sink) == expected
        assert expected in OUTCOMES

    def test_a_sink_that_dropped_everything_is_no_ok_and_the_status_is_1(
        self, failing_scheme: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
    ) -> None:
        status = main(
            ["demo", "--duration", "1", "--rate", "200", "--sink", f"{failing_scheme}:warehouse"]
        )
        output = capsys.readouterr().out
        assert status == 1
        row = re.search(r"^  warehouse .*$", output.split("Final accounting")[1], re.M)
        assert row is not None
        sent = int(re.search(r"\(([\d,]+) events sent\)", output).group(1).replace(",", ""))  # type: ignore[union-attr]
        assert sent > 0
        assert row.group(0).endswith(f"FAILED: none of {sent:,} written")
        assert "OK" not in row.group(0)


class TestProgressBar:
    """The replay's progress bar is drawn only on a terminal, ends its line, and needs work."""

    @staticmethod
    def replay(spool: Path, target: Path, *, terminal: bool) -> tuple[int, str]:
        """Run ``spool replay`` with stderr on a pseudo-terminal or a pipe."""
        command = [
            sys.executable,
            "-m",
            "metricstream",
            "spool",
            "replay",
            str(spool),
            "--sink",
            f"jsonl:{target}",
            "--all",
        ]
        if not terminal:
            result = subprocess.run(
                command, capture_output=True, text=True, timeout=120, check=False
            )
            return result.returncode, result.stderr
        leader, follower = pty.openpty()
        fcntl.ioctl(follower, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 100, 0, 0))
        with subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=follower) as process:
            os.close(follower)
            chunks = []
            while True:
                try:
                    chunk = os.read(leader, 4096)
                except OSError:  # the other end closed (EIO)
                    break
                if not chunk:
                    break
                chunks.append(chunk)
            os.close(leader)
            return process.wait(), b"".join(chunks).decode(errors="replace")

    @pytest.fixture
    def spool(self, tmp_path: Path) -> Path:
        return spool_left_by_a_dead_sink(tmp_path / "spool", 500)

    def test_on_a_terminal_the_bar_counts_every_event_and_ends_its_line(
        self, spool: Path, tmp_path: Path
    ) -> None:
        status, stderr = self.replay(spool, tmp_path / "copy.jsonl", terminal=True)
        assert status == 0, stderr
        assert "| 500/500 [" in stderr, stderr
        assert stderr.endswith("\n")

    def test_on_a_pipe_there_is_no_bar(self, spool: Path, tmp_path: Path) -> None:
        status, stderr = self.replay(spool, tmp_path / "copy.jsonl", terminal=False)
        assert (status, stderr) == (0, "")

    def test_an_empty_replay_draws_nothing_even_on_a_terminal(self, tmp_path: Path) -> None:
        directory = tmp_path / "empty"
        ms.EventStreamer(
            [FaultySink(name="lost")], spool_dir=directory, register_atexit=False
        ).shutdown(1)
        status, stderr = self.replay(directory, tmp_path / "copy.jsonl", terminal=True)
        assert (status, stderr) == (0, "")


class TestDemoArchive:
    """Each demo run starts a fresh archive and leaves no lock file behind."""

    def test_a_second_run_holds_only_its_own_events(
        self, tmp_path: Path, capsys: pytest.CaptureFixture[str]
    ) -> None:
        sent = []
        for seed in (1, 2):
            assert (
                main(
                    [
                        "demo",
                        "--duration",
                        "1",
                        "--rate",
                        "300",
                        "--seed",
                        str(seed),
                        "--output-dir",
                        str(tmp_path),
                    ]
                )
                == 0
            )
            output = capsys.readouterr().out
            count = re.search(r"Final accounting \(([\d,]+) events sent\)", output)
            assert count is not None
            sent.append(int(count.group(1).replace(",", "")))
        assert len(list(read_events(tmp_path / "events.jsonl.zst"))) == sent[1]
        assert sorted(p.name for p in tmp_path.iterdir()) == ["events.jsonl.zst"]
