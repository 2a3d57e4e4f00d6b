"""``metricstream demo``: stream the simulated analytics workload and account for it.

By default to the console and to a zstd JSON Lines file under
``./metricstream-demo/``, which each run starts afresh (the previous run's
archive is replaced, so its figures are this run's). Each second it prints a
one-line summary; at the end, the exact accounting of every sink. Exit status
0 when every sink wrote every event, 1 when one dropped some (the accounting
says why). ``--format json`` prints the accounting as one JSON document (the
summaries and the console sink's events then go to standard error).
"""

from __future__ import annotations

import argparse
import sys
import time
from importlib.util import find_spec
from pathlib import Path
from typing import Any, TextIO

from metricstream.cli._args import (
    add_format_option,
    bounded_float,
    plain,
    port,
    positive_float,
    positive_int,
)
from metricstream.cli._report import print_accounting
from metricstream.cli._waits import WaitReporter
from metricstream.cli.counters import dashboards, demo_sink, write_dashboard
from metricstream.cli.workload import AnalyticsWorkload
from metricstream.contract import Sink
from metricstream.sinks import ConsoleSink, JsonLinesSink
from metricstream.sinks.jsonl import series_files
from metricstream.streamer import EventStreamer, StreamerHealth

__all__ = ["register", "run"]

MAX_RATE = 10_000_000
"""The fastest rate the demo offers, in events per second."""

EXAMPLE = """example:
  metricstream demo --duration 5 --rate 5000
  metricstream demo --sink console:json --sink jsonl:events.jsonl.zst
  metricstream demo --duration 60 --health-port 9464   # then open http://127.0.0.1:9464/"""


def register(commands: Any) -> None:
    """Add the ``demo`` command to the CLI's subparsers."""
    demo = commands.add_parser(
        "demo",
        help="stream a simulated analytics workload",
        description=plain(__doc__),
        epilog=EXAMPLE,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    demo.add_argument(
        "--rate",
        type=bounded_float(MAX_RATE),
        default=2000,
        help=f"events per second (2000; at most {MAX_RATE:,})",
    )
    demo.add_argument("--duration", type=positive_float, default=10, help="seconds to run (10)")
    demo.add_argument(
        "--sink",
        action="append",
        default=[],
        metavar="URL",
        help="a sink URL (repeatable), e.g. console:, jsonl:out.jsonl.zst, "
        "influxdb://host:8086/db, redis://host:6379/0 (an analytics mapping, then a "
        "dashboard); default: console and ./metricstream-demo/events.jsonl.zst",
    )
    demo.add_argument(
        "--output-dir", default="metricstream-demo", help="where the default JSON Lines file goes"
    )
    demo.add_argument("--batch-size", type=positive_int, default=1000)
    demo.add_argument("--flush-interval", type=positive_float, default=1.0)
    demo.add_argument(
        "--seed", type=int, default=None, help="random seed for a repeatable workload"
    )
    demo.add_argument(
        "--health-port",
        type=port,
        default=None,
        metavar="PORT",
        help="serve /healthz, /metrics and a status page on 127.0.0.1:PORT (0: any free port)",
    )
    add_format_option(demo)
    demo.set_defaults(run=run)


ARCHIVE_NAME = "events.jsonl.zst"
"""The default archive's file name, under ``--output-dir``."""


def _default_sinks(output_dir: Path, console: TextIO) -> list[Sink]:
    """The console and a fresh archive (the previous run's files are removed)."""
    output_dir.mkdir(parents=True, exist_ok=True)
    for old in series_files(output_dir / ARCHIVE_NAME):
        old.unlink()
    return [
        ConsoleSink(stream=console, format="pretty", max_events_per_batch=3),
        JsonLinesSink(output_dir / ARCHIVE_NAME),
    ]


def _remove_writer_lock(archive: Path) -> None:
    """Remove the lock file the archive's sink leaves beside it, once the sink is closed."""
    archive.with_name(f".{archive.name}.lock").unlink(missing_ok=True)


def _summary_line(elapsed: float, sent: int, rate: float, health: StreamerHealth) -> str:
    parts = [f"[{elapsed:5.1f}s] sent {sent:,} ({rate:,.0f}/s)"]
    for name, sink in health.sinks.items():
        parts.append(
            f"{name}: written {sink.events_written:,} dropped {sink.events_dropped:,} "
            f"pending {sink.pending:,}"
        )
    return " | ".join(parts)


def _stream(
    streamer: EventStreamer, workload: AnalyticsWorkload, args: argparse.Namespace, out: TextIO
) -> int:
    """Send the workload at the rate asked for `args.duration` s; return the events sent."""
    sent = 0
    started = time.monotonic()
    tick = 0.01
    per_tick = args.rate * tick
    owed = 0.0
    next_report = started + 1.0
    last_report_sent = 0
    last_report_at = started
    while (now := time.monotonic()) - started < args.duration:
        owed += per_tick
        count = int(owed)
        owed -= count
        if count:
            sent += streamer.send_many(workload.events(count))
        if now >= next_report:
            rate = (sent - last_report_sent) / (now - last_report_at)
            out.write(_summary_line(now - started, sent, rate, streamer.health()) + "\n")
            out.flush()
            last_report_sent, last_report_at = sent, now
            next_report += 1.0
        time.sleep(max(0.0, tick - (time.monotonic() - now)))
    return sent


def run(args: argparse.Namespace, out: TextIO) -> int:
    """Run the simulated workload; return the exit status."""
    as_json = args.format == "json"
    # With --format json, standard output holds the JSON document alone.
    notes = sys.stderr if as_json else out
    output_dir = Path(args.output_dir)
    sinks = (
        [demo_sink(url) for url in args.sink] if args.sink else _default_sinks(output_dir, notes)
    )
    workload = AnalyticsWorkload(seed=args.seed)
    notes.write("Sample events, as line protocol and as JSON:\n")
    for event in workload.events(2):
        notes.write(f"  {event.to_influx_line()}\n  {event.to_json()}\n")
    names = ", ".join(sink.name for sink in sinks)
    notes.write(f"\nStreaming {args.rate:,.0f} events/s for {args.duration:g} s to: {names}\n")
    streamer = EventStreamer(
        sinks, batch_size=args.batch_size, flush_interval=args.flush_interval, register_atexit=True
    )
    started_at = time.time()
    with WaitReporter(streamer, "metricstream demo", sys.stderr) as waits:
        try:
            if args.health_port is not None:
                host, port = streamer.serve_health(port=args.health_port)
                notes.write(f"Health: http://{host}:{port}/ (status page), /healthz, /metrics\n")
            _stream(streamer, workload, args, notes)
        except KeyboardInterrupt:
            notes.write("\ninterrupted; shutting down\n")
        finally:
            with waits.waiting("delivering what was sent", 10):
                streamer.shutdown(timeout=10)
    return _finish(streamer, sinks, started_at, args, out)


def _finish(
    streamer: EventStreamer,
    sinks: list[Sink],
    started_at: float,
    args: argparse.Namespace,
    out: TextIO,
) -> int:
    """Print the accounting, the dashboards and where the archive is; return the exit status."""
    archive = None if args.sink else Path(args.output_dir) / ARCHIVE_NAME
    if archive is not None:
        _remove_writer_lock(archive)
    health = streamer.health()
    boards = dashboards(sinks, started_at)
    if args.format == "json":
        extra: dict[str, Any] = {"archive": None if archive is None else str(archive)}
        extra["dashboards"] = boards
        delivered = print_accounting(health, out, title="", as_json=True, extra=extra)
        return 0 if delivered else 1
    title = f"Final accounting ({health.events_accepted:,} events sent)"
    delivered = print_accounting(health, out, title=title, as_json=False)
    for name, board in boards.items():
        write_dashboard(name, board, out)
    if archive is not None:
        needs = "" if find_spec("duckdb") else "  # pip install 'metricstream[query]' first"
        out.write(
            f"\nEvents written to {archive} (replaced at each run). Read them, or ask them "
            f"a question:\n"
            f"  metricstream cat {archive} --format pretty\n"
            f"  metricstream query {archive} --funnel page_view,click,signup --match org{needs}\n"
        )
    return 0 if delivered else 1
