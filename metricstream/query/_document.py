"""The query document: checked against its JSON Schema, then answered in one pass.

The document (``query.schema.json`` beside this module)::

    {"start": "2024-05-01T00:00:00Z", "end": 1714608000000,
     "data": [{"name": "page_view",
               "filters": [{"type": "eq", "key": "utm_source", "value": "google"}],
               "unique": ["user"]},
              {"name": "signup", "unique": ["user"]}],
     "funnel": {"type": "exact_order", "order": ["page_view", "signup"],
                "match": ["user"]}}

answers::

    {"data": {"page_view": {"count": 120, "unique": {"user": 31}},
              "signup": {"count": 4, "unique": {"user": 4}}},
     "funnel": [{"step": "page_view", "count": 31, "conversion": 1.0,
                 "from_previous": 1.0, "median_seconds": null},
                {"step": "signup", "count": 3, "conversion": 0.0967...,
                 "from_previous": 0.0967..., "median_seconds": 12.5}],
     "skipped": {"bytes": 0, "regions": []}}

A set may also ask for ``"breakdown": {"keys": [...], "n": 10}`` and
``"series": {"bucket": "hour", "timezone": "Europe/Paris"}``, and be given a
``"label"`` (its name in the answer and the funnel, by default its ``name``).
The funnel's ``type`` is ``exact_order`` (the default) or ``strict``, and it
may have a ``window`` in seconds.
"""

from __future__ import annotations

import functools
import importlib.resources
import zoneinfo
from collections.abc import Sequence
from typing import Any

import orjson

from metricstream.exceptions import ConfigError
from metricstream.query._filters import parse_time, parse_window
from metricstream.query._funnel import funnel_sql, funnel_steps
from metricstream.query._results import Skipped
from metricstream.query._sets import Builder, EventSet, Runner
from metricstream.query._sql import Params, Properties, decode_value_key

__all__ = ["QueryDocumentError", "format_path", "query_schema", "run_document", "validate_document"]

SCHEMA_FILE = "query.schema.json"


class QueryDocumentError(ConfigError):
    """A query document is malformed.

    Attributes:
        option: The path of the offending part, e.g. ``data[1].filters[0].type``.
    """


@functools.cache
def query_schema() -> dict[str, Any]:
    """Return the JSON Schema of the query document (shipped with the package)."""
    text = importlib.resources.files("metricstream.query").joinpath(SCHEMA_FILE).read_bytes()
    schema: dict[str, Any] = orjson.loads(text)
    return schema


def format_path(parts: Sequence[object]) -> str:
    """Spell a path into the document: ``data[1].filters[0].type`` (``document`` for the root)."""
    text = ""
    for part in parts:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text or "document"


def validate_document(document: object) -> dict[str, Any]:
    """Check a document against the JSON Schema; return it.

    Raises:
        QueryDocumentError: Naming the path of the most relevant problem.
    """
    import jsonschema
    from jsonschema.exceptions import best_match

    validator = jsonschema.Draft202012Validator(query_schema())
    error = best_match(validator.iter_errors(document))
    if error is not None:
        raise QueryDocumentError(format_path(list(error.absolute_path)), error.message)
    assert isinstance(document, dict)
    return document


def _sets(runner: Runner, document: dict[str, Any]) -> dict[str, EventSet]:
    start, end = document.get("start"), document.get("end")
    _located("start", parse_time, start, "start")
    _located("end", parse_time, end, "end")
    sets: dict[str, EventSet] = {}
    for index, item in enumerate(document["data"]):
        where = f"data[{index}]"
        label = item.get("label", item["name"])
        if label in sets:
            raise QueryDocumentError(
                f"{where}.{'label' if 'label' in item else 'name'}",
                f"{label!r} names two sets; give one of them a 'label'",
            )
        found = _located(
            where, EventSet, runner, item["name"], item.get("filters", ()), start, end, label=label
        )
        _located(where, found.check_patterns)
        if "series" in item:
            series = item["series"]
            _located(
                f"{where}.series",
                found.check_series,
                series["bucket"],
                series.get("timezone", "UTC"),
            )
        sets[label] = found
    return sets


def _located(where: str, func: Any, *args: Any, **kwargs: Any) -> Any:
    """Call `func`; re-raise a `ConfigError` as a `QueryDocumentError` under `where`."""
    try:
        return func(*args, **kwargs)
    except QueryDocumentError:
        raise
    except ConfigError as exc:
        path = where if exc.option == where else f"{where}.{exc.option}"
        raise QueryDocumentError(path, str(exc).split(": ", 1)[1]) from None


def run_document(runner: Runner, document: object) -> dict[str, Any]:
    """Answer a query document (see the module documentation).

    Raises:
        QueryDocumentError: Naming the path of the first problem in the document.
    """
    checked = validate_document(document)
    sets = _sets(runner, checked)
    plan: list[tuple[str, str, Builder]] = []
    keys: set[str] = set()
    for item in checked["data"]:
        label = item.get("label", item["name"])
        found = sets[label]
        unique = item.get("unique", [])
        keys |= found.keys() | set(unique)
        plan.append((label, "summary", found.summary_sql(unique)))
        if "breakdown" in item:
            spec = item["breakdown"]
            keys |= set(spec["keys"])
            plan.append(
                (label, "breakdown", found.breakdown_sql(spec["keys"], spec.get("n", 10), unique))
            )
        if "series" in item:
            spec = item["series"]
            plan.append(
                (
                    label,
                    "series",
                    found.series_sql(spec["bucket"], spec.get("timezone", "UTC"), unique),
                )
            )
    steps = _funnel_plan(checked.get("funnel"), sets, plan, keys)

    def prefilter(properties: Properties, params: Params) -> str:
        return "(" + " OR ".join(s.condition(properties, params) for s in sets.values()) + ")"

    builders = [builder for _, _, builder in plan]
    results, skipped = runner._rows(keys, builders, prefilter if len(builders) > 1 else None)
    return _answer(checked, plan, results, steps, skipped)


def _funnel_plan(
    spec: dict[str, Any] | None,
    sets: dict[str, EventSet],
    plan: list[tuple[str, str, Builder]],
    keys: set[str],
) -> list[EventSet]:
    if spec is None:
        return []
    steps = []
    for index, label in enumerate(spec["order"]):
        if label not in sets:
            raise QueryDocumentError(
                f"funnel.order[{index}]", f"{label!r} is not the name of a set in data"
            )
        steps.append(sets[label])
    window = _located("funnel.window", parse_window, spec.get("window"))
    match = list(spec["match"])
    order = spec.get("type", "exact_order")
    keys.update(match)

    def build(properties: Properties, params: Params) -> str:
        return funnel_sql(steps, match, order, window, properties=properties, params=params)

    plan.append(("", "funnel", build))
    return steps


def _answer(
    document: dict[str, Any],
    plan: list[tuple[str, str, Builder]],
    results: list[list[tuple[Any, ...]]],
    steps: list[EventSet],
    skipped: tuple[Skipped, ...],
) -> dict[str, Any]:
    specs = {item.get("label", item["name"]): item for item in document["data"]}
    data: dict[str, dict[str, Any]] = {}
    answer: dict[str, Any] = {"data": data}
    for (label, kind, _), rows in zip(plan, results, strict=True):
        if kind == "funnel":
            answer["funnel"] = [
                {
                    "step": step.name,
                    "count": step.count,
                    "conversion": step.conversion,
                    "from_previous": step.from_previous,
                    "median_seconds": step.median_seconds,
                }
                for step in funnel_steps(steps, rows)
            ]
            continue
        keys = specs[label].get("unique", [])
        if kind == "summary":
            row = rows[0]
            data[label] = {
                "count": int(row[0]),
                "unique": {k: int(row[1 + i]) for i, k in enumerate(keys)},
            }
        elif kind == "breakdown":
            width = len(rows[0]) - 1 - len(keys) if rows else 0
            data[label]["breakdown"] = [
                {
                    "values": [decode_value_key(v) for v in row[:width]],
                    "count": int(row[width]),
                    "unique": {k: int(row[width + 1 + i]) for i, k in enumerate(keys)},
                }
                for row in rows
            ]
        else:
            zone = zoneinfo.ZoneInfo(specs[label]["series"].get("timezone", "UTC"))
            data[label]["series"] = [
                {
                    "start": row[0].replace(tzinfo=zone).isoformat(),
                    "count": int(row[1]),
                    "unique": {k: int(row[2 + i]) for i, k in enumerate(keys)},
                }
                for row in rows
            ]
    answer["skipped"] = {
        "bytes": sum(item.length for item in skipped),
        "regions": [item.to_dict() for item in skipped],
    }
    return answer
