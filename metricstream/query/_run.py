"""Running statements over ``ev``: the connection settings, the statements, and read failures.

Both ways of answering (reading the archive, reading the cache) come here:
they give the SELECT that produces ``ev`` and the `Properties` that resolve
keys over it, and get back the rows of each statement.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from metricstream.exceptions import MetricStreamError
from metricstream.query._files import FileCheck, verify
from metricstream.query._scan import Source
from metricstream.query._sets import Builder
from metricstream.query._sql import Params, Properties

__all__ = ["QueryError", "configure", "execute", "read_errors", "verify_suspects"]


class QueryError(MetricStreamError):
    """DuckDB could not answer a query (the message says why)."""


def configure(cursor: Any) -> None:
    """Apply the per-connection settings to `cursor`."""
    cursor.execute("SET TimeZone = 'UTC'")
    # Row estimates of common table expressions are guesses; a nested-loop
    # ASOF join chosen on a small guess takes quadratic time.
    cursor.execute("SET asof_loop_join_threshold = 0")


def read_errors(duckdb: Any) -> tuple[type[Exception], ...]:
    """The DuckDB errors that reading damaged archive bytes raises."""
    return (duckdb.IOException, duckdb.InvalidInputException, duckdb.ConversionException)


def execute(
    cursor: Any,
    properties: Properties,
    scan: Callable[[Params], str],
    builders: Sequence[Builder],
    prefilter: Builder | None,
) -> list[list[tuple[Any, ...]]]:
    """Run `builders` over the ``ev`` rows `scan` selects; return the rows of each.

    With one statement and no `prefilter`, or over a relation cheap to scan
    (the cache's columns), each statement reads ``ev`` as a common table
    expression of its own; otherwise the rows passing `prefilter` are loaded
    into a temporary table first and every statement reads it.
    """
    if (len(builders) == 1 and prefilter is None) or properties.scans_cheaply:
        return [_with_ev(cursor, properties, scan, builder) for builder in builders]
    params = Params()
    relation = scan(params)
    where = prefilter(properties, params) if prefilter is not None else "true"
    cursor.execute("DROP TABLE IF EXISTS ev")
    cursor.execute(
        f"CREATE TEMP TABLE ev AS SELECT * FROM ({relation}) WHERE {where}", params.values
    )
    results = []
    for builder in builders:
        own = Params()
        statement = builder(properties, own)
        results.append(cursor.execute(statement, own.values).fetchall())
    cursor.execute("DROP TABLE ev")
    return results


def _with_ev(
    cursor: Any, properties: Properties, scan: Callable[[Params], str], builder: Builder
) -> list[tuple[Any, ...]]:
    """Run one statement over ``ev`` given as a common table expression."""
    params = Params()
    relation = scan(params)
    statement = builder(properties, params)
    # A relation cheap to scan is scanned by each reader; one that reads
    # the archive is read once (DuckDB keeps a CTE read twice).
    head = f"WITH ev AS {'NOT MATERIALIZED ' if properties.scans_cheaply else ''}({relation})"
    if statement.startswith("WITH "):
        statement = f"{head}, {statement[len('WITH ') :]}"
    else:
        statement = f"{head} {statement}"
    rows: list[tuple[Any, ...]] = cursor.execute(statement, params.values).fetchall()
    return rows


def verify_suspects(
    checks: list[FileCheck], sources: list[Source], exc: Exception
) -> dict[str, FileCheck]:
    """Check in full the files DuckDB failed on; return their new checks by path.

    Raises:
        QueryError: When every file was already checked in full, so the
            failure is not damage the archive can skip.
    """
    message = str(exc)
    named = {source.check.path for source in sources if source.path in message}
    suspects = [c for c in checks if not c.verified and (c.path in named or not named)]
    if not suspects:
        suspects = [c for c in checks if not c.verified]
    if not suspects:
        raise QueryError(f"DuckDB could not read the archive: {message}") from exc
    return {check.path: verify(check) for check in suspects}
