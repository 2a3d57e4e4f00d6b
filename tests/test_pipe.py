"""`metricstream pipe`, run as a real subprocess reading its standard input."""

from __future__ import annotations

import json
import re
import signal
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

import metricstream as ms
import metricstream.cli._waits
from metricstream.cli import main
from metricstream.cli.pipe import MAX_LINE_BYTES, REPORTED_LINES, read_blocks
from metricstream.sinks.jsonl import read_events
from tests.influx_readback import influx_query, influx_v1_events, quote_identifier
from tests.servers import INFLUXDB_V1_URL, require_url
from tests.support import faulty_scheme

RUN_ID = uuid.uuid4().hex[:10]
T0 = 1_700_000_000_000_000_000


def pipe(stdin: bytes, *args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    """Run ``python -m metricstream pipe ARGS`` with `stdin` as its input."""
    result = subprocess.run(
        [sys.executable, "-m", "metricstream", "pipe", *args],
        input=stdin,
        capture_output=True,
        cwd=cwd,
        timeout=120,
        check=False,
    )
    return subprocess.CompletedProcess(
        result.args, result.returncode, result.stdout.decode(), result.stderr.decode()
    )


def summary(stdout: str) -> tuple[int, int, int]:
    """(lines read, events sent, bad lines) from the summary line."""
    match = re.search(
        r"^Read ([\d,]+) lines: ([\d,]+) events sent, ([\d,]+) bad lines skipped$", stdout, re.M
    )
    assert match, stdout
    lines, events, bad = (int(group.replace(",", "")) for group in match.groups())
    return lines, events, bad


def reported(stderr: str) -> list[int]:
    """The line numbers of the bad lines reported on standard error."""
    return [int(n) for n in re.findall(r"^metricstream pipe: line (\d+): ", stderr, re.M)]


def sink_rows(stdout: str) -> dict[str, tuple[int, int]]:
    rows = re.findall(r"^  (\S+)\s+written\s+([\d,]+)\s+dropped\s+([\d,]+)", stdout, re.M)
    return {name: (int(w.replace(",", "")), int(d.replace(",", ""))) for name, w, d in rows}


def lp(i: int, **extra: str) -> str:
    tags = "".join(f",{k}={v}" for k, v in sorted({"host": f"h{i % 3}", **extra}.items()))
    return f"cpu{tags} usage={i * 0.5},count={i}i {T0 + i}"


class TestLineProtocol:
    """Line protocol from stdin reaches the sink; bad lines are numbered, skipped, counted."""

    def test_good_lines_are_written_and_bad_ones_reported_by_number(self, tmp_path: Path) -> None:
        lines = [
            lp(1),
            "this is not line protocol",
            "# a comment",
            "",
            lp(2),
            "cpu,host=h usage=1 notatime",
            lp(3),
            "cpu,host=h",
        ]
        out = tmp_path / "out.jsonl"
        result = pipe("\n".join(lines).encode() + b"\n", "--sink", f"jsonl:{out}")
        assert result.returncode == 0, result.stderr
        assert summary(result.stdout) == (8, 3, 3)
        assert reported(result.stderr) == [2, 6, 8]
        assert "line 6: column 20: invalid timestamp 'notatime'" in result.stderr
        assert sink_rows(result.stdout) == {"jsonl": (3, 0)}
        expected = ms.parse_lines("\n".join([lp(1), lp(2), lp(3)]))
        assert list(read_events(out)) == expected

    def test_string_values_over_several_lines_crlf_and_an_unclosed_string(
        self, tmp_path: Path
    ) -> None:
        text = (
            b'log,app=a msg="first\r\nsecond" 1\r\n'  # one entry over two lines
            b'log,app=a msg="never closed\r\n'  # line 3: only this line is bad
            b"log,app=a n=1i 2\r\n"
            b'log,app=a msg="x\\"y" 3\r\n'
            b'log,app=a msg="ends the input'
        )
        out = tmp_path / "out.jsonl"
        result = pipe(text, "--sink", f"jsonl:{out}")
        assert result.returncode == 0, result.stderr
        assert summary(result.stdout) == (6, 3, 2)
        assert reported(result.stderr) == [3, 6]
        assert "unterminated string" in result.stderr
        events = list(read_events(out))
        assert [e.fields for e in events] == [
            {"msg": "first\r\nsecond"},
            {"n": 1},
            {"msg": 'x"y'},
        ]

    def test_precision_scales_the_timestamps(self, tmp_path: Path) -> None:
        out = tmp_path / "out.jsonl"
        result = pipe(
            b"m v=1 1700000000\nm v=2 1700000001\n", "--precision", "s", "--sink", f"jsonl:{out}"
        )
        assert result.returncode == 0, result.stderr
        assert [e.timestamp_ns for e in read_events(out)] == [T0, T0 + 1_000_000_000]

    def test_a_long_stream_with_scattered_bad_lines_is_counted_exactly(
        self, tmp_path: Path
    ) -> None:
        lines = []
        good = []
        for i in range(1, 30_001):
            if i % 997 == 0:
                lines.append(f"broken line {i}")
            elif i % 1499 == 0:
                lines.append("cpu,host=h usage=\xff".encode("latin-1").decode("latin-1"))
            else:
                lines.append(lp(i))
                good.append(lp(i))
        payload = "\n".join(lines).encode("latin-1") + b"\n"
        out = tmp_path / "out.jsonl.zst"
        result = pipe(payload, "--sink", f"jsonl:{out}", "--batch-size", "5000")
        bad_numbers = [i for i in range(1, 30_001) if i % 997 == 0 or i % 1499 == 0]
        assert result.returncode == 0, result.stderr
        assert summary(result.stdout) == (30_000, len(good), len(bad_numbers))
        assert reported(result.stderr) == bad_numbers
        assert list(read_events(out)) == ms.parse_lines("\n".join(good))

    def test_only_the_first_bad_lines_are_shown_all_are_counted(self, tmp_path: Path) -> None:
        lines = [f"junk {i}" if i % 2 else lp(i) for i in range(1, 2 * REPORTED_LINES + 41)]
        result = pipe("\n".join(lines).encode(), "--sink", f"jsonl:{tmp_path / 'o.jsonl'}")
        assert result.returncode == 0, result.stderr
        assert summary(result.stdout) == (len(lines), len(lines) // 2, len(lines) // 2)
        assert reported(result.stderr) == list(range(1, 2 * REPORTED_LINES, 2))
        assert result.stderr.rstrip().endswith("they are counted, not shown")


class TestJsonLines:
    """--input-format json reads one event per line, as MetricEvent.to_json writes it."""

    def test_events_round_trip_and_bad_lines_are_reported(self, tmp_path: Path) -> None:
        events = [
            ms.MetricEvent("order", {"shop": "s1"}, {"amount": 12.5, "items": 2}, T0, "req-1"),
            ms.MetricEvent("order", {"shop": "s2"}, {"big": ms.UInt(2**63)}, T0 + 1),
        ]
        lines = [
            events[0].to_json(),
            "{not json",
            "",
            '{"measurement": "m", "fields": {"v": 1}, "timestamp_ns": 1, "schema_version": 99}',
            events[1].to_json(),
            '{"measurement": "m", "fields": {}, "timestamp_ns": 1}',
        ]
        out = tmp_path / "out.jsonl"
        result = pipe("\n".join(lines).encode(), "--input-format", "json", "--sink", f"jsonl:{out}")
        assert result.returncode == 0, result.stderr
        assert summary(result.stdout) == (6, 2, 3)
        assert reported(result.stderr) == [2, 4, 6]
        assert "schema_version 99" in result.stderr
        assert list(read_events(out)) == events

    def test_to_several_sinks_at_once_from_a_file(self, tmp_path: Path) -> None:
        source = tmp_path / "in.jsonl"
        source.write_text(
            "\n".join(
                ms.event_from_sample("m", i, timestamp_ns=T0 + i).to_json() for i in range(5)
            ),
            encoding="utf-8",
        )
        result = pipe(
            b"",
            "--input-format",
            "json",
            "--input",
            str(source),
            "--sink",
            "console:line",
            "--sink",
            f"jsonl:{tmp_path / 'copy.jsonl'}",
        )
        assert result.returncode == 0, result.stderr
        assert result.stdout.splitlines()[:5] == [f"m value={i}i {T0 + i}" for i in range(5)]
        assert sink_rows(result.stdout) == {"console": (5, 0), "jsonl": (5, 0)}


class TestStatus:
    """Exit status: 0 all written, 1 some dropped or an unreadable input, 2 bad options."""

    def test_a_sink_is_required(self) -> None:
        result = pipe(b"", "--input-format", "line")
        assert result.returncode == 2
        assert "--sink" in result.stderr

    def test_an_unknown_sink_scheme_is_status_2(self) -> None:
        result = pipe(b"m v=1\n", "--sink", "carrier-pigeon://coop")
        assert result.returncode == 2
        assert "unknown sink URL scheme" in result.stderr

    def test_help_is_plain_text_with_an_example(self) -> None:
        result = pipe(b"", "--help")
        assert result.returncode == 0
        assert "``" not in result.stdout
        assert "example:" in result.stdout

    def test_a_missing_input_file_is_status_1(self, tmp_path: Path) -> None:
        result = pipe(b"", "--input", str(tmp_path / "missing.lp"), "--sink", "console:")
        assert result.returncode == 1
        assert "missing.lp" in result.stderr

    def test_empty_input_is_fine(self, tmp_path: Path) -> None:
        result = pipe(b"", "--sink", f"jsonl:{tmp_path / 'o.jsonl'}")
        assert result.returncode == 0, result.stderr
        assert summary(result.stdout) == (0, 0, 0)


@pytest.fixture
def influx() -> Iterator[tuple[str, str]]:
    require_url("InfluxDB 1.6 (v1 API)", INFLUXDB_V1_URL)
    db = f"pipe_{RUN_ID}"
    influx_query(INFLUXDB_V1_URL, f"CREATE DATABASE {quote_identifier(db)}")
    yield INFLUXDB_V1_URL, db
    influx_query(INFLUXDB_V1_URL, f"DROP DATABASE {quote_identifier(db)}")


@pytest.mark.servers
class TestToInfluxDB:
    """Against the real InfluxDB 1.6: what is piped is stored; what it refuses is status 1."""

    def test_piped_lines_are_stored(self, influx: tuple[str, str]) -> None:
        url, db = influx
        host = url.split("://", 1)[1]
        lines = [lp(i) for i in range(1, 101)]
        result = pipe("\n".join(lines).encode(), "--sink", f"influxdb://{host}/{db}")
        assert result.returncode == 0, result.stderr
        assert sink_rows(result.stdout) == {"influxdb": (100, 0)}
        stored = influx_v1_events(url, db, "cpu")
        assert stored == sorted(
            ms.parse_lines("\n".join(lines)),
            key=lambda e: (e.measurement, e.timestamp_ns, sorted(e.tags.items())),
        )

    def test_events_the_server_refuses_make_status_1(self) -> None:
        require_url("InfluxDB 1.6 (v1 API)", INFLUXDB_V1_URL)
        host = INFLUXDB_V1_URL.split("://", 1)[1]
        result = pipe(b"m v=1 1\nm v=2 2\n", "--sink", f"influxdb://{host}/missing_{RUN_ID}")
        assert result.returncode == 1
        assert sink_rows(result.stdout) == {"influxdb": (0, 2)}


class TestReadBlocks:
    """read_blocks never splits a line and skips one too long to hold."""

    def test_blocks_end_at_line_ends_whatever_the_read_size(self) -> None:
        import io

        text = b"".join(b"line %d\n" % i for i in range(1, 500)) + b"last"
        for size in (1, 7, 64, 4096):
            blocks = list(read_blocks(io.BufferedReader(io.BytesIO(text)), size))
            assert b"".join(b for _, b in blocks if b is not None) == text
            for first, block in blocks:
                assert block is not None
                assert block.split(b"\n", 1)[0] == (b"line %d" % first if first < 500 else b"last")

    def test_an_overlong_line_is_reported_and_skipped(self) -> None:
        import io

        text = b"a 1\n" + b"x" * (MAX_LINE_BYTES + (1 << 17)) + b"\nb 2\n"
        blocks = list(read_blocks(io.BytesIO(text)))
        assert blocks == [(1, b"a 1\n"), (2, None), (3, b"b 2\n")]


@pytest.fixture(scope="module")
def hanging_scheme() -> str:
    """A sink URL scheme, ``test-hang:NAME``, whose sink's writes hang until it is closed."""
    return faulty_scheme("test-hang", "hang")


class TestInterrupt:
    """SIGTERM and Ctrl-C stop the reading; what was read is delivered and accounted for."""

    @pytest.mark.parametrize("signal_number", [signal.SIGTERM, signal.SIGINT])
    def test_a_signal_delivers_what_was_read_and_reports(
        self, signal_number: int, tmp_path: Path
    ) -> None:
        out = tmp_path / "out.jsonl"
        # A shell starts background jobs with SIGINT ignored, and Python keeps it ignored:
        # the command is run with Ctrl-C's usual handler, as from a terminal.
        command = (
            "import signal, sys; signal.signal(signal.SIGINT, signal.default_int_handler); "
            "from metricstream.cli import main; sys.exit(main(sys.argv[1:]))"
        )
        process = subprocess.Popen(
            [sys.executable, "-c", command, "pipe", "--sink", f"jsonl:{out}",
             "--flush-interval", "3600", "--batch-size", "100000"],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )  # fmt: skip
        assert process.stdin is not None
        assert process.stderr is not None
        try:
            # A bad line is reported before the good lines of its block are sent, and the
            # next block is read only once they are: the second report means all 500 were.
            process.stdin.write("".join(lp(i) + "\n" for i in range(500)) + "bad line 501\n")
            process.stdin.flush()
            assert "line 501" in process.stderr.readline()
            process.stdin.write("bad line 502\n")
            process.stdin.flush()
            assert "line 502" in process.stderr.readline()
            process.send_signal(signal_number)
            stdout, stderr = process.communicate(timeout=60)
        finally:
            process.kill()
        assert process.returncode == 0, stderr
        assert "metricstream pipe: interrupted; delivering what was read" in stderr
        assert summary(stdout.replace(" (interrupted)", "")) == (502, 500, 2)
        assert "Read 502 lines (interrupted): 500 events sent" in stdout
        assert sink_rows(stdout) == {"jsonl": (500, 0)}
        assert list(read_events(out)) == ms.parse_lines("\n".join(lp(i) for i in range(500)))


class TestWaiting:
    """While the sinks hold events, pipe says so every few seconds, and stops at the deadline."""

    def test_a_hanging_sink_is_named_with_its_pending_events_until_the_shutdown_timeout(
        self,
        hanging_scheme: str,
        tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str],
    ) -> None:
        monkeypatch.setattr(metricstream.cli._waits, "STATUS_INTERVAL", 0.2)
        source = tmp_path / "in.lp"
        source.write_text("".join(lp(i) + "\n" for i in range(100)), encoding="utf-8")
        status = main(["pipe", "--input", str(source), "--sink", f"{hanging_scheme}:stuck",
                       "--shutdown-timeout", "1.5", "--format", "json"])  # fmt: skip
        printed = capsys.readouterr()
        assert status == 1
        waits = re.findall(
            r"^metricstream pipe: delivering what was read \((\d+) s, (\d+) s left\): "
            r"stuck 100 pending$",
            printed.err,
            re.M,
        )
        assert waits, printed.err
        document = json.loads(printed.out)
        stuck = document["sinks"]["stuck"]
        assert (stuck["accepted"], stuck["written"], stuck["dropped"]) == (100, 0, 100)
        assert stuck["dropped_by_reason"] == {"shutdown": 100}
        assert stuck["outcome"] == "failed"
        assert document["lines"] == 100

    def test_the_old_timeout_flag_still_works_and_says_it_is_deprecated(
        self, tmp_path: Path
    ) -> None:
        result = pipe(lp(1).encode(), "--sink", f"jsonl:{tmp_path / 'o.jsonl'}", "--timeout", "5")
        assert result.returncode == 0, result.stderr
        assert result.stderr == (
            "metricstream pipe: warning: --timeout is deprecated; use --shutdown-timeout\n"
        )
        assert sink_rows(result.stdout) == {"jsonl": (1, 0)}
