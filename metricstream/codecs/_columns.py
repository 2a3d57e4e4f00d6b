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

from metricstream.codecs._compiled import SPEEDUPS
from metricstream.event import PARTS_PER_EVENT, SharedTags

__all__ = ["Samples", "TextsBefore", "join_lines", "number_texts", "sample_lines", "samples"]


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


class TextsBefore:
    """The text before the value on each line of a batch of samples, by tag dict.

    Each encoding keeps one: ``make(measurement, key, tags)`` builds the text
    for one tag dict. The text of a shared tag dict (a `SharedTags`, read-only)
    is remembered across batches under its identity, which stays its own
    since the dict is kept alive here; at most `limit` are kept, and all are
    forgotten when more would be. Other dicts are looked at once per batch.

    Args:
        make: Builds the text for a measurement, a field key and a tag dict.
        limit: The most texts remembered.
    """

    def __init__(self, make: Callable[[str, str, dict[str, str]], bytes], limit: int) -> None:
        self._make = make
        self.limit = limit
        self._known: dict[tuple[str, str], dict[int, bytes]] = {}
        self._alive: dict[int, dict[str, str]] = {}

    def texts(self, measurement: str, key: str, tags: list[dict[str, str]]) -> list[bytes]:
        """The text before the value for each tag dict of `tags` (one per event)."""
        known = self._known.get((measurement, key))
        if known is None:
            known = self._known.setdefault((measurement, key), {})
        # The batch keeps its tag dicts alive, so their ids are their own.
        texts = list(map(known.get, map(id, tags)))
        if None in texts:
            self._fill((measurement, key), known, tags, texts)
        return texts  # type: ignore[return-value]

    def _fill(
        self,
        scope: tuple[str, str],
        known: dict[int, bytes],
        tags: list[dict[str, str]],
        texts: list[bytes | None],
    ) -> None:
        made: dict[int, bytes] = {}
        for index, done in enumerate(texts):
            if done is not None:
                continue
            found = tags[index]
            ident = id(found)
            text = made.get(ident)
            if text is None:
                text = made[ident] = self._make(*scope, found)
                if found.__class__ is SharedTags:
                    if len(self._alive) >= self.limit:
                        self._known.clear()
                        self._alive.clear()
                    self._alive[ident] = found
                    known[ident] = text
            texts[index] = text


def join_lines(
    befores: list[bytes],
    values: list[bytes],
    *,
    between: bytes,
    timestamps: list[bytes],
    after: bytes,
) -> bytes:
    """Join one line per event: the text before its value, value, between, timestamp, after.

    Args:
        befores: Each event's text before its value.
        values: Each event's value text.
        between: The text between value and timestamp.
        timestamps: Each event's timestamp text.
        after: The text after the timestamp.

    Returns:
        The lines, newline-joined, no trailing newline.
    """
    # Five pieces per line in one flat list, joined once: no bytes object per line.
    pieces: list[bytes] = [between] * (5 * len(befores))
    pieces[0::5] = befores
    pieces[1::5] = values
    pieces[3::5] = timestamps
    pieces[4::5] = repeat(after + b"\n", len(befores))
    if pieces:
        pieces[-1] = after
    return b"".join(pieces)


def sample_lines(
    befores: list[bytes],
    values: bytes,
    *,
    between: bytes,
    timestamps: list[int],
    after: bytes,
) -> bytes:
    """Join one line per sample: the text before its value, value, between, timestamp, after.

    Args:
        befores: Each event's text before its value.
        values: The values as one JSON array (``orjson.dumps`` of the column),
            whose items hold no comma: numbers and booleans.
        between: The text between value and timestamp.
        timestamps: Each event's timestamp.
        after: The text after the timestamp.

    Returns:
        The lines, newline-joined, no trailing newline. The compiled helper
        (`metricstream.codecs._compiled`) writes them in one pass; this
        joins the same pieces.
    """
    if _compiled_sample_lines is not None:
        try:
            return _compiled_sample_lines(befores, values, between, timestamps, after)
        except (TypeError, OverflowError):
            pass  # a timestamp assigned by hand that is not an int64: as the pure code does
    return join_lines(
        befores,
        values[1:-1].split(b","),
        between=between,
        timestamps=number_texts(timestamps),
        after=after,
    )


_compiled_sample_lines: Callable[[list[bytes], bytes, bytes, list[int], bytes], bytes] | None = (
    None if SPEEDUPS is None else SPEEDUPS.sample_lines
)
