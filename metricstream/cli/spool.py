"""``metricstream spool``: inspect a spool directory, or replay what it holds to sinks."""

from __future__ import annotations

import argparse
import errno
import logging
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext
from pathlib import Path
from typing import Any, TextIO

from metricstream.cli._args import add_format_option, plain, positive_float
from metricstream.cli._progress import ProgressBar
from metricstream.cli._report import print_accounting, write_json
from metricstream.cli._table import format_table
from metricstream.cli._waits import WaitReporter
from metricstream.exceptions import ConfigError
from metricstream.sinks import sink_from_url
from metricstream.spool import UNCLAIMED_RECORD, SpoolReport, inspect_spool, rewind
from metricstream.streamer import EventStreamer

__all__ = ["register", "run"]

EXAMPLE = """example:
  metricstream spool inspect /var/spool/myapp --format json
  metricstream spool replay /var/spool/myapp --sink 'influxdb://db:8086/metrics?name=influxdb'
  metricstream spool replay /var/spool/myapp --sink jsonl:recovered.jsonl.zst --all"""


def register(commands: Any) -> None:
    """Add the ``spool`` command to the CLI's subparsers."""
    spool = commands.add_parser(
        "spool",
        help="inspect or replay a spool directory",
        description=plain(__doc__),
        epilog=EXAMPLE,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    spool.add_argument("action", choices=("inspect", "replay"))
    spool.add_argument("path", help="the spool directory (spool_dir= of the streamer)")
    spool.add_argument(
        "--sink",
        action="append",
        default=[],
        metavar="URL",
        help="replay: a sink URL (repeatable); its name= must match the original sink's "
        "to resume where that sink stopped",
    )
    spool.add_argument(
        "--all",
        action="store_true",
        help="replay: send everything the spool holds to these sinks, from the oldest event",
    )
    add_format_option(spool, deprecated_json=True)
    spool.add_argument(
        "--timeout", type=positive_float, default=600.0, help="replay: give up after this many s"
    )
    spool.set_defaults(run=run)


def run(args: argparse.Namespace, out: TextIO) -> int:
    """Run ``spool inspect`` or ``spool replay``; return the exit status."""
    if args.action == "inspect":
        return _inspect(args.path, out, as_json=args.format == "json")
    if not args.sink:
        raise ConfigError("--sink", "spool replay needs at least one --sink URL")
    if not Path(args.path).is_dir():
        raise FileNotFoundError(errno.ENOENT, "no spool directory", args.path)
    return _replay(args, out)


def _inspect(path: str, out: TextIO, *, as_json: bool) -> int:
    report = inspect_spool(path)
    if as_json:
        write_json(_report_document(report), out)
        return 0
    out.write(
        f"spool {report.directory}: {report.segments} segments, {report.bytes:,} bytes, "
        f"events {report.first_seq:,}..{report.next_seq:,}\n"
    )
    rows = [["sink", "segments", "batches", "events", "oldest"]]
    for name, backlog in report.sinks.items():
        age = "-" if backlog.oldest_age_s is None else f"{backlog.oldest_age_s:,.0f} s"
        rows.append(
            [name, f"{backlog.segments:,}", f"{backlog.batches:,}", f"{backlog.events:,}", age]
        )
    for line in format_table(rows, right=(1, 2, 3, 4)):
        out.write(line + "\n")
    for damage in report.damage:
        out.write(
            f"  damage: {damage.path} at byte {damage.offset} ({damage.length} bytes, "
            f"{damage.events} events): {damage.detail}\n"
        )
    return 0


def _report_document(report: SpoolReport) -> dict[str, Any]:
    return {
        "directory": report.directory,
        "first_seq": report.first_seq,
        "next_seq": report.next_seq,
        "bytes": report.bytes,
        "segments": report.segments,
        "sinks": {name: vars(backlog) for name, backlog in report.sinks.items()},
        "damage": [vars(damage) for damage in report.damage],
    }


def _unmatched(path: str, names: list[str]) -> str | None:
    """Why a replay to sinks of these names (without ``--all``) would send nothing, or None."""
    report = inspect_spool(path)
    missing = [name for name in names if name not in report.sinks]
    if not missing:
        return None
    held = [
        f"{name} ({backlog.events:,} events)"
        for name, backlog in report.sinks.items()
        if backlog.events
    ]
    with_data = ", ".join(held) if held else "none"
    return (
        f"no sink named {', '.join(repr(name) for name in missing)} has a position in "
        f"{report.directory}, so it would get nothing; sinks with data: {with_data}. "
        "Name the sink after one of them (name=... in its URL), or give --all"
    )


def _replay(args: argparse.Namespace, out: TextIO) -> int:
    sinks = [sink_from_url(url) for url in args.sink]
    problem = None if args.all else _unmatched(args.path, [sink.name for sink in sinks])
    if problem is not None:
        for sink in sinks:
            sink.close()
        raise ConfigError("--sink", problem)
    if args.all:
        for sink in sinks:
            rewind(args.path, sink.name)
    with _without_unclaimed_warning() if args.all else nullcontext():
        streamer = EventStreamer(sinks, spool_dir=args.path, flush_interval=0.05)
    total = sum(s.events_accepted for s in streamer.health().sinks.values())
    deadline = time.monotonic() + args.timeout
    with WaitReporter(streamer, "metricstream spool replay", sys.stderr) as waits:
        try:
            with ProgressBar(total, unit="events") as bar:
                # Without a bar, a line every few seconds says what the replay waits for.
                said = nullcontext() if bar.shown else waits.waiting("replaying", args.timeout)
                with said:
                    while _remaining(streamer) and time.monotonic() < deadline:
                        bar.update_to(_done(streamer))
                        time.sleep(0.2)
                    bar.update_to(_done(streamer))
        finally:
            with waits.waiting("closing the sinks", 10):
                streamer.shutdown(timeout=10)
    delivered = print_accounting(
        streamer.health(), out, title="Replayed", as_json=args.format == "json"
    )
    return 0 if delivered else 1


@contextmanager
def _without_unclaimed_warning() -> Iterator[None]:
    """Leave out the spool's warning that other sinks' events are not delivered.

    Under ``--all`` the replay's sinks receive those events, so it would be wrong.
    """
    log = logging.getLogger("metricstream")
    log.addFilter(_not_unclaimed)
    try:
        yield
    finally:
        log.removeFilter(_not_unclaimed)


def _not_unclaimed(record: logging.LogRecord) -> bool:
    return not getattr(record, UNCLAIMED_RECORD, False)


def _remaining(streamer: EventStreamer) -> int:
    return sum(s.pending + s.spooled for s in streamer.health().sinks.values())


def _done(streamer: EventStreamer) -> int:
    return sum(s.events_written + s.events_dropped for s in streamer.health().sinks.values())
