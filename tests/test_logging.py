"""Logging: everything through the metricstream logger, repeated lines rate-limited, no print.

Only the CLI and the console sink may write to standard output or error;
every other module logs to the ``metricstream`` logger (or a child), which
has a `logging.NullHandler`, so an application that configures no logging
sees nothing.
"""

from __future__ import annotations

import ast
import logging
import urllib.request
from pathlib import Path

import pytest

import metricstream as ms
from metricstream.testing import FaultySink

from .support import sample
from .test_layers import PACKAGE_DIR, modules

MAY_PRINT = ("metricstream.cli", "metricstream.sinks.console")
"""The modules allowed to write to standard output and error."""

ROOT_LOGGER_CALLS = {"debug", "info", "warning", "warn", "error", "exception", "critical", "log"}


def may_print(module: str) -> bool:
    return any(module == allowed or module.startswith(allowed + ".") for allowed in MAY_PRINT)


def findings(path: Path) -> list[str]:
    """Every print, std stream use, root-logger call or foreign logger in a module."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Call):
            func = node.func
            if isinstance(func, ast.Name) and func.id == "print":
                found.append(f"{node.lineno}: print()")
            elif (
                isinstance(func, ast.Attribute)
                and isinstance(func.value, ast.Name)
                and func.value.id == "logging"
            ):
                if func.attr in ROOT_LOGGER_CALLS or func.attr == "basicConfig":
                    found.append(f"{node.lineno}: logging.{func.attr}() uses the root logger")
                elif func.attr == "getLogger" and not (
                    node.args
                    and isinstance(node.args[0], ast.Constant)
                    and str(node.args[0].value).split(".")[0] == "metricstream"
                ):
                    found.append(f"{node.lineno}: a logger outside 'metricstream'")
        elif (
            isinstance(node, ast.Attribute)
            and node.attr in ("stdout", "stderr", "__stdout__", "__stderr__")
            and isinstance(node.value, ast.Name)
            and node.value.id == "sys"
        ):
            found.append(f"{node.lineno}: sys.{node.attr}")
    return sorted(found, key=lambda finding: int(finding.split(":")[0]))


class TestNoPrint:
    """Outside the CLI and the console sink, nothing prints or writes to std streams."""

    def test_the_package_prints_only_in_the_cli_and_the_console_sink(self) -> None:
        wrong = {
            module: found
            for module, path in modules().items()
            if not may_print(module) and (found := findings(path))
        }
        assert wrong == {}

    def test_the_checker_sees_a_print_and_a_root_logger_call(self, tmp_path: Path) -> None:
        bad = tmp_path / "bad.py"
        bad.write_text(
            "import logging, sys\nprint('x')\nlogging.warning('y')\n"
            "sys.stderr.write('z')\nlogging.getLogger('other')\n",
            encoding="utf-8",
        )
        assert findings(bad) == [
            "2: print()",
            "3: logging.warning() uses the root logger",
            "4: sys.stderr",
            "5: a logger outside 'metricstream'",
        ]

    def test_the_scan_covers_the_whole_package(self) -> None:
        assert len(modules()) == len(list(PACKAGE_DIR.rglob("*.py")))


class TestLogger:
    """The package logger: a NullHandler, rate-limited repeats, requests at DEBUG."""

    def test_the_package_logger_has_a_null_handler(self) -> None:
        handlers = logging.getLogger("metricstream").handlers
        assert any(isinstance(handler, logging.NullHandler) for handler in handlers)

    def test_a_failing_sink_logs_each_kind_of_line_once(
        self, make_streamer, caplog: pytest.LogCaptureFixture
    ) -> None:
        caplog.set_level(logging.DEBUG, logger="metricstream")
        streamer = make_streamer([FaultySink(then="transient")], batch_size=1)
        streamer.send_many(sample(i) for i in range(30))
        assert streamer.flush(30)
        health = streamer.health().sinks["faulty"]
        assert (health.retries, health.dropped_by_reason["retries_exhausted"]) == (90, 30)
        messages = [r.getMessage() for r in caplog.records if r.name == "metricstream"]
        retry_lines = [m for m in messages if "retry" in m and "failed" in m]
        drop_lines = [m for m in messages if "dropped" in m and "retries_exhausted" in m]
        assert (len(retry_lines), len(drop_lines)) == (1, 1)

    def test_health_requests_are_logged_at_debug_not_on_stderr(
        self,
        make_streamer,
        caplog: pytest.LogCaptureFixture,
        capfd: pytest.CaptureFixture[str],
    ) -> None:
        caplog.set_level(logging.DEBUG, logger="metricstream")
        host, port = make_streamer([ms.testing.InMemorySink()]).serve_health()
        urllib.request.urlopen(f"http://{host}:{port}/healthz", timeout=10).close()
        assert capfd.readouterr().err == ""
        lines = [
            (r.levelno, r.getMessage())
            for r in caplog.records
            if r.name == "metricstream" and "GET /healthz" in r.getMessage()
        ]
        assert len(lines) == 1
        assert lines[0][0] == logging.DEBUG


LOG_METHODS = ROOT_LOGGER_CALLS | {"log"}


def prefixed_messages(path: Path) -> list[str]:
    """Log calls in a module whose message repeats the logger's name ("metricstream: ...")."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Attribute)
            and node.func.attr in LOG_METHODS
        ):
            for argument in node.args:
                if (
                    isinstance(argument, ast.Constant)
                    and isinstance(argument.value, str)
                    and argument.value.lower().startswith("metricstream")
                ):
                    found.append(f"{node.lineno}: {argument.value[:40]!r}")
    return found


class TestEachLineSaysMetricstreamOnce:
    """The logger's name says where a line comes from; its message does not say it again."""

    def test_no_log_message_in_the_package_starts_with_metricstream(self) -> None:
        wrong = {
            module: found
            for module, path in modules().items()
            if (found := prefixed_messages(path))
        }
        assert wrong == {}

    def test_the_scan_sees_a_prefixed_message(self, tmp_path: Path) -> None:
        bad = tmp_path / "bad.py"
        bad.write_text("log.warning('metricstream: x %s', 1)\nlog.info('fine')\n")
        assert prefixed_messages(bad) == ["1: 'metricstream: x %s'"]

    def test_lines_printed_by_a_common_logging_setup_name_it_once(
        self, make_streamer, capsys: pytest.CaptureFixture[str]
    ) -> None:
        handler = logging.StreamHandler()  # to sys.stderr, which capsys replaced
        handler.setFormatter(logging.Formatter(logging.BASIC_FORMAT))  # LEVEL:name:message
        log = logging.getLogger("metricstream")
        log.addHandler(handler)
        try:
            streamer = make_streamer(
                [FaultySink(then="transient")],
                batch_size=1,
                max_buffer=2,
                overflow="drop_newest",
            )
            streamer.send_many(sample(i) for i in range(30))
            assert streamer.flush(30)
            streamer.shutdown(5)
        finally:
            log.removeHandler(handler)
        lines = capsys.readouterr().err.splitlines()
        assert any("retry" in line for line in lines)
        assert any("dropped" in line for line in lines)
        assert [line for line in lines if line.count("metricstream") != 1] == []
        assert all(
            line.startswith(("WARNING:metricstream:", "ERROR:metricstream:")) for line in lines
        )
