"""`EventColumns`: many events as columns, the one form a batch of events takes.

A batch holds one sequence per part of an event (measurements, tags,
fields, timestamps, correlation ids), one item per event, in order. The
streamer cuts it from the parts `send()` appended (`EventColumns.of_parts`),
and everything after the cut reads it: the encoders, the property rule
(`metricstream.properties`) and the sinks.

The fields column has one fast path, the same form held more compactly:
when every event has the same field keys in the same order (the samples of
`event_from_sample` and the instruments, and most batches of one kind of
event), it is held as those keys (`field_keys`) and one column of values
per key (`field_columns`), without a dict per event; `fields` builds the
dicts the first time it is read. Each reader works whichever way the
fields are held.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from operator import itemgetter
from typing import Any, NamedTuple

from metricstream._compiled import SPEEDUPS
from metricstream.event import PARTS_PER_EVENT, FieldValue, MetricEvent, trusted_event

__all__ = ["EventColumns", "FieldColumns", "field_columns_pure"]


class FieldColumns(NamedTuple):
    """The fields of events that all have the same keys, in the same order."""

    keys: tuple[str, ...]
    """The field keys, in each event's order."""
    values: tuple[list[FieldValue], ...]
    """One column per key: that field's value in each event, in order."""


def field_columns_pure(
    fields: list[dict[str, FieldValue]],
) -> tuple[tuple[str, ...], tuple[list[FieldValue], ...]] | None:
    """The keys and one column of values per key, when every dict has the first one's keys.

    Every item must be a dict (not a subclass) whose keys are those of the
    first, str (not a subclass), in the same order; otherwise None. The
    compiled helper (`metricstream._compiled`) gives the same result.
    """
    if not fields or set(map(type, fields)) != _DICT:
        return None
    keys = tuple(fields[0])
    if not keys or set(map(type, keys)) != _STR:
        return None
    if len(keys) == 1:
        # As many keys as dicts, and the first key in each: exactly that key in each.
        if sum(map(len, fields)) != len(fields):
            return None
    elif len(set(map(tuple, fields))) != 1:
        return None
    try:
        return keys, tuple([list(map(itemgetter(key), fields)) for key in keys])
    except KeyError:
        return None


_DICT = {dict}
_STR = {str}
_field_columns: Callable[
    [list[dict[str, FieldValue]]], tuple[tuple[str, ...], tuple[list[FieldValue], ...]] | None
] = field_columns_pure if SPEEDUPS is None else SPEEDUPS.field_columns


def _picked(column: Sequence[Any], indexes: Sequence[int]) -> list[Any]:
    return [column[index] for index in indexes]


class EventColumns:
    """Events as columns: one list per part, one item per event, in order.

    The lists are kept as given, not copied: do not change them (or the
    dicts in them) once the columns exist, since a batch encodes them once.

    Args:
        measurements: Each event's measurement.
        tags: Each event's tag dict.
        fields: Each event's field dict (held as `field_columns` when every
            dict has the same keys in the same order).
        timestamps: Each event's timestamp, in nanoseconds since the epoch.
        correlation_ids: Each event's correlation id, or None.

    Attributes:
        measurements: Each event's measurement.
        tags: Each event's tag dict (shared between events; read-only).
        timestamps: Each event's timestamp.
        correlation_ids: Each event's correlation id, or None.
        field_keys: The field keys every event has, in order, when they all
            have the same ones (see `field_columns`); else None.

    Raises:
        ValueError: If the columns differ in length.
    """

    __slots__ = (
        "_fields",
        "_values",
        "correlation_ids",
        "field_keys",
        "measurements",
        "tags",
        "timestamps",
    )

    measurements: list[str]
    tags: list[dict[str, str]]
    timestamps: list[int]
    correlation_ids: list[str | None]
    field_keys: tuple[str, ...] | None

    def __init__(
        self,
        measurements: list[str],
        tags: list[dict[str, str]],
        fields: list[dict[str, FieldValue]],
        timestamps: list[int],
        correlation_ids: list[str | None],
    ) -> None:
        size = len(timestamps)
        if not len(measurements) == len(tags) == len(fields) == len(correlation_ids) == size:
            raise ValueError("the columns of events differ in length")
        self.measurements = measurements
        self.tags = tags
        self.timestamps = timestamps
        self.correlation_ids = correlation_ids
        found = _field_columns(fields) if size else None
        self.field_keys = None if found is None else found[0]
        self._values = None if found is None else found[1]
        self._fields: list[dict[str, FieldValue]] | None = fields if found is None else None

    @classmethod
    def of_parts(cls, parts: list[Any]) -> EventColumns:
        """The columns of events given as the flat parts `send()` appends.

        Args:
            parts: `metricstream.event.PARTS_PER_EVENT` parts per event
                (measurement, tags, fields, timestamp, correlation id), in
                order, already validated.

        Returns:
            The columns.
        """
        step = PARTS_PER_EVENT
        return cls(parts[0::step], parts[1::step], parts[2::step], parts[3::step], parts[4::step])

    @classmethod
    def of_events(cls, events: Iterable[MetricEvent]) -> EventColumns:
        """The columns of `events` (their parts, not copies of them)."""
        found = events if isinstance(events, list) else list(events)
        return cls(
            [event.measurement for event in found],
            [event.tags for event in found],
            [event.fields for event in found],
            [event.timestamp_ns for event in found],
            [event.correlation_id for event in found],
        )

    def __len__(self) -> int:
        return len(self.timestamps)

    def __repr__(self) -> str:
        return f"EventColumns(events={len(self)}, field_keys={self.field_keys!r})"

    @property
    def fields(self) -> list[dict[str, FieldValue]]:
        """Each event's field dict, in order (built from `field_columns` on first read)."""
        fields = self._fields
        if fields is None:
            keys, values = self.field_keys or (), self._values or ()
            if len(keys) == 1:
                key = keys[0]
                fields = [{key: value} for value in values[0]]
            else:
                fields = [dict(zip(keys, row, strict=True)) for row in zip(*values, strict=True)]
            self._fields = fields
        return fields

    def field_columns(self) -> FieldColumns | None:
        """The fields as one column per key, when every event has the same keys in one order.

        Returns:
            The keys and their columns, or None when the events' keys differ
            (read `fields` or `field_values` then).
        """
        if self.field_keys is None or self._values is None:
            return None
        return FieldColumns(self.field_keys, self._values)

    def field_values(self, key: str) -> list[FieldValue | None]:
        """The value of field `key` in each event (None where it has none), in order."""
        if self.field_keys is not None and self._values is not None:
            if key not in self.field_keys:
                return [None] * len(self)
            found: list[FieldValue | None] = list(self._values[self.field_keys.index(key)])
            return found
        return [found.get(key) for found in self.fields]

    def with_fields(self, more: FieldColumns) -> EventColumns:
        """These events with more fields: each key of `more`, set to its column's value.

        The new fields come after each event's own (a field of the same key
        takes the new value in its place). The columns are kept, not copied.

        Raises:
            ValueError: If a column of `more` is not one value per event.
        """
        if any(len(column) != len(self) for column in more.values):
            raise ValueError("the columns of events differ in length")
        made = self._made(lambda column: column)
        if not more.keys:
            return made
        keys, values = self.field_keys, self._values
        if keys is not None and values is not None and not set(more.keys) & set(keys):
            made.field_keys = keys + more.keys
            made._values = values + more.values
            return made
        made.field_keys = made._values = None
        added = [dict(zip(more.keys, row, strict=True)) for row in zip(*more.values, strict=True)]
        made._fields = [{**own, **new} for own, new in zip(self.fields, added, strict=True)]
        return made

    def subset(self, start: int, stop: int) -> EventColumns:
        """The columns of the events from `start` up to `stop`."""
        return self._made(lambda column: column[start:stop])

    def select(self, indexes: Sequence[int]) -> EventColumns:
        """The columns of the events at `indexes`, in that order."""
        return self._made(lambda column: _picked(column, indexes))

    def events(self) -> list[MetricEvent]:
        """Build the events, in order (their parts are shared, not copied)."""
        return list(
            map(
                trusted_event,
                self.measurements,
                self.tags,
                self.fields,
                self.timestamps,
                self.correlation_ids,
            )
        )

    def _made(self, cut: Callable[[list[Any]], list[Any]]) -> EventColumns:
        made: EventColumns = object.__new__(EventColumns)
        made.measurements = cut(self.measurements)
        made.tags = cut(self.tags)
        made.timestamps = cut(self.timestamps)
        made.correlation_ids = cut(self.correlation_ids)
        made.field_keys = made._values = made._fields = None
        if not made.timestamps:
            made._fields = []
        elif self._values is not None:
            made.field_keys = self.field_keys
            made._values = tuple(map(cut, self._values))
        else:
            made._fields = cut(self.fields)
        return made
