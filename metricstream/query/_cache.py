"""The query cache: what queries read, as columns in a DuckDB file kept up to date.

Reading an archive means decompressing and parsing every record: several
CPU-seconds per 5 million events, however little a query asks. The cache
keeps the measurement, the timestamp, each event's weight (its sample
rate) and place in funnels (from its event id), and the properties queries
used,
as columns DuckDB reads in a fraction of that, and loads only what is new
since the previous query: a rotated file (``STEM.N.ENDING``) never changes, the
current file only grows, so only its new complete frames or lines are read.
A file replaced, truncated or rewritten in place is loaded again, and a
query that reads a property the cache does not hold yet rebuilds it with
that property (see `metricstream.query._store`). Answers are the same with
and without the cache, including what was skipped as damaged.

Where it lives: one database file per archive (the paths and globs it was
opened with) in a directory, by default ``$METRICSTREAM_QUERY_CACHE`` if set,
else ``$XDG_CACHE_HOME/metricstream/query``, else
``~/.cache/metricstream/query``; never beside the archive, which may be
read-only, shared or watched by other tools. Its name carries a digest of
the archive's paths, the cache format and the DuckDB version, so two
versions never read each other's files. ``METRICSTREAM_QUERY_CACHE=off``
turns the default cache off. When the default directory cannot be written,
queries read the archive directly and say so once in the log; a directory
given explicitly must be writable.

The same statements asked again over an archive that has not changed since
(same files, sizes and modification times) are answered from memory: the
last `MEMO_SIZE` answers, or as many as ``$METRICSTREAM_QUERY_MEMO`` says
(``0``: none, every query is computed).

One query at a time uses a cache file: queries in other threads of the
process wait for it, and another process waiting longer than `LOCK_WAIT`
seconds reads the archive directly instead (logged).
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import hashlib
import logging
import os
import re
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import orjson

from metricstream._bounded import BoundedDict
from metricstream._log import RateLimitedLog, logger
from metricstream.exceptions import ConfigError
from metricstream.query._files import FileCheck
from metricstream.query._run import execute
from metricstream.query._sets import Builder
from metricstream.query._sql import CachedProperties, Params, string_literal
from metricstream.query._store import CacheConflictError, create_schema, sync

__all__ = [
    "CACHE_ENV",
    "LOCK_WAIT",
    "MEMO_ENV",
    "MEMO_SIZE",
    "CacheStats",
    "CacheUnavailableError",
    "QueryCache",
    "cache_for",
    "clear_caches",
    "default_directory",
]

CACHE_ENV = "METRICSTREAM_QUERY_CACHE"
"""The environment variable naming the default cache directory (``off`` turns it off)."""

LOCK_WAIT = 30.0
"""Seconds a query waits for a cache another process is using before reading the archive."""

FORMAT = 3
"""The layout of the cache's tables; part of its file name."""

MEMO_SIZE = 64
"""How many answers a cache keeps in memory for statements asked again (by default)."""

MEMO_ENV = "METRICSTREAM_QUERY_MEMO"
"""The environment variable that sets how many answers are kept (``0`` keeps none)."""


_ALIAS = "metricstream_cache"
_OFF = frozenset({"0", "off", "false", "no", "none"})
_SUFFIXES = ("", ".wal")
_CACHE_NAME = re.compile(r"[0-9a-f]{20}-q[0-9]+-duckdb[^/]+\.duckdb(\.wal)?")
_warnings = RateLimitedLog(logging.getLogger("metricstream.query"), interval=300.0)
_process_locks: dict[str, threading.Lock] = {}
_process_locks_guard = threading.Lock()


class CacheUnavailableError(Exception):
    """The cache cannot be used for this query; the archive is read directly."""


def default_directory() -> Path | None:
    """The default cache directory (see the module documentation); None when turned off."""
    chosen = os.environ.get(CACHE_ENV, "").strip()
    if chosen.lower() in _OFF:
        return None
    if chosen:
        return Path(chosen).expanduser()
    base = os.environ.get("XDG_CACHE_HOME", "").strip()
    if base and os.path.isabs(base):
        return Path(base) / "metricstream" / "query"
    try:
        home = Path.home()
    except (RuntimeError, KeyError):  # no home directory to be found: no default cache
        return None
    return home / ".cache" / "metricstream" / "query"


def memo_size() -> int:
    """How many answers a cache keeps in memory: ``$METRICSTREAM_QUERY_MEMO``, else `MEMO_SIZE`.

    Raises:
        ConfigError: If the variable is set to anything but a number of at least 0.
    """
    text = os.environ.get(MEMO_ENV, "").strip()
    if not text:
        return MEMO_SIZE
    if not text.isdigit():
        raise ConfigError(MEMO_ENV, f"expected a number of answers (0: none), not {text!r}")
    return int(text)


def _writable(directory: Path) -> str | None:
    """Create `directory` if needed; return why it cannot hold a cache (None when it can)."""
    try:
        directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    except OSError as exc:
        return f"cannot create {str(directory)!r}: {exc.strerror or exc}"
    if not os.access(directory, os.W_OK | os.X_OK):
        return f"{str(directory)!r} is not writable"
    return None


def cache_for(
    cache: object, patterns: Sequence[str], duckdb: Any, threads: int
) -> QueryCache | None:
    """The cache an `Archive` uses for its `cache` argument.

    Args:
        cache: True (the default directory), False or None (no cache), or a
            directory.
        patterns: The archive's paths and globs, as given.
        duckdb: The DuckDB module.
        threads: DuckDB's threads.

    Raises:
        ConfigError: If `cache` is none of these, or a directory given
            explicitly cannot be created or written.
    """
    if cache is None or cache is False:
        return None
    if cache is True:
        directory = default_directory()
        return None if directory is None else QueryCache(directory, patterns, duckdb, threads)
    if not isinstance(cache, str | os.PathLike) or not os.fspath(cache):
        raise ConfigError("cache", f"expected True, False, None or a directory, not {cache!r}")
    directory = Path(os.fspath(cache)).expanduser()
    problem = _writable(directory)
    if problem is not None:
        raise ConfigError("cache", problem)
    return QueryCache(directory, patterns, duckdb, threads, explicit=True)


def _digest(patterns: Sequence[str]) -> str:
    absolute = sorted({os.path.normpath(os.path.abspath(pattern)) for pattern in patterns})
    return hashlib.sha256(orjson.dumps(absolute)).hexdigest()[:20]


def clear_caches(directory: str | os.PathLike[str] | None = None) -> list[Path]:
    """Remove every query cache file in `directory` (default: the default directory).

    Only files named as caches are removed; anything else in the directory stays.

    Returns:
        The files removed.
    """
    found = Path(os.fspath(directory)) if directory is not None else default_directory()
    if found is None or not found.is_dir():
        return []
    removed = []
    for path in sorted(found.iterdir()):
        if _CACHE_NAME.fullmatch(path.name):
            with contextlib.suppress(FileNotFoundError):
                path.unlink()
                removed.append(path)
    return removed


@dataclasses.dataclass
class CacheStats:
    """What a cache did for its archive since it was opened.

    Attributes:
        answered: Queries answered from the cache.
        repeated: Of those, queries answered from memory: the same
            statements asked before, over an archive unchanged since.
        bypassed: Queries that read the archive directly because the cache
            could not be used (`last_problem` says why).
        rebuilds: Times every record was loaded again to hold new properties.
        files_loaded: Archive files whose new records were loaded (each time).
        records_loaded: Records read from the archive into the cache.
        last_problem: Why the cache was last bypassed (None when never).
    """

    answered: int = 0
    repeated: int = 0
    bypassed: int = 0
    rebuilds: int = 0
    files_loaded: int = 0
    records_loaded: int = 0
    last_problem: str | None = None


class QueryCache:
    """One archive's cache file (made by `Archive`; see the module documentation).

    Attributes:
        path: The database file.
        stats: What the cache did so far.
    """

    def __init__(
        self,
        directory: Path,
        patterns: Sequence[str],
        duckdb: Any,
        threads: int,
        *,
        explicit: bool = False,
    ) -> None:
        self._directory = directory
        self._patterns = list(patterns)
        self._duckdb = duckdb
        self._threads = threads
        self._explicit = explicit
        name = f"{_digest(patterns)}-q{FORMAT}-duckdb{duckdb.__version__}.duckdb"
        self.path: Path = directory / name
        self.stats = CacheStats()
        self._stats_lock = threading.Lock()
        self._memo: BoundedDict[tuple[object, ...], list[list[tuple[Any, ...]]]] = BoundedDict(
            memo_size()
        )
        self._memo_state: object = None

    def __repr__(self) -> str:
        return f"QueryCache({str(self.path)!r})"

    def clear(self) -> list[Path]:
        """Remove this archive's cache file (the next query builds it again).

        Returns:
            The files removed.
        """
        removed = []
        with self._exclusive():
            for suffix in _SUFFIXES:
                path = self.path.with_name(self.path.name + suffix)
                with contextlib.suppress(FileNotFoundError):
                    path.unlink()
                    removed.append(path)
        return removed

    def rows(
        self,
        cursor: Callable[[], Any],
        keys: set[str],
        builders: Sequence[Builder],
        prefilter: Builder | None,
    ) -> tuple[list[list[tuple[Any, ...]]], list[Path], list[FileCheck]]:
        """Bring the cache up to date, then run the statements over its records.

        Args:
            cursor: Makes a new cursor of the archive's DuckDB connection.
            keys: The properties the statements read.
            builders: The statements.
            prefilter: Which records all the statements read (see `execute`).

        Returns:
            The rows of each statement, the archive's files and their checks.

        Raises:
            CacheUnavailableError: If the cache cannot be used now (the caller
                reads the archive instead).
            QueryError: If DuckDB refuses a file that was checked in full.
            OSError: If an archive file cannot be read.
        """
        with self._exclusive(), self._attached(cursor()) as connection:
            try:
                synced = sync(connection, self._duckdb, self._patterns, keys, self._threads)
            except CacheConflictError as exc:
                raise CacheUnavailableError(str(exc)) from None
            except self._duckdb.IOException as exc:
                raise CacheUnavailableError(f"cannot write {str(self.path)!r}: {exc}") from None
            with self._stats_lock:
                self.stats.rebuilds += synced.rebuilt
                self.stats.files_loaded += synced.files_loaded
                self.stats.records_loaded += synced.records_loaded
            lookup = functools.partial(_string_numbers, connection)
            properties = CachedProperties(keys, synced.keys, "strings", lookup)

            def scan(params: Params) -> str:
                del params
                columns = "".join(
                    f", g{number} AS g{index}, x{number} AS x{index}"
                    for index, number in properties.cache_columns()
                )
                return f"SELECT m, ts, w, o{columns} FROM events WHERE NOT dup"

            # Rows stay valid while the files and the cache's layout do.
            state = (self.stats.rebuilds, tuple(check.identity for check in synced.checks))
            found = self._answer(
                connection, properties, scan, builders, prefilter=prefilter, state=state
            )
        with self._stats_lock:
            self.stats.answered += 1
        return [list(rows) for rows in found], synced.files, synced.checks

    def _answer(
        self,
        connection: Any,
        properties: CachedProperties,
        scan: Callable[[Params], str],
        builders: Sequence[Builder],
        *,
        prefilter: Builder | None,
        state: object,
    ) -> list[list[tuple[Any, ...]]]:
        """Run the statements, or take their rows from memory when the archive is as it was."""
        if not self._memo.limit:
            return execute(connection, properties, scan, builders, prefilter)
        key = (scan(Params()), *_statements(properties, builders, prefilter))
        with self._stats_lock:
            if state != self._memo_state:
                self._memo.clear()
                self._memo_state = state
            found = self._memo.get(key)
            if found is not None:
                self.stats.repeated += 1
                return found
        found = execute(connection, properties, scan, builders, prefilter)
        with self._stats_lock:
            if self._memo_state == state:
                self._memo.remember(key, found)
        return found

    def bypassed(self, problem: str) -> None:
        """Count a query that read the archive directly, and log why (rate-limited)."""
        with self._stats_lock:
            self.stats.bypassed += 1
            self.stats.last_problem = problem
        _warnings.log(
            logging.WARNING,
            (str(self.path), problem),
            "query cache not used (%s); reading the archive directly",
            problem,
        )

    @contextlib.contextmanager
    def _exclusive(self) -> Iterator[None]:
        """Hold this cache file's lock in this process."""
        with _process_locks_guard:
            lock = _process_locks.setdefault(str(self.path), threading.Lock())
        with lock:
            yield

    @contextlib.contextmanager
    def _attached(self, cursor: Any) -> Iterator[Any]:
        """Attach the cache file to `cursor` as its default database, then detach and close.

        Raises:
            CacheUnavailableError: If the directory cannot be written, another
                process keeps the file for longer than `LOCK_WAIT`, or the
                file cannot be opened even after building it again.
        """
        try:
            if not self._explicit:
                problem = _writable(self._directory)
                if problem is not None:
                    raise CacheUnavailableError(problem)
            self._attach(cursor)
            try:
                yield cursor
            finally:
                cursor.execute("USE memory")
                cursor.execute(f"DETACH {_ALIAS}")
        finally:
            cursor.close()

    def _attach(self, cursor: Any) -> None:
        duckdb = self._duckdb
        deadline = time.monotonic() + LOCK_WAIT
        pause = 0.01
        damaged = False
        while True:
            try:
                cursor.execute(f"ATTACH {string_literal(str(self.path))} AS {_ALIAS}")
            except duckdb.IOException as exc:
                if "lock" not in str(exc).lower():
                    if damaged:
                        raise CacheUnavailableError(
                            f"cannot open {str(self.path)!r}: {exc}"
                        ) from None
                    damaged = True
                    self._discard(exc)
                    continue
                if time.monotonic() > deadline:
                    raise CacheUnavailableError(
                        f"{str(self.path)!r} is in use by another process"
                    ) from None
                time.sleep(pause)
                pause = min(pause * 2, 0.5)
                continue
            except duckdb.Error as exc:
                if damaged:
                    raise CacheUnavailableError(f"cannot open {str(self.path)!r}: {exc}") from None
                damaged = True
                self._discard(exc)
                continue
            cursor.execute(f"USE {_ALIAS}")
            try:
                create_schema(cursor, self._patterns)
            except duckdb.Error as exc:
                cursor.execute("USE memory")
                cursor.execute(f"DETACH {_ALIAS}")
                if damaged:
                    raise CacheUnavailableError(f"cannot use {str(self.path)!r}: {exc}") from None
                damaged = True
                self._discard(exc)
                continue
            return

    def _discard(self, exc: Exception) -> None:
        """Remove a cache file DuckDB cannot read (it is built again)."""
        logger.warning("query cache %s is unreadable (%s); building it again", self.path, exc)
        for suffix in _SUFFIXES:
            with contextlib.suppress(FileNotFoundError):
                self.path.with_name(self.path.name + suffix).unlink()


def _string_numbers(connection: Any, number: int, values: list[str]) -> dict[str, int]:
    """The numbers of those of `values` the cache holds as strings of key `number`."""
    rows = connection.execute(
        "SELECT value, id FROM strings WHERE key = $key AND list_contains($values, value)",
        {"key": number, "values": values},
    ).fetchall()
    return {str(value): int(ident) for value, ident in rows}


def _statements(
    properties: CachedProperties, builders: Sequence[Builder], prefilter: Builder | None
) -> tuple[object, ...]:
    """What identifies a query's statements: their SQL and their parameters.

    The SQL names columns by their place among the query's keys; the scan,
    which the caller adds, says which property each place holds.
    """
    found: list[object] = []
    for builder in [*builders, *([prefilter] if prefilter is not None else [])]:
        params = Params()
        text = builder(properties, params)
        found.append((text, repr(sorted(params.values.items()))))
    return tuple(found)


def _after_fork() -> None:
    """Forget the locks of the parent's threads (a child starts with none held)."""
    global _process_locks_guard  # noqa: PLW0603
    _process_locks_guard = threading.Lock()
    _process_locks.clear()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork)
