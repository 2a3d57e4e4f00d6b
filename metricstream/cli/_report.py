"""The accounting table the commands print when they end."""

from __future__ import annotations

from typing import TextIO

from metricstream.streamer.health import StreamerHealth

__all__ = ["write_accounting"]


def write_accounting(health: StreamerHealth, out: TextIO, *, title: str) -> bool:
    """Print each sink's final accounting under `title`.

    A sink balances when every event it accepted is written, dropped (with a
    reason) or left in the spool, and none is pending.

    Returns:
        True when every sink balances.
    """
    balanced = True
    out.write(f"\n{title}:\n")
    for name, sink in health.sinks.items():
        reasons = ", ".join(f"{r} {n:,}" for r, n in sink.dropped_by_reason.items() if n)
        settled = sink.events_written + sink.events_dropped + sink.spooled
        ok = settled == sink.events_accepted and sink.pending == 0
        balanced = balanced and ok
        spooled = f"  left in the spool {sink.spooled:,}" if sink.spooled else ""
        out.write(
            f"  {name:<12} written {sink.events_written:>10,}  dropped {sink.events_dropped:>8,}"
            f"{' (' + reasons + ')' if reasons else ''}{spooled}  pending {sink.pending:,}  "
            f"{_verdict(ok, spooled=bool(sink.spooled))}\n"
        )
    return balanced


def _verdict(ok: bool, *, spooled: bool) -> str:
    if not ok:
        return "MISMATCH"
    return "OK: written + dropped + spooled == sent" if spooled else "OK: written + dropped == sent"
