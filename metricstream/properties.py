"""The properties of events: the one rule for naming a part of an event.

A property is what Redis counter mappings and queries name: ``measurement``
is the measurement name; any other name is the tag of that name, else the
field of that name; ``event`` (`PROPERTY_ALIAS`) also means the measurement
when an event has no tag or field of that name. Properties are read from
events or, for a batch, from its columns
(`metricstream.columns.EventColumns`), without building its events or, when
its fields are held as columns, their field dicts.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from metricstream.columns import EventColumns
from metricstream.event import FieldValue, MetricEvent

__all__ = [
    "PROPERTY_ALIAS",
    "event_property",
    "property_columns",
    "property_values",
]


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
    measurements = events.measurements
    columns: dict[str, list[FieldValue | None]] = {}
    for name in names:
        if name == "measurement":
            columns[name] = list(measurements)
            continue
        values: list[FieldValue | None] = [found.get(name) for found in events.tags]
        if None in values:
            fields = events.field_values(name)
            values = [
                field if value is None else value
                for value, field in zip(values, fields, strict=True)
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
