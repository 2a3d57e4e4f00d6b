"""Event ids: the order of events that share a timestamp.

An event id is 32 lowercase hexadecimal digits, three numbers in a row:

- 16 digits: the event's timestamp in nanoseconds plus 2**63 (so that ids
  of earlier events, before 1970 included, sort first);
- 6 digits: the generation, a number the event store takes once per worker
  process it starts (never twice for one archive);
- 10 digits: the worker's count of the events it received, from 1.

Compared as text, ids sort by timestamp, then by generation, then by
arrival within a worker: that is the order funnels follow (see
`metricstream.query._funnel`). An ``event_id`` property whose first 16
digits are not the event's own timestamp (a UUID an application chose, say)
is not an event id for the funnel's order.
"""

from __future__ import annotations

import re

from metricstream.exceptions import ConfigError

__all__ = [
    "COUNTER_LIMIT",
    "EVENT_ID_KEY",
    "GENERATION_LIMIT",
    "TAIL_SCALE",
    "format_event_id",
    "order_sql",
    "parse_event_id",
]

EVENT_ID_KEY = "event_id"
"""The property holding an event's id."""

GENERATION_LIMIT = 1 << 24
"""Generations are below this number."""

COUNTER_LIMIT = 1 << 40
"""A worker's counter stays below this number."""

TAIL_SCALE = 1 << 64
"""An event's place in funnels is its timestamp times this, plus its id's last 64 bits."""

_OFFSET = 1 << 63
_PATTERN = re.compile(r"[0-9a-f]{32}")


def format_event_id(timestamp_ns: int, generation: int, counter: int) -> str:
    """Return the event id of the `counter`-th event of a worker in `generation`.

    Raises:
        ConfigError: If a number is out of range.
    """
    if not -_OFFSET <= timestamp_ns < _OFFSET:
        raise ConfigError("timestamp_ns", f"{timestamp_ns} is outside the int64 range")
    if not 1 <= generation < GENERATION_LIMIT:
        raise ConfigError("generation", f"expected 1 to {GENERATION_LIMIT - 1}, not {generation}")
    if not 1 <= counter < COUNTER_LIMIT:
        raise ConfigError("counter", f"expected 1 to {COUNTER_LIMIT - 1}, not {counter}")
    return f"{timestamp_ns + _OFFSET:016x}{generation:06x}{counter:010x}"


def parse_event_id(text: str) -> tuple[int, int, int]:
    """Return the (timestamp_ns, generation, counter) of an event id.

    Raises:
        ConfigError: If `text` is not an event id.
    """
    if not isinstance(text, str) or _PATTERN.fullmatch(text) is None:
        raise ConfigError("event_id", f"expected 32 lowercase hex digits, not {text!r}")
    return int(text[:16], 16) - _OFFSET, int(text[16:22], 16), int(text[22:], 16)


def order_sql(ident: str, ts: str = "ts") -> str:
    """A HUGEINT that orders rows as funnels do: by timestamp, then event id.

    Rows at one timestamp without an event id are equal (not in order);
    rows with one follow them, in the order of their ids.

    Args:
        ident: The column (or expression, read three times) of the event id text.
        ts: The column of the timestamp in nanoseconds.
    """
    head = f"TRY_CAST('0x' || substr({ident}, 1, 16) AS UBIGINT)"
    tail = f"TRY_CAST('0x' || substr({ident}, 17, 16) AS UBIGINT)"
    valid = (
        f"regexp_full_match({ident}, '[0-9a-f]{{32}}') "
        f"AND {head} = CAST({ts} AS HUGEINT) + {_OFFSET}"
    )
    return (
        f"(CAST({ts} AS HUGEINT) * {TAIL_SCALE} + COALESCE(CASE WHEN {valid} THEN {tail} END, 0))"
    )
