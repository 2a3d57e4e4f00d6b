"""``metricstream cat``: print the events of a JSON Lines file (plain, zstd, rotated)."""

from __future__ import annotations

import argparse
from typing import Any, TextIO

from metricstream.contract import EventBatch
from metricstream.event import MetricEvent
from metricstream.sinks.console import ConsoleSink
from metricstream.sinks.jsonl import read_events

__all__ = ["register", "run"]

EXAMPLE = """example:
  metricstream cat metricstream-demo/events.jsonl.zst --format pretty"""


def register(commands: Any) -> None:
    """Add the ``cat`` command to the CLI's subparsers."""
    cat = commands.add_parser(
        "cat",
        help="print the events of a JSON Lines file",
        description=__doc__.split("\n\n")[0],
        epilog=EXAMPLE,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    cat.add_argument(
        "path", help="a .jsonl or .jsonl.zst file, or the base path of a rotated series"
    )
    cat.add_argument("--format", choices=("line", "json", "pretty"), default="line")
    cat.set_defaults(run=run)


def run(args: argparse.Namespace, out: TextIO) -> int:
    """Print the events of a JSON Lines file; return the exit status."""
    console = ConsoleSink(stream=out, format=args.format)
    chunk: list[MetricEvent] = []
    for event in read_events(args.path):
        chunk.append(event)
        if len(chunk) >= 1000:
            console.write(console.prepare(EventBatch(chunk)))
            chunk = []
    if chunk:
        console.write(console.prepare(EventBatch(chunk)))
    return 0
