r"""What the servers cannot store as written, found before anything is sent.

`refuse_unstorable` raises `InvalidEventError`, whose ``indexes`` name every
such event of the batch, so that the streamer drops exactly those events (as
``invalid``) and writes the rest of their batch, without trying each event
alone:

- a literal backslash right before a space, comma, ``=`` or ``"`` in a
  measurement, tag key, tag value or field key. Line protocol writes it as
  is, but InfluxDB 1.x and VictoriaMetrics read it as an escape: depending on
  the server, the element and the character, the point is lost after a 204,
  refused, or stored under another name;
- with ``api="v1"``, `UInt` fields (InfluxDB 1.x refuses ``3u``) and, at
  ``ns`` precision, the three int64 timestamps InfluxDB 1.x cannot store
  (``-2**63``, ``-2**63 + 1`` and ``2**63 - 1``). VictoriaMetrics stores
  unsigned fields, as floats;
- with ``api="v2"``, a string field holding a newline. Line protocol has no
  escape for it: the encoder writes it as it is, as the reference encoder
  does, and InfluxDB 1.x stores it, but VictoriaMetrics ends the line there
  and loses the whole point after a 204 (newer versions refuse the request),
  and InfluxData documents newlines in field values as unsupported. An
  escaped ``\n`` would reach InfluxDB 2.x as a backslash and an ``n``, so
  the sink refuses the event rather than change the value.

Every check starts with a search of the batch's shared line protocol bytes,
so batches without a suspicious byte sequence cost no per-event work.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence

from metricstream.contract import EventBatch
from metricstream.event import MetricEvent, UInt
from metricstream.exceptions import InvalidEventError

__all__ = ["refuse_unstorable"]

_UINT_TEXT = re.compile(rb"=[0-9]+u[ ,]")
"""Where a `UInt` field may be in line protocol (string values can match too)."""
_V1_MIN_NS = -(2**63) + 2
_V1_MAX_NS = 2**63 - 2
"""The range of timestamps InfluxDB 1.x stores (it refuses -2**63, -2**63 + 1 and 2**63 - 1)."""
_MISREAD = ("\\ ", "\\,", "\\=", '\\"')
"""A literal backslash before one of these is read by InfluxDB as an escape."""

Found = list[tuple[int, InvalidEventError]]
"""Refused events by position in the batch, each with its reason."""


def refuse_unstorable(batch: EventBatch, lines: bytes, *, api: str, precision: str) -> None:
    """Refuse the events of a batch the server cannot store as written.

    Args:
        batch: The batch; its events are looked at only when `lines` holds
            something suspicious.
        lines: Their line protocol (the batch's shared encoding).
        api: ``"v1"`` or ``"v2"``.
        precision: The precision `lines` was encoded at.

    Raises:
        InvalidEventError: Naming the first refused event of the batch (by
            position), with ``indexes`` giving the positions of all of them.
    """
    checks: list[Callable[[Sequence[MetricEvent]], Found]] = []
    if b"\\" in lines and (b"\\\\" in lines or b'\\"' in lines or b"\\=" in lines):
        checks.append(_misread_names)
    if api == "v1":
        if _UINT_TEXT.search(lines) is not None:
            checks.append(_unsigned_fields)
        if precision == "ns" and b"922337203685477580" in lines:
            checks.append(_unstorable_timestamps)
    # Names cannot hold a newline, so one more than the lines need is in a
    # string; counting is skipped when no string field was written.
    elif len(batch) and b'"' in lines and lines.count(b"\n") != len(batch) - 1:
        checks.append(_multiline_strings)
    refused = [found for check in checks for found in check(batch.events)]
    if refused:
        _, first = min(refused, key=lambda found: found[0])
        raise InvalidEventError(
            first.key,
            first.problem,
            indexes=tuple(sorted({index for index, _ in refused})),
        )


def _misread_char(name: str) -> str | None:
    """The character a literal backslash in `name` comes right before, if InfluxDB misreads it."""
    if "\\" in name:
        for pair in _MISREAD:
            if pair in name:
                return pair[1]
    return None


def _misread_names(events: Sequence[MetricEvent]) -> Found:
    """The events with a name InfluxDB would misread (see the module doc), by position."""
    found = []
    # A plain loop: this runs on every batch whose string values hold a quote.
    for index, event in enumerate(events):
        suspect = "\\" in event.measurement
        if not suspect:
            for key, value in event.tags.items():
                if "\\" in key or "\\" in value:
                    suspect = True
                    break
            else:
                for key in event.fields:
                    if "\\" in key:
                        suspect = True
                        break
        if suspect:
            error = _misread_name(event)
            if error is not None:
                found.append((index, error))
    return found


def _misread_name(event: MetricEvent) -> InvalidEventError | None:
    """The error for the first name of `event` InfluxDB would read as an escape, if any."""
    named = [("measurement", event.measurement)]
    for key, value in event.tags.items():
        named += [("tag key", key), (f"tag value of {key!r}", value)]
    named += [("field key", key) for key in event.fields]
    for what, name in named:
        char = _misread_char(name)
        if char is not None:
            return InvalidEventError(
                name,
                f"event {event.measurement!r}: {what} {name!r} has a backslash right "
                f"before {char!r}; InfluxDB and VictoriaMetrics read that as an escape, "
                "so the point would be lost or stored under another name",
            )
    return None


def _unsigned_fields(events: Sequence[MetricEvent]) -> Found:
    """The events with a `UInt` field (InfluxDB 1.x refuses them), by position."""
    found = []
    for index, event in enumerate(events):
        for key, value in event.fields.items():
            if isinstance(value, UInt):
                error = InvalidEventError(
                    key,
                    f"event {event.measurement!r}: field {key!r} is unsigned (UInt({int(value)})), "
                    "which InfluxDB 1.x cannot store; send it as an int or float",
                )
                found.append((index, error))
                break
    return found


def _unstorable_timestamps(events: Sequence[MetricEvent]) -> Found:
    """The events whose timestamp InfluxDB 1.x refuses (at ns precision), by position."""
    return [
        (
            index,
            InvalidEventError(
                None,
                f"event {event.measurement!r}: timestamp {event.timestamp_ns} is outside the "
                f"range InfluxDB 1.x stores ({_V1_MIN_NS} to {_V1_MAX_NS})",
            ),
        )
        for index, event in enumerate(events)
        if not _V1_MIN_NS <= event.timestamp_ns <= _V1_MAX_NS
    ]


def _multiline_strings(events: Sequence[MetricEvent]) -> Found:
    """The events with a string field holding a newline (refused with api='v2'), by position."""
    found = []
    for index, event in enumerate(events):
        for key, value in event.fields.items():
            if isinstance(value, str) and "\n" in value:
                error = InvalidEventError(
                    key,
                    f"event {event.measurement!r}: string field {key!r} holds a newline, which "
                    "line protocol cannot carry through api='v2' (VictoriaMetrics loses the "
                    "point, InfluxDB 2.x/3.x do not support it); replace the newlines, or "
                    "write to InfluxDB 1.x with api='v1'",
                )
                found.append((index, error))
                break
    return found
