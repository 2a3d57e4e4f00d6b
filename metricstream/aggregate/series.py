"""Series: one per metric name and tag set, found cheaply, capped in number.

A series is identified by its name and its tags, whatever the order of the
tag dict: ``{"a": "1", "b": "2"}`` and ``{"b": "2", "a": "1"}`` are one
series. Tags follow the model's rules (`metricstream._validate.check_tags`);
ints, floats and bools become their text, as in events.

Finding a series is the recorders' hot path, so it takes three steps, the
first of which builds no key from the tag dict itself:

1. each name remembers the sorted tag keys of its first series (its
   layout) and an `operator.itemgetter` of them; a call whose tags have
   exactly those keys, values all text, finds its series by what the getter
   returns (one C call: no sorting, no validation). That table is also the
   canonical one for the layout, so a series costs one small tuple in it;
2. other tag sets of a name, and tags with int values, are found by
   ``frozenset(tags.items())``;
3. anything else (a new series, values that are not text) is validated and
   made canonical (sorted), then remembered for steps 1 and 2.

The cardinality limit `max_series` caps the number of series. Beyond it a
new series is folded into one series per name tagged ``overflow=true``,
which receives its values, and the number of distinct series folded is
counted (`SeriesIndex.folded`). Folded tag sets are remembered by a 64-bit
hash only, so a flood of them costs little memory; each of their calls takes
step 3.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from operator import itemgetter
from typing import Any

from metricstream._validate import TagsLike, check_measurement, check_tags
from metricstream.event import SharedTags
from metricstream.exceptions import ConfigError

__all__ = [
    "KINDS",
    "OVERFLOW_TAG",
    "Metric",
    "Series",
    "SeriesIndex",
]

KINDS = ("counter", "gauge", "histogram", "distribution", "set")
"""The kinds of series; a name has one kind."""

OVERFLOW_TAG = ("overflow", "true")
"""The tag of the series a name's folded series go to, past the cardinality limit."""

_NO_TAGS: dict[str, str] = {}
"""The tags of a call without tags (never changed)."""


class Metric:
    """What every series of one name shares, decided when its first series is made.

    Attributes:
        name: The metric name (the measurement of its events).
        kind: One of `KINDS`.
        config: What the kind needs: a histogram's bounds and field names, a
            set's exact limit (None for the others).
        new_state: Makes an empty accumulator for a new window.
    """

    __slots__ = ("config", "kind", "name", "new_state")

    def __init__(self, name: str, kind: str, config: Any, new_state: Callable[[], Any]) -> None:
        self.name = name
        self.kind = kind
        self.config = config
        self.new_state = new_state


class Series:
    """One series: its metric, its tags and its accumulator for the current window.

    Attributes:
        metric: The `Metric` of its name.
        keys: Its tag keys, sorted.
        values: Its tag values in the order of `keys`: a tuple, or for one
            tag the value itself, or ``0`` for none (what step 1 looks up).
        bounds: A histogram's bounds (empty for other kinds).
        window: The token of the window `state` belongs to.
        state: Its accumulator for that window.
    """

    __slots__ = ("bounds", "keys", "metric", "state", "values", "window")

    def __init__(self, metric: Metric, keys: tuple[str, ...], values: Any) -> None:
        self.metric = metric
        self.keys = keys
        self.values = values
        self.bounds: tuple[float, ...] = metric.config[0] if metric.kind == "histogram" else ()
        self.window: object = None
        self.state: Any = None

    def tags(self) -> dict[str, str]:
        """Its tags as a new dict, sorted by key."""
        keys = self.keys
        if len(keys) == 1:
            return {keys[0]: self.values}
        return dict(zip(keys, self.values, strict=True)) if keys else {}


class _Layout:
    """The series of one name whose tags have the name's first tag keys."""

    __slots__ = ("key", "keys", "series", "size")

    def __init__(self, keys: tuple[str, ...]) -> None:
        self.keys = keys
        self.size = len(keys)
        self.key: Callable[[Any], Any] = itemgetter(*keys) if keys else len
        self.series: dict[Any, Series] = {}


Lookup = tuple[Callable[[Any], Any], dict[Any, "Series"], int]
"""A layout as the hot paths read it: its key getter, its series by key, its number of tags."""

StateFactory = Callable[[str, Any], Callable[[], Any]]
"""Given a kind and its config, return the maker of that kind's accumulators."""


class SeriesIndex:
    """Every series of a recorder, by kind, name and tags, capped at `max_series`.

    Args:
        max_series: The most series (the ``overflow`` ones not included).
        new_state: See `StateFactory`.

    The tables in `lookups` (the layouts as tuples, unpacked in one step)
    are read without a lock by the recorders' hot paths; every change is
    made under this index's own `lock`, and a series is complete before it
    is published.

    Attributes:
        lock: Held to change the tables.
    """

    def __init__(self, max_series: int, new_state: StateFactory) -> None:
        self.max_series = max_series
        self._new_state = new_state
        self.layouts: dict[str, dict[str, _Layout]] = {kind: {} for kind in KINDS}
        self.lookups: dict[str, dict[str, Lookup]] = {kind: {} for kind in KINDS}
        self._metrics: dict[str, Metric] = {}
        self._by_items: dict[tuple[str, str, frozenset[tuple[str, str]]], Series] = {}
        self._others: dict[tuple[str, tuple[str, ...], Any], Series] = {}
        self._overflow: dict[str, Series] = {}
        self._folded: set[int] = set()
        self._count = 0
        self.lock = threading.Lock()

    @property
    def folded(self) -> int:
        """How many distinct series were folded into ``overflow`` series."""
        return len(self._folded)

    def clear(self) -> None:
        """Forget every series, in place (the tables the recorders hold stay theirs)."""
        for kind in KINDS:
            self.layouts[kind].clear()
            self.lookups[kind].clear()
        self._metrics.clear()
        self._by_items.clear()
        self._others.clear()
        self._overflow.clear()
        self._folded.clear()
        self._count = 0

    def __len__(self) -> int:
        """How many series there are (``overflow`` series not included)."""
        return self._count

    def find(self, kind: str, name: str, tags: TagsLike | None, config: Any = None) -> Series:
        """Return the series of `name` and `tags`, making it (or folding it) if new.

        Args:
            kind: The kind the caller records.
            name: The metric name.
            tags: Its tags (a mapping, (key, value) pairs or None).
            config: The kind's config for a new name (a histogram's checked
                bounds and names, a set's exact limit).

        Raises:
            ConfigError: If the name was recorded as another kind, or as a
                histogram with other buckets.
            InvalidEventError: If the name or a tag is invalid.
        """
        if tags is None:
            tags = _NO_TAGS
        if tags.__class__ is dict or tags.__class__ is SharedTags:
            layout = self.layouts[kind].get(name)
            try:
                if layout is not None and len(tags) == layout.size:
                    return layout.series[layout.key(tags)]
                return self._by_items[(kind, name, frozenset(tags.items()))]
            except (KeyError, TypeError):
                pass
        with self.lock:
            return self._find_slowly(kind, name, tags, config)

    def _find_slowly(self, kind: str, name: str, tags: TagsLike, config: Any) -> Series:
        name = check_measurement(name)
        canonical = check_tags(tags)
        metric = self._metric(kind, name, config)
        keys = tuple(sorted(canonical))
        layout = self.layouts[kind].get(metric.name)
        if layout is None:
            layout = self.layouts[kind][metric.name] = _Layout(keys)
            self.lookups[kind][metric.name] = (layout.key, layout.series, layout.size)
        if layout.keys == keys:
            values = layout.key(canonical)
            series = layout.series.get(values)
        else:
            values = _Layout(keys).key(canonical)
            series = self._others.get((metric.name, keys, values))
        if series is None:
            if self._count >= self.max_series:
                self._folded.add(hash((metric.name, keys, values)))
                return self._overflow_series(metric)
            series = Series(metric, keys, values)
            self._count += 1
            if layout.keys == keys:
                layout.series[values] = series
            else:
                self._others[(metric.name, keys, values)] = series
        if (tags.__class__ is dict or tags.__class__ is SharedTags) and _cacheable(tags):
            plain: dict[Any, Any] = tags
            if layout.keys != keys or layout.key(plain) != values:
                self._by_items[(kind, metric.name, frozenset(plain.items()))] = series
        return series

    def _metric(self, kind: str, name: str, config: Any) -> Metric:
        metric = self._metrics.get(name)
        if metric is None:
            metric = Metric(name, kind, config, self._new_state(kind, config))
            self._metrics[name] = metric
        elif metric.kind != kind:
            raise ConfigError(
                name, f"metric {name!r} is recorded as a {metric.kind}; it cannot also be a {kind}"
            )
        elif metric.config != config:
            raise ConfigError(
                "buckets",
                f"histogram {name!r} was first recorded with buckets {metric.config[0]}; "
                f"every series of a name has the same buckets, not {config[0]}",
            )
        return metric

    def _overflow_series(self, metric: Metric) -> Series:
        series = self._overflow.get(metric.name)
        if series is None:
            series = Series(metric, (OVERFLOW_TAG[0],), OVERFLOW_TAG[1])
            self._overflow[metric.name] = series
        return series


def _cacheable(tags: dict[Any, Any]) -> bool:
    """Whether equal items of `tags` always mean one series: keys text, values text or ints.

    (A float or bool value equals an int of another text: ``1 == 1.0 == True``.)
    """
    return all(
        k.__class__ is str and (v.__class__ is str or v.__class__ is int) for k, v in tags.items()
    )
