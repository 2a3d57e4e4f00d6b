"""The JSON Lines sink's options (`JsonLinesOptions`) and its URL scheme (``jsonl:``)."""

from __future__ import annotations

import os
import urllib.parse
from pathlib import Path
from typing import Any

from metricstream._options import (
    Kind,
    boolean,
    integer,
    option,
    optional,
    options_class,
    text,
)
from metricstream._secrets import scrub_secrets
from metricstream.codecs.compression import Compression
from metricstream.exceptions import ConfigError
from metricstream.sinks._url import check_overrides, query_options
from metricstream.sinks.jsonl.encode import SUFFIX_CODECS

__all__ = ["SCHEMES", "JsonLinesOptions", "url_arguments"]

SCHEMES = ("jsonl",)
"""The URL schemes of this sink (see `url_arguments`)."""

_MODE_EXPECTED = "permission bits between 0o600 and 0o777 that include 0o600"


def _check_path(option_name: str, path: object) -> Path:
    try:
        raw = os.fspath(path)  # type: ignore[call-overload]
    except TypeError:
        raise ConfigError(option_name, f"expected a path, not {type(path).__name__}") from None
    if not isinstance(raw, str):
        raise ConfigError(option_name, f"expected a str path, not {type(raw).__name__}")
    if not raw:
        raise ConfigError(option_name, "the path is empty")
    resolved = Path(os.path.abspath(raw))
    if resolved.is_dir():
        raise ConfigError(option_name, f"{raw!r} is a directory; name a file inside it")
    if resolved.exists() and not resolved.is_file():
        raise ConfigError(option_name, f"{raw!r} is not a regular file")
    directory = resolved.parent
    if not directory.is_dir():
        problem = "is not a directory" if directory.exists() else "does not exist"
        raise ConfigError(option_name, f"the directory {str(directory)!r} of {raw!r} {problem}")
    return resolved


def _check_codec(_option: str, value: object) -> Compression:
    return Compression.from_str(value)  # type: ignore[arg-type]


def _check_mode(option_name: str, value: object) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or not 0o600 <= value <= 0o777:
        shown = oct(value) if isinstance(value, int) else repr(value)
        raise ConfigError(
            option_name, f"must be {_MODE_EXPECTED} (the owner reads and writes), not {shown}"
        )
    return value


@options_class
class JsonLinesOptions:
    """The options of a `JsonLinesSink`, each checked when the sink is built."""

    path: str | os.PathLike[str] = option(
        kind=Kind("a file in an existing directory", _check_path),
        doc="The file to append to, created on the first write; a relative path is made "
        "absolute now.",
        kw_only=False,
        text=False,
    )
    compression: str | Compression | None = option(
        default=None,
        kind=optional(Kind("'zstd', 'gzip' or 'none'", _check_codec)),
        doc="The codec; None: zstd for a .zst path, gzip for .gz, else the streamer's codec "
        "(plain text without one).",
    )
    rotate_bytes: int | None = option(
        default=None,
        kind=optional(integer(minimum=1)),
        doc="Rotate before a write that would take the file past this many bytes (on disk).",
    )
    fsync: bool = option(
        default=False,
        kind=boolean(),
        doc="os.fsync the file after every write, and its directory after a file is created "
        "or rotated.",
    )
    file_mode: int = option(
        default=0o600,
        kind=Kind(_MODE_EXPECTED, _check_mode, integer(minimum=0o600, maximum=0o777, base=8).parse),
        doc="Permission bits of the files the sink creates, applied exactly (not reduced by "
        "the umask); text in octal.",
    )
    name: str = option(default="jsonl", kind=text(), doc="The sink's name in health reports.")

    def __post_init__(self) -> None:
        """A codec that contradicts the path's suffix is refused."""
        path = Path(self.path)
        suffix_codec = SUFFIX_CODECS.get(path.suffix.lower())
        if self.compression is not None and suffix_codec not in (None, self.compression):
            raise ConfigError(
                "compression",
                f"{Compression.from_str(self.compression).value!r} contradicts the "
                f"{path.suffix!r} suffix of {str(path)!r}",
            )

    @property
    def codec(self) -> Compression | None:
        """The codec chosen by the options or the path's suffix; None: not chosen."""
        if self.compression is not None:
            return Compression.from_str(self.compression)
        return SUFFIX_CODECS.get(Path(self.path).suffix.lower())


def url_arguments(url: str, overrides: dict[str, Any]) -> dict[str, Any]:
    """Return the `JsonLinesSink` arguments a ``jsonl:`` URL stands for; `overrides` win.

    Forms: ``jsonl:metrics.jsonl`` and ``jsonl:./out.jsonl.zst`` (relative to
    the working directory), ``jsonl:/var/log/m.jsonl`` and
    ``jsonl:///var/log/m.jsonl`` (absolute), ``jsonl:~/m.jsonl`` (home).
    Percent-escapes in the path are decoded (``%20``, and ``%3F`` for ``?``).
    The query options are those of `JsonLinesOptions`: ``compression``
    (none, zstd, gzip), ``rotate_bytes``, ``fsync`` (true/false, 1/0,
    yes/no, on/off), ``file_mode`` (octal, ``640`` or ``0o640``) and ``name``.

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
                "local file (jsonl:PATH or jsonl:///absolute/path)",
            )
        location = slash + tail
    path = os.path.expanduser(urllib.parse.unquote(location))
    if not path:
        raise ConfigError("path", f"{shown!r} names no file; use jsonl:PATH")
    check_overrides(overrides, JsonLinesOptions, "JsonLinesSink", exclude=("path",))
    values, _ = query_options(url, query, JsonLinesOptions)
    return {"path": path, **values, **overrides}
