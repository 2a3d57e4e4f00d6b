"""The console's options (`ConsoleOptions`) and its URL scheme (``console:``)."""

from __future__ import annotations

from typing import Any, Literal, TextIO

from metricstream._options import Kind, integer, option, optional, options_class, text
from metricstream.exceptions import ConfigError
from metricstream.sinks._url import check_overrides, query_options

__all__ = ["FORMATS", "SCHEMES", "STANDARD_STREAMS", "ConsoleOptions", "url_arguments"]

SCHEMES = ("console",)
"""The URL schemes of this sink (see `url_arguments`)."""

FORMATS = ("pretty", "json", "line")
"""The formats `ConsoleSink` writes."""

STANDARD_STREAMS = ("stdout", "stderr")
"""The streams named by text rather than passed as objects."""


def _check_format(option_name: str, value: object) -> str:
    if not isinstance(value, str) or value.strip().lower() not in FORMATS:
        raise ConfigError(
            option_name, f"unknown console format {value!r}; use {', '.join(FORMATS)}"
        )
    return value.strip().lower()


def _check_stream(option_name: str, value: object) -> TextIO | str:
    if value is None:
        return "stdout"
    if isinstance(value, str):
        if value not in STANDARD_STREAMS:
            raise ConfigError(
                option_name,
                f"unknown stream {value!r}; use 'stdout', 'stderr' or a text stream",
            )
        return value
    if not callable(getattr(value, "write", None)):
        raise ConfigError(
            option_name,
            f"expected a text stream with a write() method, not {type(value).__name__}",
        )
    return value  # type: ignore[return-value]


@options_class
class ConsoleOptions:
    """The options of a `ConsoleSink`, each checked when the sink is built."""

    stream: TextIO | Literal["stdout", "stderr"] | None = option(
        default=None,
        kind=Kind("a text stream, 'stdout' or 'stderr'", _check_stream),
        doc="Where to write; 'stdout' and 'stderr' (None: 'stdout') are looked up at each "
        "write, so redirecting them is honoured.",
        kw_only=False,
    )
    format: str = option(
        default="pretty",
        kind=Kind(f"one of {', '.join(FORMATS)}", _check_format),
        doc="'pretty' (aligned, for people), 'json' (JSON Lines) or 'line' (line protocol).",
        kw_only=False,
    )
    name: str = option(default="console", kind=text(), doc="The sink's name in health reports.")
    max_events_per_batch: int | None = option(
        default=None,
        kind=optional(integer(minimum=1)),
        doc="For display: show at most this many events of each batch, then a line saying "
        "how many more; the whole batch counts as written. Not with 'json'.",
    )

    def __post_init__(self) -> None:
        """JSON Lines output shows every event."""
        if self.max_events_per_batch is not None and self.format == "json":
            raise ConfigError(
                "max_events_per_batch", "is for display and cannot be used with format='json'"
            )


def url_arguments(url: str, overrides: dict[str, Any]) -> dict[str, Any]:
    """Return the `ConsoleSink` arguments a ``console:`` URL stands for; `overrides` win.

    Forms: ``console:`` (pretty), ``console:json``, ``console:line``,
    ``console:pretty``, and the query options of `ConsoleOptions` (``format``,
    ``name``, ``stream`` as ``stdout`` or ``stderr``,
    ``max_events_per_batch``): ``console:?format=json&name=audit``,
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
    check_overrides(overrides, ConsoleOptions, "ConsoleSink")
    values, _ = query_options(url, query, ConsoleOptions)
    if path:
        named = _check_format("format", path)
        if "format" in values and values["format"] != named:
            raise ConfigError(
                "format", f"{url!r} names two formats: {path!r} and {values['format']!r}"
            )
        values["format"] = named
    return {**values, **overrides}
