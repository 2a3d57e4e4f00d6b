"""Batches of samples as columns: the fast path of the batch encoders.

Most batches hold samples: events made by `event_from_sample` or the
instruments, with one measurement, one field under the same key, a number
as its value and no correlation id; only their tags, values and timestamps
differ. For such a batch the encoders need no loop over events: the values
and the timestamps are formatted by one ``orjson.dumps`` each, the text
before the value is made once per distinct tag dict, and the lines are
joined from these columns. `samples` recognises such a batch from its parts
(every check is one pass in C over a column); any other batch is encoded
event by event, with the same result.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from itertools import repeat
from operator import itemgetter
from typing import Any, NamedTuple

import orjson

from metricstream.event import PARTS_PER_EVENT

__all__ = ["Samples", "join_lines", "number_texts", "samples"]


class Samples(NamedTuple):
    """A batch of samples as columns (see the module documentation).

    Besides its values and timestamps, a pending sample costs three
    references here: the field dicts of the events are not kept.
    """

    measurement: str
    key: str
    tags: list[dict[str, str]]
    values: list[Any]
    timestamps: list[int]
    kinds: set[type]

    def size(self) -> int:
        """The number of events."""
        return len(self.timestamps)

    def parts(self) -> list[Any]:
        """The events' flat parts (`metricstream.event.PARTS_PER_EVENT` per event), rebuilt."""
        count = len(self.timestamps)
        key = self.key
        parts: list[Any] = [None] * (PARTS_PER_EVENT * count)
        parts[0::PARTS_PER_EVENT] = repeat(self.measurement, count)
        parts[1::PARTS_PER_EVENT] = self.tags
        parts[2::PARTS_PER_EVENT] = [{key: value} for value in self.values]
        parts[3::PARTS_PER_EVENT] = self.timestamps
        return parts

    def subset(self, start: int, stop: int) -> Samples:
        """The samples from `start` up to `stop`."""
        values = self.values[start:stop]
        return self._replace(
            tags=self.tags[start:stop],
            values=values,
            timestamps=self.timestamps[start:stop],
            kinds=set(map(type, values)),
        )


def samples(parts: Sequence[Any]) -> Samples | None:
    """Return the batch `parts` as columns if it is a batch of samples, else None.

    Args:
        parts: The events' flat parts (`metricstream.event.PARTS_PER_EVENT` per event).

    Returns:
        The columns, when every event has the first event's measurement and
        exactly one field, under the first event's key, whose value is a
        bool, an int or a float (not a subclass), and no correlation id.
    """
    count = len(parts) // PARTS_PER_EVENT
    if not count or parts[4::PARTS_PER_EVENT].count(None) != count:
        return None
    measurements = parts[0::PARTS_PER_EVENT]
    if measurements.count(measurements[0]) != count:
        return None
    fields: list[dict[str, Any]] = parts[2::PARTS_PER_EVENT]  # type: ignore[assignment]
    # As many keys as events, and the first event's key in each: exactly that key in each.
    if sum(map(len, fields)) != count:
        return None
    key = next(iter(fields[0]), None)
    if key is None:
        return None
    try:
        values = list(map(itemgetter(key), fields))
    except KeyError:
        return None
    kinds = set(map(type, values))
    if not kinds <= _NUMBERS:
        return None
    return Samples(
        measurements[0],
        key,
        parts[1::PARTS_PER_EVENT],  # type: ignore[arg-type]
        values,
        parts[3::PARTS_PER_EVENT],  # type: ignore[arg-type]
        kinds,
    )


_NUMBERS = frozenset({bool, int, float})


def number_texts(values: list[Any]) -> list[bytes]:
    """Each value (bools, ints, floats) as JSON text, by one ``orjson.dumps``."""
    return orjson.dumps(values)[1:-1].split(b",")


def join_lines(
    tags: list[dict[str, str]],
    text_before: Callable[[dict[str, str]], bytes],
    values: list[bytes],
    *,
    between: bytes,
    timestamps: list[bytes],
    after: bytes,
) -> bytes:
    """Join one line per event: the text before its value, value, between, timestamp, after.

    Args:
        tags: The tag dict of each event.
        text_before: Builds the text before the value of an event with these
            tags; called once per distinct dict of the batch.
        values: Each event's value text.
        between: The text between value and timestamp.
        timestamps: Each event's timestamp text.
        after: The text after the timestamp.

    Returns:
        The lines, newline-joined, no trailing newline.
    """
    distinct = dict(zip(map(id, tags), tags, strict=True))  # the tags outlive this call
    before = {key: text_before(found) for key, found in distinct.items()}
    # Five pieces per line in one flat list, joined once: no bytes object per line.
    pieces: list[bytes] = [between] * (5 * len(tags))
    pieces[0::5] = map(before.__getitem__, map(id, tags))
    pieces[1::5] = values
    pieces[3::5] = timestamps
    pieces[4::5] = repeat(after + b"\n", len(tags))
    if pieces:
        pieces[-1] = after
    return b"".join(pieces)
