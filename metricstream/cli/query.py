"""``metricstream query``: count, unique, break down and funnel the events of JSON Lines archives.

The query is a query document (``--json QUERY.json``, see
`metricstream.query`), or flags that make one: ``--event`` names the sets,
``--where`` filters every set, ``--unique``, ``--by`` and ``--series`` ask for
unique counts, a breakdown and a time series, and ``--funnel`` runs a funnel
over events matched on ``--match``. Prints a table, or the answer as JSON.

What queries read is cached as columns (see `metricstream.query._cache`), so
a second query over the same archive reads only what the archive gained:
``--cache-dir`` keeps the cache elsewhere, ``--no-cache`` reads the archive
only, and ``--clear-cache`` removes the archive's cache (every cache in the
directory when no archive is named) before any query.
"""

from __future__ import annotations

import argparse
import re
from pathlib import Path
from typing import Any, TextIO

import orjson

from metricstream.cli._args import plain, positive_int
from metricstream.exceptions import ConfigError
from metricstream.query._where import parse_where

__all__ = ["document_from_flags", "parse_where", "register", "run"]

EXAMPLE = """examples:
  metricstream query metricstream-demo/events.jsonl.zst \\
      --funnel page_view,click,purchase --match user
  metricstream query 'archive/*.jsonl.zst' --event page_view --where utm_source=google \\
      --unique user --by path --top 5
  metricstream query events.jsonl.zst --json query.json --format json

--where forms: key=text, key!=text, key:=JSON (typed: count:=1, ok:=true),
key~regex, key>N, key>=N, key<N, key<=N, key (the property is present).

The cache lives in $METRICSTREAM_QUERY_CACHE, else $XDG_CACHE_HOME/metricstream/query,
else ~/.cache/metricstream/query (METRICSTREAM_QUERY_CACHE=off: no cache by default)."""


def _names(text: str) -> list[str]:
    return [part.strip() for part in text.split(",") if part.strip()]


def register(commands: Any) -> None:
    """Add the ``query`` command to the CLI's subparsers."""
    query = commands.add_parser(
        "query",
        help="query JSON Lines archives (counts, uniques, breakdowns, funnels)",
        description=plain(__doc__),
        epilog=EXAMPLE,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    query.add_argument("archive", nargs="*", help="files, rotated series or globs")
    query.add_argument("--json", metavar="QUERY.json", help="a query document ('-' for stdin)")
    query.add_argument("--event", action="append", default=[], help="an event set (repeatable)")
    query.add_argument("--where", action="append", default=[], metavar="FILTER")
    query.add_argument("--unique", action="append", default=[], metavar="KEY[,KEY]")
    query.add_argument("--by", metavar="KEY[,KEY]", help="break each set down by these keys")
    query.add_argument("--top", type=positive_int, default=10, help="breakdown rows (10)")
    query.add_argument("--series", choices=("hour", "day"), help="events per hour or day")
    query.add_argument("--timezone", default="UTC", help="for --series (UTC)")
    query.add_argument("--funnel", metavar="STEP,STEP[,...]", help="event names, in order")
    query.add_argument("--match", metavar="KEY[,KEY]", help="whom the funnel follows")
    query.add_argument("--order", choices=("exact_order", "strict"), default="exact_order")
    query.add_argument("--window", type=float, metavar="SECONDS", help="funnel window")
    query.add_argument("--start", help="ISO 8601 or unix milliseconds")
    query.add_argument("--end", help="ISO 8601 or unix milliseconds (excluded)")
    query.add_argument("--format", choices=("table", "json"), default="table")
    query.add_argument(
        "--schema", action="store_true", help="print the query document's JSON Schema"
    )
    cache = query.add_mutually_exclusive_group()
    cache.add_argument("--cache-dir", metavar="DIR", help="where the query cache lives")
    cache.add_argument("--no-cache", action="store_true", help="read the archive only")
    query.add_argument(
        "--clear-cache",
        action="store_true",
        help="remove the archive's cache (all caches without an archive), then query if asked",
    )
    query.set_defaults(run=run)


def _time(text: str | None) -> object:
    if text is None:
        return None
    return int(text) if re.fullmatch(r"-?\d+", text.strip()) else text


def document_from_flags(args: argparse.Namespace) -> dict[str, Any]:
    """Build the query document the flags describe.

    Raises:
        ConfigError: If no set or funnel is asked for, or a flag is malformed.
    """
    filters = [parse_where(text) for text in args.where]
    unique = [key for text in args.unique for key in _names(text)]
    steps = _names(args.funnel) if args.funnel else []
    events = list(dict.fromkeys(args.event))
    if not events and not steps:
        raise ConfigError("--event", "name an event set (--event), a funnel (--funnel) or --json")
    data: list[dict[str, Any]] = []
    for name in events:
        item: dict[str, Any] = {
            "name": name,
            "measurement": name,
            "filters": filters,
            "unique": unique,
        }
        if args.by:
            item["breakdown"] = {"keys": _names(args.by), "n": args.top}
        if args.series:
            item["series"] = {"bucket": args.series, "timezone": args.timezone}
        data.append(item)
    data += [
        {"name": step, "measurement": step, "filters": filters}
        for step in dict.fromkeys(steps)
        if step not in events
    ]
    document: dict[str, Any] = {"data": data}
    for name in ("start", "end"):
        if getattr(args, name) is not None:
            document[name] = _time(getattr(args, name))
    if steps:
        if not args.match:
            raise ConfigError("--match", "a funnel needs the keys it matches on (--match user)")
        document["funnel"] = {"type": args.order, "order": steps, "match": _names(args.match)}
        if args.window is not None:
            document["funnel"]["window"] = args.window
    return document


def run(args: argparse.Namespace, out: TextIO) -> int:
    """Answer the query; return the exit status (0, or 2 on a usage error)."""
    from metricstream.query import Archive, format_answer, query_schema

    if args.schema:
        out.write(orjson.dumps(query_schema(), option=orjson.OPT_INDENT_2).decode() + "\n")
        return 0
    cache: bool | str = False if args.no_cache else (args.cache_dir or True)
    asked = args.json is not None or bool(args.event or args.funnel)
    if args.clear_cache:
        _clear(args.archive, cache, out)
        if not asked:
            return 0
    if not args.archive:
        raise ConfigError("archive", "name at least one archive file or glob")
    if args.json is not None:
        text = Path("/dev/stdin" if args.json == "-" else args.json).read_bytes()
        try:
            document = orjson.loads(text)
        except orjson.JSONDecodeError as exc:
            raise ConfigError("--json", f"{args.json} is not JSON: {exc}") from None
    else:
        document = document_from_flags(args)
    with Archive(args.archive, cache=cache) as archive:
        answer = archive.run(document)
    if args.format == "json":
        out.write(orjson.dumps(answer, option=orjson.OPT_INDENT_2).decode() + "\n")
    else:
        out.write(format_answer(document, answer))
    return 0


def _clear(archives: list[str], cache: bool | str, out: TextIO) -> None:
    """Remove the cache of `archives`, or every cache in the directory when none is named."""
    from metricstream.query import Archive, clear_caches

    if cache is False:
        raise ConfigError("--clear-cache", "there is no cache to clear with --no-cache")
    if archives:
        with Archive(archives, cache=cache) as archive:
            removed = archive.cache.clear() if archive.cache is not None else []
    else:
        removed = clear_caches(None if cache is True else cache)
    for path in removed:
        out.write(f"removed {path}\n")
    if not removed:
        out.write("no query cache to remove\n")
