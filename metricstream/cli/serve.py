"""``metricstream serve``: run the event store over an archive directory.

Clients ``POST /events`` and ``POST /query`` (the event store's API),
InfluxDB clients and agents write line protocol to ``/write`` and
``/api/v2/write``, and a browser opens the query page at ``/``. Events are
acknowledged once durable (``--spool-fsync``); ``--to`` sends every accepted
event on to more sinks (``kafka://...``) through the same spool. See
`metricstream.server`.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path
from typing import Any, TextIO

from metricstream.cli._args import plain, positive_float, positive_int
from metricstream.exceptions import ConfigError

__all__ = ["register", "run"]

EXAMPLE = """examples:
  metricstream serve archive/
  METRICSTREAM_SERVE_TOKEN=s3cret metricstream serve archive/ --host 0.0.0.0 --workers 4
  metricstream serve archive/ --to kafka://broker:9092/events

  curl -s localhost:8080/events -d '{"events": [{"data": {"event_tag": "signup"}}]}'

The token may also come from METRICSTREAM_SERVE_TOKEN (better than --token,
which other users of the machine can see in the process list)."""


def register(commands: Any) -> None:
    """Add the ``serve`` command to the CLI's subparsers."""
    serve = commands.add_parser(
        "serve",
        help="run the event store (HTTP ingest, queries, InfluxDB writes, a query page)",
        description=plain(__doc__),
        epilog=EXAMPLE,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    serve.add_argument("archive_dir", metavar="ARCHIVE_DIR", help="where events are stored")
    serve.add_argument("--host", default="127.0.0.1", help="address to listen on (127.0.0.1)")
    serve.add_argument("--port", type=int, default=8080, help="port (8080; 0 picks a free one)")
    serve.add_argument("--token", help="require this token (default: $METRICSTREAM_SERVE_TOKEN)")
    serve.add_argument("--workers", type=positive_int, default=1, help="worker processes (1)")
    serve.add_argument(
        "--max-body-bytes", type=positive_int, default=16 << 20, help="largest body (16 MiB)"
    )
    serve.add_argument(
        "--max-events", type=positive_int, default=100_000, help="events per request (100,000)"
    )
    serve.add_argument(
        "--spool-fsync",
        choices=("batch", "interval", "never"),
        default="batch",
        help="when acknowledged events are synced to disk (batch: before the answer)",
    )
    serve.add_argument(
        "--spool-max-bytes",
        type=positive_int,
        default=1 << 30,
        help="the spool's size; when full, writes answer 503 (1 GiB, at least 1 MiB)",
    )
    serve.add_argument(
        "--cors", action="append", default=[], metavar="ORIGIN", help="allow this origin"
    )
    serve.add_argument(
        "--to", action="append", default=[], metavar="URL", help="also send events to this sink"
    )
    serve.add_argument("--query-timeout", type=positive_float, default=10.0, help="seconds (10)")
    serve.add_argument("--max-queries", type=positive_int, default=4, help="at once per worker")
    serve.set_defaults(run=run)


def run(args: argparse.Namespace, out: TextIO) -> int:
    """Serve until stopped; return the exit status."""
    from metricstream.server import TOKEN_ENV, ServerConfig
    from metricstream.server._serve import serve

    if not 0 <= args.port <= 65535:
        raise ConfigError("--port", f"expected 0 to 65535, not {args.port}")
    if args.spool_max_bytes < 1 << 20:
        raise ConfigError(
            "--spool-max-bytes", f"expected at least 1048576 (1 MiB), not {args.spool_max_bytes}"
        )
    token = args.token if args.token is not None else os.environ.get(TOKEN_ENV) or None
    config = ServerConfig(
        Path(args.archive_dir),
        token=token,
        max_body_bytes=args.max_body_bytes,
        max_events=args.max_events,
        spool_fsync=args.spool_fsync,
        spool_max_bytes=args.spool_max_bytes,
        cors_origins=tuple(args.cors),
        sinks=tuple(args.to),
        query_timeout=args.query_timeout,
        max_queries=args.max_queries,
    )
    return serve(config, host=args.host, port=args.port, workers=args.workers, out=out)
