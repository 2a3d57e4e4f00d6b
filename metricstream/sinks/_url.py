"""Parsing the query options of sink URLs: one set of rules for every sink."""

from __future__ import annotations

import urllib.parse
from collections.abc import Collection, Mapping

from metricstream._secrets import scrub_secrets
from metricstream.exceptions import ConfigError

__all__ = ["check_overrides", "parse_query"]


def parse_query(url: str, query: str, known: Collection[str]) -> dict[str, str]:
    """Parse a sink URL's query string, allowing only the `known` options, once each.

    Raises:
        ConfigError: For a malformed query, an unknown option or a repeated one;
            the message shows the URL with credentials removed.
    """
    shown = scrub_secrets(url)
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


def check_overrides(overrides: Mapping[str, object], known: Collection[str], sink: str) -> None:
    """Refuse keyword overrides that `sink`'s URL factory does not know.

    Raises:
        ConfigError: Naming the first unknown override.
    """
    unknown = sorted(set(overrides) - set(known))
    if unknown:
        raise ConfigError(unknown[0], f"unknown {sink} option; known: {', '.join(sorted(known))}")
