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
    """Events the sink could not encode (or refused), dropped under `reason`."""
    reason: str = "invalid"
    """The drop reason: ``invalid``, or the one the sink named (`InvalidEventError.reason`)."""


def prepare_isolated(
    sink: Sink, name: str, batch: EventBatch, warnings: RateLimitedLog
) -> Prepared:
    """Run ``sink.prepare(batch)``; when it fails, drop only the events it cannot encode.

    A sink may name the offending events (`InvalidEventError.indexes`) and
    the reason they are dropped under (`InvalidEventError.reason`); otherwise
    each event is tried alone and dropped as ``invalid``.
    """
    try:
        return Prepared(sink.prepare(batch), len(batch), 0)
    except Exception as exc:
        first_error = exc
    count = len(batch)
    named = getattr(first_error, "indexes", None)
    reason = "invalid"
    if named:
        bad = set(named)
        good = [i for i in range(count) if i not in bad]
        reason = str(getattr(first_error, "reason", None) or "invalid")
    else:
        good = [i for i in range(count) if _encodable(sink, batch.select((i,)))]
    warnings.warning(
        (name, reason),
        "sink %r dropped %d of %d events of batch %s (%s): %s",
        name,
        count - len(good),
        count,
        batch.batch_id,
        reason,
        scrub_secrets(str(first_error)),
    )
    if not good:
        return Prepared(None, 0, count, reason)
    rest = batch.select(good)
    try:
        return Prepared(sink.prepare(rest), len(good), count - len(good), reason)
    except Exception:
        if not named:
            return Prepared(None, 0, count, reason)
        payload, kept, _, _ = prepare_isolated(sink, name, rest, warnings)
        return Prepared(payload, kept, count - kept, reason)


def _encodable(sink: Sink, single: EventBatch) -> bool:
    try:
        sink.prepare(single)
    except Exception:
        return False
    return True
