"""Every command answers bad input with one line on standard error and the documented status.

Exit status 2 is a usage error (flags, URLs, option values), 1 a data or
runtime error (a file, a server that does not answer or refuses). Each case
runs the real command in a subprocess, as a user would, and the whole of
standard error is checked: one line naming the command, never a traceback.
"""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

import metricstream as ms
from metricstream.cli import COMMANDS

from .servers import INFLUXDB_V1_URL, REDIS_URL, RedisProcess, free_port, require_url


@dataclass(frozen=True)
class Case:
    """A bad input: the arguments, what the error says, the exit status."""

    args: tuple[str, ...]
    status: int
    says: str
    stdin: bytes = b""
    alone: bool = True
    """The error is the only line on standard error (pipe reports bad lines before it)."""


def run(args: tuple[str, ...], stdin: bytes = b"", cwd: Path | None = None) -> tuple[int, str]:
    """Run ``python -m metricstream ARGS``; its exit status and standard error."""
    env = {k: v for k, v in os.environ.items() if k != "METRICSTREAM_REDIS_URL"}
    result = subprocess.run(
        [sys.executable, "-m", "metricstream", *args],
        input=stdin,
        capture_output=True,
        timeout=60,
        check=False,
        env=env,
        cwd=cwd,
    )
    return result.returncode, result.stderr.decode()


def assert_one_line_error(case: Case, status: int, stderr: str) -> None:
    assert "Traceback" not in stderr, stderr
    assert status == case.status, stderr
    lines = stderr.splitlines()
    command = "metricstream" if not case.args or case.args[0] == "frob" else case.args[0]
    errors = [line for line in lines if ": error: " in line]
    assert len(errors) == 1, stderr
    assert errors[0] == lines[-1], stderr
    assert errors[0].startswith(
        "metricstream: error: " if command == "metricstream" else f"metricstream {command}: error: "
    ), stderr
    assert case.says in errors[0], stderr
    if case.alone:
        assert len(lines) == 1, stderr


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """Paths the cases name: an archive, a text file, a directory, a closed port."""
    tmp = tmp_path_factory.mktemp("bad-input")
    archive = tmp / "events.jsonl"
    sink = ms.sinks.JsonLinesSink(archive)
    sink.write(sink.prepare(ms.EventBatch([ms.event_from_sample("m", 1)])))
    sink.close()
    notes = tmp / "notes.txt"
    notes.write_text("shopping list\n", encoding="utf-8")
    return {
        "tmp": str(tmp),
        "archive": str(archive),
        "notes": str(notes),
        "closed": str(free_port()),
    }


RELAY_SOURCE = "kafka://127.0.0.1:<closed>/t?group=g"
"""A relay source no broker answers: the errors come before any connection."""

CASES = {
    "no command": Case((), 2, "the following arguments are required: COMMAND"),
    "an unknown command": Case(("frob",), 2, "invalid choice: 'frob'"),
    "demo: a rate of 0": Case(("demo", "--rate", "0"), 2, "must be a finite number > 0"),
    "demo: an unknown sink scheme": Case(
        ("demo", "--sink", "carrier-pigeon://coop", "--duration", "0.1"), 2, "unknown sink URL"
    ),
    "demo: a port out of range": Case(("demo", "--health-port", "70000"), 2, "0 and 65535"),
    "demo: an output directory that is a file": Case(
        ("demo", "--output-dir", "<notes>", "--duration", "0.1"), 1, "notes.txt: File exists"
    ),
    "cat: a missing file": Case(("cat", "<tmp>/missing.jsonl"), 1, "missing.jsonl"),
    "cat: a file that is not JSON Lines": Case(("cat", "<notes>"), 1, "is not a JSON Lines"),
    "cat: a directory": Case(("cat", "<tmp>"), 1, "no JSON Lines file"),
    "cat: an unknown format": Case(("cat", "--format", "xml", "x"), 2, "invalid choice: 'xml'"),
    "query: a missing archive": Case(
        ("query", "<tmp>/missing.jsonl", "--event", "m"), 1, "missing.jsonl"
    ),
    "query: a malformed filter": Case(
        ("query", "<archive>", "--event", "m", "--where", "=x"), 2, "--where"
    ),
    "query: nothing asked": Case(("query", "<archive>"), 2, "name an event set"),
    "query: a document that is not JSON": Case(
        ("query", "<archive>", "--json", "<notes>"), 2, "is not JSON"
    ),
    "query: a missing document": Case(
        ("query", "<archive>", "--json", "<tmp>/missing.json"), 1, "missing.json"
    ),
    "query: an unreadable time": Case(
        ("query", "<archive>", "--event", "m", "--start", "yesterday"), 2, "yesterday"
    ),
    "pipe: no sink": Case(("pipe",), 2, "--sink"),
    "pipe: an unknown sink scheme": Case(
        ("pipe", "--sink", "carrier-pigeon://coop"), 2, "unknown sink URL"
    ),
    "pipe: a missing input file": Case(
        ("pipe", "--sink", "console:", "--input", "<tmp>/missing.lp"), 1, "missing.lp"
    ),
    "pipe: no line can be read": Case(
        ("pipe", "--sink", "console:"),
        1,
        "none of the 2 lines could be read as line protocol",
        stdin=b'{"measurement": "m"}\nnot line protocol\n',
        alone=False,
    ),
    "pipe: a negative shutdown timeout": Case(
        ("pipe", "--sink", "console:", "--shutdown-timeout", "-1"), 2, "--shutdown-timeout"
    ),
    "spool inspect: a missing directory": Case(
        ("spool", "inspect", "<tmp>/missing"), 1, "no spool in"
    ),
    "spool replay: a missing directory": Case(
        ("spool", "replay", "<tmp>/missing", "--sink", "console:"), 1, "no spool directory"
    ),
    "spool replay: no sink": Case(("spool", "replay", "<tmp>"), 2, "--sink"),
    "spool: an unknown action": Case(("spool", "frob", "<tmp>"), 2, "invalid choice: 'frob'"),
    "counters: no Redis URL": Case(("counters", "count", "m", "v"), 2, "--redis URL"),
    "counters: not a Redis URL": Case(
        ("counters", "--redis", "notaurl", "count", "m", "v"), 2, "is not a Redis URL"
    ),
    "counters: Redis does not answer": Case(
        ("counters", "--redis", "redis://127.0.0.1:<closed>/14", "count", "m", "v"),
        1,
        "Redis: Error 111 connecting to 127.0.0.1:<closed>",
    ),
    "counters: an unknown time zone": Case(
        (
            "counters",
            "--tz",
            "Not/AZone",
            "--redis",
            "redis://127.0.0.1:<closed>/0",
            "count",
            "m",
            "v",
        ),
        2,
        "unknown time zone 'Not/AZone'",
    ),
    "counters: an unreadable time": Case(
        (
            "counters",
            "--redis",
            "redis://127.0.0.1:<closed>/0",
            "count",
            "m",
            "v",
            "--start",
            "yesterdayish",
        ),
        2,
        "cannot read the time 'yesterdayish'",
    ),
    "counters: a mapping that is not JSON": Case(
        ("counters", "explain", "--mapping", "{bad", "m v=1"), 2, "mapping"
    ),
    "counters: an event that is not line protocol": Case(
        ("counters", "explain", "--mapping", '{"count": ["measurement"]}', "m v="), 2, "column"
    ),
    "serve: no archive directory": Case(("serve",), 2, "ARCHIVE_DIR"),
    "serve: a port out of range": Case(("serve", "<tmp>", "--port", "70000"), 2, "--port"),
    "serve: a port that is no number": Case(
        ("serve", "<tmp>", "--port", "http"), 2, "argument --port"
    ),
    "serve: a spool smaller than 1 MiB": Case(
        ("serve", "<tmp>", "--port", "0", "--spool-max-bytes", "4096"), 2, "--spool-max-bytes"
    ),
    "relay: no source": Case(("relay", "--to", "console:"), 2, "--from"),
    "relay: a source without a group": Case(
        ("relay", "--from", "kafka://127.0.0.1:<closed>/t", "--to", "console:"),
        2,
        "names no consumer group",
    ),
    "relay: a sink scheme nobody serves": Case(
        ("relay", "--from", RELAY_SOURCE, "--to", "nosuch://x"), 2, "nosuch"
    ),
    "relay: a window without a name": Case(
        ("relay", "--from", RELAY_SOURCE, "--to", "console:", "--window", "tumbling 60s"),
        2,
        "--name",
    ),
    "relay: a window that is no window": Case(
        ("relay", "--from", RELAY_SOURCE, "--to", "console:", "--window", "hop 1s", "--name", "w"),
        2,
        "window",
    ),
    "relay: a lateness that is no duration": Case(
        ("relay", "--from", RELAY_SOURCE, "--to", "console:", "--allowed-lateness", "soon"),
        2,
        "argument --allowed-lateness",
    ),
    "health: a host with a port that is no number": Case(
        ("health", "notaurl:xx"), 2, "'notaurl:xx' is not a URL"
    ),
    "health: an unclosed IPv6 address": Case(
        ("health", "http://[::1"), 2, "'http://[::1' is not a URL"
    ),
    "health: a port out of range": Case(("health", "99999"), 2, "'99999' is not a URL"),
    "health: not http": Case(("health", "ftp://host"), 2, "expected an http:// or https://"),
    "health: nothing answers": Case(("health", "127.0.0.1:<closed>"), 1, "cannot reach"),
}


def fill(case: Case, files: dict[str, str]) -> Case:
    """The case with ``<name>`` replaced by the path or port `files` gives for it."""

    def filled(text: str) -> str:
        for name, value in files.items():
            text = text.replace(f"<{name}>", value)
        return text

    return Case(
        tuple(filled(arg) for arg in case.args),
        case.status,
        filled(case.says),
        case.stdin,
        case.alone,
    )


class TestBadInput:
    """Bad input to any command is one line on standard error and status 2 or 1."""

    def test_every_command_has_cases(self) -> None:
        commands = {name.split(":")[0].split()[0] for name in CASES}
        assert {c.__name__.rsplit(".", 1)[1] for c in COMMANDS} <= commands

    @pytest.mark.parametrize("name", list(CASES))
    def test_without_servers(self, name: str, files: dict[str, str], tmp_path: Path) -> None:
        case = fill(CASES[name], files)
        status, stderr = run(case.args, case.stdin, cwd=tmp_path)
        assert_one_line_error(case, status, stderr)


class TestMissingExtra:
    """A command that needs an optional library that is missing names the extra to install."""

    def test_counters_without_redis_py(self) -> None:
        code = (
            "import sys; sys.modules['redis'] = None; from metricstream.cli import main; "
            "sys.exit(main(sys.argv[1:]))"
        )
        result = subprocess.run(
            [sys.executable, "-c", code, "counters", "--redis", "redis://127.0.0.1:1/0",
             "count", "m", "v"],
            capture_output=True, text=True, timeout=60, check=False,
        )  # fmt: skip
        assert (result.returncode, result.stderr) == (
            1,
            "metricstream counters: error: this needs redis: pip install 'metricstream[redis]'\n",
        )


@pytest.mark.servers
class TestBadInputAgainstServers:
    """The same against real servers that answer and refuse."""

    def test_a_redis_database_the_server_does_not_have(self) -> None:
        require_url("redis", REDIS_URL)
        url = REDIS_URL.rsplit("/", 1)[0] + "/99"
        case = Case(("counters", "--redis", url, "count", "m", "v"), 1, "Redis: DB index")
        assert_one_line_error(case, *run(case.args))

    def test_a_wrong_redis_password_is_not_shown(self) -> None:
        with RedisProcess("--requirepass", "right-password") as server:
            url = server.url(password="wrong-password")
            case = Case(("counters", "--redis", url, "count", "m", "v"), 1, "Redis: ")
            status, stderr = run(case.args)
        assert_one_line_error(case, status, stderr)
        assert "wrong-password" not in stderr

    def test_a_server_that_is_no_health_endpoint(self) -> None:
        require_url("InfluxDB 1.6 (v1 API)", INFLUXDB_V1_URL)
        case = Case(("health", INFLUXDB_V1_URL), 1, "answered 404 without a health document")
        assert_one_line_error(case, *run(case.args))


class TestLibraryWarnings:
    """The library's warnings reach standard error, each line once, as ``metricstream: ...``."""

    def test_a_torn_record_skipped_by_cat_is_reported_once(self, tmp_path: Path) -> None:
        event = ms.event_from_sample("m", 1.0, timestamp_ns=1_700_000_000_000_000_000)
        path = tmp_path / "torn.jsonl"
        path.write_bytes(event.to_json().encode() + b'\n{"measurement":"m","fie')
        status, stderr = run(("cat", str(path)))
        assert status == 0, stderr
        assert stderr.splitlines() == [
            f"metricstream: skipped a torn record in {path} (line 2, byte 107, 23 bytes): "
            "incomplete JSON record at the end of the file"
        ]

    def test_calling_main_twice_in_one_process_writes_each_warning_once(
        self, tmp_path: Path, capsys: pytest.CaptureFixture[str]
    ) -> None:
        from metricstream.cli import main

        event = ms.event_from_sample("m", 1.0, timestamp_ns=1_700_000_000_000_000_000)
        path = tmp_path / "torn.jsonl"
        path.write_bytes(event.to_json().encode() + b"\nnot json at all")
        for _ in range(2):
            assert main(["cat", str(path)]) == 0
            warnings = capsys.readouterr().err.splitlines()
            assert len(warnings) == 1, warnings
            assert warnings[0].startswith(f"metricstream: skipped a torn record in {path}")
