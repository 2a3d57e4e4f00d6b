"""`Archive`: the JSON Lines files a `JsonLinesSink` wrote, queried with DuckDB."""

from __future__ import annotations

import functools
import os
import tempfile
import threading
import weakref
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from metricstream.exceptions import ConfigError
from metricstream.query._cache import CacheUnavailableError, QueryCache, cache_for
from metricstream.query._eventid import COUNTER_LIMIT, TAIL_SCALE, parse_event_id
from metricstream.query._files import FileCheck, check_file, discover, file_key
from metricstream.query._filters import Filter
from metricstream.query._funnel import run_funnel
from metricstream.query._results import FunnelStep, KeyCount, Result, Skipped, ValueCount
from metricstream.query._run import QueryError, configure, execute, read_errors, verify_suspects
from metricstream.query._scan import refuses_structs, scan_sql, write_sources
from metricstream.query._sets import Builder, EventSet
from metricstream.query._sql import EVENT_ID_KEY, WEIGHT_KEY, Params, Properties

__all__ = ["Archive", "QueryError"]


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

    With a cache (the default), what queries read is kept as columns in a
    DuckDB file and only what the archive gained since is read again: the
    first query pays for reading the archive once, the next ones read the
    columns (see `metricstream.query._cache` for where the file lives and
    how it follows the archive). Answers are the same either way.

    Args:
        paths: A file, the current file of a rotated series (its rotated files
            are included), or a glob; or a list of them.
        threads: DuckDB's threads (default: one per CPU).
        cache: True for a cache in the default directory
            (``$METRICSTREAM_QUERY_CACHE``, else the user's cache directory;
            ``METRICSTREAM_QUERY_CACHE=off`` turns it off), a directory to
            keep it in, or False (or None) to read the archive every time.

    Attributes:
        files: The archive's files as of the latest query, oldest first.
        cache: The archive's `QueryCache` (its ``path``, ``stats`` and
            ``clear()``), or None.

    Raises:
        FileNotFoundError: If a path names no file, or a glob matches none.
        ConfigError: If no path is given, DuckDB is not installed, or the
            cache directory given cannot be created or written.

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
        cache: bool | str | os.PathLike[str] | None = True,
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
        self.cache: QueryCache | None = cache_for(cache, self._patterns, self._duckdb, self.threads)
        self._checks: dict[tuple[int, int], FileCheck] = {}
        self._lock = threading.Lock()
        self._connection: Any = None
        self._cursors: dict[int, weakref.WeakSet[Any]] = {}

    def __repr__(self) -> str:
        return f"Archive({self._patterns!r}, files={len(self.files)}, cache={self.cache!r})"

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

    def interrupt(self, thread: int) -> int:
        """Interrupt what DuckDB runs for this archive on the thread `thread` (its ident).

        The query on that thread raises DuckDB's ``InterruptException``.

        Returns:
            How many statements were interrupted.
        """
        with self._lock:
            cursors = list(self._cursors.get(thread, ()))
        interrupted = 0
        for cursor in cursors:
            try:
                cursor.interrupt()
            except self._duckdb.Error:
                continue  # closed meanwhile: nothing left to stop
            interrupted += 1
        return interrupted

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

    def keys(
        self,
        prefix: str = "",
        where: Iterable[Filter | Mapping[str, object]] = (),
        limit: int = 100,
    ) -> Result[list[KeyCount]]:
        """The properties of the events, with how many events have each, most common first.

        ``measurement`` (every event has one) is listed like the tag and
        field keys; a key that is both a tag and a field of an event counts
        that event once. Read from the archive itself, not the cache.

        Args:
            prefix: Only keys that start with it.
            where: Only events passing these filters.
            limit: At most this many keys.

        Raises:
            ConfigError: If a filter or the limit is wrong.
        """
        from metricstream.query._keys import list_keys

        return list_keys(self, prefix, where, limit)

    def values(
        self,
        key: str,
        prefix: str = "",
        limit: int = 10,
        where: Iterable[Filter | Mapping[str, object]] = (),
    ) -> Result[list[ValueCount]]:
        """The most common values of a property, with their event counts.

        Args:
            key: The property.
            prefix: Only values whose text (a number's JSON text) starts with it.
            limit: At most this many values.
            where: Only events passing these filters.

        Raises:
            ConfigError: If the key, a filter or the limit is wrong.
        """
        from metricstream.query._keys import list_values

        return list_values(self, key, prefix, limit, where)

    def holds_event_id(self, event_id: str) -> bool:
        """Whether an event with this event id is in the archive.

        Raises:
            ConfigError: If `event_id` is not an event id.
        """
        timestamp, generation, counter = parse_event_id(event_id)
        order = timestamp * TAIL_SCALE + (generation * COUNTER_LIMIT + counter)

        def build(properties: Properties, params: Params) -> str:
            return (
                f"SELECT count(*) FROM ev WHERE ts = {params.add(timestamp)} "
                f"AND {properties.order()} = CAST({params.add(str(order))} AS HUGEINT)"
            )

        rows, _ = self._rows(set(), [build])
        return int(rows[0][0][0]) > 0

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
        cursor = self._cursor()
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

        From the cache when there is one and it can be used now, else from
        the archive's files.
        """
        wanted = set(keys)
        if self.cache is not None:
            try:
                rows, files, checks = self.cache.rows(self._cursor, wanted, builders, prefilter)
            except CacheUnavailableError as exc:
                self.cache.bypassed(str(exc))
            else:
                with self._lock:
                    self.files = files
                    self._checks = {check.identity[:2]: check for check in checks}
                return rows, _skipped(checks)
        return self._read(wanted, builders, prefilter)

    def _read(
        self,
        keys: set[str],
        builders: Sequence[Builder],
        prefilter: Builder | None,
        *,
        raw: bool = False,
    ) -> tuple[list[list[tuple[Any, ...]]], tuple[Skipped, ...]]:
        """Run statements over the records of the archive's files (`raw`: see `scan_sql`).

        Every statement may ask an event's weight and place in funnels, so
        the properties they come from are always read.
        """
        properties = Properties(keys | {WEIGHT_KEY, EVENT_ID_KEY})
        with self._lock:
            checks = self._refresh()
        cursor = self._cursor()
        objects = False
        try:
            while True:
                with tempfile.TemporaryDirectory(prefix="metricstream-query-") as directory:
                    sources = write_sources(checks, Path(directory), self.threads)
                    scan = functools.partial(
                        scan_sql, sources, properties.keys, objects=objects, raw=raw
                    )
                    try:
                        rows = execute(cursor, properties, scan, builders, prefilter)
                    except read_errors(self._duckdb) as exc:
                        if not objects and refuses_structs(exc):
                            objects = True
                            continue
                        found = verify_suspects(checks, sources, exc)
                        with self._lock:
                            checks = [found.get(check.path, check) for check in checks]
                            self._checks = {check.identity[:2]: check for check in checks}
                        continue
                return rows, _skipped(checks)
        finally:
            cursor.close()

    def _cursor(self) -> Any:
        """Return a new cursor (its own DuckDB connection) with the query settings."""
        with self._lock:
            return self._connect()

    def _connect(self) -> Any:
        if self._connection is None:
            connection = self._duckdb.connect(
                ":memory:",
                config={"threads": self.threads, "preserve_insertion_order": False},
            )
            self._connection = connection
        cursor = self._connection.cursor()
        configure(cursor)
        self._cursors.setdefault(threading.get_ident(), weakref.WeakSet()).add(cursor)
        return cursor

    def _refresh(self) -> list[FileCheck]:
        """Check every file of the archive now (new rotated files included)."""
        for attempt in range(2):
            files = discover(self._patterns)
            try:
                checks = [check_file(file, self._checks.get(file_key(file))) for file in files]
            except FileNotFoundError:
                if attempt:
                    raise
                continue  # a file was rotated away between listing and checking
            self.files = files
            self._checks = {check.identity[:2]: check for check in checks}
            return checks
        raise AssertionError("unreachable")  # pragma: no cover


def _skipped(checks: list[FileCheck]) -> tuple[Skipped, ...]:
    return tuple(damage for check in checks for damage in check.damage)
