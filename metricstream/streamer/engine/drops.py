"""`Drops`: what the engine keeps of dropped events for the operations, when they ask.

How many events were dropped, and why, is the accounting's (health). What
the accounting cannot say is which: with ``on_drop`` the engine keeps, per
sink and reason, the first event dropped since the operations last looked
(`Drops.note`); with ``dead_letter_dir`` it keeps the events a sink refused
(`DEAD_LETTER_REASONS`) with the destination's error, as `DeadLetter`
batches, until the operations write them (`Drops.letter`). Without either,
nothing is kept and every call returns at once.

The engine's threads call it only when they drop events; the operations
take what it holds (`Drops.take`) on a thread of their own, so a slow
callback or disk never holds a lane back. What waits here is bounded: dead
letters beyond ``max_events`` are counted (`Drops.letters_lost`) instead.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from metricstream.contract import EventBatch
from metricstream.event import MetricEvent, trusted_event

__all__ = ["DEAD_LETTER_REASONS", "EVERY_SINK", "DeadLetter", "Drops", "event_of_row"]

DEAD_LETTER_REASONS = ("rejected", "invalid")
"""The reasons whose events are written as dead letters: a sink refused them."""

EVERY_SINK = ""
"""The sink of a drop before any lane: it counts for every sink."""


def event_of_row(row: Sequence[Any]) -> MetricEvent:
    """The event of one row of parts (measurement, tags, fields, timestamp, correlation id)."""
    return trusted_event(row[0], row[1], row[2], row[3], row[4])


@dataclass(frozen=True, slots=True)
class DeadLetter:
    """Events a sink refused, to be written to the dead-letter files.

    Attributes:
        sink: The sink's name.
        reason: ``rejected`` (the destination refused them) or ``invalid``
            (the sink could not encode them).
        batch: The events.
        errors: The error of each event, in order.
        exact: False when the destination refused only some of these events
            without saying which (a partial write): every event of the write
            is here, some of which it may have stored.
        batch_id: The id of the batch they came in.
    """

    sink: str
    reason: str
    batch: EventBatch
    errors: tuple[str, ...]
    exact: bool
    batch_id: str


class Drops:
    """The first events dropped per sink and reason, and the dead letters, until taken.

    Args:
        first_events: Keep the first event dropped per sink and reason (``on_drop``).
        dead_letters: Keep the events dropped for `DEAD_LETTER_REASONS`.
        max_events: The most events of dead letters waiting to be written.

    Attributes:
        keeps_batches: Whether lanes keep each batch until it is written
            (needed to know which events a write dropped).
        letters_lost: Events of dead letters not kept since `take_lost`
            (more than `max_events` were waiting).
        wake: Set when a dead letter arrives.
    """

    def __init__(self, *, first_events: bool, dead_letters: bool, max_events: int) -> None:
        self.first_events = first_events
        self.dead_letters = dead_letters
        self.keeps_batches = first_events or dead_letters
        self._max_events = max_events
        self._lock = threading.Lock()
        self._first: dict[tuple[str, str], Any] = {}
        self._letters: list[DeadLetter] = []
        self._waiting = 0
        self.letters_lost = 0
        self.wake = threading.Event()

    def note(self, sink: str, reason: str, first: MetricEvent | Sequence[Any] | None) -> None:
        """Keep `first` as the first event `sink` dropped for `reason`, unless one is kept.

        Args:
            sink: The sink's name, or `EVERY_SINK` for a drop before any lane.
            reason: The drop reason.
            first: The event, or its row of parts; None when it is not known.
        """
        if not self.first_events or first is None:
            return
        key = (sink, reason)
        if key not in self._first:
            with self._lock:
                self._first.setdefault(key, first)

    def letter(
        self,
        sink: str,
        reason: str,
        batch: EventBatch,
        errors: Sequence[str],
        *,
        exact: bool = True,
    ) -> None:
        """Keep refused events for the dead-letter files (and the first of them for `note`).

        Args:
            sink: The sink's name.
            reason: Why they were dropped.
            batch: The events.
            errors: One error per event, or one for all.
            exact: See `DeadLetter.exact`.
        """
        count = len(batch)
        if not count:
            return
        if self.first_events and (sink, reason) not in self._first:
            self.note(sink, reason, batch.select((0,)).events[0])
        if not self.dead_letters or reason not in DEAD_LETTER_REASONS:
            return
        each = tuple(errors) if len(errors) == count else (errors[0] if errors else "",) * count
        with self._lock:
            if self._waiting + count > self._max_events:
                self.letters_lost += count
                return
            self._waiting += count
            self._letters.append(DeadLetter(sink, reason, batch, each, exact, batch.batch_id))
        self.wake.set()

    def take(self) -> tuple[dict[tuple[str, str], MetricEvent], list[DeadLetter]]:
        """Take the first events (by sink and reason) and the dead letters kept so far."""
        with self._lock:
            first, self._first = self._first, {}
        events = {
            key: found if isinstance(found, MetricEvent) else event_of_row(found)
            for key, found in first.items()
        }
        return events, self.take_letters()

    def take_letters(self) -> list[DeadLetter]:
        """Take the dead letters kept so far."""
        with self._lock:
            letters, self._letters = self._letters, []
            self._waiting = 0
        return letters

    def take_lost(self) -> int:
        """Take the count of dead-letter events not kept since the last call."""
        with self._lock:
            lost, self.letters_lost = self.letters_lost, 0
        return lost
