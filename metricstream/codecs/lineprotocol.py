r"""InfluxDB line protocol: encoding events and parsing text back into events.

The grammar is the InfluxDB line protocol reference::

    measurement[,tag_key=tag_value...] field_key=field_value[,...] [timestamp]

Escaping, as the reference decoder (``github.com/influxdata/line-protocol/v2``)
and InfluxDB itself read it:

- measurement: comma and space are written ``\,`` and ``\ ``;
- tag keys, tag values and field keys: comma, equals sign and space;
- string field values are double-quoted, with ``\"`` and ``\\`` inside; the
  parser also reads ``\n``, ``\r`` and ``\t`` there, as the reference does,
  while the encoder writes newlines and tabs as they are.

Names (measurement, tag keys and values, field keys) and comments may not
contain control characters (U+0000 to U+001F, U+007F), as in the reference;
string field values may.

A backslash anywhere else is an ordinary character; it only escapes the
characters listed for its element (``\\`` is two backslashes in a name). That
is why a name cannot end with a backslash (the next delimiter would read as
escaped), and why events refuse such names when they are built.

Field values: ``1.5`` (float; the shortest form that reads back as the same
float, laid out as Go's ``%g`` does: ``1.0`` is written ``1`` and
``6632243.0`` ``6.632243e+06``), ``3i`` (int64), ``3u`` (uint64),
``true``/``false`` (parsed also from ``t``, ``T``, ``True``, ``TRUE`` and the
false forms) and ``"text"``. Floats are read with the reference's syntax, which
is Go's: ``1.``, ``.5``, ``1e-3``, ``1_000`` and hexadecimal ``0x1p-2`` are all
floats; ``NaN`` and infinities are refused. Tags are written sorted by key and
fields in the order they were added. A timestamp written at a coarser precision
is truncated toward zero, as the reference encoder does.

The parser accepts what the reference decoder accepts, with these deliberate
differences:

- a field key repeated in one entry keeps its last value, as InfluxDB does
  (the reference returns both; an event holds a mapping);
- a tag key repeated in one entry is an error (the reference leaves that check
  to its caller);
- errors stop at the first malformed entry, and columns count characters, not
  bytes.

The rules `MetricEvent` applies when an event is built through its API (the
reserved keys ``time``, ``_measurement`` and ``_field``; the 64 KiB limit on
string values) are InfluxDB storage rules, not grammar: the parser, like the
reference, does not apply them to text it reads.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from functools import partial

import orjson

from metricstream._bounded import BoundedDict
from metricstream._compiled import SPEEDUPS
from metricstream._validate import (
    INT64_MAX,
    INT64_MIN,
    UINT64_MAX,
    FieldValue,
    UInt,
    no_fields_error,
)
from metricstream.codecs._lines import Column, TextsBefore, join_lines
from metricstream.columns import EventColumns, FieldColumns
from metricstream.event import MetricEvent, SharedTags, trusted_event
from metricstream.exceptions import ConfigError, LineProtocolError

__all__ = [
    "PRECISIONS",
    "encode_batch",
    "encode_event",
    "parse_line",
    "parse_lines",
]

PRECISIONS: dict[str, int] = {"ns": 1, "us": 1_000, "ms": 1_000_000, "s": 1_000_000_000}
"""Timestamp precisions and their size in nanoseconds."""

# --- encoding --------------------------------------------------------------

# Escaped names, keyed by the raw name. The same few measurements, tag sets and
# field keys recur in nearly every event, so each is escaped once.
_CACHE_LIMIT = 65_536
_measurement_cache: BoundedDict[str, str] = BoundedDict(_CACHE_LIMIT)
_field_prefix_cache: BoundedDict[str, str] = BoundedDict(_CACHE_LIMIT)
_head_cache: BoundedDict[tuple[object, ...], str] = BoundedDict(_CACHE_LIMIT)


def _divisor(precision: str) -> int:
    try:
        return PRECISIONS[precision]
    except (KeyError, TypeError):
        raise ConfigError(
            "precision", f"unknown precision {precision!r}; use one of ns, us, ms, s"
        ) from None


def _escape_measurement(name: str) -> str:
    escaped = name.replace(",", "\\,").replace(" ", "\\ ") if ("," in name or " " in name) else name
    return _measurement_cache.remember(name, escaped)


def _escape_name(name: str) -> str:
    """Escape a tag key, tag value or field key."""
    if "," in name or "=" in name or " " in name:
        return name.replace(",", "\\,").replace("=", "\\=").replace(" ", "\\ ")
    return name


def _field_prefix(key: str) -> str:
    return _field_prefix_cache.remember(key, _escape_name(key) + "=")


# The heads of events whose tags are a `SharedTags` (the tags of every event
# built through the API) are kept in the tags' own `encoded` dict, by
# measurement: they live and die with the tags. At most this many per tags.
_HEADS_PER_TAGS = 256


def _encode_head(measurement: str, tags: dict[str, str]) -> str:
    """Encode the measurement and the tags, sorted by key."""
    head = _measurement_cache.get(measurement) or _escape_measurement(measurement)
    if tags:
        items = sorted(tags.items())
        text = ",".join(map("=".join, items))
        # Only the separators just written: no name holds a character to escape.
        if text.count(",") != len(items) - 1 or text.count("=") != len(items) or " " in text:
            text = ",".join([f"{_escape_name(key)}={_escape_name(value)}" for key, value in items])
        head = f"{head},{text}"
    return head


def _shared_head(tags: SharedTags, measurement: str) -> str:
    """Encode the head of an entry whose tags are shared, and keep it with the tags."""
    head = _encode_head(measurement, tags)
    try:
        heads = tags.encoded
    except AttributeError:
        heads = tags.encoded = {}
    if len(heads) >= _HEADS_PER_TAGS:
        heads.clear()
    heads[measurement] = head
    return head


def _head(cache_key: tuple[object, ...], measurement: str, tags: dict[str, str]) -> str:
    """Encode and remember the measurement and sorted tag set of an entry."""
    return _head_cache.remember(cache_key, _encode_head(measurement, tags))


def _format_string(value: str) -> str:
    if "\\" in value or '"' in value:
        value = value.replace("\\", "\\\\").replace('"', '\\"')
    return f'"{value}"'


def _format_float(value: float) -> str:
    """Format a float as Go's ``strconv.FormatFloat(v, 'g', -1, 64)`` does.

    Python's `repr` and Go pick the same shortest digits; they lay them out
    differently only from 1e6 to 1e16, where Go switches to an exponent.
    """
    text = repr(value)
    if -1e6 < value < 1e6:
        return text[:-2] if text[-2:] == ".0" else text
    if not -1e16 < value < 1e16:
        return text
    sign = "-" if text[0] == "-" else ""
    whole, _, fraction = text.lstrip("-").partition(".")
    digits = (whole + fraction).rstrip("0")
    mantissa = digits[0] + "." + digits[1:] if len(digits) > 1 else digits
    return f"{sign}{mantissa}e+{len(whole) - 1:02d}"


def _format_value(value: FieldValue) -> str:
    """Format a field value of any accepted type (including subclasses)."""
    cls = value.__class__
    if cls is float:
        return _format_float(value)  # type: ignore[arg-type]
    if cls is int:
        return f"{value}i"
    if cls is str:
        return _format_string(value)  # type: ignore[arg-type]
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, UInt):
        return f"{int(value)}u"
    if isinstance(value, int):
        return f"{int(value)}i"
    if isinstance(value, float):
        return _format_float(float(value))
    return _format_string(str(value))


def _scale(timestamp: int, divisor: int) -> int:
    # Integer division truncating toward zero, as the reference encoder does.
    return timestamp // divisor if timestamp >= 0 else -(-timestamp // divisor)


def _head_of(measurement: str, tags: dict[str, str]) -> str:
    """The escaped measurement and sorted tags of an entry, from the caches when known."""
    if tags.__class__ is SharedTags:
        try:
            head = tags.encoded.get(measurement)
        except AttributeError:
            head = None
        return head if head is not None else _shared_head(tags, measurement)
    if tags:
        cache_key = (measurement, *tags.items())
        return _head_cache.get(cache_key) or _head(cache_key, measurement, tags)
    return _measurement_cache.get(measurement) or _escape_measurement(measurement)


def entry_text(head: str, fields: dict[str, FieldValue], timestamp: int) -> str:
    """A line protocol entry: the head, the field set and the timestamp, space-separated.

    The field set is ``key=value`` pairs in order, comma-separated. This is
    the pure-Python twin of the compiled helper `_entry_text` uses when it
    is built (`metricstream._compiled`).

    Args:
        head: The escaped measurement and sorted tags.
        fields: The fields (at least one).
        timestamp: The timestamp, at the precision of the entry.

    Returns:
        The entry, without a newline.
    """
    prefixes = _field_prefix_cache
    text = ""
    for key, value in fields.items():
        try:
            prefix = prefixes[key]
        except KeyError:
            prefix = _field_prefix(key)
        cls = value.__class__
        if cls is float and -1e6 < value < 1e6:  # type: ignore[operator]
            pair = prefix + repr(value).removesuffix(".0")
        elif cls is int:
            pair = f"{prefix}{value}i"
        else:
            pair = prefix + _format_value(value)
        text = f"{text},{pair}" if text else pair
    return f"{head} {text} {timestamp}"


_compiled_entry_text: Callable[[str, dict[str, FieldValue], int], str] | None = (
    None
    if SPEEDUPS is None
    else partial(SPEEDUPS.entry_text, _field_prefix_cache, _field_prefix, _format_value)
)


def _entry_text(head: str, fields: dict[str, FieldValue], timestamp: int) -> str:
    """`entry_text`, compiled when built (the pure code for a timestamp that is not an int64)."""
    if _compiled_entry_text is not None:
        try:
            return _compiled_entry_text(head, fields, timestamp)
        except (TypeError, OverflowError):
            pass  # a part assigned by hand: as the pure code does
    return entry_text(head, fields, timestamp)


def encode_event(event: MetricEvent, precision: str = "ns") -> str:
    """Encode one event as a line of line protocol (no trailing newline).

    Tags are written sorted by key, fields in the order they were added.

    Args:
        event: The event.
        precision: Timestamp unit: ``ns``, ``us``, ``ms`` or ``s``.

    Returns:
        The line.

    Raises:
        InvalidEventError: If the event has no fields.
        ConfigError: If the precision is unknown.
    """
    timestamp = event.timestamp_ns
    if precision != "ns":
        timestamp = _scale(timestamp, _divisor(precision))
    fields = event.fields
    if not fields:
        raise no_fields_error(event.measurement)
    return _entry_text(_head_of(event.measurement, event.tags), fields, timestamp)


def encode_batch(events: EventColumns, precision: str = "ns") -> bytes:
    """Encode a batch as UTF-8 lines: newline-joined, no trailing newline.

    The lines are those `encode_event` writes. The escaped head
    (measurement and sorted tags) comes from the caches. When every event
    has the same field keys (see
    `metricstream.columns.EventColumns.field_columns`), a column of floats
    (from 1e-4 to 1e6 in size), ints or bools is formatted by one
    ``orjson.dumps`` and the lines are joined in one pass
    (`metricstream.codecs._lines.join_lines`); otherwise each event's field
    entry comes from `entry_text` (compiled when built).

    Args:
        events: The events, as columns.
        precision: Timestamp unit: ``ns``, ``us``, ``ms`` or ``s``.

    Returns:
        The lines.

    Raises:
        InvalidEventError: If an event has no fields.
        ConfigError: If the precision is unknown.
    """
    divisor = _divisor(precision)
    stamps = events.timestamps
    if divisor != 1:
        stamps = [_scale(stamp, divisor) for stamp in stamps]
    found = events.field_columns()
    if found is not None:
        columns, separators = _value_columns(found)
        befores = _heads.texts(events.measurements, found.keys[0], events.tags)
        return join_lines(befores, columns, separators, stamps, b"")
    lines: list[str] = []
    append = lines.append
    for measurement, tags, fields, stamp in zip(
        events.measurements, events.tags, events.fields, stamps, strict=True
    ):
        if not fields:
            raise no_fields_error(measurement)
        append(_entry_text(_head_of(measurement, tags), fields, stamp))
    return "\n".join(lines).encode()


def _value_columns(found: FieldColumns) -> tuple[list[Column], list[bytes]]:
    """The value texts of each field column, and the text after each value."""
    columns: list[Column] = []
    suffixes: list[bytes] = []
    for values in found.values:
        column, suffix = _value_column(values)
        columns.append(column)
        suffixes.append(suffix)
    separators = [
        suffix + b"," + _field_prefix(key).encode()
        for suffix, key in zip(suffixes, found.keys[1:])  # noqa: B905 - one suffix more
    ]
    separators.append(suffixes[-1] + b" ")
    return columns, separators


def _value_column(values: list[FieldValue]) -> tuple[Column, bytes]:
    """A column's value texts (a JSON array when one dump writes them) and the suffix of each."""
    kinds = set(map(type, values))
    if kinds == _FLOATS:
        floats: list[float] = values  # type: ignore[assignment]
        # JSON writes floats as Python's repr does from 1e-4 to 1e6; Go writes
        # them the same way less a trailing ".0", and outside with an exponent.
        if (
            min(floats) > -1e6
            and max(floats) < 1e6
            and min(map(abs, filter(None, floats)), default=1.0) >= 1e-4
        ):
            return orjson.dumps(floats).replace(b".0,", b",").replace(b".0]", b"]"), b""
    elif kinds == _INTS:
        return orjson.dumps(values), b"i"
    elif kinds == _BOOLS:
        return orjson.dumps(values), b""
    return [_format_value(value).encode() for value in values], b""


def _head_before_value(measurement: str, key: str | None, tags: dict[str, str]) -> bytes:
    """The line protocol of an event up to its first value: ``head key=``."""
    return f"{_head_of(measurement, tags)} {_field_prefix(key or '')}".encode()


_heads = TextsBefore(_head_before_value, 16_384)


_FLOATS = {float}
_INTS = {int}
_BOOLS = {bool}


# --- parsing ---------------------------------------------------------------

# A backslash escapes only the characters listed for its element; elsewhere it
# is literal, and it never pairs with another backslash. Neither pattern can
# fail once it has matched a character, so the nested repetition never
# backtracks.
_MEASUREMENT = re.compile(r"(?:[^\\, \x00-\x1f\x7f]+|\\[, ]?)+")
_NAME = re.compile(r"(?:[^\\,= \x00-\x1f\x7f]+|\\[,= ]?)+")
_STRING_ESCAPES = re.compile(r'\\([\\"nrt])')
_STRING_UNESCAPED = {"\\": "\\", '"': '"', "n": "\n", "r": "\r", "t": "\t"}
_VALUE = re.compile(r"[^, \r\n]+")
_INT = re.compile(r"-?[0-9]+")
_UINT = re.compile(r"[0-9]+")
_TIMESTAMP = re.compile(r"[-0-9]+")
_SPACES = re.compile(r" +")
_COMMENT = re.compile(r"#[^\x00-\x1f\x7f]*")
_SURROGATE = re.compile("[\ud800-\udfff]")
# Go's float syntax (strconv.ParseFloat): digits may be separated by single
# underscores; a hexadecimal mantissa needs a binary exponent.
_DECIMAL_FLOAT = re.compile(
    r"-?(?:[0-9](?:_?[0-9])*(?:\.(?:[0-9](?:_?[0-9])*)?)?|\.[0-9](?:_?[0-9])*)"
    r"(?:[eE][+-]?[0-9](?:_?[0-9])*)?"
)
_HEX_FLOAT = re.compile(
    r"-?0[xX](?:_?[0-9a-fA-F](?:_?[0-9a-fA-F])*(?:\.(?:[0-9a-fA-F](?:_?[0-9a-fA-F])*)?)?"
    r"|\.[0-9a-fA-F](?:_?[0-9a-fA-F])*)"
    r"[pP][+-]?[0-9](?:_?[0-9])*"
)
_READABLE = {"\n": "end of line", "\r": "end of line", " ": "a space"}
_TRUE = frozenset({"t", "T", "true", "True", "TRUE"})
_FALSE = frozenset({"f", "F", "false", "False", "FALSE"})


def _unescape(token: str, escapable: str) -> str:
    # Each backslash followed by an escapable character is an escape (a
    # backslash is never itself escaped in names), so plain replacement is exact.
    if "\\" not in token:
        return token
    for char in escapable:
        token = token.replace("\\" + char, char)
    return token


def _unescape_string(raw: str) -> str:
    if "\\" not in raw:
        return raw
    return _STRING_ESCAPES.sub(lambda match: _STRING_UNESCAPED[match.group(1)], raw)


def _parse_float(token: str) -> float | None:
    """Read `token` as Go's strconv.ParseFloat would; None if it is not a float."""
    if _DECIMAL_FLOAT.fullmatch(token):
        return float(token.replace("_", "") if "_" in token else token)
    if _HEX_FLOAT.fullmatch(token):
        try:
            return float.fromhex(token.replace("_", ""))
        except OverflowError:
            return float("inf")
    return None


class _Parser:
    """A scanner over line protocol text that keeps line and column for errors."""

    __slots__ = (
        "check_unicode",
        "default_time",
        "from_bytes",
        "line",
        "line_start",
        "multiplier",
        "pos",
        "text",
    )

    def __init__(
        self, text: str, multiplier: int, default_time: int, check_unicode: bool, from_bytes: bool
    ) -> None:
        self.text = text
        self.pos = 0
        self.line = 1
        self.line_start = 0
        self.multiplier = multiplier
        self.default_time = default_time
        self.check_unicode = check_unicode
        self.from_bytes = from_bytes

    def error(self, problem: str, at: int | None = None) -> LineProtocolError:
        """Build the error for `problem` at `at` (default: the current position)."""
        pos = self.pos if at is None else at
        text = self.text
        # self.line is the number of the line that starts at self.line_start;
        # the position may lie before it (inside a multi-line string) or after.
        if pos >= self.line_start:
            line = self.line + text.count("\n", self.line_start, pos)
        else:
            line = self.line - text.count("\n", pos, self.line_start)
        line_start = text.rfind("\n", 0, pos) + 1
        line_end = len(text)
        for ending in ("\n", "\r"):
            found = text.find(ending, pos)
            if found != -1:
                line_end = min(line_end, found)
        line_text = text[line_start:line_end]
        if self.check_unicode:
            line_text = _SURROGATE.sub("\ufffd", line_text)
        return LineProtocolError(problem, line=line, column=pos - line_start + 1, text=line_text)

    def _describe(self, pos: int) -> str:
        if pos >= len(self.text):
            return "end of input"
        char = self.text[pos]
        if char in _READABLE:
            return _READABLE[char]
        if char < " " or char == "\x7f":
            return f"a control character (U+{ord(char):04X})"
        return repr(char)

    def _check_unicode(self, start: int, end: int, what: str) -> None:
        match = _SURROGATE.search(self.text, start, end)
        if match is not None:
            problem = "invalid UTF-8" if self.from_bytes else "a lone surrogate (not valid Unicode)"
            raise self.error(f"{problem} in {what}", match.start())

    def _end_of_line(self) -> bool:
        """Consume a line ending; True if one (or the end of input) was there."""
        text = self.text
        pos = self.pos
        if pos >= len(text):
            return True
        char = text[pos]
        if char == "\n":
            self.pos = pos + 1
        elif char == "\r" and text.startswith("\n", pos + 1):
            self.pos = pos + 2
        elif char == "\r" and pos + 1 == len(text):
            self.pos = pos + 1
            return True
        else:
            return False
        self.line += 1
        self.line_start = self.pos
        return True

    def skip_blank_and_comments(self) -> bool:
        """Advance to the next entry; return False at end of input."""
        text = self.text
        size = len(text)
        while self.pos < size:
            match = _SPACES.match(text, self.pos)
            if match:
                self.pos = match.end()
                if self.pos >= size:
                    return False
            char = text[self.pos]
            if char == "#":
                self.pos = _COMMENT.match(text, self.pos).end()  # type: ignore[union-attr]
                if not self._end_of_line():
                    if text[self.pos] == "\r":
                        raise self.error("carriage return not followed by a newline")
                    raise self.error(f"{self._describe(self.pos)} in a comment")
            elif char in "\r\n":
                if not self._end_of_line():
                    raise self.error("carriage return not followed by a newline")
            else:
                return True
        return False

    def entry(self) -> MetricEvent:
        """Parse one entry starting at the current position."""
        text = self.text
        size = len(text)
        start = self.pos
        match = _MEASUREMENT.match(text, start)
        if match is None:
            raise self.error(f"expected a measurement name, found {self._describe(start)}")
        self.pos = match.end()
        if self.check_unicode:
            self._check_unicode(start, self.pos, "the measurement")
        measurement = _unescape(match.group(), ", ")
        tags: dict[str, str] = {}
        while self.pos < size and text[self.pos] == ",":
            self.pos += 1
            key_start = self.pos
            key = self._key("tag key")
            value = self._name("tag key", key)
            if key in tags:
                raise self.error(f"duplicate tag key {key!r}", key_start)
            tags[key] = value
        self._separator("expected a space before the fields")
        fields: dict[str, FieldValue] = {}
        while True:
            key = self._key("field key")
            fields[key] = self._field_value(key)
            if self.pos < size and text[self.pos] == ",":
                self.pos += 1
                continue
            break
        timestamp = self._timestamp()
        return trusted_event(measurement, tags, fields, timestamp, None)

    def _name(self, kind: str, tag_key: str | None = None) -> str:
        """Read a tag key, a field key or (given its `tag_key`) a tag value."""
        start = self.pos
        match = _NAME.match(self.text, start)
        if match is None or self.check_unicode:
            what = kind if tag_key is None else f"value for {kind} {tag_key!r}"
            if match is None:
                raise self.error(f"expected a {what}, found {self._describe(start)}")
            self._check_unicode(start, match.end(), f"the {what}")
        self.pos = match.end()
        return _unescape(match.group(), ",= ")

    def _key(self, kind: str) -> str:
        """Read a tag or field key and the ``=`` after it."""
        key = self._name(kind)
        pos = self.pos
        if pos >= len(self.text) or self.text[pos] != "=":
            raise self.error(f"expected '=' after {kind} {key!r}, found {self._describe(pos)}")
        self.pos = pos + 1
        return key

    def _separator(self, problem: str) -> None:
        match = _SPACES.match(self.text, self.pos)
        if match is None:
            raise self.error(f"{problem}, found {self._describe(self.pos)}")
        self.pos = match.end()

    def _string_end(self, start: int) -> int:
        """Return the index of the quote closing the string opened at `start`, or -1."""
        text = self.text
        search = start + 1
        while True:
            quote = text.find('"', search)
            if quote == -1:
                return -1
            backslashes = 0
            before = quote - 1
            while before > start and text[before] == "\\":
                backslashes += 1
                before -= 1
            # Backslashes pair up left to right; an odd run escapes the quote.
            if not backslashes % 2:
                return quote
            search = quote + 1

    def _field_value(self, key: str) -> FieldValue:
        text = self.text
        start = self.pos
        if start >= len(text):
            raise self.error(f"expected a value for field {key!r}, found end of input")
        value: FieldValue
        if text[start] == '"':
            end = self._string_end(start)
            if end == -1:
                raise self.error(f"unterminated string value for field {key!r}", start)
            if self.check_unicode:
                self._check_unicode(start, end, f"the value of field {key!r}")
            value = _unescape_string(text[start + 1 : end])
            self.pos = end + 1
            newlines = text.count("\n", start, end)
            if newlines:
                self.line += newlines
                self.line_start = text.rfind("\n", start, end) + 1
        else:
            match = _VALUE.match(text, start)
            if match is None:
                raise self.error(
                    f"expected a value for field {key!r}, found {self._describe(start)}"
                )
            self.pos = match.end()
            value = self._scalar(key, match.group(), start)
        end = self.pos
        if end < len(text) and text[end] not in ", \r\n":
            raise self.error(f"unexpected {text[end]!r} after the value of field {key!r}")
        return value

    def _scalar(self, key: str, token: str, start: int) -> FieldValue:
        first = token[0]
        if first in "tTfF":
            if token in _TRUE:
                return True
            if token in _FALSE:
                return False
            raise self.error(f"invalid boolean {token!r} for field {key!r}", start)
        if first not in "-0123456789.":
            raise self.error(f"field {key!r} has a value of unknown type: {token!r}", start)
        suffix = token[-1]
        if suffix == "i":
            if not _INT.fullmatch(token, 0, len(token) - 1):
                raise self.error(f"invalid integer {token!r} for field {key!r}", start)
            number = int(token[:-1])
            if not INT64_MIN <= number <= INT64_MAX:
                raise self.error(f"integer {token!r} for field {key!r} is outside int64", start)
            return number
        if suffix == "u":
            if not _UINT.fullmatch(token, 0, len(token) - 1):
                raise self.error(f"invalid unsigned integer {token!r} for field {key!r}", start)
            number = int(token[:-1])
            if number > UINT64_MAX:
                raise self.error(
                    f"unsigned integer {token!r} for field {key!r} is outside uint64", start
                )
            return UInt(number)
        value = _parse_float(token)
        if value is None:
            raise self.error(f"invalid number {token!r} for field {key!r}", start)
        if value - value != 0.0:
            raise self.error(f"float {token!r} for field {key!r} is out of range", start)
        return value

    def _timestamp(self) -> int:
        text = self.text
        size = len(text)
        spaces = _SPACES.match(text, self.pos)
        if spaces:
            self.pos = spaces.end()
        if self.pos >= size or text[self.pos] in "\r\n":
            if not self._end_of_line():
                raise self.error("carriage return not followed by a newline")
            return self.default_time
        start = self.pos
        match = _TIMESTAMP.match(text, start)
        end = match.end() if match else start
        if match is None or (end < size and text[end] not in " \r\n"):
            stop = end
            while stop < size and text[stop] not in "\r\n":
                stop += 1
            raise self.error(f"invalid timestamp {text[start:stop]!r}", start)
        token = match.group()
        if not _INT.fullmatch(token):
            raise self.error(f"invalid timestamp {token!r}", start)
        timestamp = int(token) * self.multiplier
        if not INT64_MIN <= timestamp <= INT64_MAX:
            raise self.error(f"timestamp {token} is out of range", start)
        self.pos = end
        spaces = _SPACES.match(text, self.pos)
        if spaces:
            self.pos = spaces.end()
        if not self._end_of_line():
            raise self.error(f"unexpected text after the timestamp: {self._describe(self.pos)}")
        return timestamp


def _decode(text: str | bytes | bytearray | memoryview) -> tuple[str, bool, bool]:
    """Return the text, whether it may hold invalid Unicode, and whether it was bytes."""
    if isinstance(text, str):
        if text.isascii():
            return text, False, False
        try:
            text.encode()
        except UnicodeEncodeError:
            return text, True, False
        return text, False, False
    raw = bytes(text)
    try:
        return raw.decode(), False, True
    except UnicodeDecodeError:
        # Invalid bytes become lone surrogates; they are an error only inside an
        # entry (a comment may hold anything), as in the reference decoder.
        return raw.decode(errors="surrogateescape"), True, True


def parse_lines(
    text: str | bytes, precision: str = "ns", default_time_ns: int | None = None
) -> list[MetricEvent]:
    r"""Parse line protocol text into events.

    Blank lines and ``#`` comment lines are skipped; ``\n`` and ``\r\n`` line
    endings are both accepted.

    Args:
        text: The text (bytes are decoded as UTF-8).
        precision: Unit of the timestamps in the text: ns, us, ms or s.
        default_time_ns: Timestamp for entries that have none; defaults to the
            current time. It is truncated to the precision.

    Returns:
        The events, in order.

    Raises:
        LineProtocolError: At the first malformed entry, with its line and column.
        ConfigError: If the precision is unknown.
    """
    multiplier = _divisor(precision)
    decoded, check_unicode, from_bytes = _decode(text)
    default = time.time_ns() if default_time_ns is None else default_time_ns
    default -= default % multiplier
    parser = _Parser(decoded, multiplier, default, check_unicode, from_bytes)
    events: list[MetricEvent] = []
    while parser.skip_blank_and_comments():
        events.append(parser.entry())
    return events


def parse_line(line: str | bytes, precision: str = "ns") -> MetricEvent:
    """Parse exactly one line protocol entry.

    Args:
        line: The text of the entry (comments and blank lines around it are allowed).
        precision: Unit of the timestamp in the text: ns, us, ms or s.

    Returns:
        The event.

    Raises:
        LineProtocolError: If the text is malformed or holds zero or several entries.
        ConfigError: If the precision is unknown.
    """
    events = parse_lines(line, precision)
    if len(events) != 1:
        raise LineProtocolError(
            f"expected exactly one entry, found {len(events)}",
            line=1,
            column=1,
            text=line if isinstance(line, str) else line.decode(errors="replace"),
        )
    return events[0]
