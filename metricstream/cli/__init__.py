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
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence

from metricstream.cli import cat, counters, demo, health, pipe, query, relay, serve, spool
from metricstream.cli.workload import EVENT_MIX, AnalyticsWorkload
from metricstream.exceptions import MetricStreamError

__all__ = ["COMMANDS", "EVENT_MIX", "AnalyticsWorkload", "build_parser", "main"]

COMMANDS = (demo, cat, query, pipe, spool, counters, health, serve, relay)
"""The command modules, in the order ``--help`` lists them."""


def build_parser() -> argparse.ArgumentParser:
    """Return the argument parser of the ``metricstream`` command."""
    parser = argparse.ArgumentParser(
        prog="metricstream",
        description="Stream application telemetry: run the demo, read archives, "
        "inspect running streamers.",
        epilog="example:\n  metricstream demo --duration 5\n  metricstream cat events.jsonl.zst",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for command in COMMANDS:
        command.register(commands)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command; return its exit status."""
    args = build_parser().parse_args(argv)
    try:
        status: int = args.run(args, sys.stdout)
    except BrokenPipeError:
        # The reader went away (``| head``): a normal end for a Unix filter.
        # Point stdout at /dev/null so the interpreter's final flush stays quiet.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
        return 0
    except (MetricStreamError, OSError) as exc:
        sys.stderr.write(f"metricstream: error: {exc}\n")
        return 2
    return status
