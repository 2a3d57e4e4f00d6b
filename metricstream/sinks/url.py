"""`sink_from_url`: build a sink from a URL string (configuration, env vars).

Schemes:

- ``console:`` / ``console:json`` / ``console:line`` — `ConsoleSink` (format after the colon)
- ``jsonl:PATH`` — `JsonLinesSink` (``?compression=zstd&rotate_bytes=N&fsync=true``)
- ``influxdb://[user:password@]host:port/DATABASE[?rp=&precision=&gzip=&tls=]`` — v1 API
- ``influxdb2://host:port?org=&bucket=&precision=&tls=`` — v2 API (token from
  ``INFLUX_TOKEN`` or ``token=``)

Each scheme is handled by the ``from_url`` function of its sink module,
imported only when that scheme is used.
"""

from __future__ import annotations

import importlib
import os
import urllib.parse
from typing import Any

from metricstream.exceptions import ConfigError
from metricstream.sinks.base import Sink

__all__ = ["SCHEMES", "parse_query", "redact_url", "sink_from_url"]

SCHEMES: dict[str, str] = {
    "console": "metricstream.sinks.console",
    "jsonl": "metricstream.sinks.jsonl",
    "influxdb": "metricstream.sinks.influxdb",
    "influxdb2": "metricstream.sinks.influxdb",
}
"""URL scheme -> the module whose ``from_url(url, **overrides)`` builds the sink."""


def redact_url(url: str) -> str:
    """Return `url` with any password and secret query values replaced by ``***``."""
    try:
        parsed = urllib.parse.urlsplit(url)
    except ValueError:
        return "<unparseable url>"
    netloc = parsed.netloc
    if "@" in netloc:
        userinfo, _, hostport = netloc.rpartition("@")
        user = userinfo.split(":", 1)[0]
        netloc = f"{user}:***@{hostport}" if ":" in userinfo else f"{user}@{hostport}"
    query = urllib.parse.parse_qsl(parsed.query, keep_blank_values=True)
    secret = {"token", "password", "sasl_password", "secret"}
    query = [(k, "***" if k.lower() in secret else v) for k, v in query]
    return urllib.parse.urlunsplit(
        (parsed.scheme, netloc, parsed.path, urllib.parse.urlencode(query, safe="*/:"), "")
    )


def parse_query(url: str, query: str, known: tuple[str, ...]) -> dict[str, str]:
    """Parse a sink URL's query string, allowing only the `known` options, once each.

    Raises:
        ConfigError: For a malformed query, an unknown option or a repeated one;
            the message shows the URL with credentials removed.
    """
    shown = redact_url(url)
    try:
        pairs = urllib.parse.parse_qsl(query, keep_blank_values=True, strict_parsing=bool(query))
    except ValueError:
        raise ConfigError("url", f"malformed query string in {shown!r}") from None
    options: dict[str, str] = {}
    for key, value in pairs:
        if key not in known:
            raise ConfigError(
                key, f"unknown option in {shown!r}; known options: {', '.join(known)}"
            )
        if key in options:
            raise ConfigError(key, f"option given more than once in {shown!r}")
        options[key] = value
    return options


def sink_from_url(url: str, **overrides: Any) -> Sink:
    """Build a sink from a URL; keyword arguments override URL options.

    ``${VAR}`` and ``$VAR`` in the URL are expanded from the environment, so
    ``influxdb2://host:8086?org=o&bucket=b&token=${INFLUX_TOKEN}`` works.

    Raises:
        ConfigError: If the scheme is unknown or an option is invalid; the
            message never contains credentials.
    """
    if not isinstance(url, str) or not url.strip():
        raise ConfigError("url", "a sink URL must be a non-empty string")
    expanded = os.path.expandvars(url.strip())
    scheme, sep, _ = expanded.partition(":")
    scheme = scheme.lower()
    if not sep or scheme not in SCHEMES:
        known = ", ".join(f"{s}:" for s in sorted(SCHEMES))
        raise ConfigError("url", f"unknown sink URL scheme in {redact_url(url)!r}; known: {known}")
    module = importlib.import_module(SCHEMES[scheme])
    sink: Sink = module.from_url(expanded, **overrides)
    return sink
