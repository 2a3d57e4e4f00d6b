"""``metricstream counters``: read Redis counters, or explain what one event would write.

- ``count``/``sum PATTERN VALUE...``: a counter per bucket over a range, and its total;
- ``unique FIELD [VALUE...]``: unique counts per bucket and over the whole range;
- ``top PATTERN``: the value combinations with the largest totals;
- ``explain EVENT --mapping JSON``: the Redis commands one event produces.

Each prints a table, or with ``--format json`` a JSON document. It also holds
the demo's analytics mapping and dashboard (`demo_sink`, `dashboards`).
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

from metricstream.cli._args import add_format_option, plain, positive_int
from metricstream.cli._report import write_json
from metricstream.cli._table import format_table
from metricstream.cli.workload import EVENT_MIX
from metricstream.columns import EventColumns
from metricstream.contract import Sink
from metricstream.event import MetricEvent
from metricstream.exceptions import ConfigError
from metricstream.sinks import sink_from_url
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

__all__ = ["ANALYTICS_MAPPING", "dashboards", "demo_sink", "register", "run", "write_dashboard"]

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
  metricstream counters top measurement~org -n 5 --format json
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
    add_format_option(parser)
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
    add_format_option(sub, default=None)
    parser.set_defaults(run=run)


def _range_options(sub: argparse.ArgumentParser) -> None:
    sub.add_argument(
        "--start", default="today", help="today (default), now, =-7d, =-6h, ISO 8601, unix seconds"
    )
    sub.add_argument("--end", default="now", help="as --start (default now)")
    sub.add_argument("--bucket", choices=("d", "h"), default="d", help="daily or hourly (d)")
    add_format_option(sub, default=None)


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


def _series_rows(result: CounterResult, buckets: TimeBuckets) -> list[list[str]]:
    rows = [["bucket start", "bucket end", "value"]]
    rows += [
        [_local(start, buckets), _local(end, buckets), _number(value)]
        for (start, end), (_, value) in zip(result.buckets, result.series, strict=True)
    ]
    return [*rows, ["total", "", _number(result.total)]]


def _covered(spans: Sequence[tuple[int, int]], bucket: str, buckets: TimeBuckets) -> str:
    """The line saying which buckets an answer counts (a range counts each bucket it overlaps)."""
    kind = "daily" if bucket == "d" else "hourly"
    if not spans:
        return f"buckets counted: none ({kind})\n"
    first, last = _local(spans[0][0], buckets), _local(spans[-1][1], buckets)
    return f"buckets counted: {len(spans)} {kind}, from {first} to {last}\n"


def _spans_json(spans: Sequence[tuple[int, int]], buckets: TimeBuckets) -> list[dict[str, Any]]:
    return [
        {
            "start": _local(first, buckets),
            "start_s": first,
            "end": _local(end, buckets),
            "end_s": end,
        }
        for first, end in spans
    ]


def _query(args: argparse.Namespace, out: TextIO) -> int:
    if not args.redis:
        raise ConfigError("redis", "give --redis URL (or set METRICSTREAM_REDIS_URL)")
    buckets = TimeBuckets(hourly=args.bucket == "h", timezone=args.tz)
    start, end = parse_moment(args.start, buckets), parse_moment(args.end, buckets)
    asked = {
        "action": args.action,
        "pattern": args.pattern,
        "bucket": args.bucket,
        "start": _local(int(start), buckets),
        "end": _local(int(end), buckets),
    }
    with RedisCounterReader(args.redis, prefix=args.prefix, buckets=buckets) as reader:
        if args.action == "top":
            return _top(args, reader, (start, end), asked, out)
        if args.action == "unique":
            result = reader.unique(args.pattern, start, end, args.bucket, values=args.values)
            title = f"unique {args.pattern} {' '.join(args.values)}".rstrip()
        else:
            query = reader.count if args.action == "count" else reader.sum
            result = query(args.pattern, args.values, start, end, args.bucket)
            title = f"{args.action} {args.pattern} = {'~'.join(args.values)}"
    if args.format == "json":
        spans = _spans_json(result.buckets, buckets)
        values = (value for _, value in result.series)
        series = [{**span, "value": value} for span, value in zip(spans, values, strict=True)]
        write_json({**asked, "values": args.values, "series": series, "total": result.total}, out)
        return 0
    out.write(f"{title}\n")
    out.write(_covered(result.buckets, args.bucket, buckets))
    _write_lines(format_table(_series_rows(result, buckets), right=(2,)), out)
    return 0


def _top(
    args: argparse.Namespace,
    reader: RedisCounterReader,
    moments: tuple[float, float],
    asked: dict[str, Any],
    out: TextIO,
) -> int:
    start, end = moments
    rows = reader.top(args.pattern, start, end, args.n, args.bucket, kind=args.kind)
    spans = reader.buckets(start, end, args.bucket)
    if args.format == "json":
        top = [{"values": list(values), "total": total} for values, total in rows]
        counted = _spans_json(spans, reader.options.buckets)
        write_json({**asked, "kind": args.kind, "buckets": counted, "top": top}, out)
        return 0
    out.write(f"top {args.n} of {args.pattern} ({args.kind}, {args.bucket} buckets)\n")
    out.write(_covered(spans, args.bucket, reader.options.buckets))
    table = [["#", "values", "total"]]
    table += [
        [str(rank), "~".join(values), _number(total)]
        for rank, (values, total) in enumerate(rows, 1)
    ]
    _write_lines(format_table(table, right=(0, 2)), out)
    return 0


def _write_lines(lines: list[str], out: TextIO) -> None:
    for line in lines:
        out.write(line + "\n")


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
    ops = planner.plan(EventColumns.of_events([event]))
    commands = [[OPERATION_COMMANDS[code], key, *arguments] for key, (code, *arguments) in ops]
    if args.format == "json":
        buckets_of = {"day": day, "hour": hour}
        write_json(
            {"event": event.to_influx_line(), "buckets": buckets_of, "commands": commands}, out
        )
        return 0
    out.write(f"event: {event.to_influx_line()}\n")
    out.write(f"day bucket: {day} ({_local(day, buckets)})")
    out.write(f", hour bucket: {hour} ({_local(hour, buckets)})\n" if hour is not None else "\n")
    out.write(f"{len(ops)} commands, applied at once by one EVALSHA of the batch script:\n")
    for words in commands:
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


def dashboards(sinks: Sequence[Sink], started: float) -> dict[str, dict[str, Any]]:
    """For each Redis counter sink, the demo's dashboard read back through the reader.

    Returns:
        By sink name: the day it covers, events today per type and in all,
        unique users today, the top (type, organisation) pairs with their
        organisation's users, and the revenue per utm_source.
    """
    return {
        sink.name: _dashboard(sink, started) for sink in sinks if isinstance(sink, RedisCounterSink)
    }


def _dashboard(sink: RedisCounterSink, started: float) -> dict[str, Any]:
    buckets, now = sink.options.buckets, time.time()
    day = buckets.day_start(int(started))
    with sink.reader() as reader:
        events = {
            kind: reader.count("measurement", (kind,), day, now).total for kind, _ in EVENT_MIX
        }
        bucket = "h" if buckets.hourly else "d"
        first = buckets.bucket_start(int(started), bucket)
        top = [
            {
                "event": kind,
                "org": org,
                "events": count,
                "org_users": reader.unique("org~user", day, now, values=(org,)).total,
            }
            for (kind, org), count in reader.top("measurement~org", first, now, 5, bucket)
        ]
        return {
            "since": _local(day, buckets),
            "events_today": events,
            "all_events_today": sum(events.values()),
            "unique_users_today": reader.unique("user", day, now).total,
            "top": top,
            "revenue_today": {
                source: revenue
                for (source,), revenue in reader.top("utm_source", day, now, 10, kind="sum")
            },
        }


def write_dashboard(name: str, board: dict[str, Any], out: TextIO) -> None:
    """Print a dashboard made by `dashboards` as tables."""
    out.write(f"\nDashboard from {name} (read back from Redis, today since {board['since']}):\n")
    rows = [["event type", "events today"]]
    rows += [[kind, _number(count)] for kind, count in board["events_today"].items()]
    _write_lines(
        format_table([*rows, ["all", _number(board["all_events_today"])]], right=(1,)), out
    )
    out.write(f"  unique users today: {_number(board['unique_users_today'])}\n\n")
    rows = [["top (type, organisation)", "events", "org users today"]]
    rows += [
        [f"{item['event']} {item['org']}", _number(item["events"]), _number(item["org_users"])]
        for item in board["top"]
    ]
    _write_lines(format_table(rows, right=(1, 2)), out)
    rows = [["utm_source", "revenue today"]]
    rows += [[source, _number(revenue)] for source, revenue in board["revenue_today"].items()]
    out.write("\n")
    _write_lines(format_table(rows, right=(1,)), out)
