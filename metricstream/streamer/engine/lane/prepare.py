"""Running a sink's ``prepare`` so that events it cannot encode cost only themselves."""

from __future__ import annotations

from typing import Any, NamedTuple

from metricstream._log import RateLimitedLog
from metricstream._secrets import scrub_secrets
from metricstream.contract import EventBatch, Sink

__all__ = ["Prepared", "in_payload", "prepare_isolated"]


class Prepared(NamedTuple):
    """The outcome of preparing one batch for one sink."""

    payload: Any
    """What the sink's ``prepare`` returned (None when no event was encodable)."""
    good: int
    """Events in the payload."""
    dropped: tuple[tuple[str, int], ...] = ()
    """Events the sink could not encode (or refused), as (reason, count): ``invalid``, or
    the reason the sink named (`InvalidEventError.reason`), one pair per refusal."""
    refused: tuple[tuple[int, str, str], ...] = ()
    """Each event left out, as (its index in the batch, its reason, the sink's error)."""


def prepare_isolated(
    sink: Sink, name: str, batch: EventBatch, warnings: RateLimitedLog
) -> Prepared:
    """Run ``sink.prepare(batch)``; when it fails, drop only the events it cannot encode.

    A sink may name the offending events (`InvalidEventError.indexes`) and
    the reason they are dropped under (`InvalidEventError.reason`); otherwise
    each event is tried alone and dropped as ``invalid``. A sink that refuses
    the rest again, under another reason, has each refusal counted under
    its own reason. Which events were left out, and why, is in
    `Prepared.refused`.
    """
    try:
        return Prepared(sink.prepare(batch), len(batch))
    except Exception as exc:
        first_error = exc
    count = len(batch)
    named = getattr(first_error, "indexes", None)
    reason = "invalid"
    errors: list[str | None]
    if named:
        bad = set(named)
        reason = str(getattr(first_error, "reason", None) or "invalid")
        said = scrub_secrets(str(first_error))
        errors = [said if i in bad else None for i in range(count)]
    else:
        errors = [_error(sink, batch.select((i,))) for i in range(count)]
    good = [i for i, error in enumerate(errors) if error is None]
    refused = tuple((i, reason, error) for i, error in enumerate(errors) if error is not None)
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
        return Prepared(None, 0, ((reason, count),), refused)
    rest = batch.select(good)
    first = (reason, count - len(good))
    try:
        return Prepared(sink.prepare(rest), len(good), (first,), refused)
    except Exception as exc:
        if not named:
            said = scrub_secrets(str(exc))
            every = (*refused, *((i, reason, said) for i in good))
            return Prepared(None, 0, ((reason, count),), tuple(sorted(every)))
        payload, kept, more, again = prepare_isolated(sink, name, rest, warnings)
        refused += tuple((good[i], why, error) for i, why, error in again)
        return Prepared(payload, kept, (first, *more), tuple(sorted(refused)))


def in_payload(batch: EventBatch, outcome: Prepared) -> EventBatch:
    """The events of `batch` that `outcome`'s payload holds (all but those refused)."""
    if not outcome.refused:
        return batch
    refused = {index for index, _, _ in outcome.refused}
    return batch.select([i for i in range(len(batch)) if i not in refused])


def _error(sink: Sink, single: EventBatch) -> str | None:
    """Why `sink` cannot prepare `single` (one event), or None when it can."""
    try:
        sink.prepare(single)
    except Exception as exc:
        return scrub_secrets(str(exc)) or type(exc).__name__
    return None
