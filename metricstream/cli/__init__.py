"""The ``metricstream`` command: one module per subcommand.

- ``metricstream demo`` (`metricstream.cli.demo`): stream a simulated
  analytics workload, with a live summary and the final accounting;
- ``metricstream cat`` (`metricstream.cli.cat`): print the events of a JSON
  Lines file;
- ``metricstream query`` (`metricstream.cli.query`): counts, uniques,
  breakdowns and funnels over JSON Lines archives;
- ``metricstream pipe`` (`metricstream.cli.pipe`): stream line protocol or
  JSON Lines from standard input to sinks;
- ``metricstream spool`` (`metricstream.cli.spool`): inspect a spool, or
  replay it to sinks;
- ``metricstream health`` (`metricstream.cli.health`): show a running
  streamer's health;
- ``metricstream counters`` (`metricstream.cli.counters`): read Redis
  counters, or explain the Redis commands of one event;
- ``metricstream serve`` (`metricstream.cli.serve`): run the event store
  (HTTP ingest, queries, InfluxDB writes, a query page);
- ``metricstream relay`` (`metricstream.cli.relay`): read Kafka topics as a
  consumer group and deliver them (or their event-time windows) to sinks.

A command module has ``register(subparsers)``, which adds its parser and sets
``run(args, out) -> exit status`` as its default; `COMMANDS` lists them.

Exit status, the same for every command: 0 when it did what was asked; 1
when the data or a server stood in the way (an unreadable file, a server
that does not answer or refuses, events a sink dropped); 2 for a usage
error (a bad flag, URL or option value); 130 when interrupted. Errors are
one line on standard error, never a traceback: `exit_status` is the one
table from errors to statuses. SIGTERM stops a command as Ctrl-C does, so
the commands that stream deliver what they hold and report before exiting.

The library's warnings (a sink that fails and is retried, a torn record
skipped, events dropped) are shown on standard error while a command runs,
each once, as ``metricstream: MESSAGE`` (`LOG_FORMAT`): the library logs
them to the ``metricstream`` logger, which shows nothing unless its
application (here, the command) configures a handler.
"""

from __future__ import annotations

import argparse
import importlib.metadata
import logging
import os
import signal
import sys
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from types import FrameType

from metricstream._secrets import scrub_secrets
from metricstream.cli import cat, counters, demo, health, pipe, query, relay, serve, spool
from metricstream.cli._args import OneLineParser
from metricstream.cli._errors import DataError
from metricstream.cli.workload import EVENT_MIX, AnalyticsWorkload
from metricstream.exceptions import (
    ConfigError,
    InvalidEventError,
    LineProtocolError,
    SchemaVersionError,
    SinkError,
)

__all__ = [
    "COMMANDS",
    "EVENT_MIX",
    "EXIT_FAILURE",
    "EXIT_INTERRUPTED",
    "EXIT_USAGE",
    "LOG_FORMAT",
    "AnalyticsWorkload",
    "DataError",
    "build_parser",
    "exit_status",
    "main",
]

COMMANDS = (demo, cat, query, pipe, spool, counters, health, serve, relay)
"""The command modules, in the order ``--help`` lists them."""

EXIT_FAILURE = 1
"""The data or a server stood in the way, or a sink did not get every event."""
EXIT_USAGE = 2
"""A bad flag, URL or option value."""
EXIT_INTERRUPTED = 130
"""Interrupted (Ctrl-C or SIGTERM) outside a command that reports what it delivered."""

LOG_FORMAT = "metricstream: %(message)s"
"""How a warning of the library reads on standard error while a command runs."""

_USAGE_ERRORS: tuple[type[BaseException], ...] = (
    ConfigError,
    InvalidEventError,
    LineProtocolError,
    SchemaVersionError,
)
"""What the command line gave is not valid (a value a command reads from a
file is reported by that command as `DataError`)."""

_CLIENT_ERRORS = (
    ("redis.exceptions", "RedisError", "Redis"),
    ("confluent_kafka", "KafkaException", "Kafka"),
    ("influxdb_client.rest", "ApiException", "InfluxDB"),
    ("urllib3.exceptions", "HTTPError", "HTTP"),
    ("duckdb", "Error", "DuckDB"),
)
"""(module, error class, label) of the optional client libraries: their
errors mean a server or an engine refused (status 1). Looked up only in the
modules already imported, so that no command imports a client it does not use."""


def build_parser() -> argparse.ArgumentParser:
    """Return the argument parser of the ``metricstream`` command."""
    parser = OneLineParser(
        prog="metricstream",
        description="Stream application telemetry: run the demo, read archives, "
        "inspect running streamers. Exit status: 0 done, 1 data or server error "
        "(or events not delivered), 2 usage error.",
        epilog="example:\n  metricstream demo --duration 5\n  metricstream cat events.jsonl.zst",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--version",
        action="version",
        version=f"metricstream {importlib.metadata.version('metricstream')}",
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for command in COMMANDS:
        command.register(commands)
    return parser


_EXTRAS = {
    "confluent_kafka": "kafka",
    "duckdb": "query",
    "influxdb_client": "influxdb",
    "jsonschema": "query",
    "opentelemetry": "otel",
    "prometheus_client": "prometheus",
    "redis": "redis",
    "tqdm": "cli",
}
"""The extra that installs each optional client library."""


def exit_status(exc: BaseException) -> int | None:
    """The exit status for an error that ends a command, or None for a defect.

    Returns:
        `EXIT_USAGE` for invalid input given on the command line,
        `EXIT_FAILURE` for a file, a server, a client library or a missing
        optional dependency that stood in the way, None for anything else (a
        bug: its traceback is shown).
    """
    if isinstance(exc, _USAGE_ERRORS):
        return EXIT_USAGE
    if isinstance(exc, (OSError, SinkError, DataError)) or _client_label(exc):
        return EXIT_FAILURE
    if isinstance(exc, ImportError) and _missing_extra(exc):
        return EXIT_FAILURE
    return None


def _missing_extra(exc: ImportError) -> str | None:
    """What to install for an optional library that is missing, or None for another ImportError."""
    if "pip install 'metricstream[" in str(exc):
        return str(exc)
    module = (exc.name or "").partition(".")[0]
    if isinstance(exc, ModuleNotFoundError) and module in _EXTRAS:
        return f"this needs {module}: pip install 'metricstream[{_EXTRAS[module]}]'"
    return None


def _client_label(exc: BaseException) -> str | None:
    """The label of the client library `exc` comes from, if it is one of `_CLIENT_ERRORS`."""
    for module_name, class_name, label in _CLIENT_ERRORS:
        module = sys.modules.get(module_name)
        error = getattr(module, class_name, None)
        if isinstance(error, type) and isinstance(exc, error):
            return label
    return None


def _message(exc: BaseException) -> str:
    """`exc` as one line, credentials removed, prefixed by the library that raised it."""
    if isinstance(exc, OSError) and exc.strerror and exc.filename is not None:
        text = f"{exc.filename}: {exc.strerror}"
    elif isinstance(exc, ImportError):
        text = _missing_extra(exc) or str(exc)
    else:
        text = str(exc) or type(exc).__name__
    label = _client_label(exc)
    return scrub_secrets(" ".join(f"{label}: {text}".split() if label else text.split()))


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command; return its exit status."""
    args = build_parser().parse_args(argv)
    prog = f"metricstream {args.command}"
    try:
        with _terminate_as_interrupt(), _warnings_on_stderr():
            status: int = args.run(args, sys.stdout)
    except BrokenPipeError:
        # The reader went away (``| head``): a normal end for a Unix filter.
        # Point stdout at /dev/null so the interpreter's final flush stays quiet.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
        return 0
    except KeyboardInterrupt:
        sys.stderr.write(f"\n{prog}: interrupted\n")
        return EXIT_INTERRUPTED
    except Exception as exc:
        known = exit_status(exc)
        if known is None:
            raise
        sys.stderr.write(f"{prog}: error: {_message(exc)}\n")
        return known
    return status


class _StderrHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """Writes to the `sys.stderr` of the moment (a test or a caller may replace it)."""

    def __init__(self) -> None:
        super().__init__()
        self.setLevel(logging.WARNING)
        self.setFormatter(logging.Formatter(LOG_FORMAT))

    @property
    def stream(self) -> object:
        return sys.stderr

    @stream.setter
    def stream(self, _value: object) -> None:
        pass


@contextmanager
def _warnings_on_stderr() -> Iterator[None]:
    """Show the library's warnings on standard error while the command runs (see the module doc).

    The handler is the ``metricstream`` logger's own, and removed afterwards,
    so a line is written once however the command is called.
    """
    library = logging.getLogger("metricstream")
    handler = _StderrHandler()
    library.addHandler(handler)
    try:
        yield
    finally:
        library.removeHandler(handler)


@contextmanager
def _terminate_as_interrupt() -> Iterator[None]:
    """Make SIGTERM raise `KeyboardInterrupt`, as Ctrl-C does, while the command runs."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGTERM, _interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous if previous is not None else signal.SIG_DFL)


def _interrupt(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt
