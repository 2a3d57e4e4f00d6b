"""Which properties events have, and their most common values: what autocomplete offers."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any, Protocol

from metricstream.exceptions import ConfigError
from metricstream.query._filters import Filter
from metricstream.query._results import KeyCount, Result, Skipped, ValueCount
from metricstream.query._sets import Builder, EventSet, Runner, as_keys
from metricstream.query._sql import Params, Properties, decode_value_key


class Archive(Runner, Protocol):
    """What keys are listed from (an `metricstream.query.Archive`)."""

    def _read(
        self,
        keys: set[str],
        builders: Sequence[Builder],
        prefilter: Builder | None,
        *,
        raw: bool = False,
    ) -> tuple[list[list[tuple[Any, ...]]], tuple[Skipped, ...]]: ...


__all__ = ["list_keys", "list_values"]


def _chosen(
    archive: Archive, prefix: object, limit: object, where: Iterable[Filter | Mapping[str, object]]
) -> EventSet:
    """Check the prefix and the limit; return the events `where` chooses.

    Raises:
        ConfigError: Naming the argument or filter that is wrong.
    """
    if not isinstance(prefix, str):
        raise ConfigError("prefix", f"expected text, not {prefix!r}")
    if isinstance(limit, bool) or not isinstance(limit, int) or limit < 1:
        raise ConfigError("limit", f"expected a positive int, not {limit!r}")
    chosen = EventSet(archive, None, where)
    chosen.check_patterns()
    return chosen


def list_keys(
    archive: Archive, prefix: str, where: Iterable[Filter | Mapping[str, object]], limit: int
) -> Result[list[KeyCount]]:
    """See `Archive.keys`."""
    chosen = _chosen(archive, prefix, limit, where)

    def keys_sql(properties: Properties, params: Params) -> str:
        names = (
            "list_distinct(list_concat(COALESCE(json_keys(tags_json), []), "
            "COALESCE(json_keys(fields_json), [])))"
        )
        return (
            f"SELECT k, count(*) AS c FROM (SELECT unnest({names}) AS k FROM ev "
            f"WHERE {chosen.condition(properties, params)}) "
            f"WHERE starts_with(k, {params.add(prefix)}) GROUP BY k ORDER BY c DESC, k "
            f"LIMIT {params.add(limit)}"
        )

    def total_sql(properties: Properties, params: Params) -> str:
        return f"SELECT count(*) FROM ev WHERE {chosen.condition(properties, params)}"

    results, skipped = archive._read(chosen.keys(), [keys_sql, total_sql], None, raw=True)
    found = [KeyCount(str(key), int(count)) for key, count in results[0]]
    total = int(results[1][0][0])
    if total and "measurement".startswith(prefix):
        found.append(KeyCount("measurement", total))
        found.sort(key=lambda item: (-item.count, item.key))
        del found[limit:]
    return Result(found, skipped)


def list_values(
    archive: Archive,
    key: str,
    prefix: str,
    limit: int,
    where: Iterable[Filter | Mapping[str, object]],
) -> Result[list[ValueCount]]:
    """See `Archive.values`."""
    (name,) = as_keys(key, "key")
    chosen = _chosen(archive, prefix, limit, where)

    def build(properties: Properties, params: Params) -> str:
        grouped = (
            f"SELECT v, count(*) AS c FROM (SELECT {properties.value_key(name)} AS v FROM ev "
            f"WHERE {chosen.condition(properties, params)}) WHERE v IS NOT NULL GROUP BY v"
        )
        decoded = f"SELECT {properties.decode(name, 'v')} AS v, c FROM ({grouped})"
        return (
            f"SELECT v, c FROM ({decoded}) WHERE starts_with(substr(v, 2), {params.add(prefix)}) "
            f"ORDER BY c DESC, v LIMIT {params.add(limit)}"
        )

    results, skipped = archive._rows(chosen.keys() | {name}, [build])
    return Result(
        [ValueCount(decode_value_key(value), int(count)) for value, count in results[0]], skipped
    )
