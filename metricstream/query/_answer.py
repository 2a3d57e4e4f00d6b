"""The answer to a query document, from the rows of its statements."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from metricstream.query._funnel import funnel_steps
from metricstream.query._plan import DocumentPlan, SetPlan
from metricstream.query._results import Skipped
from metricstream.query._sql import decode_value_key

__all__ = ["answer"]


def _counts(row: Sequence[Any], at: int, unique: Sequence[str]) -> dict[str, Any]:
    """``count``, ``weighted_count`` and ``unique`` from the columns of `row` from `at` on."""
    return {
        "count": int(row[at]),
        "weighted_count": int(row[at + 1] or 0),
        "unique": {key: int(row[at + 2 + i]) for i, key in enumerate(unique)},
    }


def _breakdown(item: SetPlan, rows: list[tuple[Any, ...]]) -> list[dict[str, Any]]:
    assert item.breakdown is not None
    width = len(item.breakdown[0])
    return [
        {"values": [decode_value_key(v) for v in row[:width]], **_counts(row, width, item.unique)}
        for row in rows
    ]


def _series(item: SetPlan, rows: list[tuple[Any, ...]]) -> list[dict[str, Any]]:
    import zoneinfo

    assert item.series is not None
    zone = zoneinfo.ZoneInfo(item.series[1])
    return [
        {"start": row[0].replace(tzinfo=zone).isoformat(), **_counts(row, 1, item.unique)}
        for row in rows
    ]


def answer(
    plan: DocumentPlan,
    statements: Sequence[tuple[str, str]],
    results: list[list[tuple[Any, ...]]],
    skipped: tuple[Skipped, ...],
) -> dict[str, Any]:
    """Assemble the answer (see `metricstream.query._document`).

    Args:
        plan: The document, read.
        statements: For each statement, in order: its set's label and its
            kind (``summary``, ``breakdown``, ``series`` or ``funnel``).
        results: The rows of each statement.
        skipped: What the query stepped over.
    """
    data: dict[str, dict[str, Any]] = {}
    found: dict[str, Any] = {"data": data}
    for (label, kind), rows in zip(statements, results, strict=True):
        if kind == "funnel":
            found["funnel"] = [
                {
                    "step": step.name,
                    "count": step.count,
                    "conversion": step.conversion,
                    "from_previous": step.from_previous,
                    "median_seconds": step.median_seconds,
                }
                for step in funnel_steps(plan.steps, rows)
            ]
        elif kind == "summary":
            data[label] = _counts(rows[0], 0, plan.sets[label].unique)
        elif kind == "breakdown":
            data[label]["breakdown"] = _breakdown(plan.sets[label], rows)
        else:
            data[label]["series"] = _series(plan.sets[label], rows)
    found["skipped"] = {
        "bytes": sum(item.length for item in skipped),
        "regions": [item.to_dict() for item in skipped],
    }
    return found
