"""The console's options and its URL scheme: ``console:`` URLs read into arguments."""

from __future__ import annotations

from typing import Any

from metricstream.exceptions import ConfigError
from metricstream.sinks._url import check_overrides, parse_query

__all__ = ["FORMATS", "SCHEMES", "STANDARD_STREAMS", "url_arguments"]

SCHEMES = ("console",)
"""The URL schemes of this sink (see `url_arguments`)."""

FORMATS = ("pretty", "json", "line")
"""The formats `ConsoleSink` writes."""

STANDARD_STREAMS = ("stdout", "stderr")
"""The streams named by text rather than passed as objects."""

_URL_OPTIONS = ("format", "name", "stream")


def url_arguments(url: str, overrides: dict[str, Any]) -> dict[str, Any]:
    """Return the `ConsoleSink` arguments a ``console:`` URL stands for; `overrides` win.

    Forms: ``console:`` (pretty), ``console:json``, ``console:line``,
    ``console:pretty``, and query options ``format``, ``name`` and ``stream``
    (``stdout`` or ``stderr``): ``console:?format=json&name=audit``,
    ``console:line?stream=stderr``.

    Raises:
        ConfigError: If the URL is not a ``console:`` URL, an option is unknown,
            repeated or invalid, or the format after the colon disagrees with
            ``format=``.
    """
    scheme, sep, rest = url.partition(":")
    if not sep or scheme.lower() != "console":
        raise ConfigError("url", f"not a console: URL: {url!r}")
    rest = rest.removeprefix("//")
    path, _, query = rest.partition("?")
    options: dict[str, Any] = parse_query(url, query, _URL_OPTIONS)
    if path:
        if "format" in options and options["format"].strip().lower() != path.strip().lower():
            raise ConfigError(
                "format", f"{url!r} names two formats: {path!r} and {options['format']!r}"
            )
        options["format"] = path
    check_overrides(overrides, _URL_OPTIONS, "ConsoleSink")
    options.update(overrides)
    return options
