"""What queries answer: `Result` (a value and what was skipped), rows and steps."""

from __future__ import annotations

import datetime as _dt
from dataclasses import dataclass, field
from typing import Generic, TypeVar

__all__ = [
    "BreakdownRow",
    "FunnelStep",
    "KeyCount",
    "Result",
    "SeriesPoint",
    "Skipped",
    "Value",
    "ValueCount",
]

T = TypeVar("T")

Value = str | int | float | bool
"""A property's value: a string (measurement, tag or string field), a number or a bool."""


@dataclass(frozen=True)
class Skipped:
    """Bytes of an archive file that a query did not read because they are damaged.

    Attributes:
        path: The file.
        offset: Where the skipped bytes start, in bytes from the start of the file.
        length: How many bytes were skipped.
        reason: What was wrong, in words.
    """

    path: str
    offset: int
    length: int
    reason: str

    def to_dict(self) -> dict[str, object]:
        """Return the JSON form: ``{"file", "offset", "length", "reason"}``."""
        return {
            "file": self.path,
            "offset": self.offset,
            "length": self.length,
            "reason": self.reason,
        }


@dataclass(frozen=True)
class Result(Generic[T]):
    """The answer to one query, with the damage it stepped over.

    Attributes:
        value: The answer (a count, a sum, rows, funnel steps...).
        skipped: The damaged byte ranges of the archive that were not read
            (empty when every file was intact).
    """

    value: T
    skipped: tuple[Skipped, ...] = ()

    @property
    def complete(self) -> bool:
        """True when nothing was skipped."""
        return not self.skipped


@dataclass(frozen=True)
class BreakdownRow:
    """One row of a breakdown: a combination of values, its events and uniques.

    Attributes:
        values: The values of the breakdown keys, in the order the keys were given.
        count: How many events of the set have these values.
        unique: For each requested unique key, how many distinct values it
            takes among those events.
        weighted_count: How many events they stand for (their sample rates added).
    """

    values: tuple[Value, ...]
    count: int
    unique: dict[str, int] = field(default_factory=dict)
    weighted_count: int = 0


@dataclass(frozen=True)
class SeriesPoint:
    """One bucket of a time series.

    Attributes:
        start: The bucket's start, on the wall clock of the series' timezone
            (timezone-aware).
        count: How many events of the set fall in the bucket.
        unique: For each requested unique key, its distinct values in the bucket.
        weighted_count: How many events they stand for (their sample rates added).
    """

    start: _dt.datetime
    count: int
    unique: dict[str, int] = field(default_factory=dict)
    weighted_count: int = 0


@dataclass(frozen=True)
class FunnelStep:
    """How many match-key combinations reached one step of a funnel.

    Attributes:
        name: The step's name (its event set's name).
        count: Distinct match-key combinations that reached the step in order.
        conversion: `count` over the first step's count (1.0 for the first
            step; 0.0 when the first step has no combination).
        from_previous: `count` over the previous step's count (1.0 for the
            first step; 0.0 when the previous step has no combination).
        median_seconds: The median, over the combinations that reached the
            step, of the time from the previous step to this one (None for
            the first step and when no combination reached it).
    """

    name: str
    count: int
    conversion: float
    from_previous: float
    median_seconds: float | None


@dataclass(frozen=True)
class KeyCount:
    """A property and how many events have it.

    Attributes:
        key: The property: ``measurement``, a tag key or a field key.
        count: How many events have it.
    """

    key: str
    count: int


@dataclass(frozen=True)
class ValueCount:
    """A value of a property and how many events have it.

    Attributes:
        value: The value (typed: a string, number or bool).
        count: How many events have the property with this value.
    """

    value: Value
    count: int
