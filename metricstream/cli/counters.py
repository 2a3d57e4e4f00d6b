"""``metricstream counters``: read Redis counters, or explain what one event would write.

- ``count``/``sum PATTERN VALUE...``: a counter per bucket over a range, and its total;
- ``unique FIELD [VALUE...]``: unique counts per bucket and over the whole range;
- ``top PATTERN``: the value combinations with the largest totals;
- ``explain EVENT --mapping JSON``: the Redis commands one event produces.

It also holds the demo's analytics mapping and dashboard (`demo_sink`, `dashboard`).
"""

from __future__ import annotations

import argparse
import datetime as _dt
import os
import re
import shlex
import time
from collections.abc import Sequence
from typing import Any, TextIO

from metricstream.cli._args import plain, positive_int
from metricstream.cli.workload import EVENT_MIX
from metricstream.columns import EventColumns
from metricstream.contract import Sink
from metricstream.event import MetricEvent
from metricstream.exceptions import ConfigError
from metricstream.registry import sink_from_url
from metricstream.sinks.redis_counters import (
    CounterLimits,
    CounterMapping,
    CounterResult,
    KeyLayout,
    RedisCounterReader,
    RedisCounterSink,
    TimeBuckets,
)
from metricstream.sinks.redis_counters.encode import COMMANDS as OPERATION_COMMANDS
from metricstream.sinks.redis_counters.encode import Planner

__all__ = ["ANALYTICS_MAPPING", "dashboard", "demo_sink", "register", "run"]

ANALYTICS_MAPPING = CounterMapping(
    unique=["org~user", "user"],
    count=["measurement", "measurement~org"],
    sum=[("utm_source", "amount")],
)
"""The demo's mapping: events per type (per organisation), unique users (per
organisation) and revenue per utm_source, in daily and hourly buckets."""

EXAMPLE = """examples:
  metricstream counters --redis redis://127.0.0.1:6379/0 count measurement~org click org-001
  metricstream counters sum utm_source google --start 2024-03-01 --end now
  metricstream counters unique org~user org-001 --bucket h --start=-6h
  metricstream counters top measurement~org -n 5
  metricstream counters explain --mapping '{"count": ["event~utm_source"]}' \\
      'purchase,utm_source=google amount=99.99 1696118400000000000'"""

_NEEDS_QUOTES = re.compile(r"[\s'\"\\$`]|[^\x20-\x7e]")
_RELATIVE = re.compile(r"-(\d+)([dhm])")
_UNITS = {"d": 86_400, "h": 3_600, "m": 60}


def register(commands: Any) -> None:
    """Add the ``counters`` command to the CLI's subparsers."""
    parser = commands.add_parser(
        "counters",
        help="read Redis counters, or explain the commands of one event",
        description=plain(__doc__),
        epilog=EXAMPLE,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--redis",
        metavar="URL",
        default=os.environ.get("METRICSTREAM_REDIS_URL"),
        help="redis://, rediss:// or redis+cluster:// URL (default: $METRICSTREAM_REDIS_URL)",
    )
    parser.add_argument("--prefix", default="ms:", help="the sink's key prefix (ms:)")
    parser.add_argument("--tz", default="UTC", help="the sink's time zone (UTC)")
    actions = parser.add_subparsers(dest="action", required=True, metavar="ACTION")
    for action in ("count", "sum"):
        sub = actions.add_parser(action, help=f"a {action} per bucket over a range")
        sub.add_argument("pattern", help="the key, as in the mapping: measurement~utm_source")
        sub.add_argument("values", nargs="+", help="one value per name of the key, in its order")
        _range_options(sub)
    sub = actions.add_parser("unique", help="unique counts per bucket and over a range")
    sub.add_argument("pattern", help="the unique key: ip, or org~user")
    sub.add_argument("values", nargs="*", help="for a compound key: the values of its group")
    _range_options(sub)
    sub = actions.add_parser("top", help="value combinations with the largest totals")
    sub.add_argument("pattern", help="the key, as in the mapping")
    sub.add_argument("-n", type=positive_int, default=10, help="how many (10)")
    sub.add_argument("--kind", choices=("count", "sum", "unique"), default="count")
    _range_options(sub)
    sub = actions.add_parser("explain", help="print the Redis commands one event produces")
    sub.add_argument("event", help="the event: one line of line protocol, or JSON")
    sub.add_argument("--mapping", required=True, help="the mapping, as JSON")
    sub.add_argument("--hourly", action="store_true", help="hourly buckets too")
    parser.set_defaults(run=run)


def _range_options(sub: argparse.ArgumentParser) -> None:
    sub.add_argument(
        "--start", default="today", help="today (default), now, =-7d, =-6h, ISO 8601, unix seconds"
    )
    sub.add_argument("--end", default="now", help="as --start (default now)")
    sub.add_argument("--bucket", choices=("d", "h"), default="d", help="daily or hourly (d)")


def parse_moment(text: str, buckets: TimeBuckets, now: float | None = None) -> float:
    """Read a time given on the command line.

    ``now``, ``today`` (the start of today's day bucket), ``-7d``/``-6h``/``-30m``
    (before now), unix seconds, or an ISO 8601 date or time (local to the
    zone when it has no offset).

    Raises:
        ConfigError: If it is none of these.
    """
    current = time.time() if now is None else now
    text = text.strip()
    if text == "now":
        return current
    if text == "today":
        return float(buckets.day_start(int(current)))
    relative = _RELATIVE.fullmatch(text)
    if relative:
        return current - int(relative[1]) * _UNITS[relative[2]]
    try:
        return float(text)
    except ValueError:
        pass
    try:
        return buckets.to_seconds(_dt.datetime.fromisoformat(text))
    except ValueError:
        raise ConfigError("start/end", f"cannot read the time {text!r}") from None


def _local(seconds: int, buckets: TimeBuckets) -> str:
    moment = _dt.datetime.fromtimestamp(seconds, buckets.zone)
    return moment.isoformat(timespec="minutes")


def _number(value: float) -> str:
    return f"{value:,}" if isinstance(value, int) else f"{value:,.2f}"


def _series_table(title: str, result: CounterResult, buckets: TimeBuckets, out: TextIO) -> None:
    out.write(f"{title}\n")
    out.write(f"  {'bucket start':<26} {'value':>16}\n")
    for start, value in result.series:
        out.write(f"  {_local(start, buckets):<26} {_number(value):>16}\n")
    out.write(f"  {'total':<26} {_number(result.total):>16}\n")


def _query(args: argparse.Namespace, out: TextIO) -> int:
    if not args.redis:
        raise ConfigError("redis", "give --redis URL (or set METRICSTREAM_REDIS_URL)")
    buckets = TimeBuckets(hourly=args.bucket == "h", timezone=args.tz)
    start, end = parse_moment(args.start, buckets), parse_moment(args.end, buckets)
    with RedisCounterReader(args.redis, prefix=args.prefix, buckets=buckets) as reader:
        if args.action == "top":
            rows = reader.top(args.pattern, start, end, args.n, args.bucket, kind=args.kind)
            out.write(f"top {args.n} of {args.pattern} ({args.kind}, {args.bucket} buckets)\n")
            out.write(f"  {'#':>3}  {'values':<40} {'total':>16}\n")
            for rank, (values, total) in enumerate(rows, 1):
                shown = "~".join(values)
                out.write(f"  {rank:>3}  {shown:<40} {_number(total):>16}\n")
            return 0
        if args.action == "unique":
            result = reader.unique(args.pattern, start, end, args.bucket, values=args.values)
            title = f"unique {args.pattern} {' '.join(args.values)}".rstrip()
        else:
            query = reader.count if args.action == "count" else reader.sum
            result = query(args.pattern, args.values, start, end, args.bucket)
            title = f"{args.action} {args.pattern} = {'~'.join(args.values)}"
    _series_table(title, result, buckets, out)
    return 0


def _read_event(text: str) -> MetricEvent:
    text = text.strip()
    if text.startswith("{"):
        return MetricEvent.from_json(text)
    return MetricEvent.from_influx_line(text)


def _explain(args: argparse.Namespace, out: TextIO) -> int:
    buckets = TimeBuckets(hourly=args.hourly, timezone=args.tz)
    mapping = CounterMapping.from_json(args.mapping)
    planner = Planner(mapping, buckets, CounterLimits(), KeyLayout(args.prefix))
    event = _read_event(args.event)
    day, hour = buckets.starts_ns(event.timestamp_ns)
    out.write(f"event: {event.to_influx_line()}\n")
    out.write(f"day bucket: {day} ({_local(day, buckets)})")
    out.write(f", hour bucket: {hour} ({_local(hour, buckets)})\n" if hour is not None else "\n")
    ops = planner.plan(EventColumns.of_events([event]))
    out.write(f"{len(ops)} commands, applied at once by one EVALSHA of the batch script:\n")
    for key, (code, *arguments) in ops:
        words = [OPERATION_COMMANDS[code], key, *arguments]
        out.write("  " + " ".join(_quote(word) for word in words) + "\n")
    return 0


def _quote(word: str) -> str:
    """Quote a word of a command only when it would not read back as one word."""
    if word and not _NEEDS_QUOTES.search(word):
        return word
    return shlex.quote(word)


def run(args: argparse.Namespace, out: TextIO) -> int:
    """Run ``metricstream counters``; return the exit status."""
    if args.action == "explain":
        return _explain(args, out)
    return _query(args, out)


# --- the demo on Redis -------------------------------------------------------------


def demo_sink(url: str) -> Sink:
    """Build a demo sink from a URL.

    A Redis URL without a mapping gets `ANALYTICS_MAPPING`, with hourly
    buckets unless the URL chooses its buckets (``hourly``, ``tz``).
    """
    scheme = url.partition(":")[0].lower()
    query = url.partition("?")[2]
    if not scheme.startswith("redis") or "mapping=" in query:
        return sink_from_url(url)
    extra: dict[str, Any] = {"mapping": ANALYTICS_MAPPING}
    if "hourly=" not in query and "tz=" not in query:
        extra["buckets"] = TimeBuckets(hourly=True)
    return sink_from_url(url, **extra)


def dashboard(sinks: Sequence[Sink], started: float, out: TextIO) -> None:
    """Print, for each Redis counter sink, a dashboard read back through the reader."""
    for sink in sinks:
        if isinstance(sink, RedisCounterSink):
            _dashboard(sink, started, out)


def _dashboard(sink: RedisCounterSink, started: float, out: TextIO) -> None:
    buckets, now = sink.options.buckets, time.time()
    day = buckets.day_start(int(started))
    with sink.reader() as reader:
        out.write(
            f"\nDashboard from {sink.name} (read back from Redis, today since "
            f"{_local(day, buckets)}):\n"
        )
        out.write(f"  {'event type':<14} {'events today':>14}\n")
        total = 0
        for kind, _ in EVENT_MIX:
            count = reader.count("measurement", (kind,), day, now).total
            total += int(count)
            out.write(f"  {kind:<14} {_number(count):>14}\n")
        out.write(f"  {'all':<14} {_number(total):>14}\n")
        out.write(f"  unique users today: {_number(reader.unique('user', day, now).total)}\n")
        bucket = "h" if buckets.hourly else "d"
        first = buckets.bucket_start(int(started), bucket)
        top = reader.top("measurement~org", first, now, 5, bucket)
        out.write(f"\n  {'top (type, organisation)':<32} {'events':>8} {'org users today':>16}\n")
        for (kind, org), events in top:
            users = reader.unique("org~user", day, now, values=(org,)).total
            out.write(f"  {kind + ' ' + org:<32} {_number(events):>8} {_number(users):>16}\n")
        out.write(f"\n  {'utm_source':<14} {'revenue today':>14}\n")
        for (source,), revenue in reader.top("utm_source", day, now, 10, kind="sum"):
            out.write(f"  {source:<14} {_number(revenue):>14}\n")
