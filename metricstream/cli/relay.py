"""``metricstream relay``: read Kafka topics as a consumer group and deliver them to sinks.

Start one process per machine (or several): the group's partitions are
shared among them, and those of a process that dies move to the others.
An offset is committed only once every sink has the events before it, so
every sink gets every event at least once; the Redis counter sink gets each
exactly once (each batch's id comes from its topic, partition and offsets).
With ``--window`` the events are aggregated into event-time windows and one
event per group and window goes to the sinks. SIGTERM or Ctrl-C stops the
relay gracefully: it delivers what it read, commits it and leaves the group,
then prints its accounting (``--format json``: as one JSON document). Exit
status: 0 after a clean stop, 1 when some events were left undelivered
(their offsets are not committed), 2 for a bad option or URL.
"""

from __future__ import annotations

import argparse
import signal
import sys
from types import FrameType
from typing import Any, TextIO

from metricstream.cli._args import add_format_option, plain, positive_float, positive_int
from metricstream.cli._report import print_accounting

__all__ = ["register", "run"]

EXAMPLE = """example:
  metricstream relay --from 'kafka://127.0.0.1:9092/metrics?group=relay' \\
      --to 'redis://127.0.0.1:6379/0?mapping={"count":["measurement~route"]}'
  metricstream relay --from 'kafka://127.0.0.1:9092/http?group=http-1m' \\
      --window 'tumbling 60s' --by route --aggregate count,quantiles:latency_ms \\
      --name http_1m --to 'influxdb://127.0.0.1:8086/metrics' --health-port 9465"""


def register(commands: Any) -> None:
    """Add the ``relay`` command to the CLI's subparsers."""
    relay = commands.add_parser(
        "relay",
        help="read Kafka topics as a consumer group and deliver them to sinks",
        description=plain(__doc__),
        epilog=EXAMPLE,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    relay.add_argument(
        "--from",
        dest="source",
        required=True,
        metavar="URL",
        help="kafka://HOST:PORT/TOPIC[,TOPIC...]?group=GROUP[&dlq=TOPIC][&librdkafka.setting=V]",
    )
    relay.add_argument(
        "--to", action="append", required=True, metavar="URL", help="a sink URL (repeatable)"
    )
    relay.add_argument(
        "--start",
        choices=("earliest", "latest"),
        default=None,
        help="where a partition without a committed offset starts (earliest)",
    )
    relay.add_argument("--spool-dir", metavar="DIR", help="spool batches on disk before the sinks")
    relay.add_argument(
        "--health-port", type=int, metavar="PORT", help="serve /healthz and /metrics on this port"
    )
    relay.add_argument("--health-host", default="127.0.0.1", metavar="HOST")
    relay.add_argument(
        "--max-buffer",
        type=positive_int,
        default=100_000,
        help="events held at most before the partitions pause (100000)",
    )
    relay.add_argument(
        "--stop-timeout",
        type=positive_float,
        default=30.0,
        help="seconds to deliver what was read when stopping (30)",
    )
    add_format_option(relay)
    _window_arguments(relay.add_argument_group("event-time windows"))
    relay.set_defaults(run=run)


def _duration(text: str) -> float:
    """Seconds, or a duration with a unit (``500ms``, ``10s``, ``1m``)."""
    from metricstream._options import seconds_from_text
    from metricstream.exceptions import ConfigError

    try:
        return seconds_from_text("duration", text)
    except ConfigError as exc:
        raise argparse.ArgumentTypeError(str(exc).removeprefix("duration: ")) from None


def _window_arguments(windows: Any) -> None:
    windows.add_argument(
        "--window",
        metavar="SPEC",
        help="'tumbling 60s', 'sliding 60s every 10s' or 'session gap 30s'",
    )
    windows.add_argument("--by", metavar="PROPS", help="group by these properties: host,route")
    windows.add_argument(
        "--aggregate",
        default="count",
        metavar="LIST",
        help="count,sum:bytes,min:x,max:x,mean:x,last:x,unique:x,quantiles:x",
    )
    windows.add_argument("--name", metavar="MEASUREMENT", help="the window results' measurement")
    windows.add_argument(
        "--allowed-lateness",
        type=_duration,
        default=10.0,
        metavar="DURATION",
        help="how much older than the newest event an event may be and still count (10s)",
    )
    windows.add_argument(
        "--idle-timeout",
        type=_duration,
        default=60.0,
        metavar="DURATION",
        help="a partition without events this long stops holding the watermark (60s)",
    )
    windows.add_argument(
        "--late-to",
        action="append",
        default=[],
        metavar="URL",
        help="deliver late events raw to this sink (repeatable)",
    )


def run(args: argparse.Namespace, out: TextIO) -> int:
    """Run the relay until SIGTERM or SIGINT; return the exit status."""
    from metricstream.relay import Relay, parse_source

    overrides = {} if args.start is None else {"start": args.start}
    relay = Relay(
        parse_source(args.source, **overrides),
        args.to,
        windows=args.window,
        name=args.name,
        by=args.by,
        aggregates=args.aggregate,
        allowed_lateness=args.allowed_lateness,
        idle_timeout=args.idle_timeout,
        late_to=args.late_to,
        spool_dir=args.spool_dir,
        max_buffer=args.max_buffer,
        stop_timeout=args.stop_timeout,
        health_host=args.health_host,
        health_port=args.health_port,
    )

    def stop(signum: int, _frame: FrameType | None) -> None:
        sys.stderr.write(f"metricstream relay: {signal.Signals(signum).name}: stopping\n")
        relay.stop()

    previous = {sig: signal.signal(sig, stop) for sig in (signal.SIGTERM, signal.SIGINT)}
    sys.stderr.write(f"metricstream relay: reading {relay.source.describe()}\n")
    try:
        relay.run()
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    health = relay.health()
    counts = health.relay["counts"]
    as_json = args.format == "json"
    if not as_json:
        out.write(
            f"Read {counts['messages']:,} messages ({counts['events_read']:,} events, "
            f"{counts['invalid_messages']:,} invalid); {counts['batches']:,} batches, "
            f"{counts['commits']:,} commits, {counts['rebalances']:,} assignments\n"
        )
    delivered = print_accounting(
        health,
        out,
        title="Final accounting",
        as_json=as_json,
        extra={"relay": dict(counts), "read_everything_delivered": relay.delivered_everything},
    )
    return 0 if delivered and relay.delivered_everything else 1
