"""Filters on event properties, and the times and windows queries take.

A filter tests one property (resolved as in `metricstream.query._sql`):

=========  =====================================================================
``eq``     the value equals `value` (same type; numbers compare as numbers)
``neq``    the complement of ``eq``: the value differs, or the property is absent
``in``     the value equals one of `value` (a list)
``regex``  the value is a string in which the pattern (RE2 syntax) is found
``all``    the property is present, whatever its value
``gt``     the value is a number (not a bool) greater than `value`; ``gte``,
           ``lt`` and ``lte`` likewise
=========  =====================================================================

Two integers compare exactly; when either side is a float both compare as
64-bit floats. A string never equals a number: ``eq("count", "1")`` does not
match the field ``count=1``; ``eq("count", 1)`` does.
"""

from __future__ import annotations

import datetime as _dt
import math
from dataclasses import dataclass

from metricstream.exceptions import ConfigError
from metricstream.query._results import Value
from metricstream.query._sql import Params, Properties

__all__ = [
    "FILTER_TYPES",
    "Filter",
    "eq",
    "gt",
    "gte",
    "isin",
    "lt",
    "lte",
    "neq",
    "parse_time",
    "parse_window",
    "present",
    "regex",
]

FILTER_TYPES = ("eq", "neq", "in", "regex", "all", "gt", "gte", "lt", "lte")
"""The filter types, as the query document spells them."""

_COMPARISONS = {"gt": ">", "gte": ">=", "lt": "<", "lte": "<="}
_NS_PER_MS = 1_000_000
_NS_PER_S = 1_000_000_000
_HUGEINT_LIMIT = 2**127


def _check_scalar(value: object, where: str) -> Value:
    if isinstance(value, str | bool | int):
        if isinstance(value, int) and not isinstance(value, bool) and abs(value) >= _HUGEINT_LIMIT:
            raise ConfigError(where, f"the integer {value} is out of range")
        return value
    if isinstance(value, float):
        if not math.isfinite(value):
            raise ConfigError(where, f"expected a finite number, not {value!r}")
        return value
    raise ConfigError(where, f"expected a string, number or bool, not {value!r}")


def _check_number(value: object, where: str) -> int | float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ConfigError(where, f"expected a number, not {value!r}")
    checked = _check_scalar(value, where)
    assert isinstance(checked, int | float)
    return checked


@dataclass(frozen=True)
class Filter:
    """A test on one property of an event.

    Args:
        type: One of `FILTER_TYPES`.
        key: The property: ``measurement`` (or ``event``), a tag or a field.
        value: What to compare with: a string, number or bool for ``eq`` and
            ``neq``; a list of them for ``in``; a pattern for ``regex``; a
            number for ``gt``, ``gte``, ``lt``, ``lte``; nothing for ``all``.

    Raises:
        ConfigError: Naming the filter's part that is wrong.
    """

    type: str
    key: str
    value: object = None

    def __post_init__(self) -> None:
        if self.type not in FILTER_TYPES:
            raise ConfigError(
                "type", f"expected one of {', '.join(FILTER_TYPES)}, not {self.type!r}"
            )
        if not isinstance(self.key, str) or not self.key:
            raise ConfigError("key", f"expected a non-empty property name, not {self.key!r}")
        if self.type in ("eq", "neq"):
            _check_scalar(self.value, "value")
        elif self.type == "in":
            if not isinstance(self.value, list | tuple):
                raise ConfigError("value", f"'in' takes a list of values, not {self.value!r}")
            for index, item in enumerate(self.value):
                _check_scalar(item, f"value[{index}]")
            object.__setattr__(self, "value", tuple(self.value))
        elif self.type == "regex":
            if not isinstance(self.value, str):
                raise ConfigError("value", f"'regex' takes a pattern string, not {self.value!r}")
        elif self.type in _COMPARISONS:
            _check_number(self.value, "value")
        elif self.value is not None:
            raise ConfigError("value", f"'all' takes no value, not {self.value!r}")

    def sql(self, properties: Properties, params: Params) -> str:
        """Return the condition for `ev` rows: true for the rows the filter passes.

        For the others it is false or NULL (see `Properties.text_in`).
        """
        if self.type == "all":
            return properties.present(self.key)
        if self.type == "regex":
            return properties.matches(self.key, params.add(self.value))
        if self.type in _COMPARISONS:
            assert isinstance(self.value, int | float)
            return _compare(properties, params, self.key, _COMPARISONS[self.type], self.value)
        if self.type == "in":
            assert isinstance(self.value, tuple)
            return _one_of(properties, params, self.key, self.value)
        test = _one_of(properties, params, self.key, (self.value,))  # type: ignore[arg-type]
        return f"(NOT COALESCE({test}, false))" if self.type == "neq" else test


def _one_of(properties: Properties, params: Params, key: str, values: tuple[Value, ...]) -> str:
    """The property equals one of `values`: each kind of value is one list, whatever its length."""
    texts = [value for value in values if isinstance(value, str)]
    flags = sorted({value for value in values if isinstance(value, bool)})
    integers = sorted({v for v in values if isinstance(v, int) and not isinstance(v, bool)})
    reals = sorted({value for value in values if isinstance(value, float)})
    tests = [properties.text_in(key, texts, params)] if texts else []
    if flags:
        tests.append(f"list_contains({params.add(flags)}, {properties.boolean(key)})")
    if integers:
        exact = params.add([str(value) for value in integers])
        approx = params.add([float(value) for value in integers])
        tests.append(
            f"list_contains(CAST({exact} AS HUGEINT[]), {properties.integer(key)})"
            f" OR list_contains(CAST({approx} AS DOUBLE[]), {properties.real(key)})"
        )
    if reals:
        listed = params.add(reals)
        tests.append(
            f"list_contains(CAST({listed} AS DOUBLE[]), CAST({properties.integer(key)} AS DOUBLE))"
            f" OR list_contains(CAST({listed} AS DOUBLE[]), {properties.real(key)})"
        )
    return "(" + " OR ".join(tests) + ")" if tests else "false"


def _compare(properties: Properties, params: Params, key: str, op: str, value: float) -> str:
    integer, real = properties.integer(key), properties.real(key)
    if isinstance(value, int):
        exact = params.add(str(value))
        approx = params.add(float(value))
        return (
            f"COALESCE({integer} {op} CAST({exact} AS HUGEINT), "
            f"{real} {op} CAST({approx} AS DOUBLE), false)"
        )
    number = params.add(value)
    return (
        f"COALESCE(CAST({integer} AS DOUBLE) {op} CAST({number} AS DOUBLE), "
        f"{real} {op} CAST({number} AS DOUBLE), false)"
    )


def eq(key: str, value: Value) -> Filter:
    """The property equals `value`."""
    return Filter("eq", key, value)


def neq(key: str, value: Value) -> Filter:
    """The property is absent or differs from `value`."""
    return Filter("neq", key, value)


def isin(key: str, values: list[Value] | tuple[Value, ...]) -> Filter:
    """The property equals one of `values` (the ``in`` filter)."""
    return Filter("in", key, values)


def regex(key: str, pattern: str) -> Filter:
    """The property is a string in which `pattern` (RE2 syntax) is found."""
    return Filter("regex", key, pattern)


def present(key: str) -> Filter:
    """The event has the property (the ``all`` filter)."""
    return Filter("all", key)


def gt(key: str, value: float) -> Filter:
    """The property is a number greater than `value`."""
    return Filter("gt", key, value)


def gte(key: str, value: float) -> Filter:
    """The property is a number greater than or equal to `value`."""
    return Filter("gte", key, value)


def lt(key: str, value: float) -> Filter:
    """The property is a number less than `value`."""
    return Filter("lt", key, value)


def lte(key: str, value: float) -> Filter:
    """The property is a number less than or equal to `value`."""
    return Filter("lte", key, value)


def parse_time(value: object, where: str) -> int | None:
    """Return a time as nanoseconds since the epoch (None stays None).

    Args:
        value: A `datetime` (naive means UTC), an ISO 8601 string (without
            an offset means UTC; ``Z`` is UTC), or unix milliseconds.
        where: What the value is, for the error message.

    Raises:
        ConfigError: Naming `where`, if the value is none of these.
    """
    if value is None:
        return None
    if isinstance(value, str):
        try:
            value = _dt.datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
        except ValueError:
            raise ConfigError(
                where, f"expected ISO 8601 or unix milliseconds, not {value!r}"
            ) from None
    if isinstance(value, _dt.datetime):
        moment = value if value.tzinfo is not None else value.replace(tzinfo=_dt.timezone.utc)
        delta = moment - _dt.datetime(1970, 1, 1, tzinfo=_dt.timezone.utc)
        return (delta.days * 86_400 + delta.seconds) * _NS_PER_S + delta.microseconds * 1000
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ConfigError(where, f"expected ISO 8601 or unix milliseconds, not {value!r}")
    if isinstance(value, float) and not math.isfinite(value):
        raise ConfigError(where, f"expected a finite number of milliseconds, not {value!r}")
    return value * _NS_PER_MS if isinstance(value, int) else round(value * _NS_PER_MS)


def parse_window(value: object, where: str = "window") -> int | None:
    """Return a funnel window in nanoseconds: a `timedelta` or seconds (None: no window).

    Raises:
        ConfigError: If the window is not a non-negative duration.
    """
    if value is None:
        return None
    if isinstance(value, _dt.timedelta):
        nanoseconds = (value.days * 86_400 + value.seconds) * _NS_PER_S + value.microseconds * 1000
    elif isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value):
        nanoseconds = round(value * _NS_PER_S)
    else:
        raise ConfigError(where, f"expected seconds or a timedelta, not {value!r}")
    if nanoseconds < 0:
        raise ConfigError(where, f"a window cannot be negative, not {value!r}")
    return nanoseconds
