"""``metricstream cat``: print the events of a JSON Lines file (plain, zstd, rotated)."""

from __future__ import annotations

import argparse
from typing import Any, TextIO

from metricstream.cli._args import plain
from metricstream.cli._errors import DataError
from metricstream.contract import EventBatch
from metricstream.event import MetricEvent
from metricstream.exceptions import InvalidEventError
from metricstream.sinks import ConsoleSink
from metricstream.sinks.jsonl import JsonLinesReader
from metricstream.sinks.jsonl.reader import warn_torn_tail

__all__ = ["register", "run"]

EXAMPLE = """example:
  metricstream cat metricstream-demo/events.jsonl.zst --format pretty"""


def register(commands: Any) -> None:
    """Add the ``cat`` command to the CLI's subparsers."""
    cat = commands.add_parser(
        "cat",
        help="print the events of a JSON Lines file",
        description=plain(__doc__),
        epilog=EXAMPLE,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    cat.add_argument(
        "path", help="a .jsonl or .jsonl.zst file, or the base path of a rotated series"
    )
    cat.add_argument(
        "--format",
        choices=("line", "json", "pretty"),
        default="line",
        help="line protocol, JSON (one event per line) or a readable layout (line)",
    )
    cat.set_defaults(run=run)


def run(args: argparse.Namespace, out: TextIO) -> int:
    """Print the events of a JSON Lines file; return the exit status.

    Raises:
        DataError: If the file holds no event and only bytes that are not
            JSON Lines (plain, zstd or gzip), or a line that is not an event;
            torn records in a file that does hold events are reported on
            standard error after the events.
        OSError: If the file cannot be read.
    """
    console = ConsoleSink(stream=out, format=args.format)
    # Torn records are reported once the reading tells whether the file holds events at all.
    reader = JsonLinesReader(args.path, on_torn_tail=lambda tail: None)
    chunk: list[MetricEvent] = []
    try:
        for event in reader:
            chunk.append(event)
            if len(chunk) >= 1000:
                out.write(console.prepare(EventBatch(chunk)))
                chunk = []
    except InvalidEventError as exc:
        raise DataError(f"{args.path} is not a JSON Lines file of events: {exc}") from None
    if chunk:
        out.write(console.prepare(EventBatch(chunk)))
    out.flush()
    if reader.events_read == 0 and reader.torn_tails:
        first = reader.torn_tails[0]
        raise DataError(
            f"{args.path} is not a JSON Lines file (plain, zstd or gzip): "
            f"{first.detail} at byte {first.offset}"
        )
    for tail in reader.torn_tails:
        warn_torn_tail(tail)
    return 0
