"""The final accounting the commands print when they end, as text or JSON.

Each sink's outcome is one of:

- ``delivered``: every event it accepted is written (or it accepted none);
- ``spooled``: nothing dropped, but some events wait in the spool;
- ``partial``: some events written, some dropped;
- ``failed``: it accepted events and wrote none of them;
- ``unbalanced``: written, dropped, spooled and pending do not add up to
  what it accepted, or events are still pending (a defect, never expected).

A command exits 0 only when every sink's outcome is ``delivered``.
"""

from __future__ import annotations

from typing import Any, TextIO

import orjson

from metricstream.streamer import SinkHealth, StreamerHealth

__all__ = [
    "OUTCOMES",
    "accounting_document",
    "outcome",
    "print_accounting",
    "write_accounting",
    "write_json",
]

OUTCOMES = ("delivered", "spooled", "partial", "failed", "unbalanced")
"""Every outcome a sink's accounting can have, best first."""


def outcome(sink: SinkHealth) -> str:
    """The outcome (one of `OUTCOMES`) of one sink's final accounting."""
    settled = sink.events_written + sink.events_dropped + sink.spooled
    if settled != sink.events_accepted or sink.pending:
        return "unbalanced"
    if sink.events_written == sink.events_accepted:
        return "delivered"
    if sink.events_written == 0:
        return "failed"
    return "partial" if sink.events_dropped else "spooled"


def write_accounting(health: StreamerHealth, out: TextIO, *, title: str) -> bool:
    """Print each sink's final accounting under `title`, with its outcome.

    Returns:
        True when every sink delivered every event it accepted.
    """
    out.write(f"\n{title}:\n")
    for name, sink in health.sinks.items():
        reasons = _reasons(sink)
        spooled = f"  left in the spool {sink.spooled:,}" if sink.spooled else ""
        out.write(
            f"  {name:<12} written {sink.events_written:>10,}  dropped {sink.events_dropped:>8,}"
            f"{' (' + reasons + ')' if reasons else ''}{spooled}  pending {sink.pending:,}  "
            f"{_verdict(sink)}\n"
        )
    return all(outcome(sink) == "delivered" for sink in health.sinks.values())


def accounting_document(health: StreamerHealth) -> dict[str, Any]:
    """The final accounting as plain data: per sink its figures and outcome.

    ``delivered`` is True when every sink delivered every event it accepted
    (the commands' exit status 0).
    """
    sinks = {
        name: {
            "accepted": sink.events_accepted,
            "written": sink.events_written,
            "dropped": sink.events_dropped,
            "dropped_by_reason": {r: n for r, n in sink.dropped_by_reason.items() if n},
            "spooled": sink.spooled,
            "pending": sink.pending,
            "outcome": outcome(sink),
            "last_error": sink.last_error,
        }
        for name, sink in health.sinks.items()
    }
    delivered = all(item["outcome"] == "delivered" for item in sinks.values())
    return {"events_sent": health.events_accepted, "delivered": delivered, "sinks": sinks}


def print_accounting(
    health: StreamerHealth,
    out: TextIO,
    *,
    title: str,
    as_json: bool,
    extra: dict[str, Any] | None = None,
) -> bool:
    """Print the final accounting as text (under `title`) or as a JSON document.

    Args:
        health: The streamer's health after its shutdown.
        out: Where to print.
        title: The heading of the text.
        as_json: Print `accounting_document` (with `extra` merged in) instead.
        extra: More fields of the JSON document (what the command read or sent).

    Returns:
        True when every sink delivered every event it accepted.
    """
    if not as_json:
        return write_accounting(health, out, title=title)
    document = {**(extra or {}), **accounting_document(health)}
    write_json(document, out)
    return bool(document["delivered"])


def write_json(data: object, out: TextIO) -> None:
    """Print `data` as an indented JSON document and a newline."""
    out.write(orjson.dumps(data, option=orjson.OPT_INDENT_2).decode() + "\n")


def _reasons(sink: SinkHealth) -> str:
    return ", ".join(f"{r} {n:,}" for r, n in sink.dropped_by_reason.items() if n)


def _verdict(sink: SinkHealth) -> str:
    kind = outcome(sink)
    if kind == "delivered":
        return "OK: every event written" if sink.events_accepted else "OK: nothing to write"
    if kind == "spooled":
        return f"NOT DONE: {sink.spooled:,} of {sink.events_accepted:,} left in the spool"
    if kind == "partial":
        return f"INCOMPLETE: {sink.events_dropped:,} of {sink.events_accepted:,} dropped"
    if kind == "failed":
        return f"FAILED: none of {sink.events_accepted:,} written"
    return "MISMATCH: written + dropped + spooled + pending != sent"
