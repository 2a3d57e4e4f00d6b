"""The query document: checked against its JSON Schema, then answered in one pass.

The document is the event store's (``query.schema.json`` beside this
module), in either of its two shapes::

    {"start": "2024-05-01T00:00:00Z", "end": 1714608000000,
     "data": [{"name": "product_view",
               "filters": [{"type": "eq", "key": "event_tag", "value": "product_view"}],
               "unique": ["user"]},
              {"name": "purchase",
               "keys": ["user"],
               "filters": [{"type": "eq", "key": "event_tag", "value": "purchase"}],
               "operations": [{"type": "unique", "key": "user"}]}],
     "funnel": {"type": "exact_order", "order": ["product_view", "purchase"],
                "match": ["user"]}}

A set's ``name`` is its label in the answer and the funnel: the set is
chosen by its filters alone (``keys``: properties every event of it has;
``filters``; and, optionally, ``measurement``, to narrow it to one
measurement). ``unique`` and ``operations`` (``{"type": "unique", "key":
K}``) both ask for unique counts. The funnel names its steps' sets in
``order`` or, in the second shape, ``data``. The answer::

    {"data": {"product_view": {"count": 120, "weighted_count": 240,
                               "unique": {"user": 31}},
              "purchase": {"count": 4, "weighted_count": 4, "unique": {"user": 4}}},
     "funnel": [{"step": "product_view", "count": 31, "conversion": 1.0,
                 "from_previous": 1.0, "median_seconds": null},
                {"step": "purchase", "count": 3, "conversion": 0.0967...,
                 "from_previous": 0.0967..., "median_seconds": 12.5}],
     "skipped": {"bytes": 0, "regions": []}}

``count`` is the number of events stored, ``weighted_count`` the sum of
their ``samplerate`` (see `Properties.weight`). A set may also ask for
``"breakdown": {"keys": [...], "n": 10}`` and ``"series": {"bucket":
"hour", "timezone": "Europe/Paris"}``; their rows carry the same counts.
The funnel's ``type`` is ``exact_order`` (the default) or ``strict``, and it
may have a ``window`` in seconds (see `metricstream.query._funnel`).
"""

from __future__ import annotations

import functools
import importlib.resources
from collections.abc import Sequence
from typing import Any

import orjson

from metricstream.exceptions import ConfigError
from metricstream.query._answer import answer
from metricstream.query._filters import parse_time, parse_window
from metricstream.query._funnel import funnel_sql
from metricstream.query._plan import DocumentPlan, SetPlan
from metricstream.query._sets import Builder, EventSet, Runner
from metricstream.query._sql import Params, Properties

__all__ = [
    "QueryDocumentError",
    "format_path",
    "plan_document",
    "query_schema",
    "run_document",
    "validate_document",
]

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


def plan_document(runner: Runner, document: object) -> DocumentPlan:
    """Check a document (its schema, names, filters, times) and read it.

    Raises:
        QueryDocumentError: Naming the path of the first problem in the document.
    """
    checked = validate_document(document)
    start, end = checked.get("start"), checked.get("end")
    _located("start", parse_time, start, "start")
    _located("end", parse_time, end, "end")
    sets: dict[str, SetPlan] = {}
    for index, item in enumerate(checked["data"]):
        where = f"data[{index}]"
        label = item["name"]
        if label in sets:
            raise QueryDocumentError(f"{where}.name", f"{label!r} names two sets")
        sets[label] = _set_plan(runner, item, where, start, end)
    spec = checked.get("funnel")
    if spec is None:
        return DocumentPlan(sets)
    field = "order" if "order" in spec else "data"
    steps = []
    for index, label in enumerate(spec[field]):
        if label not in sets:
            raise QueryDocumentError(
                f"funnel.{field}[{index}]", f"{label!r} is not the name of a set in data"
            )
        steps.append(sets[label].events)
    window = _located("funnel.window", parse_window, spec.get("window"))
    return DocumentPlan(
        sets, tuple(steps), tuple(spec["match"]), spec.get("type", "exact_order"), window
    )


def _set_plan(
    runner: Runner, item: dict[str, Any], where: str, start: object, end: object
) -> SetPlan:
    filters = [{"type": "all", "key": key} for key in item.get("keys", ())]
    filters += item.get("filters", [])
    shift = len(item.get("keys", ()))
    try:
        found = EventSet(runner, item.get("measurement"), filters, start, end, label=item["name"])
        found.check_patterns()
    except ConfigError as exc:
        raise QueryDocumentError(*_filter_path(where, exc.option, shift, str(exc))) from None
    unique = list(item.get("unique", []))
    unique += [op["key"] for op in item.get("operations", ()) if op["type"] == "unique"]
    series = None
    if "series" in item:
        bucket, zone = item["series"]["bucket"], item["series"].get("timezone", "UTC")
        _located(f"{where}.series", found.check_series, bucket, zone)
        series = (bucket, zone)
    breakdown = None
    if "breakdown" in item:
        breakdown = (tuple(item["breakdown"]["keys"]), item["breakdown"].get("n", 10))
    return SetPlan(item["name"], found, tuple(dict.fromkeys(unique)), breakdown, series)


def _filter_path(where: str, option: str | None, shift: int, message: str) -> tuple[str, str]:
    """The path and message of a set's error; filters made from ``keys`` come first."""
    text = message.split(": ", 1)[1]
    head, _, rest = (option or "").partition("]")
    if head.startswith("filters[") and shift:
        number = int(head[len("filters[") :])
        if number < shift:
            return f"{where}.keys[{number}]", text
        return f"{where}.filters[{number - shift}]{rest}", text
    return (f"{where}.{option}" if option else where), text


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
    plan = plan_document(runner, document)
    statements: list[tuple[str, str, Builder]] = []
    keys: set[str] = set()
    for label, item in plan.sets.items():
        found = item.events
        keys |= found.keys() | set(item.unique)
        statements.append((label, "summary", found.summary_sql(item.unique)))
        if item.breakdown is not None:
            by, n = item.breakdown
            keys |= set(by)
            statements.append((label, "breakdown", found.breakdown_sql(by, n, item.unique)))
        if item.series is not None:
            bucket, zone = item.series
            statements.append((label, "series", found.series_sql(bucket, zone, item.unique)))
    if plan.steps:
        keys |= set(plan.match)

        def build(properties: Properties, params: Params) -> str:
            return funnel_sql(
                plan.steps, plan.match, plan.order, plan.window_ns,
                properties=properties, params=params,
            )  # fmt: skip

        statements.append(("", "funnel", build))
    sets = [item.events for item in plan.sets.values()]

    def prefilter(properties: Properties, params: Params) -> str:
        return "(" + " OR ".join(s.condition(properties, params) for s in sets) + ")"

    builders = [builder for _, _, builder in statements]
    results, skipped = runner._rows(keys, builders, prefilter if len(builders) > 1 else None)
    return answer(plan, [(label, kind) for label, kind, _ in statements], results, skipped)
