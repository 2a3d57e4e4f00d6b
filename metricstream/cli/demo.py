"""``metricstream demo``: stream the simulated analytics workload and account for it.

By default to the console and to a zstd JSON Lines file under
``./metricstream-demo/``. Each second it prints a one-line summary; at the
end, the exact accounting of every sink.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import Any, TextIO

from metricstream.cli._args import bounded_float, plain, positive_float, positive_int
from metricstream.cli._report import write_accounting
from metricstream.cli.counters import dashboard, demo_sink
from metricstream.cli.workload import AnalyticsWorkload
from metricstream.contract import Sink
from metricstream.sinks.console import ConsoleSink
from metricstream.sinks.jsonl import JsonLinesSink
from metricstream.streamer.health import StreamerHealth
from metricstream.streamer.streamer import EventStreamer

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
        type=int,
        default=None,
        metavar="PORT",
        help="serve /healthz, /metrics and a status page on 127.0.0.1:PORT (0: any free port)",
    )
    demo.set_defaults(run=run)


def _default_sinks(output_dir: Path) -> list[Sink]:
    output_dir.mkdir(parents=True, exist_ok=True)
    return [
        ConsoleSink(format="pretty", max_events_per_batch=3),
        JsonLinesSink(output_dir / "events.jsonl.zst"),
    ]


def _summary_line(elapsed: float, sent: int, rate: float, health: StreamerHealth) -> str:
    parts = [f"[{elapsed:5.1f}s] sent {sent:,} ({rate:,.0f}/s)"]
    for name, sink in health.sinks.items():
        parts.append(
            f"{name}: written {sink.events_written:,} dropped {sink.events_dropped:,} "
            f"pending {sink.pending:,}"
        )
    return " | ".join(parts)


def run(args: argparse.Namespace, out: TextIO) -> int:
    """Run the simulated workload; return the exit status."""
    output_dir = Path(args.output_dir)
    sinks = [demo_sink(url) for url in args.sink] if args.sink else _default_sinks(output_dir)
    workload = AnalyticsWorkload(seed=args.seed)
    out.write("Sample events, as line protocol and as JSON:\n")
    for event in workload.events(2):
        out.write(f"  {event.to_influx_line()}\n  {event.to_json()}\n")
    names = ", ".join(sink.name for sink in sinks)
    out.write(f"\nStreaming {args.rate:,.0f} events/s for {args.duration:g} s to: {names}\n")
    streamer = EventStreamer(
        sinks, batch_size=args.batch_size, flush_interval=args.flush_interval, register_atexit=True
    )
    sent = 0
    started = time.monotonic()
    started_at = time.time()
    tick = 0.01
    per_tick = args.rate * tick
    owed = 0.0
    next_report = started + 1.0
    last_report_sent = 0
    last_report_at = started
    try:
        if args.health_port is not None:
            host, port = streamer.serve_health(port=args.health_port)
            out.write(f"Health: http://{host}:{port}/ (status page), /healthz, /metrics\n")
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
    except KeyboardInterrupt:
        out.write("\ninterrupted; shutting down\n")
    finally:
        streamer.shutdown(timeout=10)
    health = streamer.health()
    accepted = health.events_accepted
    balanced = write_accounting(health, out, title=f"Final accounting ({accepted:,} events sent)")
    dashboard(sinks, started_at, out)
    if not args.sink:
        archive = output_dir / "events.jsonl.zst"
        out.write(
            f"\nEvents written to {archive}. Read them, or ask them a question:\n"
            f"  metricstream cat {archive} --format pretty\n"
            f"  metricstream query {archive} --funnel page_view,click,signup --match org\n"
        )
    return 0 if balanced else 1
