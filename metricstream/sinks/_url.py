"""Reading sink URLs: the query string, one set of rules for every sink.

A sink's query options are the options its options class declares as text
(`metricstream._options.text_names`), read by each option's kind
(`query_options`); a sink adds URL-only options of its own (``tls``) by name.
Keyword overrides of `from_url` are the options class's parameters
(`check_overrides`).
"""

from __future__ import annotations

import urllib.parse
from collections.abc import Collection, Mapping
from typing import Any

from metricstream._options import declared, from_text, text_names
from metricstream._secrets import scrub_secrets
from metricstream.exceptions import ConfigError

__all__ = ["check_overrides", "parse_query", "query_options"]


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
                key, f"unknown option in {shown!r}; known options: {', '.join(sorted(known))}"
            )
        if key in options:
            raise ConfigError(key, f"option given more than once in {shown!r}")
        options[key] = value
    return options


def query_options(
    url: str, query: str, options_type: type[Any], *, url_only: Collection[str] = ()
) -> tuple[dict[str, Any], dict[str, str]]:
    """Read a sink URL's query options through the sink's options class.

    Args:
        url: The URL, for messages (credentials are removed).
        query: Its query string.
        options_type: The sink's options class; its text options are known.
        url_only: Further option names the URL may hold, returned as text.

    Returns:
        The options class's values by parameter name, and the `url_only`
        options' texts.

    Raises:
        ConfigError: For a malformed query, an unknown or repeated option, or
            a value its kind refuses.
    """
    texts = parse_query(url, query, (*text_names(options_type), *url_only))
    extra = {name: texts.pop(name) for name in url_only if name in texts}
    return from_text(options_type, texts), extra


def check_overrides(
    overrides: Mapping[str, object],
    options_type: type[Any],
    sink: str,
    *,
    exclude: Collection[str] = (),
    also: Collection[str] = (),
) -> None:
    """Refuse keyword overrides that are not parameters of `options_type`.

    Args:
        overrides: The keyword arguments given to ``from_url``.
        options_type: The sink's options class.
        sink: The sink's class name, for the message.
        exclude: Parameters the URL itself sets (the host, the path...).
        also: Further names ``from_url`` accepts.

    Raises:
        ConfigError: Naming the first unknown override.
    """
    known = {o.name for o in declared(options_type)} - set(exclude) | set(also)
    unknown = sorted(set(overrides) - known)
    if unknown:
        raise ConfigError(unknown[0], f"unknown {sink} option; known: {', '.join(sorted(known))}")
