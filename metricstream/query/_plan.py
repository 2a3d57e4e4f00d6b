"""A query document read: its sets and its funnel, ready to be answered."""

from __future__ import annotations

from dataclasses import dataclass

from metricstream.query._sets import EventSet

__all__ = ["DocumentPlan", "SetPlan"]


@dataclass(frozen=True)
class SetPlan:
    """One set of a document, read: its events and what to ask of them.

    Attributes:
        label: Its name in the answer and the funnel.
        events: The set.
        unique: The keys whose distinct values are counted.
        breakdown: ``(keys, n)`` or None.
        series: ``(bucket, timezone)`` or None.
    """

    label: str
    events: EventSet
    unique: tuple[str, ...]
    breakdown: tuple[tuple[str, ...], int] | None
    series: tuple[str, str] | None


@dataclass(frozen=True)
class DocumentPlan:
    """A document checked and read: its sets, and the funnel's steps, match, type and window."""

    sets: dict[str, SetPlan]
    steps: tuple[EventSet, ...] = ()
    match: tuple[str, ...] = ()
    order: str = "exact_order"
    window_ns: int | None = None
