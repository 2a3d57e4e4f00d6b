"""Values of events and their validation: one home for each rule.

Every part of an event is checked here, whether it comes from the builder
API, JSON or line protocol: measurement names, tag keys and values, field
keys and values (and the `UInt` type for unsigned ones) and correlation
ids (timestamps have a module of their own, `metricstream._timestamps`).
Each check returns the value in its canonical type or raises
`InvalidEventError` naming the key and the problem.

Names seen valid before are not checked again: the same few measurements,
keys and tag values recur in nearly every event. The sets that remember them
are bounded.
"""

from __future__ import annotations

import operator
import re
import sys
from collections.abc import Callable, Iterable, Mapping
from typing import TYPE_CHECKING, Any, ClassVar, Union, overload

from metricstream._bounded import BoundedSet
from metricstream._compiled import SPEEDUPS
from metricstream.exceptions import InvalidEventError

if TYPE_CHECKING:
    from typing_extensions import Self

__all__ = [
    "FLOAT_MAX",
    "INT64_MAX",
    "INT64_MIN",
    "MAX_STRING_BYTES",
    "RESERVED_KEYS",
    "UINT64_MAX",
    "FieldValue",
    "TagsLike",
    "UInt",
    "as_dict",
    "check_correlation_id",
    "check_field_value",
    "check_fields",
    "check_key",
    "check_measurement",
    "check_tag_value",
    "check_tags",
    "no_fields_error",
    "valid_keys",
    "valid_measurements",
    "valid_tag_values",
]

INT64_MIN = -(2**63)
INT64_MAX = 2**63 - 1
UINT64_MAX = 2**64 - 1
MAX_STRING_BYTES = 64 * 1024
"""The largest string field value accepted, in UTF-8 bytes."""

FLOAT_MAX = sys.float_info.max
"""The largest finite float: a float field is finite when it lies within +-FLOAT_MAX."""

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

    created: ClassVar[bool] = False
    """True once any `UInt` has been made in this process.

    Until then no event can hold one, and encoders skip looking for them.
    """

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
        UInt.created = True
        return super().__new__(cls, number)

    def __repr__(self) -> str:
        return f"UInt({int(self)})"


FieldValue = Union[bool, int, float, str, UInt]
"""The types a field value may have."""

TagsLike = Union[Mapping[str, object], Iterable[tuple[str, object]]]
"""Tags as a mapping or as (key, value) pairs."""

# Names seen valid before are not checked again: the same few measurements,
_CACHE_LIMIT = 65_536
valid_measurements: BoundedSet[str] = BoundedSet(_CACHE_LIMIT)
"""Measurement names already validated."""
valid_keys: BoundedSet[str] = BoundedSet(_CACHE_LIMIT)
"""Tag and field keys already validated."""
valid_tag_values: BoundedSet[str] = BoundedSet(_CACHE_LIMIT)
"""Tag values already validated."""

_CONTROL = re.compile("[\x00-\x1f\x7f]")


def _text_problem(text: str) -> str | None:
    """Say what makes `text` unusable as a one-line identifier, or None."""
    if not text:
        return "is empty"
    if "\n" in text or "\r" in text:
        return "contains a newline or carriage return"
    control = _CONTROL.search(text)
    if control is not None:
        return f"contains a control character (U+{ord(control.group()):04X})"
    if not text.isascii():
        try:
            text.encode()
        except UnicodeEncodeError:
            return "is not valid Unicode (it contains a lone surrogate)"
    return None


def _name_problem(name: str) -> str | None:
    """Say what makes `name` unusable as a measurement, key or tag value."""
    problem = _text_problem(name)
    if problem is None and name[-1] == "\\":
        return "ends with a backslash, which line protocol cannot represent"
    return problem


def no_fields_error(measurement: str) -> InvalidEventError:
    """The error for an event that has no fields (every encoder and `send` raise it)."""
    return InvalidEventError(
        measurement, f"event {measurement!r} has no fields; at least one is required"
    )


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
    if measurement.__class__ is str and measurement in valid_measurements:
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
    valid_measurements.remember(name)
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
    if key.__class__ is str and key in valid_keys:
        return key
    if not isinstance(key, str):
        raise InvalidEventError(None, f"{kind} key must be a str, not {type(key).__name__}")
    name = _plain_str(key)
    problem = _name_problem(name)
    if problem is None and name in RESERVED_KEYS:
        problem = "is reserved by InfluxDB (time, _measurement and _field are)"
    if problem is not None:
        raise InvalidEventError(name, f"{kind} key {name!r} {problem}")
    valid_keys.remember(name)
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
    if value.__class__ is str and value in valid_tag_values:
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
    valid_tag_values.remember(text)
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


@overload
def check_correlation_id(correlation_id: str) -> str: ...


@overload
def check_correlation_id(correlation_id: object) -> str | None: ...


def check_correlation_id(correlation_id: object) -> str | None:
    """Return a validated correlation id or None.

    A correlation id is a non-empty string on one line, without control
    characters (NUL, ESC...) and valid Unicode, since every sink must be able
    to write it.

    Args:
        correlation_id: The candidate id, or None.

    Returns:
        The id as a plain `str`, or None.

    Raises:
        InvalidEventError: If it is not a string, or is empty or unusable.
    """
    if correlation_id is None:
        return None
    if not isinstance(correlation_id, str):
        raise InvalidEventError(
            None, f"correlation id must be a str, not {type(correlation_id).__name__}"
        )
    problem = _text_problem(correlation_id)
    if problem is not None:
        raise InvalidEventError(
            None,
            f"correlation id {correlation_id!r} must be a non-empty one-line str "
            f"without control characters; it {problem}",
        )
    return _plain_str(correlation_id)


def as_dict(items: object, what: str) -> dict[Any, Any]:
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
    result: dict[Any, Any] = source.copy() if source.__class__ is dict else as_dict(tags, "tags")
    keys = valid_keys
    values = valid_tag_values
    for key, value in result.items():
        if key.__class__ is not str or value.__class__ is not str or key not in keys:
            return _rebuild_tags(result)
        if value not in values:
            # A new value of a known key (a new series): checked here, as check_tag_value would.
            if _name_problem(value) is not None:
                return _rebuild_tags(result)
            values.remember(value)
    return result


def _rebuild_tags(tags: dict[Any, Any]) -> dict[str, str]:
    return _rebuild(tags, "tag", check_tag_value)


def _rebuild(
    items: dict[Any, Any], kind: str, check_value: Callable[[str, Any], Any]
) -> dict[str, Any]:
    """Check every key and value the slow way, with the error naming the first bad one."""
    rebuilt: dict[str, Any] = {}
    for key, value in items.items():
        checked = check_key(key, kind)
        rebuilt[checked] = check_value(checked, value)
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
    if _checked_fields is not None:
        # The compiled twin of the loop below, for the common case: all checked, copied.
        checked = _checked_fields(fields, valid_keys, UInt, MAX_STRING_BYTES // 4)
        if checked is not None:
            return checked  # type: ignore[no-any-return]
    source: Any = fields
    if source.__class__ is not dict:
        source = as_dict(fields, "fields")
    keys = valid_keys
    # Inline checks for keys seen before and the common value types; anything
    # else (or out of range) goes through the full checks, which raise or convert.
    for key, value in source.items():
        if key.__class__ is not str or key not in keys:
            return _rebuild_fields(source)
        cls = value.__class__
        if cls is float:
            if not -FLOAT_MAX <= value <= FLOAT_MAX:  # NaN fails both comparisons
                return _rebuild_fields(source)
        elif cls is int:
            if not INT64_MIN <= value <= INT64_MAX:
                return _rebuild_fields(source)
        elif cls is str:
            if len(value) > MAX_STRING_BYTES // 4 or not value.isascii():
                return _rebuild_fields(source)
        elif cls is not bool and cls is not UInt:
            return _rebuild_fields(source)
    return source.copy() if source is fields else source  # type: ignore[no-any-return,union-attr]


_checked_fields = None if SPEEDUPS is None else SPEEDUPS.checked_fields


def _rebuild_fields(fields: dict[Any, Any]) -> dict[str, FieldValue]:
    return _rebuild(fields, "field", check_field_value)
