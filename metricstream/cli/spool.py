"""``metricstream spool``: inspect a spool directory, or replay what it holds to sinks."""

from __future__ import annotations

import argparse
import sys
import time
from typing import Any, TextIO

import orjson

from metricstream.cli._args import plain, positive_float
from metricstream.cli._report import write_accounting
from metricstream.registry import sink_from_url
from metricstream.spool import inspect_spool, rewind
from metricstream.streamer.streamer import EventStreamer

__all__ = ["register", "run"]

EXAMPLE = """example:
  metricstream spool inspect /var/spool/myapp
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
    spool.add_argument("--json", action="store_true", help="inspect: print JSON")
    spool.add_argument(
        "--timeout", type=positive_float, default=600.0, help="replay: give up after this many s"
    )
    spool.set_defaults(run=run)


def run(args: argparse.Namespace, out: TextIO) -> int:
    """Run ``spool inspect`` or ``spool replay``; return the exit status."""
    if args.action == "inspect":
        return _inspect(args.path, out, as_json=args.json)
    if not args.sink:
        sys.stderr.write("metricstream spool replay: give at least one --sink URL\n")
        return 2
    return _replay(args, out)


def _inspect(path: str, out: TextIO, *, as_json: bool) -> int:
    report = inspect_spool(path)
    if as_json:
        data = {
            "directory": report.directory,
            "first_seq": report.first_seq,
            "next_seq": report.next_seq,
            "bytes": report.bytes,
            "segments": report.segments,
            "sinks": {name: vars(backlog) for name, backlog in report.sinks.items()},
            "damage": [vars(damage) for damage in report.damage],
        }
        out.write(orjson.dumps(data, option=orjson.OPT_INDENT_2).decode() + "\n")
        return 0
    out.write(
        f"spool {report.directory}: {report.segments} segments, {report.bytes:,} bytes, "
        f"events {report.first_seq:,}..{report.next_seq:,}\n"
    )
    out.write(f"  {'sink':<20} {'segments':>8} {'batches':>8} {'events':>12} {'oldest':>10}\n")
    for name, backlog in report.sinks.items():
        age = "-" if backlog.oldest_age_s is None else f"{backlog.oldest_age_s:,.0f} s"
        out.write(
            f"  {name:<20} {backlog.segments:>8} {backlog.batches:>8} {backlog.events:>12,} "
            f"{age:>10}\n"
        )
    for damage in report.damage:
        out.write(
            f"  damage: {damage.path} at byte {damage.offset} ({damage.length} bytes, "
            f"{damage.events} events): {damage.detail}\n"
        )
    return 0


def _unmatched(path: str, names: list[str]) -> str | None:
    """Why a replay to sinks of these names (without ``--all``) would send nothing, or None."""
    try:
        report = inspect_spool(path)
    except FileNotFoundError as exc:
        return str(exc)
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
        sys.stderr.write(f"metricstream spool replay: {problem}\n")
        return 2
    if args.all:
        for sink in sinks:
            rewind(args.path, sink.name)
    streamer = EventStreamer(sinks, spool_dir=args.path, flush_interval=0.05)
    total = max(sum(s.events_accepted for s in streamer.health().sinks.values()), 1)
    deadline = time.monotonic() + args.timeout
    try:
        while _remaining(streamer) and time.monotonic() < deadline:
            _progress(_done(streamer), total)
            time.sleep(0.2)
        _progress(_done(streamer), total)
        sys.stderr.write("\n")
    finally:
        streamer.shutdown(timeout=10)
    health = streamer.health()
    write_accounting(health, out, title="Replayed")
    return 0 if all(s.spooled == 0 for s in health.sinks.values()) else 1


def _remaining(streamer: EventStreamer) -> int:
    return sum(s.pending + s.spooled for s in streamer.health().sinks.values())


def _done(streamer: EventStreamer) -> int:
    return sum(s.events_written + s.events_dropped for s in streamer.health().sinks.values())


def _progress(done: int, total: int, width: int = 40) -> None:
    filled = min(width, int(width * done / total))
    sys.stderr.write(f"\r[{'#' * filled}{'.' * (width - filled)}] {done:,}/{total:,} events")
    sys.stderr.flush()
