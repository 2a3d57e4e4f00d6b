r"""Key naming and escaping: how a counter's key is written, and read back.

Every counter key has five parts after the prefix, separated by ``:``::

    {prefix}{kind}:{d|h}:{bucket_start}:{pattern}:{values}

- ``kind``: ``add`` (a count), ``adv`` (a sum) or ``bmp`` (a unique count, a
  HyperLogLog);
- ``d`` or ``h``: a daily or hourly bucket, named by the unix seconds of its
  start (``bucket_start``);
- ``pattern``: the property names of the key joined by ``~``;
- ``values``: the event's values of those names, joined by ``~`` in the same
  order. A unique key has no values part when its pattern is one name (the
  value is the member added to the HyperLogLog); for a compound unique
  pattern ``a~b~x``, the key holds the values of ``a`` and ``b`` and the
  member is the value of ``x``.

Escaping: in a name or value, ``\`` becomes ``\\``, ``:`` becomes ``\:`` and
``~`` becomes ``\~``; nothing else changes. Every separator in a key is
therefore an unescaped ``:`` or ``~``, so a key splits back into its parts
unambiguously (`parse_key`), and two different events never share a key by
accident. Text without those three characters is written as it is, so with
``prefix=""`` the keys are byte for byte those of the traqq engine
(``add:d:1696118400:event~utm_source:purchase~google``). The same rule reads
the patterns of a mapping: ``\~`` there is a literal ``~`` in a name.

Beside the counters, the sink keeps one set per pattern and bucket listing the
value combinations seen (the value index, ``{prefix}idx:{kind}:{d|h}:
{bucket_start}:{pattern}``), and one key per batch it applied (``{prefix}
batch:...``, see `metricstream.sinks.redis_counters.script`).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from metricstream.exceptions import ConfigError

__all__ = [
    "BUCKETS",
    "KINDS",
    "CounterKey",
    "KeyLayout",
    "escape",
    "join_escaped",
    "parse_key",
    "split_escaped",
    "unescape",
]

KINDS: dict[str, str] = {"count": "add", "sum": "adv", "unique": "bmp"}
"""The key kind of each metric kind."""

BUCKETS: tuple[str, ...] = ("d", "h")
"""The bucket letters: daily and hourly."""

_SPECIAL = ("\\", ":", "~")


def escape(text: str) -> str:
    r"""Escape ``\``, ``:`` and ``~`` in a name or value with a backslash."""
    if "\\" in text or ":" in text or "~" in text:
        return text.replace("\\", "\\\\").replace(":", "\\:").replace("~", "\\~")
    return text


def join_escaped(parts: Iterable[str]) -> str:
    """Escape each part and join them with ``~`` (a pattern or a values part)."""
    return "~".join([escape(part) for part in parts])


def _split_raw(text: str, separator: str) -> list[str]:
    """Split at each unescaped `separator`, keeping the escapes in the parts."""
    if "\\" not in text:
        return text.split(separator)
    parts: list[str] = []
    start = index = 0
    length = len(text)
    while index < length:
        char = text[index]
        if char == "\\":
            if index + 1 == length:
                raise ValueError(f"{text!r} ends with a lone backslash")
            index += 2
            continue
        if char == separator:
            parts.append(text[start:index])
            start = index + 1
        index += 1
    parts.append(text[start:])
    return parts


def unescape(text: str) -> str:
    """Undo `escape`: a backslash takes the character after it literally.

    Raises:
        ValueError: If the text ends with a lone backslash.
    """
    if "\\" not in text:
        return text
    chars: list[str] = []
    index, length = 0, len(text)
    while index < length:
        char = text[index]
        if char == "\\":
            if index + 1 == length:
                raise ValueError(f"{text!r} ends with a lone backslash")
            char = text[index + 1]
            index += 1
        chars.append(char)
        index += 1
    return "".join(chars)


def split_escaped(text: str, separator: str = "~") -> tuple[str, ...]:
    """Split at each unescaped `separator` and unescape the parts.

    Raises:
        ValueError: If the text ends with a lone backslash.
    """
    return tuple(unescape(part) for part in _split_raw(text, separator))


@dataclass(frozen=True, slots=True)
class CounterKey:
    """A counter key taken apart (see `parse_key`).

    Attributes:
        kind: ``add``, ``adv`` or ``bmp``.
        bucket: ``d`` or ``h``.
        start: The unix seconds of the bucket's start.
        names: The property names of the pattern.
        values: The values of those names (for a unique key, of all names
            but the last).
    """

    kind: str
    bucket: str
    start: int
    names: tuple[str, ...]
    values: tuple[str, ...]


def parse_key(key: str, prefix: str = "") -> CounterKey:
    """Take a counter key apart.

    Args:
        key: The key, as stored.
        prefix: The prefix it was written with.

    Returns:
        Its parts, unescaped.

    Raises:
        ValueError: If it is not a counter key of this prefix.
    """
    if not key.startswith(prefix):
        raise ValueError(f"{key!r} does not start with the prefix {prefix!r}")
    parts = _split_raw(key[len(prefix) :], ":")
    if len(parts) not in (4, 5) or parts[0] not in KINDS.values() or parts[1] not in BUCKETS:
        raise ValueError(f"{key!r} is not a counter key")
    kind, bucket, start, pattern = parts[:4]
    names = split_escaped(pattern)
    values = split_escaped(parts[4]) if len(parts) == 5 else ()
    expected = len(names) - 1 if kind == "bmp" else len(names)
    if not start.isdigit() or len(values) != expected:
        raise ValueError(f"{key!r} is not a counter key")
    return CounterKey(kind, bucket, int(start), names, values)


class KeyLayout:
    """The keys of one prefix.

    Args:
        prefix: Written before every key (``""`` for traqq's exact layout).

    Raises:
        ConfigError: If the prefix is not a str.
    """

    __slots__ = ("prefix",)

    def __init__(self, prefix: str) -> None:
        if not isinstance(prefix, str):
            raise ConfigError("prefix", f"must be a string, not {prefix!r}")
        self.prefix = prefix

    def __repr__(self) -> str:
        return f"KeyLayout(prefix={self.prefix!r})"

    def counter(self, kind: str, bucket: str, start: int, pattern: str, values: str | None) -> str:
        """Return a counter key; `pattern` and `values` are already escaped and joined."""
        head = f"{self.prefix}{kind}:{bucket}:{start}:{pattern}"
        return head if values is None else f"{head}:{values}"

    def index(self, kind: str, bucket: str, start: int, pattern: str) -> str:
        """Return the key of the value index of a pattern in one bucket."""
        return f"{self.prefix}idx:{kind}:{bucket}:{start}:{pattern}"

    def batch(self, sink: str, batch_id: str, hash_tag: str | None = None) -> str:
        """Return the key recording that a sink applied a batch (to one slot, with a hash tag)."""
        tag = "" if hash_tag is None else f"{{{hash_tag}}}:"
        return f"{self.prefix}batch:{tag}{escape(sink)}:{escape(batch_id)}"

    def parse(self, key: str) -> CounterKey:
        """`parse_key` with this layout's prefix.

        Raises:
            ValueError: If it is not a counter key of this prefix.
        """
        return parse_key(key, self.prefix)

    def scan_pattern(self) -> str:
        """A glob matching every key this layout writes (for tools and tests)."""
        return _glob_escape(self.prefix) + "*"


def _glob_escape(text: str) -> str:
    for char in ("\\", "*", "?", "[", "]"):
        text = text.replace(char, "\\" + char)
    return text
