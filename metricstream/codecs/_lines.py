"""Joining a batch's lines from its columns: the work both batch encoders share.

The JSON Lines and the line protocol encoders write each event as the same
run of pieces: the text before its first value (made once per
measurement, first field key and tag dict, by `TextsBefore`), then each
value followed by the text after it (the next key, or what comes before
the timestamp), then its timestamp and the text after that. `join_lines`
joins a batch of them in one pass. A column of numbers is given as one
JSON array (one ``orjson.dumps`` of the column, `number_texts`), so the
encoders need no loop over events for it; any other column as one text
per event.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from itertools import repeat
from typing import Union

import orjson

from metricstream._compiled import SPEEDUPS
from metricstream.event import SharedTags

__all__ = ["Column", "TextsBefore", "join_lines", "number_texts"]

Column = Union[bytes, list[bytes]]
"""A column of value texts: a JSON array of numbers or booleans, or one text per event."""

_Make = Callable[[str, Union[str, None], dict[str, str]], bytes]


def number_texts(values: Sequence[object]) -> list[bytes]:
    """Each value (bools, ints, floats) as JSON text, by one ``orjson.dumps``."""
    return orjson.dumps(values)[1:-1].split(b",") if values else []


class TextsBefore:
    """The text before the first value of each line of a batch, by tag dict.

    Each encoder keeps one: ``make(measurement, key, tags)`` builds the text
    for one measurement, first field key (None when the encoder writes all
    the fields as one text) and tag dict. The text of a shared tag dict (a
    `SharedTags`, read-only) is remembered across batches under its
    identity, which stays its own since the dict is kept alive here; at most
    `limit` are kept, and all are forgotten when more would be. Other dicts
    are looked at once per batch.

    Args:
        make: Builds the text for a measurement, a field key and a tag dict.
        limit: The most texts remembered.
    """

    def __init__(self, make: _Make, limit: int) -> None:
        self._make = make
        self.limit = limit
        self._known: dict[tuple[str, str | None], dict[int, bytes]] = {}
        self._alive: dict[int, dict[str, str]] = {}

    def texts(
        self, measurements: list[str], key: str | None, tags: list[dict[str, str]]
    ) -> list[bytes]:
        """The text before the first value for each event (one measurement and tag dict each)."""
        first = measurements[0] if measurements else ""
        if measurements.count(first) == len(measurements):
            return self._scoped((first, key), tags)
        rows: dict[str, list[int]] = {}
        for index, measurement in enumerate(measurements):
            rows.setdefault(measurement, []).append(index)
        texts: list[bytes] = [b""] * len(tags)
        for measurement, indexes in rows.items():
            found = self._scoped((measurement, key), [tags[index] for index in indexes])
            for index, text in zip(indexes, found, strict=True):
                texts[index] = text
        return texts

    def _scoped(self, scope: tuple[str, str | None], tags: list[dict[str, str]]) -> list[bytes]:
        known = self._known.get(scope)
        if known is None:
            known = self._known.setdefault(scope, {})
        # The batch keeps its tag dicts alive, so their ids are their own.
        try:
            return list(map(known.__getitem__, map(id, tags)))
        except KeyError:
            texts = list(map(known.get, map(id, tags)))
        self._fill(scope, known, tags, texts)
        return texts  # type: ignore[return-value]

    def _fill(
        self,
        scope: tuple[str, str | None],
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
                        known = self._known.setdefault(scope, {})
                    self._alive[ident] = found
                    known[ident] = text
            texts[index] = text


def _column_texts(column: Column, count: int) -> list[bytes]:
    if isinstance(column, list):
        texts = column
    elif column[:1] == b"[" and column[-1:] == b"]":
        texts = column[1:-1].split(b",") if len(column) > 2 else []
    else:
        texts = []
    if len(texts) != count or (texts is not column and b"" in texts):
        raise ValueError("a column does not hold one value per line")
    return texts


def join_lines_pure(
    befores: list[bytes],
    columns: list[Column],
    separators: list[bytes],
    timestamps: list[int],
    afters: bytes | list[bytes],
) -> bytes:
    """`join_lines` in Python: the same bytes as the compiled helper."""
    count = len(befores)
    if len(columns) != len(separators):
        raise ValueError("one separator per column is needed")
    if len(timestamps) != count or (isinstance(afters, list) and len(afters) != count):
        raise ValueError("befores, timestamps and afters differ in length")
    # The pieces of every line in one flat list, joined once: no bytes object per line.
    stride = 2 * len(columns) + 4
    pieces: list[bytes] = [b"\n"] * (stride * count)
    pieces[0::stride] = befores
    for number, (column, separator) in enumerate(zip(columns, separators, strict=True)):
        pieces[1 + 2 * number :: stride] = _column_texts(column, count)
        pieces[2 + 2 * number :: stride] = repeat(separator, count)
    pieces[stride - 3 :: stride] = number_texts(timestamps)
    pieces[stride - 2 :: stride] = repeat(afters, count) if isinstance(afters, bytes) else afters
    if pieces:
        pieces[-1] = b""
    return b"".join(pieces)


def join_lines(
    befores: list[bytes],
    columns: list[Column],
    separators: list[bytes],
    timestamps: list[int],
    afters: bytes | list[bytes],
) -> bytes:
    """Join one line per event from columns of texts.

    Line ``i`` is ``befores[i]``, then for each column its ``i``-th text
    followed by that column's separator, then ``timestamps[i]`` in decimal,
    then the text after it.

    Args:
        befores: Each event's text before its first value.
        columns: The value texts, one column per value of a line: a JSON
            array (``orjson.dumps`` of numbers or booleans, whose items hold
            no comma) or a list of one text per event.
        separators: The text after each column's value.
        timestamps: Each event's timestamp.
        afters: The text after the timestamp: the same for every event, or
            one per event.

    Returns:
        The lines, newline-joined, no trailing newline. The compiled helper
        (`metricstream._compiled`) writes them in one pass;
        `join_lines_pure` joins the same pieces.

    Raises:
        ValueError: If a column does not hold one text per event.
    """
    if _compiled_join_lines is not None:
        try:
            return _compiled_join_lines(befores, columns, separators, timestamps, afters)
        except (TypeError, OverflowError):
            pass  # a timestamp assigned by hand that is not an int64: as the pure code does
    return join_lines_pure(befores, columns, separators, timestamps, afters)


_compiled_join_lines: (
    Callable[
        [list[bytes], list[Column], list[bytes], list[int], Union[bytes, list[bytes]]], bytes
    ]
    | None
) = None if SPEEDUPS is None else SPEEDUPS.join_lines
