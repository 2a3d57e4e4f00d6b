"""The ``metricstream`` command.

``metricstream demo`` simulates an analytics workload (page views, clicks,
conversions, signups and purchases from 500 organisations of 1000 users each)
and streams it through an `EventStreamer`: by default to the console and to a
zstd JSON Lines file under ``./metricstream-demo/``. Each second it prints a
one-line summary; at the end, the exact accounting of every sink.

``metricstream cat PATH`` prints the events of a JSON Lines file (plain, zstd
or a rotated series) as line protocol, JSON or pretty text.
"""

from __future__ import annotations

import argparse
import random
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import TextIO

from metricstream.event import MetricEvent
from metricstream.exceptions import ConfigError, MetricStreamError
from metricstream.sinks.base import Sink
from metricstream.streamer.health import StreamerHealth
from metricstream.streamer.streamer import EventStreamer

__all__ = ["AnalyticsWorkload", "main"]

EVENT_MIX: tuple[tuple[str, float], ...] = (
    ("page_view", 0.60),
    ("click", 0.28),
    ("conversion", 0.10),
    ("signup", 0.015),
    ("purchase", 0.005),
)
"""The simulated event types and their share of the traffic."""

_PATHS = (
    "/",
    "/pricing",
    "/docs",
    "/docs/quickstart",
    "/blog",
    "/signup",
    "/checkout",
    "/dashboard",
    "/settings",
    "/search",
)
_SOURCES = ("google", "direct", "newsletter", "twitter", "linkedin", "partner")


class AnalyticsWorkload:
    """Generates simulated product-analytics events.

    Args:
        organisations: How many organisations.
        users_per_org: Users in each organisation.
        seed: Seed for the random generator (repeatable runs).
    """

    def __init__(
        self, organisations: int = 500, users_per_org: int = 1000, seed: int | None = None
    ) -> None:
        self._random = random.Random(seed)
        self._orgs = [f"org-{n:03d}" for n in range(1, organisations + 1)]
        self._users_per_org = users_per_org
        self._kinds = [kind for kind, _ in EVENT_MIX]
        self._weights = [share for _, share in EVENT_MIX]

    def events(self, count: int) -> list[MetricEvent]:
        """Return `count` new events stamped with the current time."""
        rnd = self._random
        kinds = rnd.choices(self._kinds, self._weights, k=count)
        now = time.time_ns()
        batch = []
        for kind in kinds:
            org = rnd.choice(self._orgs)
            event = MetricEvent(
                kind,
                tags={
                    "org": org,
                    "user": f"{org}-u{rnd.randrange(self._users_per_org):04d}",
                    "path": rnd.choice(_PATHS),
                    "utm_source": rnd.choice(_SOURCES),
                },
                fields={"count": 1},
                timestamp_ns=now,
            )
            if kind == "purchase":
                event.with_field("amount", round(rnd.uniform(5, 500), 2))
            elif kind == "page_view":
                event.with_field("duration_ms", round(rnd.expovariate(1 / 800), 1))
            batch.append(event)
        return batch


def _default_sinks(output_dir: Path) -> list[Sink]:
    from metricstream.sinks.console import ConsoleSink
    from metricstream.sinks.jsonl import JsonLinesSink

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


def _accounting(health: StreamerHealth, sent: int, out: TextIO) -> bool:
    balanced = True
    out.write(f"\nFinal accounting ({sent:,} events sent):\n")
    for name, sink in health.sinks.items():
        reasons = ", ".join(f"{r} {n:,}" for r, n in sink.dropped_by_reason.items() if n)
        ok = sink.events_written + sink.events_dropped == sent and sink.pending == 0
        balanced = balanced and ok
        out.write(
            f"  {name:<12} written {sink.events_written:>10,}  dropped {sink.events_dropped:>8,}"
            f"{' (' + reasons + ')' if reasons else ''}  pending {sink.pending:,}  "
            f"{'OK: written + dropped == sent' if ok else 'MISMATCH'}\n"
        )
    return balanced


def run_demo(args: argparse.Namespace, out: TextIO) -> int:
    """Run the simulated workload; return the exit status."""
    from metricstream.sinks.url import sink_from_url

    output_dir = Path(args.output_dir)
    sinks = [sink_from_url(url) for url in args.sink] if args.sink else _default_sinks(output_dir)
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
    tick = 0.01
    per_tick = args.rate * tick
    owed = 0.0
    next_report = started + 1.0
    last_report_sent = 0
    last_report_at = started
    try:
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
    balanced = _accounting(health, accepted, out)
    if not args.sink:
        out.write(
            f"\nEvents written to {output_dir / 'events.jsonl.zst'} "
            f"(read them with: metricstream cat {output_dir / 'events.jsonl.zst'})\n"
        )
    return 0 if balanced else 1


def run_cat(args: argparse.Namespace, out: TextIO) -> int:
    """Print the events of a JSON Lines file; return the exit status."""
    from metricstream.sinks.console import ConsoleSink
    from metricstream.sinks.jsonl import read_events
    from metricstream.streamer.batch import EventBatch

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


def _positive_float(text: str) -> float:
    value = float(text)
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be > 0, not {text}")
    return value


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1, not {text}")
    return value


def build_parser() -> argparse.ArgumentParser:
    """Return the argument parser of the ``metricstream`` command."""
    parser = argparse.ArgumentParser(prog="metricstream", description=__doc__.split("\n\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    demo = commands.add_parser("demo", help="stream a simulated analytics workload")
    demo.add_argument("--rate", type=_positive_float, default=2000, help="events per second (2000)")
    demo.add_argument("--duration", type=_positive_float, default=10, help="seconds to run (10)")
    demo.add_argument(
        "--sink",
        action="append",
        default=[],
        metavar="URL",
        help="a sink URL (repeatable), e.g. console:, jsonl:out.jsonl.zst, "
        "influxdb://host:8086/db; default: console and ./metricstream-demo/events.jsonl.zst",
    )
    demo.add_argument(
        "--output-dir", default="metricstream-demo", help="where the default JSON Lines file goes"
    )
    demo.add_argument("--batch-size", type=_positive_int, default=1000)
    demo.add_argument("--flush-interval", type=_positive_float, default=1.0)
    demo.add_argument(
        "--seed", type=int, default=None, help="random seed for a repeatable workload"
    )
    cat = commands.add_parser("cat", help="print the events of a JSON Lines file")
    cat.add_argument(
        "path", help="a .jsonl or .jsonl.zst file, or the base path of a rotated series"
    )
    cat.add_argument("--format", choices=("line", "json", "pretty"), default="line")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command; return its exit status."""
    args = build_parser().parse_args(argv)
    try:
        if args.command == "demo":
            return run_demo(args, sys.stdout)
        return run_cat(args, sys.stdout)
    except (ConfigError, MetricStreamError, OSError) as exc:
        sys.stderr.write(f"metricstream: error: {exc}\n")
        return 2
