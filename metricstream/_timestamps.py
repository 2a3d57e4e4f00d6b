"""Timestamps of events: one home for their rules.

An event's time is an int of nanoseconds since the Unix epoch, within int64.
`check_timestamp` is the rule every timestamp follows, wherever it comes
from: the builder API, JSON, line protocol, the spool. Building an event
from a number adds one more (`check_event_time`): a time before 2001
(`EARLIEST_TIMESTAMP_NS`) is refused unless the caller says it is meant,
since it is nearly always seconds or milliseconds taken for nanoseconds.
Decoding stored data never applies it: what was written reads back as it is.
`timestamp_in` converts a time given in another unit.
"""

from __future__ import annotations

import datetime as _dt
from typing import Any

from metricstream._validate import FLOAT_MAX, INT64_MAX, INT64_MIN
from metricstream.exceptions import InvalidEventError

__all__ = [
    "EARLIEST_TIMESTAMP_NS",
    "TIMESTAMP_UNITS",
    "check_event_time",
    "check_timestamp",
    "timestamp_in",
]


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

EARLIEST_TIMESTAMP_NS = 10**18
"""2001-09-09T01:46:40Z in nanoseconds: the earliest time an event built from a
number takes without being told (``before_2001=True``).

A number below it is nearly always a time in seconds, milliseconds or
microseconds taken for nanoseconds (``1_700_000_000`` is 1970-01-01T00:00:01.7Z
as nanoseconds), so building an event refuses it, naming the likely unit.
Decoding stored data (JSON, line protocol, the spool) never does: what was
written is read back as it is."""

TIMESTAMP_UNITS: dict[str, int] = {"seconds": 10**9, "ms": 10**6, "us": 10**3, "ns": 1}
"""Nanoseconds per unit, for `timestamp_in` (and `MetricEvent.with_timestamp`)."""

_UNIT_NAMES = (
    ("seconds", "seconds", 10**9),
    ("milliseconds", "ms", 10**6),
    ("microseconds", "us", 10**3),
)


def check_event_time(timestamp: object, before_2001: bool = False) -> int:
    """Return the timestamp of an event being built, in nanoseconds since the epoch.

    As `check_timestamp`, and a number below `EARLIEST_TIMESTAMP_NS` (before
    2001) is refused unless `before_2001` says it is meant. An aware
    `datetime` says its date and is taken as it is.

    Raises:
        InvalidEventError: If it is invalid, out of range, or an unmarked
            number before 2001 (the message names the likely unit).
    """
    nanoseconds = check_timestamp(timestamp)
    if nanoseconds >= EARLIEST_TIMESTAMP_NS or before_2001:
        return nanoseconds
    if isinstance(timestamp, _dt.datetime):
        return nanoseconds
    raise InvalidEventError(None, _early_problem(nanoseconds))


def _early_problem(nanoseconds: int) -> str:
    said = f"timestamp {nanoseconds} ns is before 2001 (below 10**18 ns)"
    for unit, keyword, factor in _UNIT_NAMES:
        if EARLIEST_TIMESTAMP_NS <= nanoseconds * factor <= INT64_MAX:
            return (
                f"{said}: it looks like {unit}; give nanoseconds "
                f"({nanoseconds * factor}) or with_timestamp({keyword}={nanoseconds}), "
                "or pass before_2001=True for a time before 2001"
            )
    return f"{said}; pass before_2001=True if that time is meant"


def timestamp_in(unit: str, value: object, *, before_2001: bool = False) -> int:
    """Return `value`, a time since the epoch in `unit` (a key of `TIMESTAMP_UNITS`), in ns.

    An int converts exactly; a float is read as the decimal number it prints
    as (``1700000000.123456`` seconds is ``1700000000123456000`` ns), then
    rounded to the nanosecond.

    Raises:
        InvalidEventError: If `value` is not a finite int or float, the time
            falls outside the int64 range of nanoseconds, or it is before
            2001 and `before_2001` is False.
    """
    factor = TIMESTAMP_UNITS[unit]
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise InvalidEventError(
            None, f"timestamp in {unit} must be an int or float, not {type(value).__name__}"
        )
    if isinstance(value, float):
        if not -FLOAT_MAX <= value <= FLOAT_MAX:
            raise InvalidEventError(None, f"timestamp in {unit} must be finite, not {value}")
        from decimal import Decimal  # only here: `import metricstream` stays light

        nanoseconds = round(Decimal(repr(value)) * factor)
    else:
        nanoseconds = int(value) * factor
    if not INT64_MIN <= nanoseconds <= INT64_MAX:
        raise InvalidEventError(
            None, f"timestamp {value} {unit} is outside the int64 range of nanoseconds"
        )
    if nanoseconds < EARLIEST_TIMESTAMP_NS and not before_2001:
        raise InvalidEventError(
            None,
            f"timestamp {value} {unit} is before 2001; pass before_2001=True if that time is meant",
        )
    return nanoseconds
