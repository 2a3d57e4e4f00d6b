"""Running a sink's ``prepare`` so that events it cannot encode cost only themselves."""

from __future__ import annotations

from typing import Any, NamedTuple

from metricstream._log import RateLimitedLog
from metricstream._secrets import scrub_secrets
from metricstream.contract import EventBatch, Sink

__all__ = ["Prepared", "prepare_isolated"]


class Prepared(NamedTuple):
    """The outcome of preparing one batch for one sink."""

    payload: Any
    """What the sink's ``prepare`` returned (None when no event was encodable)."""
    good: int
    """Events in the payload."""
    invalid: int
    """Events the sink could not encode, dropped as ``invalid``."""


def prepare_isolated(
    sink: Sink, name: str, batch: EventBatch, warnings: RateLimitedLog
) -> Prepared:
    """Run ``sink.prepare(batch)``; when it fails, drop only the events it cannot encode.

    A sink may name the offending events (`InvalidEventError.indexes`);
    otherwise each event is tried alone.
    """
    try:
        return Prepared(sink.prepare(batch), len(batch.events), 0)
    except Exception as exc:
        first_error = exc
    events = batch.events
    named = getattr(first_error, "indexes", None)
    if named:
        bad = set(named)
        good = [event for i, event in enumerate(events) if i not in bad]
    else:
        good = [e for e in events if _encodable(sink, EventBatch([e], batch_id=batch.batch_id))]
    warnings.warning(
        (name, "invalid"),
        "metricstream: sink %r could not encode %d of %d events of batch %s: %s",
        name,
        len(events) - len(good),
        len(events),
        batch.batch_id,
        scrub_secrets(str(first_error)),
    )
    if not good:
        return Prepared(None, 0, len(events))
    rest = EventBatch(good, batch_id=batch.batch_id, created_ns=batch.created_ns)
    try:
        return Prepared(sink.prepare(rest), len(good), len(events) - len(good))
    except Exception:
        if not named:
            return Prepared(None, 0, len(events))
        payload, kept, _ = prepare_isolated(sink, name, rest, warnings)
        return Prepared(payload, kept, len(events) - kept)


def _encodable(sink: Sink, single: EventBatch) -> bool:
    try:
        sink.prepare(single)
    except Exception:
        return False
    return True
