"""The properties of events: the one rule for naming a part of an event.

A property is what Redis counter mappings and queries name: ``measurement``
is the measurement name; any other name is the tag of that name, else the
field of that name; ``event`` (`PROPERTY_ALIAS`) also means the measurement
when an event has no tag or field of that name. Properties are read from
events or, for a batch, from its columns (`EventColumns`), without building
its events.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any, NamedTuple

from metricstream.event import PARTS_PER_EVENT, FieldValue, MetricEvent

__all__ = [
    "PROPERTY_ALIAS",
    "EventColumns",
    "event_property",
    "property_columns",
    "property_values",
]


class EventColumns(NamedTuple):
    """Events as columns: one sequence per part, one item per event, in order.

    What a reader of many events looks at (`property_columns`), without
    building the events themselves.
    """

    measurements: Sequence[str]
    tags: Sequence[Mapping[str, str]]
    fields: Sequence[Mapping[str, FieldValue]]
    timestamps: Sequence[int]

    @classmethod
    def of_events(cls, events: Sequence[MetricEvent]) -> EventColumns:
        """The columns of `events`."""
        return cls(
            [event.measurement for event in events],
            [event.tags for event in events],
            [event.fields for event in events],
            [event.timestamp_ns for event in events],
        )

    @classmethod
    def of_parts(cls, parts: Sequence[Any]) -> EventColumns:
        """The columns of events given as flat parts (`PARTS_PER_EVENT` per event)."""
        step = PARTS_PER_EVENT
        return cls(parts[0::step], parts[1::step], parts[2::step], parts[3::step])

    def row(self, position: int) -> EventColumns:
        """The columns of the one event at `position`."""
        return EventColumns(
            self.measurements[position : position + 1],
            self.tags[position : position + 1],
            self.fields[position : position + 1],
            self.timestamps[position : position + 1],
        )


PROPERTY_ALIAS = "event"
"""A property name that means the measurement unless a tag or field has that name."""


def property_values(events: Sequence[MetricEvent], name: str) -> list[FieldValue | None]:
    """Return the value of the property `name` of each event (None where it has none).

    The one rule for naming a part of an event, used by Redis counter
    mappings and queries: ``measurement`` is the measurement name; any other
    name is the tag of that name, else the field of that name. The name
    ``event`` also means the measurement when an event has no tag or field
    called ``event``.

    Args:
        events: The events.
        name: The property's name.

    Returns:
        One value per event, in order: a tag value (str), a field value, the
        measurement name, or None.
    """
    return property_columns(EventColumns.of_events(events), (name,))[name]


def property_columns(
    events: EventColumns, names: Iterable[str]
) -> dict[str, list[FieldValue | None]]:
    """Return `property_values` for several names at once (a column per name).

    Args:
        events: The events, as columns.
        names: The properties' names.

    Returns:
        Each name -> one value per event, in order.
    """
    measurements, tags, fields, _ = events
    columns: dict[str, list[FieldValue | None]] = {}
    for name in names:
        if name == "measurement":
            columns[name] = list(measurements)
            continue
        values: list[FieldValue | None] = [found.get(name) for found in tags]
        if None in values:
            values = [
                found.get(name) if value is None else value
                for value, found in zip(values, fields, strict=True)
            ]
            if name == PROPERTY_ALIAS and None in values:
                values = [
                    measurement if value is None else value
                    for value, measurement in zip(values, measurements, strict=True)
                ]
        columns[name] = values
    return columns


def event_property(event: MetricEvent, name: str) -> FieldValue | None:
    """Return the value of the property `name` of `event`, or None (see `property_values`).

    Args:
        event: The event.
        name: The property's name.

    Returns:
        A tag value (str), a field value, the measurement name, or None.
    """
    return property_values((event,), name)[0]
