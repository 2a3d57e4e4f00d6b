"""The JSON Lines sink's options and its URL scheme: ``jsonl:`` URLs read into arguments."""

from __future__ import annotations

import os
import urllib.parse
from typing import Any

from metricstream._options import parse_bool
from metricstream._secrets import scrub_secrets
from metricstream.exceptions import ConfigError
from metricstream.sinks._url import check_overrides, parse_query

__all__ = ["SCHEMES", "url_arguments"]

SCHEMES = ("jsonl",)
"""The URL schemes of this sink (see `url_arguments`)."""

_URL_OPTIONS = ("compression", "file_mode", "fsync", "name", "rotate_bytes")


def _url_option_values(options: dict[str, str]) -> dict[str, Any]:
    values: dict[str, Any] = {}
    for key, text in options.items():
        if key == "rotate_bytes":
            try:
                values[key] = int(text)
            except ValueError:
                raise ConfigError(key, f"expected a whole number of bytes, not {text!r}") from None
        elif key == "fsync":
            values[key] = parse_bool(key, text)
        elif key == "file_mode":
            digits = text.strip().lower().removeprefix("0o")
            try:
                values[key] = int(digits, 8)
            except ValueError:
                raise ConfigError(
                    key, f"expected octal permission bits like 600, not {text!r}"
                ) from None
        else:
            values[key] = text
    return values


def url_arguments(url: str, overrides: dict[str, Any]) -> dict[str, Any]:
    """Return the `JsonLinesSink` arguments a ``jsonl:`` URL stands for; `overrides` win.

    Forms: ``jsonl:metrics.jsonl`` and ``jsonl:./out.jsonl.zst`` (relative to
    the working directory), ``jsonl:/var/log/m.jsonl`` and
    ``jsonl:///var/log/m.jsonl`` (absolute), ``jsonl:~/m.jsonl`` (home).
    Percent-escapes in the path are decoded (``%20``, and ``%3F`` for ``?``).
    Query options: ``compression`` (none, zstd, gzip), ``rotate_bytes``
    (an integer), ``fsync`` (true/false, 1/0, yes/no, on/off), ``file_mode``
    (octal, ``640`` or ``0o640``) and ``name``.

    Raises:
        ConfigError: If the URL is not a ``jsonl:`` URL, names no path or a
            remote host, or an option is unknown, repeated or invalid.
    """
    shown = scrub_secrets(url)
    scheme, sep, rest = url.partition(":")
    if not sep or scheme.lower() != "jsonl":
        raise ConfigError("url", f"not a jsonl: URL: {shown!r}")
    location, _, query = rest.partition("?")
    if location.startswith("//"):
        host, slash, tail = location[2:].partition("/")
        if host not in ("", "localhost"):
            raise ConfigError(
                "url",
                f"{shown!r} names host {host.rpartition('@')[2]!r}; a jsonl: URL names a "
                "local file "
                "(jsonl:PATH or jsonl:///absolute/path)",
            )
        location = slash + tail
    path = os.path.expanduser(urllib.parse.unquote(location))
    if not path:
        raise ConfigError("path", f"{shown!r} names no file; use jsonl:PATH")
    kwargs = _url_option_values(parse_query(url, query, _URL_OPTIONS))
    check_overrides(overrides, _URL_OPTIONS, "JsonLinesSink")
    kwargs.update(overrides)
    kwargs["path"] = path
    return kwargs
