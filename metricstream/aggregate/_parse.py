"""Options of the aggregation core, from Python values or from text.

The relay takes its windows, groups and aggregates on its command line, so
each has a text form beside its Python one:

- a duration is a positive number of seconds or text with a unit:
  ``"500ms"``, ``"10s"``, ``"1.5m"``, ``"1h"``;
- a window is ``"tumbling 60s"``, ``"sliding 60s every 10s"`` or
  ``"session gap 30s"``;
- a grouping is a list of property names or ``"host,route"``;
- the aggregates are ``"count,sum:bytes,min:latency_ms,quantiles:latency_ms"``
  (see `AGGREGATE_FUNCTIONS`).

Every mistake is a `ConfigError` naming the option.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from typing import NamedTuple

from metricstream._options import seconds_from_text
from metricstream._validate import check_key
from metricstream.exceptions import ConfigError, InvalidEventError

__all__ = [
    "AGGREGATE_FUNCTIONS",
    "AggregateSpec",
    "parse_aggregates",
    "parse_by",
    "parse_duration",
]

def parse_duration(option: str, value: object, *, allow_zero: bool = False) -> int:
    """Return a duration in nanoseconds (at least one, or zero when `allow_zero`).

    Args:
        option: The option's name, for the error.
        value: Seconds as an int or float, or text read by
            `metricstream._options.seconds_from_text`: ``"500ms"``, ``"10s"``,
            ``"1.5m"``, ``"1h"`` (a bare number is seconds).
        allow_zero: Whether zero is a valid duration.

    Raises:
        ConfigError: If it is negative, zero (unless allowed) or not finite,
            or the text is not a duration.
    """
    seconds = seconds_from_text(option, value) if isinstance(value, str) else value
    if not isinstance(seconds, (int, float)) or isinstance(seconds, bool):
        raise ConfigError(option, f"must be a number of seconds or a duration text, not {value!r}")
    if not math.isfinite(seconds):
        raise ConfigError(option, f"must be a finite duration, not {value!r}")
    nanoseconds = round(seconds * 1_000_000_000)
    if nanoseconds < (0 if allow_zero else 1):
        bound = "zero or more" if allow_zero else "a positive duration"
        raise ConfigError(option, f"must be {bound}, not {value!r}")
    return nanoseconds


def parse_by(value: str | Iterable[str] | None) -> tuple[str, ...]:
    """Return the property names to group by (``["host", "route"]`` or ``"host,route"``).

    Raises:
        ConfigError: (option ``by``) if a name is not a valid tag key or
            appears twice.
    """
    if value is None:
        return ()
    names = [part.strip() for part in value.split(",")] if isinstance(value, str) else list(value)
    if isinstance(value, str) and names == [""]:
        return ()
    checked: list[str] = []
    for name in names:
        try:
            key = check_key(name, "tag")
        except InvalidEventError as exc:
            raise ConfigError("by", f"{exc}; each group is a tag of the results") from None
        if key == "window":
            raise ConfigError("by", "'window' is the tag that names the kind of window")
        if key in checked:
            raise ConfigError("by", f"{key!r} appears twice")
        checked.append(key)
    return tuple(checked)


AGGREGATE_FUNCTIONS = ("count", "sum", "min", "max", "mean", "last", "unique", "quantiles")
"""The aggregates of event-time windows. ``count`` takes no property; each
other one takes one (``sum:bytes``) and gives a field named after both
(``sum_bytes``); ``quantiles:x`` gives ``p50_x``, ``p90_x``, ``p99_x`` and
``p999_x``."""

QUANTILES = ((0.5, "p50"), (0.9, "p90"), (0.99, "p99"), (0.999, "p999"))
"""The quantiles a distribution reports, with the prefix of their field names."""


class AggregateSpec(NamedTuple):
    """One aggregate of event-time windows: a function over a property of the events.

    Attributes:
        function: One of `AGGREGATE_FUNCTIONS`.
        name: The property it reads (``None`` for ``count``).
    """

    function: str
    name: str | None

    @property
    def fields(self) -> tuple[str, ...]:
        """The names of the result fields this aggregate writes."""
        if self.name is None:
            return (self.function,)
        if self.function == "quantiles":
            return tuple(f"{prefix}_{self.name}" for _, prefix in QUANTILES)
        return (f"{self.function}_{self.name}",)


def parse_aggregates(value: str | Sequence[str]) -> tuple[AggregateSpec, ...]:
    """Read the aggregates of event-time windows.

    Args:
        value: ``"count,sum:bytes,max:latency_ms"`` or the same items as a
            list.

    Returns:
        One `AggregateSpec` per item, in order.

    Raises:
        ConfigError: (option ``aggregates``) for an unknown function, a
            missing or unexpected property, a repeated item, or none at all.
    """
    items = value.split(",") if isinstance(value, str) else list(value)
    specs: list[AggregateSpec] = []
    fields: set[str] = set()
    for item in items:
        spec = _parse_aggregate(str(item).strip())
        clash = fields.intersection(spec.fields)
        if clash:
            raise ConfigError("aggregates", f"{item.strip()!r} repeats the field {min(clash)!r}")
        fields.update(spec.fields)
        specs.append(spec)
    if not specs:
        raise ConfigError("aggregates", "name at least one aggregate, such as 'count'")
    return tuple(specs)


def _parse_aggregate(item: str) -> AggregateSpec:
    function, colon, name = item.partition(":")
    function = function.strip()
    if function not in AGGREGATE_FUNCTIONS:
        known = ", ".join(AGGREGATE_FUNCTIONS)
        raise ConfigError("aggregates", f"unknown aggregate {item!r}; use one of {known}")
    if function == "count":
        if colon:
            raise ConfigError("aggregates", f"{item!r}: count takes no property")
        return AggregateSpec("count", None)
    name = name.strip()
    if not name:
        raise ConfigError("aggregates", f"{item!r}: {function} needs a property, as {function}:x")
    try:
        check_key(f"{function}_{name}", "field")
    except InvalidEventError as exc:
        raise ConfigError("aggregates", f"{item!r}: {exc}") from None
    return AggregateSpec(function, name)
