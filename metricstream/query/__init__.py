"""Queries over JSON Lines archives, on DuckDB: event sets, unique counts, breakdowns, funnels.

Needs the ``query`` extra (``pip install 'metricstream[query]'``)::

    from metricstream.query import Archive, eq

    archive = Archive("metricstream-demo/events.jsonl.zst")   # rotated .N files included
    views = archive.events("page_view", filters=[eq("utm_source", "google")])
    views.count().value                    # events
    views.unique("user").value             # distinct users
    views.breakdown("path", n=5, unique=["user"]).value
    views.series("hour", timezone="Europe/Paris").value
    archive.funnel([views, archive.events("click"), archive.events("conversion")],
                   match=["user"], order="exact_order", window=3600).value
    archive.run({"data": [{"name": "signup", "unique": ["user"]}]})   # the query document

Properties resolve as everywhere in metricstream: ``measurement`` (also
``event``), then the tags, then the fields. Filters are described in
`metricstream.query._filters`, set operations in `EventSet`, funnels (ties,
repeats, strict order, windows) in `metricstream.query._funnel`, and the
query document in `metricstream.query._document` and `query_schema`.

Damage is never read and never hidden: each result's ``skipped`` lists the
byte ranges (file, offset, length, reason) of torn or corrupt frames and
lines that the query stepped over.

Queries are answered from a cache of what they read (measurement, timestamp
and the properties used, as columns in a DuckDB file), which each query
brings up to date with what the archive gained; ``Archive(..., cache=False)``
reads the archive every time. Where the cache lives and how it follows the
archive: `metricstream.query._cache`; `clear_caches` removes caches.
"""

from __future__ import annotations

from metricstream.query._archive import Archive, QueryError
from metricstream.query._cache import CacheStats, QueryCache, clear_caches
from metricstream.query._document import QueryDocumentError, query_schema
from metricstream.query._eventid import EVENT_ID_KEY, format_event_id, parse_event_id
from metricstream.query._filters import (
    FILTER_TYPES,
    Filter,
    eq,
    gt,
    gte,
    isin,
    lt,
    lte,
    neq,
    present,
    regex,
)
from metricstream.query._funnel import ORDERS
from metricstream.query._results import (
    BreakdownRow,
    FunnelStep,
    KeyCount,
    Result,
    SeriesPoint,
    Skipped,
    Value,
    ValueCount,
)
from metricstream.query._sets import BUCKETS, EventSet
from metricstream.query._table import format_answer
from metricstream.query._where import parse_where

__all__ = [
    "BUCKETS",
    "EVENT_ID_KEY",
    "FILTER_TYPES",
    "ORDERS",
    "Archive",
    "BreakdownRow",
    "CacheStats",
    "EventSet",
    "Filter",
    "FunnelStep",
    "KeyCount",
    "QueryCache",
    "QueryDocumentError",
    "QueryError",
    "Result",
    "SeriesPoint",
    "Skipped",
    "Value",
    "ValueCount",
    "clear_caches",
    "eq",
    "format_answer",
    "format_event_id",
    "gt",
    "gte",
    "isin",
    "lt",
    "lte",
    "neq",
    "parse_event_id",
    "parse_where",
    "present",
    "query_schema",
    "regex",
]
