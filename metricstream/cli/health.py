"""``metricstream health``: show a running streamer's health as a table.

It reads ``/healthz`` of the streamer's health endpoint (see
``EventStreamer.serve_health``, ``METRICSTREAM_HEALTH_PORT`` or
``metricstream demo --health-port``). Exit status 0 when the streamer is
healthy, 1 when it is not or the endpoint cannot be read, 2 for a URL that
is not one.
"""

from __future__ import annotations

import argparse
import json
import time
import urllib.error
import urllib.parse
import urllib.request
from typing import Any, TextIO

from metricstream._secrets import scrub_secrets
from metricstream.cli._args import add_format_option, plain, positive_float
from metricstream.cli._errors import DataError
from metricstream.cli._table import format_table
from metricstream.exceptions import ConfigError

__all__ = ["fetch_health", "format_health", "health_url", "register", "run"]

EXAMPLE = """example:
  metricstream health http://127.0.0.1:9464
  metricstream health 9464 --format json"""

_COLUMNS = ("sink", "state", "written", "pending", "dropped", "retries", "errors", "last write")


def register(commands: Any) -> None:
    """Add the ``health`` command to the CLI's subparsers."""
    health = commands.add_parser(
        "health",
        help="show a running streamer's health",
        description=plain(__doc__),
        epilog=EXAMPLE,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    health.add_argument(
        "url",
        help="the health endpoint: http://HOST:PORT (/healthz is added), HOST:PORT or PORT",
    )
    add_format_option(health, deprecated_json=True)
    health.add_argument(
        "--timeout", type=positive_float, default=5.0, help="seconds to wait for an answer (5)"
    )
    health.set_defaults(run=run)


def health_url(text: str) -> str:
    """Turn ``PORT``, ``HOST:PORT`` or a URL into the URL of ``/healthz``.

    Raises:
        ConfigError: If the text is no http(s) URL with a host and a valid port.
    """
    given = text
    text = text.strip()
    if text.isdigit():
        text = f"127.0.0.1:{text}"
    if "://" not in text:
        text = f"http://{text}"
    try:
        parts = urllib.parse.urlsplit(text)
        parts.port  # noqa: B018 - parsing the port is the check
    except ValueError as exc:
        raise ConfigError("url", f"{given!r} is not a URL: {exc}") from None
    if parts.scheme not in ("http", "https"):
        raise ConfigError("url", f"{given!r}: expected an http:// or https:// URL")
    if not parts.hostname:
        raise ConfigError("url", f"{given!r} names no host")
    if parts.path in ("", "/"):
        parts = parts._replace(path="/healthz")
    return urllib.parse.urlunsplit(parts)


def fetch_health(url: str, timeout: float) -> tuple[int, dict[str, Any]]:
    """GET a ``/healthz`` document.

    Returns:
        (the HTTP status, the decoded document).

    Raises:
        OSError: If the endpoint cannot be reached.
        DataError: If it does not answer with a health document.
    """
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:  # noqa: S310 - user's URL
            status, body = response.status, response.read()
    except urllib.error.HTTPError as exc:
        status, body = exc.code, exc.read()
    except urllib.error.URLError as exc:
        raise OSError(f"cannot reach {url}: {exc.reason}") from None
    try:
        document = json.loads(body)
    except ValueError:
        document = None
    if not isinstance(document, dict) or not isinstance(document.get("sinks"), dict):
        raise DataError(f"{url} answered {status} without a health document")
    return status, document


def _ago(last_write_ns: int | None, now_ns: int) -> str:
    if last_write_ns is None:
        return "never"
    seconds = max(0.0, (now_ns - last_write_ns) / 1e9)
    return f"{seconds:.1f} s ago" if seconds < 120 else f"{seconds / 60:.0f} min ago"


def _row(name: str, sink: dict[str, Any], now_ns: int) -> list[str]:
    state = "healthy" if sink.get("healthy") else ("failing" if sink.get("connected") else "down")
    return [
        name,
        state,
        f"{sink.get('events_written', 0):,}",
        f"{sink.get('pending', 0):,}",
        f"{sink.get('events_dropped', 0):,}",
        f"{sink.get('retries', 0):,}",
        f"{sink.get('write_errors', 0):,}",
        _ago(sink.get("last_write_ns"), now_ns),
    ]


def format_health(url: str, document: dict[str, Any], now_ns: int | None = None) -> str:
    """Render a health document as a readable table, with drops and errors below it."""
    now_ns = time.time_ns() if now_ns is None else now_ns
    verdict = "healthy" if document.get("healthy") else "UNHEALTHY"
    running = "running" if document.get("running") else "shut down"
    lines = [f"{url}: {verdict}, {running}, {document.get('events_accepted', 0):,} events accepted"]
    if document.get("error"):
        lines.append(f"  error: {scrub_secrets(str(document['error']))}")
    sinks: dict[str, dict[str, Any]] = document["sinks"]
    rows = [list(_COLUMNS)] + [_row(name, sink, now_ns) for name, sink in sinks.items()]
    lines.append("")
    lines += format_table(rows, right=range(2, len(_COLUMNS) - 1), indent="")
    notes = []
    for name, sink in sinks.items():
        reasons = {r: n for r, n in (sink.get("dropped_by_reason") or {}).items() if n}
        if reasons:
            listed = ", ".join(f"{reason} {count:,}" for reason, count in reasons.items())
            notes.append(f"  {name} dropped: {listed}")
        if sink.get("last_error"):
            notes.append(f"  {name} last error: {scrub_secrets(str(sink['last_error']))}")
    if notes:
        lines += ["", *notes]
    return "\n".join(lines) + "\n"


def run(args: argparse.Namespace, out: TextIO) -> int:
    """Print the health of a running streamer; return the exit status."""
    url = health_url(args.url)
    status, document = fetch_health(url, args.timeout)
    if args.format == "json":
        out.write(json.dumps(document, indent=2) + "\n")
    else:
        out.write(format_health(url, document))
    return 0 if status == 200 and document.get("healthy") else 1
