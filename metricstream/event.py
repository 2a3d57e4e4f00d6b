"""`MetricEvent`: one tagged measurement, and the helpers that build it.

An event is a measurement name, string tags, typed fields (bool, int, float,
str or `UInt`), a nanosecond timestamp and an optional correlation id. Every
part is validated when it is set, so an event that exists can be encoded; the
one check left for later is that it has at least one field, made when it is
encoded or sent.
"""

from __future__ import annotations

import datetime as _dt
import operator
import re
import time
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any, ClassVar, NoReturn, Union

from metricstream.exceptions import InvalidEventError

if TYPE_CHECKING:
    from typing_extensions import Self

__all__ = [
    "SCHEMA_VERSION",
    "FieldValue",
    "MetricEvent",
    "SharedTags",
    "TagsLike",
    "UInt",
    "event_from_sample",
]

SCHEMA_VERSION = 1
"""The version of the serialized event schema this library writes and reads."""

INT64_MIN = -(2**63)
INT64_MAX = 2**63 - 1
UINT64_MAX = 2**64 - 1
MAX_STRING_BYTES = 64 * 1024
"""The largest string field value accepted, in UTF-8 bytes."""

RESERVED_KEYS = frozenset({"time", "_measurement", "_field"})
"""Tag and field keys that InfluxDB reserves for itself."""


class UInt(int):
    """An unsigned 64-bit integer field value (line protocol ``12u``).

    A plain `int` field is a signed 64-bit integer; wrap a value in `UInt` to
    store it as unsigned. It behaves as an `int` in arithmetic.

    Raises:
        InvalidEventError: If the value is not an integer in 0 .. 2**64-1.
    """

    __slots__ = ()

    def __new__(cls, value: object) -> Self:
        """Create an unsigned value from an integer (bools are refused)."""
        if isinstance(value, bool):
            raise InvalidEventError(None, f"UInt value must be an integer, not bool ({value!r})")
        candidate: Any = value
        try:
            number = operator.index(candidate)
        except TypeError:
            raise InvalidEventError(
                None, f"UInt value must be an integer, not {type(value).__name__} ({value!r})"
            ) from None
        if not 0 <= number <= UINT64_MAX:
            raise InvalidEventError(None, f"UInt value {number} is outside 0..{UINT64_MAX}")
        return super().__new__(cls, number)

    def __repr__(self) -> str:
        return f"UInt({int(self)})"


FieldValue = Union[bool, int, float, str, UInt]
"""The types a field value may have."""

TagsLike = Union[Mapping[str, object], Iterable[tuple[str, object]]]
"""Tags as a mapping or as (key, value) pairs."""

# Names seen valid before are not checked again: the same few measurements,
# keys and tag values recur in nearly every event. The sets are bounded.
_CACHE_LIMIT = 65_536
_valid_measurements: set[str] = set()
_valid_keys: set[str] = set()
_valid_tag_values: set[str] = set()


def _remember(cache: set[str], name: str) -> None:
    if len(cache) >= _CACHE_LIMIT:
        cache.clear()
    cache.add(name)


_CONTROL = re.compile("[\x00-\x1f\x7f]")


def _name_problem(name: str) -> str | None:
    """Say what makes `name` unusable as a measurement, key or tag value."""
    if not name:
        return "is empty"
    if "\n" in name or "\r" in name:
        return "contains a newline or carriage return"
    control = _CONTROL.search(name)
    if control is not None:
        return f"contains a control character (U+{ord(control.group()):04X})"
    if name[-1] == "\\":
        return "ends with a backslash, which line protocol cannot represent"
    if not name.isascii():
        try:
            name.encode()
        except UnicodeEncodeError:
            return "is not valid Unicode (it contains a lone surrogate)"
    return None


def _plain_str(value: str) -> str:
    """Return the characters of a str (or str subclass, such as a StrEnum) as a plain str."""
    return value if value.__class__ is str else str.__str__(value)


def _tag_text(value: str | float) -> str:
    """Convert an accepted tag value to text; subclasses (enums) give their plain value."""
    if isinstance(value, str):
        return _plain_str(value)
    if isinstance(value, bool):
        return "True" if value else "False"
    if isinstance(value, int):
        return int.__repr__(value)
    return float.__repr__(value)


def check_measurement(measurement: object) -> str:
    """Return `measurement` as a validated `str`.

    Args:
        measurement: The candidate measurement name.

    Returns:
        The name as a plain `str`.

    Raises:
        InvalidEventError: If it is not a non-empty string that line protocol
            can carry.
    """
    if measurement.__class__ is str and measurement in _valid_measurements:
        return measurement
    if not isinstance(measurement, str):
        raise InvalidEventError(
            None, f"measurement must be a str, not {type(measurement).__name__}"
        )
    name = _plain_str(measurement)
    problem = _name_problem(name)
    if problem is None and name[0] == "#":
        problem = "starts with '#', which line protocol reads as a comment"
    if problem is not None:
        raise InvalidEventError(name, f"measurement {name!r} {problem}")
    _remember(_valid_measurements, name)
    return name


def check_key(key: object, kind: str) -> str:
    """Return a tag or field key as a validated `str`.

    Args:
        key: The candidate key.
        kind: ``"tag"`` or ``"field"``, to name the key in errors.

    Returns:
        The key as a plain `str`.

    Raises:
        InvalidEventError: If the key is empty, reserved, not a string or
            contains something line protocol cannot carry.
    """
    if key.__class__ is str and key in _valid_keys:
        return key
    if not isinstance(key, str):
        raise InvalidEventError(None, f"{kind} key must be a str, not {type(key).__name__}")
    name = _plain_str(key)
    problem = _name_problem(name)
    if problem is None and name in RESERVED_KEYS:
        problem = "is reserved by InfluxDB (time, _measurement and _field are)"
    if problem is not None:
        raise InvalidEventError(name, f"{kind} key {name!r} {problem}")
    _remember(_valid_keys, name)
    return name


def check_tag_value(key: str, value: object) -> str:
    """Return a tag value as a validated `str`.

    Ints, floats and bools are converted with `str()` (an enum member of one of
    these types gives its plain value, as a `str` subclass does); other types
    are refused.

    Args:
        key: The tag key, to name it in errors.
        value: The candidate value.

    Returns:
        The value as a plain `str`.

    Raises:
        InvalidEventError: If the value is of another type, empty, or contains
            something line protocol cannot carry.
    """
    if value.__class__ is str and value in _valid_tag_values:
        return value
    if not isinstance(value, (str, int, float)):
        raise InvalidEventError(
            key,
            f"tag value for key {key!r} must be a str (or int, float, bool), "
            f"not {type(value).__name__}",
        )
    text = _tag_text(value)
    problem = _name_problem(text)
    if problem is not None:
        raise InvalidEventError(key, f"tag value {text!r} for key {key!r} {problem}")
    _remember(_valid_tag_values, text)
    return text


def check_field_value(key: str, value: object) -> FieldValue:
    """Return a field value in its canonical type.

    Subclasses of the accepted types (an `IntEnum`, a NumPy float) and NumPy
    scalars are converted to the plain built-in type; `UInt` keeps its kind.

    Args:
        key: The field key, to name it in errors.
        value: The candidate value.

    Returns:
        The value as a bool, int, float, str or `UInt`.

    Raises:
        InvalidEventError: If the type is not accepted or the value is out of
            range (NaN, infinity, outside int64, a string over 64 KiB).
    """
    candidate: Any = value
    cls = candidate.__class__
    if cls is float:
        if candidate - candidate != 0.0:
            raise InvalidEventError(
                key, f"field {key!r} is {candidate!r}; NaN and infinity are not allowed"
            )
        return candidate  # type: ignore[no-any-return]
    if cls is int:
        if INT64_MIN <= candidate <= INT64_MAX:
            return candidate  # type: ignore[no-any-return]
        raise InvalidEventError(
            key,
            f"field {key!r} = {candidate} is outside the int64 range; use UInt for unsigned values",
        )
    if cls is str:
        if len(candidate) > MAX_STRING_BYTES // 4 or not candidate.isascii():
            _check_string_bytes(key, candidate)
        return candidate  # type: ignore[no-any-return]
    if cls is bool or cls is UInt:
        return candidate  # type: ignore[no-any-return]
    return _convert_field_value(key, value)


def _check_string_bytes(key: str, value: str) -> None:
    try:
        size = len(value.encode())
    except UnicodeEncodeError:
        raise InvalidEventError(
            key, f"field {key!r} is not valid Unicode (it contains a lone surrogate)"
        ) from None
    if size > MAX_STRING_BYTES:
        raise InvalidEventError(
            key, f"field {key!r} is a string of {size} bytes; the limit is {MAX_STRING_BYTES}"
        )


def _convert_field_value(key: str, value: object) -> FieldValue:
    if isinstance(value, bool):
        return bool(value)
    if isinstance(value, UInt):
        return UInt(int(value))
    if isinstance(value, int):
        return check_field_value(key, int(value))
    if isinstance(value, float):
        return check_field_value(key, float(value))
    if isinstance(value, str):
        return check_field_value(key, _plain_str(value))
    item = getattr(value, "item", None)  # NumPy scalars
    if callable(item) and type(value).__module__ == "numpy":
        return check_field_value(key, item())
    raise InvalidEventError(
        key,
        f"field {key!r} has a value of type {type(value).__name__}; "
        "use bool, int, float, str or UInt",
    )


def check_timestamp(timestamp: object) -> int:
    """Return a timestamp in nanoseconds since the epoch.

    Args:
        timestamp: An int of nanoseconds or a timezone-aware `datetime`.

    Returns:
        Nanoseconds since the epoch.

    Raises:
        InvalidEventError: If it is another type, naive, or outside int64.
    """
    candidate: Any = timestamp
    if candidate.__class__ is not int:
        if isinstance(candidate, _dt.datetime):
            if candidate.tzinfo is None:
                raise InvalidEventError(
                    None, "timestamp datetime must be timezone-aware (for example UTC)"
                )
            delta = candidate - _EPOCH
            seconds = delta.days * 86_400 + delta.seconds
            candidate = seconds * 1_000_000_000 + delta.microseconds * 1000
        elif isinstance(candidate, int) and not isinstance(candidate, bool):
            candidate = int(candidate)
        else:
            raise InvalidEventError(
                None, f"timestamp must be an int of nanoseconds, not {type(candidate).__name__}"
            )
    if not INT64_MIN <= candidate <= INT64_MAX:
        raise InvalidEventError(None, f"timestamp {candidate} ns is outside the int64 range")
    return candidate  # type: ignore[no-any-return]


_EPOCH = _dt.datetime(1970, 1, 1, tzinfo=_dt.timezone.utc)


def check_correlation_id(correlation_id: object) -> str | None:
    """Return a validated correlation id (a non-empty one-line str) or None.

    Args:
        correlation_id: The candidate id, or None.

    Returns:
        The id as a plain `str`, or None.

    Raises:
        InvalidEventError: If it is not a string, empty or multi-line.
    """
    if correlation_id is None:
        return None
    if not isinstance(correlation_id, str):
        raise InvalidEventError(
            None, f"correlation id must be a str, not {type(correlation_id).__name__}"
        )
    if not correlation_id or "\n" in correlation_id or "\r" in correlation_id:
        raise InvalidEventError(
            None, f"correlation id {correlation_id!r} must be non-empty and on one line"
        )
    return _plain_str(correlation_id)


def _as_dict(items: object, what: str) -> dict[Any, Any]:
    """Copy a mapping or an iterable of (key, value) pairs into a new dict."""
    source: Any = items
    if source.__class__ is dict:
        return source.copy()
    if isinstance(source, (str, bytes)):
        raise InvalidEventError(
            None, f"{what} must be a mapping or (key, value) pairs, not {type(source).__name__}"
        )
    try:
        return dict(source)
    except (TypeError, ValueError):
        raise InvalidEventError(
            None, f"{what} must be a mapping or (key, value) pairs, not {type(source).__name__}"
        ) from None


def check_tags(tags: TagsLike | None) -> dict[str, str]:
    """Return a new validated tag dict built from a mapping or (key, value) pairs.

    Args:
        tags: Tag keys to values, or None.

    Returns:
        A new dict of validated string keys and values.

    Raises:
        InvalidEventError: If a key or value is invalid, or `tags` is neither a
            mapping nor (key, value) pairs.
    """
    if not tags:
        return {}
    source: Any = tags
    result: dict[Any, Any] = source.copy() if source.__class__ is dict else _as_dict(tags, "tags")
    keys = _valid_keys
    values = _valid_tag_values
    for key, value in result.items():
        if key.__class__ is not str or value.__class__ is not str:
            return _rebuild_tags(result)
        if key not in keys or value not in values:
            return _rebuild_tags(result)
    return result


def _rebuild_tags(tags: dict[Any, Any]) -> dict[str, str]:
    rebuilt: dict[str, str] = {}
    for key, value in tags.items():
        checked = check_key(key, "tag")
        rebuilt[checked] = check_tag_value(checked, value)
    return rebuilt


def check_fields(
    fields: Mapping[str, object] | Iterable[tuple[str, object]] | None,
) -> dict[str, FieldValue]:
    """Return a new validated field dict.

    Args:
        fields: Field keys to values (a mapping or (key, value) pairs), or None.

    Returns:
        A new dict of validated keys and values in their canonical types.

    Raises:
        InvalidEventError: If a key or value is invalid, or `fields` is neither
            a mapping nor (key, value) pairs.
    """
    if not fields:
        return {}
    source: Any = fields
    if source.__class__ is not dict:
        source = _as_dict(fields, "fields")
    keys = _valid_keys
    result: dict[str, FieldValue] = {}
    for raw_key, raw_value in source.items():
        key = (
            raw_key if raw_key.__class__ is str and raw_key in keys else check_key(raw_key, "field")
        )
        value = raw_value
        cls = value.__class__
        # Inline checks for the common types; anything else (or out of range)
        # goes through the full check, which raises or converts.
        if cls is float:
            if value - value != 0.0:
                value = check_field_value(key, value)
        elif cls is int:
            if not INT64_MIN <= value <= INT64_MAX:
                value = check_field_value(key, value)
        elif cls is not bool and cls is not UInt:
            value = check_field_value(key, value)
        result[key] = value
    return result


class MetricEvent:
    """One measurement with tags, typed fields, a timestamp and a correlation id.

    Build it in one call or fluently; each builder method validates its input,
    changes this event and returns it::

        ev = (MetricEvent("http_requests")
              .with_tag("route", "/api")
              .with_field("latency_ms", 12.5)
              .with_field("count", 1))

    Args:
        measurement: The measurement name.
        tags: Tag keys to string values (a mapping or (key, value) pairs).
        fields: Field keys to values: bool, int (int64), float (finite), str
            (up to 64 KiB) or `UInt`.
        timestamp_ns: Nanoseconds since the epoch (or an aware `datetime`);
            defaults to `time.time_ns()` now.
        correlation_id: An optional id tying the event to a request or job.

    Events built with equal tags share one read-only copy of them (a
    `SharedTags`), which keeps millions of pending events small and makes
    encoding them cheap: change an event's tags with `with_tag`, which gives
    it its own copy first, not by assigning into ``event.tags``.

    Raises:
        InvalidEventError: If any part is invalid; the message names the part.
    """

    __slots__ = ("correlation_id", "fields", "measurement", "tags", "timestamp_ns")

    schema_version: ClassVar[int] = SCHEMA_VERSION
    """The schema version of this event's serialized form."""

    measurement: str
    tags: dict[str, str]
    fields: dict[str, FieldValue]
    timestamp_ns: int
    correlation_id: str | None

    def __init__(
        self,
        measurement: str,
        tags: TagsLike | None = None,
        fields: Mapping[str, object] | Iterable[tuple[str, object]] | None = None,
        timestamp_ns: int | _dt.datetime | None = None,
        correlation_id: str | None = None,
    ) -> None:
        self.measurement = (
            measurement
            if measurement.__class__ is str and measurement in _valid_measurements
            else check_measurement(measurement)
        )
        self.tags = shared_tags(tags) if tags else _NO_TAGS
        self.fields = check_fields(fields) if fields else {}
        self.timestamp_ns = _time_ns() if timestamp_ns is None else check_timestamp(timestamp_ns)
        self.correlation_id = (
            None if correlation_id is None else check_correlation_id(correlation_id)
        )

    def with_tag(self, key: str, value: str | int | float | bool) -> Self:
        """Set tag `key` to `value` (ints, floats and bools become strings).

        Returns:
            This event.

        Raises:
            InvalidEventError: If the key or value is invalid.
        """
        key = check_key(key, "tag")
        tags = self.tags
        if tags.__class__ is not dict:  # shared, read-only tags: take a copy first
            tags = self.tags = dict(tags)
        tags[key] = check_tag_value(key, value)
        return self

    def with_field(self, key: str, value: FieldValue) -> Self:
        """Set field `key` to `value`.

        Returns:
            This event.

        Raises:
            InvalidEventError: If the key or value is invalid.
        """
        key = check_key(key, "field")
        self.fields[key] = check_field_value(key, value)
        return self

    def with_correlation_id(self, correlation_id: str | None) -> Self:
        """Set (or with None, clear) the correlation id.

        Returns:
            This event.

        Raises:
            InvalidEventError: If the id is not a non-empty one-line string.
        """
        self.correlation_id = check_correlation_id(correlation_id)
        return self

    def with_timestamp(self, timestamp_ns: int | _dt.datetime) -> Self:
        """Set the timestamp (int nanoseconds since the epoch, or an aware datetime).

        Returns:
            This event.

        Raises:
            InvalidEventError: If the timestamp is invalid or out of range.
        """
        self.timestamp_ns = check_timestamp(timestamp_ns)
        return self

    def copy(self) -> MetricEvent:
        """Return an independent copy (tags and fields are copied too)."""
        clone = _new_event(MetricEvent)
        clone.measurement = self.measurement
        clone.tags = dict(self.tags)
        clone.fields = dict(self.fields)
        clone.timestamp_ns = self.timestamp_ns
        clone.correlation_id = self.correlation_id
        return clone

    def to_influx_line(self, precision: str = "ns") -> str:
        """Encode as one line of InfluxDB line protocol, without a newline.

        Args:
            precision: Timestamp unit: ``ns``, ``us``, ``ms`` or ``s``.

        Raises:
            InvalidEventError: If the event has no fields.
            ConfigError: If the precision is unknown.
        """
        return _lineprotocol.encode_line(self, precision)

    def to_json(self) -> str:
        """Encode as one JSON object (the schema is described in `metricstream._json`).

        The object has ``measurement``, ``tags``, ``fields``, ``timestamp_ns``,
        ``schema_version`` and, when set, ``correlation_id``. Ints and floats
        keep their kind (``1`` vs ``1.0``); a `UInt` field is written as
        ``{"uint": N}``.

        Raises:
            InvalidEventError: If the event has no fields.
        """
        return _json.encode_event(self).decode()

    @classmethod
    def from_json(cls, text: str | bytes) -> MetricEvent:
        """Decode one event written by `to_json`.

        Raises:
            SchemaVersionError: If it comes from a newer schema version.
            InvalidEventError: If the JSON is malformed or the event invalid.
        """
        return _json.decode_event(text)

    @classmethod
    def from_influx_line(cls, line: str | bytes, precision: str = "ns") -> MetricEvent:
        """Decode exactly one line protocol entry (see `metricstream.parse_lines`).

        Args:
            line: The entry (bytes are decoded as UTF-8).
            precision: Unit of the timestamp in the text: ns, us, ms or s.

        Returns:
            The event; its timestamp is the current time when the entry has none.

        Raises:
            LineProtocolError: If the text is malformed or holds no entry or
                more than one.
        """
        return _lineprotocol.parse_line(line, precision)

    def __eq__(self, other: object) -> bool:
        """Events are equal when every part is, field values including their type."""
        if not isinstance(other, MetricEvent):
            return NotImplemented
        if (
            self.measurement != other.measurement
            or self.timestamp_ns != other.timestamp_ns
            or self.correlation_id != other.correlation_id
            or self.tags != other.tags
            or self.fields.keys() != other.fields.keys()
        ):
            return False
        theirs = other.fields
        return all(
            type(value) is type(theirs[key]) and _same_value(value, theirs[key])
            for key, value in self.fields.items()
        )

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        parts = [repr(self.measurement)]
        if self.tags:
            parts.append(f"tags={self.tags!r}")
        parts.append(f"fields={self.fields!r}")
        parts.append(f"timestamp_ns={self.timestamp_ns}")
        if self.correlation_id is not None:
            parts.append(f"correlation_id={self.correlation_id!r}")
        return f"MetricEvent({', '.join(parts)})"


def _same_value(a: FieldValue, b: FieldValue) -> bool:
    if a.__class__ is float:
        # 0.0 and -0.0 compare equal but encode differently.
        return a == b and str(a) == str(b)
    return a == b


def event_from_sample(
    metric: str,
    value: FieldValue,
    tags: TagsLike = (),
    *,
    field: str = "value",
    timestamp_ns: int | None = None,
) -> MetricEvent:
    """Build an event from one sample: ``metric`` becomes the measurement.

    ``event_from_sample("cpu.usage", 0.73, {"host": "a"})`` is
    ``MetricEvent("cpu.usage", tags={"host": "a"}, fields={"value": 0.73})``.

    Events built with equal tags share one read-only copy of them (see
    `MetricEvent`).

    Args:
        metric: The measurement name.
        value: The sample, stored under the field `field`.
        tags: Tags as a mapping or (key, value) pairs.
        field: The field key for the value.
        timestamp_ns: Nanoseconds since the epoch; defaults to now.

    Returns:
        The new event.

    Raises:
        InvalidEventError: If any part is invalid.
    """
    # This is on the application's hot path: names seen valid before are only
    # looked up, and the common value types are checked inline.
    event = _new_event(MetricEvent)
    event.measurement = (
        metric
        if metric.__class__ is str and metric in _valid_measurements
        else check_measurement(metric)
    )
    event.tags = shared_tags(tags) if tags else _NO_TAGS
    if field.__class__ is not str or field not in _valid_keys:
        field = check_key(field, "field")
    cls = value.__class__
    if cls is float:
        if value - value != 0.0:  # type: ignore[operator]
            value = check_field_value(field, value)
    elif cls is int:
        if not INT64_MIN <= value <= INT64_MAX:  # type: ignore[operator]
            value = check_field_value(field, value)
    elif cls is not bool and cls is not UInt:
        value = check_field_value(field, value)
    event.fields = {field: value}
    event.timestamp_ns = _time_ns() if timestamp_ns is None else check_timestamp(timestamp_ns)
    event.correlation_id = None
    return event


class SharedTags(dict):  # type: ignore[type-arg]
    """A read-only tag dict shared by the events built with equal tags.

    It compares, iterates and serialises as a plain dict; changing it raises
    `TypeError` (use `MetricEvent.with_tag`, which gives the event its own copy).
    """

    __slots__ = ()

    def _read_only(self, *_args: object, **_kwargs: object) -> NoReturn:
        raise TypeError(
            "these tags are shared between events and read-only; "
            "use event.with_tag(key, value) to change one event's tags"
        )

    __setitem__ = __delitem__ = __ior__ = _read_only
    clear = pop = popitem = setdefault = update = _read_only

    def __reduce__(self) -> tuple[type[dict[str, str]], tuple[dict[str, str]]]:
        return (dict, (dict(self),))


_NO_TAGS: dict[str, str] = SharedTags()
_SHARED_TAGS_LIMIT = 16_384
_shared_tags_cache: dict[tuple[tuple[str, str], ...], dict[str, str]] = {}


def shared_tags(tags: TagsLike) -> dict[str, str]:
    """Return the shared, read-only copy of these tags, validating them the first time.

    Args:
        tags: Tag keys to values (a mapping or (key, value) pairs).

    Returns:
        A `SharedTags` when every key and value is a str, else a new dict.

    Raises:
        InvalidEventError: If a key or value is invalid.
    """
    if tags.__class__ is dict:
        try:
            return _shared_tags_cache[tuple(tags.items())]
        except (KeyError, TypeError):
            return _share_tags(tags)
    return _share_tags(_as_dict(tags, "tags"))


def _share_tags(tags: Mapping[str, object]) -> dict[str, str]:
    """Validate `tags`; remember the result when every key and value is a plain str."""
    checked = check_tags(tags)
    if all(k.__class__ is str and v.__class__ is str for k, v in tags.items()):
        shared = SharedTags(checked)
        if len(_shared_tags_cache) >= _SHARED_TAGS_LIMIT:
            _shared_tags_cache.clear()
        _shared_tags_cache[tuple(checked.items())] = shared
        return shared
    return checked


_new_event = object.__new__
_time_ns = time.time_ns


# The codecs build on this module, so they are bound only now that it is
# complete; the methods above look them up when called.
from metricstream import _json  # noqa: E402
from metricstream import lineprotocol as _lineprotocol  # noqa: E402
