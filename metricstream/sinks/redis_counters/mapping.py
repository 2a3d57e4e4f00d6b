"""`CounterMapping` (which keys an event feeds) and `CounterLimits` (how big it may get).

A key of a mapping is a property name (``"utm_source"``) or a compound of
names joined by ``~`` (``"measurement~utm_source~utm_campaign"``). A property
is what `metricstream.properties.event_property` says: ``measurement`` is the
event's name; any other name is its tag, else its field; ``event`` also means
the measurement when no tag or field has that name.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from metricstream._options import require_int
from metricstream.exceptions import ConfigError
from metricstream.sinks.redis_counters.keys import join_escaped, split_escaped

__all__ = ["CounterLimits", "CounterMapping", "Metric"]

_DICT_KEYS = {
    "unique": "unique",
    "bitmap": "unique",
    "count": "count",
    "add": "count",
    "sum": "sum",
    "add_value": "sum",
}


@dataclass(frozen=True, slots=True)
class Metric:
    """One entry of a mapping, ready to use.

    Attributes:
        kind: ``add`` (count), ``adv`` (sum) or ``bmp`` (unique).
        names: The property names of the key, in order.
        pattern: The names escaped and joined by ``~``, as in the key.
        value_field: For a sum, the property whose value is added.
    """

    kind: str
    names: tuple[str, ...]
    pattern: str
    value_field: str | None = None


def _names(option: str, key: object) -> tuple[str, ...]:
    if not isinstance(key, str) or not key:
        raise ConfigError(option, f"a key must be a non-empty string, not {key!r}")
    try:
        names = split_escaped(key)
    except ValueError as exc:
        raise ConfigError(option, str(exc)) from None
    if any(not name for name in names):
        raise ConfigError(option, f"{key!r} has an empty name (a leading, trailing or double '~')")
    return names


def _sum_entry(item: object) -> tuple[str, str]:
    if isinstance(item, Mapping):
        unknown = set(item) - {"key", "add_key", "value"}
        if unknown or "key" not in item or ("add_key" in item) == ("value" in item):
            raise ConfigError(
                "sum", f"a sum entry is {{'key': K, 'add_key': FIELD}} (or 'value'), not {item!r}"
            )
        item = (item["key"], item.get("add_key", item.get("value")))
    if (
        not isinstance(item, (tuple, list))
        or len(item) != 2
        or not all(isinstance(part, str) and part for part in item)
    ):
        raise ConfigError("sum", f"a sum entry is (key, value_field), not {item!r}")
    return item[0], item[1]


class CounterMapping:
    """Which counters each event feeds.

    Args:
        unique: Keys whose last property is counted uniquely (``PFADD`` of
            its value into a HyperLogLog): ``"ip"``, or ``"org~user"`` for
            unique users per organisation.
        count: Keys counted (``INCRBY``): ``"measurement"``,
            ``"measurement~utm_source"``.
        sum: ``(key, value_field)`` pairs: the value field is added to the
            key (``INCRBY`` for ints, ``INCRBYFLOAT`` for floats; a numeric
            string counts as its number).

    An event that lacks a property of a key (or whose value field is not a
    number) does not feed that key.

    Raises:
        ConfigError: If a key is empty or has an empty name, a key is listed
            twice in one kind, or two sums share a key (their counters would
            be the same Redis key).
    """

    __slots__ = ("count", "metrics", "sum", "unique")

    def __init__(
        self,
        unique: Iterable[str] = (),
        count: Iterable[str] = (),
        sum: Iterable[tuple[str, str]] = (),
    ) -> None:
        for option, value in (("unique", unique), ("count", count), ("sum", sum)):
            if isinstance(value, (str, bytes)) or not isinstance(value, Iterable):
                raise ConfigError(option, f"must be a list, not {value!r}")
        self.unique: tuple[str, ...] = tuple(unique)
        self.count: tuple[str, ...] = tuple(count)
        self.sum: tuple[tuple[str, str], ...] = tuple(_sum_entry(item) for item in sum)
        self.metrics: tuple[Metric, ...] = self._metrics()

    def _metrics(self) -> tuple[Metric, ...]:
        metrics: list[Metric] = []
        seen: dict[tuple[str, str], str] = {}
        entries: list[tuple[str, str, str, str | None]] = [
            *(("unique", "bmp", key, None) for key in self.unique),
            *(("count", "add", key, None) for key in self.count),
            *(("sum", "adv", key, field) for key, field in self.sum),
        ]
        for option, kind, key, field in entries:
            names = _names(option, key)
            if field is not None:
                _names(option, field)
            pattern = join_escaped(names)
            if (kind, pattern) in seen:
                raise ConfigError(
                    option,
                    f"{key!r} is listed twice"
                    + ("" if field is None else f" (summing {seen[kind, pattern]!r} and {field!r})")
                    + "; each key holds one counter",
                )
            seen[kind, pattern] = field or ""
            metrics.append(Metric(kind, names, pattern, field))
        return tuple(metrics)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> CounterMapping:
        """Build a mapping from a dict, as read from JSON or a config file.

        The keys are ``unique``, ``count`` and ``sum``, or traqq's names
        ``bitmap``, ``add`` and ``add_value``. A sum entry is a
        ``[key, value_field]`` pair or ``{"key": K, "add_key": FIELD}``::

            {"bitmap": ["ip"], "add": ["event", "event~utm_source"],
             "add_value": [{"key": "event", "add_key": "amount"}]}

        Raises:
            ConfigError: For an unknown key, a kind given under both names, or
                an invalid entry.
        """
        if not isinstance(data, Mapping):
            raise ConfigError("mapping", f"must be a dict, not {type(data).__name__}")
        options: dict[str, Any] = {}
        for key, value in data.items():
            option = _DICT_KEYS.get(key)
            if option is None:
                known = ", ".join(sorted(_DICT_KEYS))
                raise ConfigError("mapping", f"unknown key {key!r}; known: {known}")
            if option in options:
                raise ConfigError("mapping", f"{option!r} is given twice (as {key!r})")
            options[option] = value
        return cls(**options)

    @classmethod
    def from_json(cls, text: str) -> CounterMapping:
        """Build a mapping from JSON text (see `from_dict`).

        Raises:
            ConfigError: If the text is not a JSON object or the mapping is invalid.
        """
        try:
            data = json.loads(text)
        except ValueError as exc:
            raise ConfigError("mapping", f"is not valid JSON: {exc}") from None
        return cls.from_dict(data)

    def to_dict(self) -> dict[str, list[Any]]:
        """Return the mapping as a dict that `from_dict` reads back."""
        return {
            "unique": list(self.unique),
            "count": list(self.count),
            "sum": [list(item) for item in self.sum],
        }

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, CounterMapping):
            return NotImplemented
        return self.metrics == other.metrics

    def __hash__(self) -> int:
        return hash(self.metrics)

    def __repr__(self) -> str:
        return f"CounterMapping(unique={self.unique!r}, count={self.count!r}, sum={self.sum!r})"


@dataclass(frozen=True)
class CounterLimits:
    """How large an event's contribution may be; traqq's defaults.

    An event over a limit is not written at all: it is counted as dropped
    with reason ``limits``.

    Args:
        max_field_length: The longest property name a mapping may use (a
            mapping naming a longer one is refused when the sink is built).
        max_value_length: The longest value (in characters) an event may put
            into a key or add to a unique count.
        max_combinations: The most compound keys (of two names or more) one
            event may feed, over all kinds and buckets.
        max_metrics_per_event: The most keys one event may feed, over all
            kinds and buckets.

    Raises:
        ConfigError: If a limit is not an int >= 1.
    """

    max_field_length: int = 128
    max_value_length: int = 512
    max_combinations: int = 1000
    max_metrics_per_event: int = 1000

    def __post_init__(self) -> None:
        for option in (
            "max_field_length",
            "max_value_length",
            "max_combinations",
            "max_metrics_per_event",
        ):
            require_int(option, getattr(self, option), minimum=1)

    def check_mapping(self, mapping: CounterMapping) -> None:
        """Refuse a mapping that names a property longer than ``max_field_length``.

        Raises:
            ConfigError: Naming the property.
        """
        for metric in mapping.metrics:
            for name in (*metric.names, metric.value_field or ""):
                if len(name) > self.max_field_length:
                    raise ConfigError(
                        "mapping",
                        f"the property name {name[:40]!r}... is {len(name)} characters long; "
                        f"max_field_length is {self.max_field_length}",
                    )
