"""The SQL of a property: the one place the query layer resolves a key.

A property resolves as everywhere in metricstream: ``measurement`` (also
``event``) is the event's measurement; any other key is the event's tag of
that name when it has one, else its field of that name, else absent.

The relation every query reads is called ``ev``. It has the columns ``m``
(measurement), ``ts`` (``timestamp_ns``) and, for the i-th property key the
query uses, ``t<i>`` (the tag, a string or NULL) and ``f<i>`` (the field, as
JSON or NULL). Keys reach DuckDB only as parameters (JSON pointers).

Values are typed: a string (measurement, tag, string field), a bool, an
integer (int64 or unsigned) or a float. Two values are the same when they
have the same type and value, so ``1``, ``1.0`` and ``"1"`` are three values
(and ``-0.0`` is ``0.0``). `value_key` spells a value as one string, its type
letter (``s``, ``b``, ``i``, ``f``) and then its text, for grouping.
"""

from __future__ import annotations

from collections.abc import Iterable

from metricstream.query._results import Value

__all__ = [
    "MEASUREMENT_KEYS",
    "Params",
    "Properties",
    "decode_value_key",
    "json_pointer",
    "order_terms",
]

MEASUREMENT_KEYS = ("measurement", "event")
"""The keys that name an event's measurement rather than a tag or field."""

_INTEGER_TYPES = "('BIGINT', 'UBIGINT')"


def json_pointer(key: str) -> str:
    """Return the JSON pointer (RFC 6901) of an object member named `key`."""
    return "/" + key.replace("~", "~0").replace("/", "~1")


class Params:
    """The named parameters of one statement; values never enter the SQL text."""

    def __init__(self) -> None:
        self.values: dict[str, object] = {}

    def add(self, value: object) -> str:
        """Add a parameter; return its placeholder (``$p0``, ``$p1``...)."""
        name = f"p{len(self.values)}"
        self.values[name] = value
        return f"${name}"


class Properties:
    """The property keys one query reads, and the SQL that resolves each.

    A key reaches DuckDB as a parameter ``$k<i>`` holding its JSON pointer
    (`values`); the field is extracted inside the expressions, so only the
    events without a tag of that name pay for it.

    Args:
        keys: The keys (``measurement`` and ``event`` need no column).
    """

    def __init__(self, keys: Iterable[str]) -> None:
        self._index: dict[str, int] = {}
        for key in sorted(set(keys)):
            if key not in MEASUREMENT_KEYS:
                self._index[key] = len(self._index)

    @property
    def reads_tags_and_fields(self) -> bool:
        """True when a key other than the measurement is read."""
        return bool(self._index)

    def values(self) -> dict[str, object]:
        """The pointer parameters the expressions use (``k0``, ``k1``...)."""
        return {f"k{index}": json_pointer(key) for key, index in self._index.items()}

    def projection(self) -> str:
        """The select list that turns archive records into ``ev`` rows."""
        parts = ["measurement AS m", "timestamp_ns AS ts"]
        for index in self._index.values():
            parts.append(f"json_extract_string(tags, $k{index}) AS t{index}")
        if self._index:
            parts.append("fields")
        return ", ".join(parts)

    def _columns(self, key: str) -> tuple[str, str]:
        index = self._index[key]
        return f"t{index}", f"json_extract(fields, $k{index})"

    def present(self, key: str) -> str:
        """True when the event has the property."""
        if key in MEASUREMENT_KEYS:
            return "(m IS NOT NULL)"
        tag, field = self._columns(key)
        return f"({tag} IS NOT NULL OR {field} IS NOT NULL)"

    def text(self, key: str) -> str:
        """The property's value when it is a string, else NULL."""
        if key in MEASUREMENT_KEYS:
            return "m"
        tag, field = self._columns(key)
        return f"COALESCE({tag}, CASE WHEN json_type({field}) = 'VARCHAR' THEN {field} ->> '$' END)"

    def integer(self, key: str) -> str:
        """The property's value as a HUGEINT when it is an integer field, else NULL."""
        if key in MEASUREMENT_KEYS:
            return "CAST(NULL AS HUGEINT)"
        tag, field = self._columns(key)
        return (
            f"CASE WHEN {tag} IS NULL THEN CASE WHEN json_type({field}) IN {_INTEGER_TYPES} "
            f"THEN CAST({field} AS HUGEINT) WHEN json_type({field}) = 'OBJECT' "
            f"THEN CAST({field} ->> 'uint' AS HUGEINT) END END"
        )

    def real(self, key: str) -> str:
        """The property's value as a DOUBLE when it is a float field, else NULL."""
        if key in MEASUREMENT_KEYS:
            return "CAST(NULL AS DOUBLE)"
        tag, field = self._columns(key)
        return (
            f"CASE WHEN {tag} IS NULL AND json_type({field}) = 'DOUBLE' "
            f"THEN CAST({field} AS DOUBLE) END"
        )

    def boolean(self, key: str) -> str:
        """The property's value when it is a bool field, else NULL."""
        if key in MEASUREMENT_KEYS:
            return "CAST(NULL AS BOOLEAN)"
        tag, field = self._columns(key)
        return (
            f"CASE WHEN {tag} IS NULL AND json_type({field}) = 'BOOLEAN' "
            f"THEN CAST({field} AS BOOLEAN) END"
        )

    def value_key(self, key: str) -> str:
        """The property's value as its type letter and text; NULL when absent."""
        if key in MEASUREMENT_KEYS:
            return "('s' || m)"
        tag, field = self._columns(key)
        return (
            f"CASE WHEN {tag} IS NOT NULL THEN 's' || {tag} ELSE CASE json_type({field}) "
            f"WHEN 'VARCHAR' THEN 's' || ({field} ->> '$') "
            f"WHEN 'BOOLEAN' THEN 'b' || CAST({field} AS VARCHAR) "
            f"WHEN 'BIGINT' THEN 'i' || CAST({field} AS VARCHAR) "
            f"WHEN 'UBIGINT' THEN 'i' || CAST({field} AS VARCHAR) "
            f"WHEN 'OBJECT' THEN 'i' || ({field} ->> 'uint') "
            f"WHEN 'DOUBLE' THEN 'f' || CAST(CAST({field} AS DOUBLE) + 0.0 AS VARCHAR) END END"
        )


def order_terms(column: str) -> list[str]:
    """ORDER BY terms that sort value keys by type (b, f, i, s), then by value."""
    kind = f"substr({column}, 1, 1)"
    rest = f"substr({column}, 2)"
    return [
        kind,
        f"CASE WHEN {kind} = 'i' THEN CAST({rest} AS HUGEINT) END",
        f"CASE WHEN {kind} = 'f' THEN CAST({rest} AS DOUBLE) END",
        column,
    ]


def decode_value_key(text: str) -> Value:
    """Turn a value key (see `Properties.value_key`) back into the value."""
    kind, rest = text[:1], text[1:]
    if kind == "s":
        return rest
    if kind == "b":
        return rest == "true"
    if kind == "i":
        return int(rest)
    return float(rest)
