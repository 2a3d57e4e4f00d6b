"""`Archive`: the JSON Lines files a `JsonLinesSink` wrote, queried with DuckDB."""

from __future__ import annotations

import os
import re
import tempfile
import threading
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from metricstream.exceptions import ConfigError, MetricStreamError
from metricstream.query._files import FileCheck, check_file, discover, verify
from metricstream.query._filters import Filter
from metricstream.query._funnel import run_funnel
from metricstream.query._results import FunnelStep, Result, Skipped
from metricstream.query._scan import Source, scan_sql, write_sources
from metricstream.query._sets import Builder, EventSet
from metricstream.query._sql import Params, Properties

__all__ = ["Archive", "QueryError"]


class QueryError(MetricStreamError):
    """DuckDB could not answer a query (the message says why)."""


def _duckdb() -> Any:
    try:
        import duckdb
    except ImportError:  # pragma: no cover - the query extra is missing
        raise ConfigError(
            "duckdb", "queries need DuckDB: pip install 'metricstream[query]'"
        ) from None
    return duckdb


class Archive:
    """The files of a JSON Lines archive, ready for queries.

    Every query first checks the files (only the bytes added since the last
    query, when a file just grew), then lets DuckDB read the intact frames and
    lines only; what it skipped is in the result's ``skipped``.

    Args:
        paths: A file, the current file of a rotated series (its ``.N`` files
            are included), or a glob; or a list of them.
        threads: DuckDB's threads (default: one per CPU).

    Raises:
        FileNotFoundError: If a path names no file, or a glob matches none.
        ConfigError: If no path is given, or DuckDB is not installed.

    Example::

        archive = Archive("metricstream-demo/events.jsonl.zst")
        views = archive.events("page_view", filters=[eq("utm_source", "google")])
        views.count().value, views.unique("user").value
        archive.funnel([views, archive.events("signup")], match=["user"])
    """

    def __init__(
        self,
        paths: str | os.PathLike[str] | Iterable[str | os.PathLike[str]],
        *,
        threads: int | None = None,
    ) -> None:
        self._duckdb = _duckdb()
        items = [paths] if isinstance(paths, str | os.PathLike) else list(paths)
        self._patterns = [os.fspath(item) for item in items]
        self.files: list[Path] = discover(self._patterns)
        if threads is not None and (
            isinstance(threads, bool) or not isinstance(threads, int) or threads < 1
        ):
            raise ConfigError("threads", f"expected a positive int, not {threads!r}")
        self.threads: int = threads or os.cpu_count() or 1
        self._checks: dict[str, FileCheck] = {}
        self._lock = threading.Lock()
        self._connection: Any = None

    def __repr__(self) -> str:
        return f"Archive({self._patterns!r}, files={len(self.files)})"

    def __enter__(self) -> Archive:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def close(self) -> None:
        """Close the DuckDB connection (a later query opens a new one)."""
        with self._lock:
            connection, self._connection = self._connection, None
        if connection is not None:
            connection.close()

    def events(
        self,
        name: str | None = None,
        filters: Iterable[Filter | Mapping[str, object]] = (),
        start: object = None,
        end: object = None,
        *,
        label: str | None = None,
    ) -> EventSet:
        """Return the set of events named `name` passing `filters` in ``[start, end)``.

        Args:
            name: The measurement (event name); None for every event.
            filters: `Filter` objects (`eq`, `neq`, `isin`, `regex`,
                `present`, `gt`, `gte`, `lt`, `lte`) or ``{"type", "key",
                "value"}`` mappings as in the query document.
            start: A `datetime`, ISO 8601 text or unix milliseconds.
            end: Likewise; the end is excluded.
            label: The set's name in results (default: `name`).

        Raises:
            ConfigError: Naming the filter or time that is wrong.
        """
        return EventSet(self, name, filters, start, end, label=label)

    def funnel(
        self,
        steps: Sequence[EventSet],
        match: str | Sequence[str],
        order: str = "exact_order",
        window: object = None,
    ) -> Result[list[FunnelStep]]:
        """How many match-key combinations went through the steps in order.

        See `metricstream.query._funnel` for the exact rules (ties, repeats,
        strict order, the window).

        Args:
            steps: The event sets, in order.
            match: The keys whose values identify whom the funnel follows.
            order: ``"exact_order"`` or ``"strict"``.
            window: None, seconds or a `timedelta`: the longest time from a
                path's first step to its last.

        Raises:
            ConfigError: If an argument is invalid.
        """
        return run_funnel(steps, match, order, window)

    def run(self, document: object) -> dict[str, Any]:
        """Answer a query document (see `metricstream.query` and its JSON Schema).

        Raises:
            QueryDocumentError: Naming the path of the first problem in the document.
        """
        from metricstream.query._document import run_document

        return run_document(self, document)

    def check(self) -> tuple[Skipped, ...]:
        """Check the files now; return what a query would skip.

        Raises:
            OSError: If a file cannot be read.
        """
        with self._lock:
            return _skipped(self._refresh())

    # --- what event sets and funnels run on ----------------------------------

    def _probe(self, sql: str, values: Mapping[str, object], option: str) -> None:
        duckdb = self._duckdb
        with self._lock:
            cursor = self._connect()
        try:
            cursor.execute(sql, dict(values)).fetchall()
        except duckdb.Error as exc:
            raise ConfigError(option, str(exc).splitlines()[0]) from None
        finally:
            cursor.close()

    def _rows(
        self, keys: Iterable[str], builders: Sequence[Builder], prefilter: Builder | None = None
    ) -> tuple[list[list[tuple[Any, ...]]], tuple[Skipped, ...]]:
        """Run statements over the archive's ``ev`` rows; return their rows and the damage.

        With one statement and no `prefilter`, ``ev`` is a common table
        expression read once; otherwise the rows passing `prefilter` are
        loaded into a temporary table first and every statement reads it.
        """
        duckdb = self._duckdb
        wanted = set(keys)
        with self._lock:
            checks = self._refresh()
            cursor = self._connect()
        try:
            while True:
                with tempfile.TemporaryDirectory(prefix="metricstream-query-") as directory:
                    sources = write_sources(checks, Path(directory), self.threads)
                    try:
                        rows = _execute(cursor, sources, wanted, builders, prefilter)
                    except (
                        duckdb.IOException,
                        duckdb.InvalidInputException,
                        duckdb.ConversionException,
                    ) as exc:
                        checks = self._verify_suspects(checks, sources, exc)
                        continue
                return rows, _skipped(checks)
        finally:
            cursor.close()

    def _verify_suspects(
        self, checks: list[FileCheck], sources: list[Source], exc: Exception
    ) -> list[FileCheck]:
        """Check in full the files DuckDB failed on; return the new checks.

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
        with self._lock:
            for check in suspects:
                self._checks[check.path] = verify(check)
            return [self._checks.get(check.path, check) for check in checks]

    def _connect(self) -> Any:
        """Return a new cursor (its own DuckDB connection) with the query settings."""
        if self._connection is None:
            connection = self._duckdb.connect(
                ":memory:",
                config={"threads": self.threads, "preserve_insertion_order": False},
            )
            self._connection = connection
        cursor = self._connection.cursor()
        cursor.execute("SET TimeZone = 'UTC'")
        # Row estimates of common table expressions are guesses; a nested-loop
        # ASOF join chosen on a small guess takes quadratic time.
        cursor.execute("SET asof_loop_join_threshold = 0")
        return cursor

    def _refresh(self) -> list[FileCheck]:
        """Check every file of the archive now (new rotated files included)."""
        for attempt in range(2):
            files = discover(self._patterns)
            try:
                checks = [check_file(file, self._checks.get(str(file))) for file in files]
            except FileNotFoundError:
                if attempt:
                    raise
                continue  # a file was rotated away between listing and checking
            self.files = files
            self._checks = {check.path: check for check in checks}
            return checks
        raise AssertionError("unreachable")  # pragma: no cover


def _skipped(checks: list[FileCheck]) -> tuple[Skipped, ...]:
    return tuple(damage for check in checks for damage in check.damage)


def _execute(
    cursor: Any,
    sources: list[Source],
    keys: set[str],
    builders: Sequence[Builder],
    prefilter: Builder | None,
) -> list[list[tuple[Any, ...]]]:
    properties = Properties(keys)
    params = Params()
    scan = scan_sql(sources, properties, params)
    if len(builders) == 1 and prefilter is None:
        statement = builders[0](properties, params)
        if statement.startswith("WITH "):
            statement = f"WITH ev AS ({scan}), {statement[len('WITH ') :]}"
        else:
            statement = f"WITH ev AS ({scan}) {statement}"
        return [cursor.execute(statement, _used(statement, properties, params)).fetchall()]
    where = prefilter(properties, params) if prefilter is not None else "true"
    load = f"CREATE TEMP TABLE ev AS SELECT * FROM ({scan}) WHERE {where}"
    cursor.execute("DROP TABLE IF EXISTS ev")
    cursor.execute(load, _used(load, properties, params))
    results = []
    for builder in builders:
        own = Params()
        statement = builder(properties, own)
        results.append(cursor.execute(statement, _used(statement, properties, own)).fetchall())
    cursor.execute("DROP TABLE ev")
    return results


def _used(statement: str, properties: Properties, params: Params) -> dict[str, object]:
    """The statement's parameters: its own, and the key pointers it mentions."""
    values = dict(params.values)
    for name, pointer in properties.values().items():
        if re.search(rf"\${name}\b", statement):
            values[name] = pointer
    return values
