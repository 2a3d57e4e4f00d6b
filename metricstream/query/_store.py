"""The cache database: its tables, and bringing them up to date with the archive's files.

Tables (one DuckDB database file per archive, see `metricstream.query._cache`):

- ``files``: each archive file by device and inode (so a file rotated to
  ``STEM.N.ENDING`` is the same file), its latest check (intact ranges, damage,
  fingerprint; see `metricstream.query._files`) and ``loaded``, the offset
  up to which its records are in ``events``;
- ``keys``: the properties the cache holds, numbered, and whether any event
  has a value of one that is not a string (``other_values``);
- ``strings``: each string value of each property, numbered (``id``);
- ``events``: one row per record: ``file``, ``m``, ``ts``, ``w`` (how many
  events it stands for) and ``o`` (its place in funnels) and, for property
  number k, ``g<k>`` (the number of its string value: the tag, else a string
  field) and ``x<k>`` (a field value that is not a string, as JSON);
- ``meta``: the archive's paths, for whoever looks at the file.

`sync` brings the tables up to date in one transaction: files that only grew
load their new intact frames or lines; files replaced, truncated below what
was loaded or rewritten in place are loaded again from the start; files no
longer in the archive are dropped; properties not held yet rebuild the
events with them. Records are read exactly as a query without the cache
reads them (`write_sources`, `scan_sql`): only intact bytes, and a frame
DuckDB refuses makes its file checked in full (`verify`) and read again.
"""

from __future__ import annotations

import dataclasses
import os
import tempfile
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import orjson

from metricstream.codecs.compression import Compression
from metricstream.query._eventid import order_sql
from metricstream.query._files import FileCheck, check_file, discover, file_key
from metricstream.query._results import Skipped
from metricstream.query._run import QueryError, read_errors, verify_suspects
from metricstream.query._scan import Source, refuses_structs, scan_sql, write_sources
from metricstream.query._sql import (
    EVENT_ID_KEY,
    MEASUREMENT_KEYS,
    WEIGHT_KEY,
    CachedKey,
    Params,
    field_text,
    weight_sql,
)

__all__ = ["CacheConflictError", "Entry", "Synced", "create_schema", "read_keys", "sync"]


class CacheConflictError(Exception):
    """The archive's files cannot be told apart by device and inode (hard links)."""


@dataclasses.dataclass
class Entry:
    """What the cache knows of one archive file.

    Attributes:
        id: The file's number in ``events``.
        loaded: The offset up to which its records are in ``events``.
        check: Its latest check.
    """

    id: int
    loaded: int
    check: FileCheck


@dataclasses.dataclass(frozen=True)
class Synced:
    """What a `sync` found and did.

    Attributes:
        files: The archive's files, oldest first.
        checks: Their checks, in the same order.
        rebuilt: Whether records loaded before were loaded again to hold new keys.
        files_loaded: How many files had records loaded.
        records_loaded: How many records were loaded.
    """

    files: list[Path]
    checks: list[FileCheck]
    rebuilt: bool
    files_loaded: int
    records_loaded: int


@dataclasses.dataclass
class _Load:
    """One file of a sync: its check, from where its records are loaded, and its previous check."""

    entry: Entry
    start: int
    drop: bool
    previous: FileCheck | None


_TABLES = frozenset({"meta", "files", "keys", "strings", "events"})
_EVENT_COLUMNS = "file INTEGER, m VARCHAR, ts BIGINT, w BIGINT, o HUGEINT"


def create_schema(connection: Any, patterns: Sequence[str]) -> None:
    """Create the tables of an empty cache (nothing when they exist)."""
    tables = connection.execute(
        "SELECT table_name FROM duckdb_tables() "
        "WHERE database_name = current_database() AND schema_name = 'main'"
    ).fetchall()
    if _TABLES.issubset(name for (name,) in tables):
        return
    connection.execute("BEGIN")
    connection.execute("CREATE TABLE IF NOT EXISTS meta (name VARCHAR, value VARCHAR)")
    connection.execute(
        "CREATE TABLE IF NOT EXISTS files "
        "(id INTEGER, dev UBIGINT, ino UBIGINT, loaded BIGINT, state VARCHAR)"
    )
    connection.execute(
        "CREATE TABLE IF NOT EXISTS keys (number INTEGER, key VARCHAR, other_values BOOLEAN)"
    )
    connection.execute("CREATE TABLE IF NOT EXISTS strings (key INTEGER, value VARCHAR, id BIGINT)")
    connection.execute(f"CREATE TABLE IF NOT EXISTS events ({_EVENT_COLUMNS})")
    if not connection.execute("SELECT count(*) FROM meta").fetchone()[0]:
        connection.execute(
            "INSERT INTO meta VALUES ('patterns', $patterns)",
            {"patterns": orjson.dumps(list(patterns)).decode()},
        )
    connection.execute("COMMIT")


def read_keys(connection: Any) -> dict[str, CachedKey]:
    """The properties the cache holds."""
    rows = connection.execute("SELECT key, number, other_values FROM keys").fetchall()
    return {key: CachedKey(number, bool(other)) for key, number, other in rows}


def _read_entries(connection: Any) -> dict[tuple[int, int], Entry]:
    rows = connection.execute("SELECT id, dev, ino, loaded, state FROM files").fetchall()
    return {
        (int(dev), int(ino)): Entry(int(number), int(loaded), check_from_state(state))
        for number, dev, ino, loaded, state in rows
    }


def check_state(check: FileCheck) -> str:
    """A check as JSON text (frame starts before `resume` are not kept: they are loaded)."""
    return orjson.dumps(
        {
            "path": check.path,
            "identity": list(check.identity),
            "codec": check.codec.value if check.codec is not None else None,
            "ranges": check.ranges,
            "starts": [start for start in check.starts if start >= check.resume],
            "damage": [[d.offset, d.length, d.reason] for d in check.damage],
            "resume": check.resume,
            "verified": check.verified,
            "fingerprint": check.fingerprint,
        }
    ).decode()


def check_from_state(text: str) -> FileCheck:
    """The check `check_state` wrote."""
    state = orjson.loads(text)
    path = state["path"]
    return FileCheck(
        path,
        tuple(state["identity"]),
        Compression(state["codec"]) if state["codec"] is not None else None,
        ranges=[(start, end) for start, end in state["ranges"]],
        starts=list(state["starts"]),
        damage=[Skipped(path, *damage) for damage in state["damage"]],
        resume=state["resume"],
        verified=state["verified"],
        fingerprint=state["fingerprint"],
    )


def _rebuild(connection: Any, keys: Sequence[str]) -> None:
    """Drop every record and hold `keys` from now on (the files' checks are kept)."""
    columns = "".join(f", g{number} BIGINT, x{number} JSON" for number in range(len(keys)))
    connection.execute("DROP TABLE events")
    connection.execute(f"CREATE TABLE events ({_EVENT_COLUMNS}{columns})")
    connection.execute("DELETE FROM strings")
    connection.execute("DELETE FROM keys")
    connection.executemany(
        "INSERT INTO keys VALUES ($number, $key, false)",
        [{"number": number, "key": key} for number, key in enumerate(keys)],
    )


def sync(
    connection: Any, duckdb: Any, patterns: Sequence[str], needed: Iterable[str], threads: int
) -> Synced:
    """Bring the cache up to date with the archive and make it hold the `needed` keys.

    The records to load are read first (a frame DuckDB refuses makes its file
    checked in full and read again); then everything is written in one
    transaction.

    Raises:
        CacheConflictError: If two of the archive's files are one file (hard links).
        QueryError: If DuckDB refuses a file that was checked in full.
        duckdb.Error: If the database cannot be written.
        OSError: If an archive file cannot be read.
    """
    held = read_keys(connection)
    keys = sorted(held, key=lambda key: held[key].number)
    wanted = sorted({key for key in needed if key not in MEASUREMENT_KEYS} - set(held))
    entries = _read_entries(connection)
    rebuilt = bool(wanted) and any(entry.loaded for entry in entries.values())
    if wanted:
        keys += wanted
        entries = {at: dataclasses.replace(entry, loaded=0) for at, entry in entries.items()}
    files, loads, gone, (loaded, records) = _read_new(
        connection, duckdb, patterns, entries, keys=keys, threads=threads
    )
    changed = (
        wanted
        or gone
        or loaded
        or any(
            load.drop
            or load.previous is None
            or check_state(load.previous) != check_state(load.entry.check)
            for load in loads
        )
    )
    if changed:
        connection.execute("BEGIN")
        try:
            if wanted:
                _rebuild(connection, keys)
            _write(connection, loads, gone, len(keys) if loaded else None)
            connection.execute("COMMIT")
        except BaseException:
            connection.execute("ROLLBACK")
            raise
        finally:
            connection.execute("DROP TABLE IF EXISTS staged")
    checks = [load.entry.check for load in loads]
    return Synced(files, checks, rebuilt, loaded, records)


def _read_new(
    connection: Any,
    duckdb: Any,
    patterns: Sequence[str],
    entries: dict[tuple[int, int], Entry],
    *,
    keys: Sequence[str],
    threads: int,
) -> tuple[list[Path], list[_Load], list[int], tuple[int, int]]:
    """Check the files and read their records not loaded yet into ``staged``.

    Returns:
        The files, what to load from each, the numbers of the files gone,
        and how many files and records are in ``staged`` (no files: no table).
    """
    verified: dict[str, FileCheck] = {}
    growing: set[str] = set()
    objects = False
    while True:
        files, loads, gone = _plan(patterns, entries, verified)
        tails = [_tail(load.entry.check, load.start) for load in loads]
        tails = [tail for tail in tails if tail.ranges]
        if not tails:
            return files, loads, gone, (0, 0)
        with tempfile.TemporaryDirectory(prefix="metricstream-query-") as directory:
            sources = write_sources(tails, Path(directory), threads, growing)
            numbers = {load.entry.check.path: load.entry.id for load in loads}
            try:
                records = _stage(connection, sources, numbers, keys, objects)
            except read_errors(duckdb) as exc:
                if not objects and refuses_structs(exc):
                    objects = True
                    continue
                checks = [load.entry.check for load in loads]
                verified.update(verify_suspects(checks, sources, exc))
                continue
        # DuckDB read these files where they are, to their end: if one grew
        # meanwhile, it read more than was checked, so it is copied instead.
        grew = {s.path for s in sources if s.path == s.check.path and _changed(s.check)}
        if grew:
            growing |= grew
            continue
        return files, loads, gone, (len(tails), records)


def _changed(check: FileCheck) -> bool:
    try:
        info = os.stat(check.path)
    except FileNotFoundError:
        return True
    return (info.st_size, info.st_mtime_ns) != (check.identity[2], check.identity[3])


def _plan(
    patterns: Sequence[str], entries: dict[tuple[int, int], Entry], verified: dict[str, FileCheck]
) -> tuple[list[Path], list[_Load], list[int]]:
    """What to load from each file now, and which files are gone."""
    for attempt in range(2):
        files = discover(patterns)
        try:
            keys = [file_key(file) for file in files]
            if len(set(keys)) != len(keys):
                raise CacheConflictError("two of the archive's paths are links to one file")
            loads = []
            next_id = max((entry.id for entry in entries.values()), default=0) + 1
            for file, key in zip(files, keys, strict=True):
                entry = entries.get(key)
                check = verified.get(str(file)) or check_file(
                    file, entry.check if entry is not None else None
                )
                if entry is None:
                    entry = Entry(next_id, 0, check)
                    next_id += 1
                    loads.append(_Load(entry, 0, drop=False, previous=None))
                    continue
                keeps = check.identity == entry.check.identity or check.carried >= entry.loaded
                start = entry.loaded if keeps else 0
                loads.append(
                    _Load(Entry(entry.id, entry.loaded, check), start, not keeps, entry.check)
                )
        except FileNotFoundError:
            if attempt:
                raise
            continue  # a file was rotated away between listing and checking
        current = {load.entry.id for load in loads}
        gone = [entry.id for entry in entries.values() if entry.id not in current]
        return files, loads, gone
    raise AssertionError("unreachable")  # pragma: no cover


def _tail(check: FileCheck, start: int) -> FileCheck:
    """The part of a check from `start` on (what is not loaded yet)."""
    return dataclasses.replace(
        check,
        ranges=[(max(low, start), high) for low, high in check.ranges if high > start],
        starts=[offset for offset in check.starts if offset >= start],
        damage=[],
    )


def _stage(
    connection: Any,
    sources: list[Source],
    numbers: dict[str, int],
    keys: Sequence[str],
    objects: bool,
) -> int:
    """Read the records of `sources` into the temporary table ``staged``; return how many.

    Columns: ``file`` (its number in `numbers`), ``m``, ``ts``, ``w`` (how
    many events it stands for, `weight_sql`), ``o`` (its place in funnels,
    `order_sql`), and for the k-th key ``s<k>`` (its string value) and
    ``x<k>`` (its other field value). `objects`: see `scan_sql`.
    """
    connection.execute("DROP TABLE IF EXISTS staged")
    params = Params()
    # The weight and the funnel order are computed here from their properties,
    # read whether or not the cache holds them.
    scanned = [*keys, *(key for key in (WEIGHT_KEY, EVENT_ID_KEY) if key not in keys)]
    scan = scan_sql(sources, scanned, params, filename=True, objects=objects)
    paths = params.add([source.path for source in sources])
    ids = params.add([numbers[source.check.path] for source in sources])
    columns = "".join(
        f", COALESCE(t{k}, CASE WHEN json_type(x{k}) = 'VARCHAR' THEN x{k} ->> '$' END) AS s{k}"
        f", CASE WHEN t{k} IS NULL AND json_type(x{k}) <> 'VARCHAR' THEN x{k} END AS x{k}"
        for k in range(len(keys))
    )
    weight = weight_sql(f"t{scanned.index(WEIGHT_KEY)}", f"x{scanned.index(WEIGHT_KEY)}")
    number = scanned.index(EVENT_ID_KEY)
    ident = f"COALESCE(t{number}, {field_text(f'x{number}')})"
    connection.execute(
        f"CREATE TEMP TABLE staged AS SELECT list_extract({ids}, "
        f"list_position({paths}, filename)) AS file, m, ts, w, {order_sql('eid')} AS o{columns} "
        f"FROM (SELECT *, {weight} AS w, {ident} AS eid FROM ({scan}))",
        params.values,
    )
    placed, unplaced = connection.execute(
        "SELECT count(file), count(*) - count(file) FROM staged"
    ).fetchone()
    if unplaced:
        raise QueryError(f"{unplaced} records came from no known file; nothing was stored")
    return int(placed)


def _write(connection: Any, loads: list[_Load], gone: list[int], width: int | None) -> None:
    """Store the files' checks, and the staged records of `width` keys unless None."""
    dropped = gone + [load.entry.id for load in loads if load.drop]
    if dropped:
        connection.execute("DELETE FROM events WHERE list_contains($ids, file)", {"ids": dropped})
    if width is not None:
        _insert_staged(connection, width)
    connection.execute("DELETE FROM files")
    connection.executemany(
        "INSERT INTO files VALUES ($id, $dev, $ino, $loaded, $state)",
        [
            {
                "id": load.entry.id,
                "dev": load.entry.check.identity[0],
                "ino": load.entry.check.identity[1],
                "loaded": load.entry.check.resume,
                "state": check_state(load.entry.check),
            }
            for load in loads
        ],
    )


def _insert_staged(connection: Any, width: int) -> None:
    """Number the staged strings not seen yet, then store the staged records."""
    for number in range(width):
        connection.execute(
            f"INSERT INTO strings SELECT {number}, value, "
            f"(SELECT coalesce(max(id), 0) FROM strings) + row_number() OVER () "
            f"FROM (SELECT DISTINCT s{number} AS value FROM staged WHERE s{number} IS NOT NULL) n "
            f"WHERE NOT EXISTS (SELECT 1 FROM strings s WHERE s.key = {number} "
            f"AND s.value = n.value)"
        )
    joins = "".join(
        f" LEFT JOIN (SELECT value, id FROM strings WHERE key = {k}) d{k} ON d{k}.value = s{k}"
        for k in range(width)
    )
    values = "".join(f", d{k}.id, x{k}" for k in range(width))
    connection.execute(f"INSERT INTO events SELECT file, m, ts, w, o{values} FROM staged{joins}")
    if width:
        present = ", ".join(f"bool_or(x{k} IS NOT NULL)" for k in range(width))
        flags = connection.execute(f"SELECT {present} FROM staged").fetchone()
        for number, flag in enumerate(flags):
            if flag:
                connection.execute(
                    "UPDATE keys SET other_values = true WHERE number = $number",
                    {"number": number},
                )
