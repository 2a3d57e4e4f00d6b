"""Readable tables of a query document's answer (what ``metricstream query`` prints)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

__all__ = ["format_answer"]


def _table(header: Sequence[str], rows: Sequence[Sequence[str]], numeric_from: int) -> list[str]:
    widths = [max(len(row[i]) for row in [header, *rows]) for i in range(len(header))]
    lines = []
    for row in [header, *rows]:
        cells = [
            cell.rjust(widths[i]) if i >= numeric_from else cell.ljust(widths[i])
            for i, cell in enumerate(row)
        ]
        lines.append("  " + "  ".join(cells).rstrip())
    return lines


def _duration(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    if seconds < 60:
        return f"{seconds:.1f}s"
    minutes, rest = divmod(round(seconds), 60)
    if minutes < 60:
        return f"{minutes}m {rest:02d}s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h {minutes:02d}m" if hours < 48 else f"{hours // 24}d {hours % 24:02d}h"


def _value(value: object) -> str:
    return value if isinstance(value, str) else repr(value)


def _set_lines(label: str, item: dict[str, Any], spec: dict[str, Any]) -> list[str]:
    keys = list(item["unique"])
    lines: list[str] = []
    if "breakdown" in item:
        by = spec["breakdown"]["keys"]
        lines += ["", f"{label} by {', '.join(by)} (top {spec['breakdown'].get('n', 10)})"]
        rows = [
            [*(_value(v) for v in row["values"]), f"{row['count']:,}"]
            + [f"{row['unique'][k]:,}" for k in keys]
            for row in item["breakdown"]
        ]
        lines += _table([*by, "count", *(f"unique {k}" for k in keys)], rows, len(by))
    if "series" in item:
        lines += [
            "",
            f"{label} per {spec['series']['bucket']} ({spec['series'].get('timezone', 'UTC')})",
        ]
        rows = [
            [point["start"], f"{point['count']:,}"] + [f"{point['unique'][k]:,}" for k in keys]
            for point in item["series"]
        ]
        lines += _table(["start", "count", *(f"unique {k}" for k in keys)], rows, 1)
    return lines


def format_answer(document: dict[str, Any], answer: dict[str, Any]) -> str:
    """Return the answer to `document` as text tables."""
    specs = {item["name"]: item for item in document["data"]}
    keys = sorted({key for item in answer["data"].values() for key in item["unique"]})
    weighted = any(item["weighted_count"] != item["count"] for item in answer["data"].values())
    rows = [
        [label, f"{item['count']:,}"]
        + ([f"{item['weighted_count']:,}"] if weighted else [])
        + [f"{item['unique'][k]:,}" if k in item["unique"] else "" for k in keys]
        for label, item in answer["data"].items()
    ]
    header = ["set", "count", *(["weighted"] if weighted else []), *(f"unique {k}" for k in keys)]
    lines = _table(header, rows, 1)
    for label, item in answer["data"].items():
        lines += _set_lines(label, item, specs[label])
    if "funnel" in answer:
        funnel = document["funnel"]
        lines += [
            "",
            f"funnel ({funnel.get('type', 'exact_order')}, matched on {', '.join(funnel['match'])}"
            + (f", within {_duration(funnel['window'])}" if "window" in funnel else "")
            + ")",
        ]
        steps = [
            [
                step["step"],
                f"{step['count']:,}",
                f"{step['conversion']:.1%}",
                f"{step['from_previous']:.1%}",
                _duration(step["median_seconds"]),
            ]
            for step in answer["funnel"]
        ]
        lines += _table(["step", "count", "conversion", "from previous", "median time"], steps, 1)
    skipped = answer["skipped"]
    if skipped["regions"]:
        lines += [
            "",
            f"skipped {len(skipped['regions'])} damaged region(s), {skipped['bytes']:,} bytes:",
        ]
        lines += [
            f"  {r['file']} at byte {r['offset']:,} ({r['length']:,} bytes): {r['reason']}"
            for r in skipped["regions"]
        ]
    return "\n".join(lines) + "\n"
