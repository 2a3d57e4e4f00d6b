"""The SQL of a property: the one place the query layer resolves a key.

A property resolves as everywhere in metricstream: ``measurement`` (also
``event``) is the event's measurement; any other key is the event's tag of
that name when it has one, else its field of that name, else absent.

The relation every query reads is called ``ev``. It has the columns ``m``
(measurement) and ``ts`` (``timestamp_ns``), and for the i-th property key
the query uses (in sorted order):

- read from the archive (`Properties`): ``t<i>``, the tag (a string or
  NULL), and ``x<i>``, the field as JSON (or NULL);
- read from the cache (`CachedProperties`): ``g<i>``, the number of the
  string value (the tag, else a string field) in the cache's ``strings``
  table, and ``x<i>``, a field that is not a string (or NULL).

Values are typed: a string (measurement, tag, string field), a bool, an
integer (int64 or unsigned) or a float. Two values are the same when they
have the same type and value, so ``1``, ``1.0`` and ``"1"`` are three values
(and ``-0.0`` is ``0.0``). `decode_value_key` reads a value spelled as one
string, its type letter (``s``, ``b``, ``i``, ``f``) and then its text, the
form `Properties.value_key` groups by; `CachedProperties.value_key` groups
by the string's number instead where it can, and `decode` turns a group back
into that spelling.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass

from metricstream.query._eventid import EVENT_ID_KEY, order_sql
from metricstream.query._results import Value

__all__ = [
    "EVENT_ID_KEY",
    "MEASUREMENT_KEYS",
    "WEIGHT_KEY",
    "CachedKey",
    "CachedProperties",
    "Params",
    "Properties",
    "decode_value_key",
    "json_pointer",
    "order_terms",
    "string_literal",
]

MEASUREMENT_KEYS = ("measurement", "event")
"""The keys that name an event's measurement rather than a tag or field."""

WEIGHT_KEY = "samplerate"
"""The property holding how many events one stored event stands for (1 when absent)."""


_INTEGER_TYPES = "('BIGINT', 'UBIGINT')"
_NUMBER_TYPES = "('BIGINT', 'UBIGINT', 'DOUBLE')"


def json_pointer(key: str) -> str:
    """Return the JSON pointer (RFC 6901) of an object member named `key`."""
    return "/" + key.replace("~", "~0").replace("/", "~1")


def string_literal(text: str) -> str:
    """Return `text` as an SQL string literal, for the statements that take no parameters.

    ``ATTACH`` takes no prepared parameter before DuckDB 2; a literal with its
    single quotes doubled is read the same by every release.
    """
    return "'" + text.replace("'", "''") + "'"


class Params:
    """The named parameters of one statement; values never enter the SQL text."""

    def __init__(self) -> None:
        self.values: dict[str, object] = {}

    def add(self, value: object) -> str:
        """Add a parameter; return its placeholder (``$p0``, ``$p1``...)."""
        name = f"p{len(self.values)}"
        self.values[name] = value
        return f"${name}"


def field_text(field: str) -> str:
    return f"CASE WHEN json_type({field}) = 'VARCHAR' THEN {field} ->> '$' END"


def _field_number_text(field: str) -> str:
    """The JSON text of a number field (an unsigned one's digits); NULL for anything else."""
    return (
        f"CASE WHEN json_type({field}) IN {_NUMBER_TYPES} THEN CAST({field} AS VARCHAR) "
        f"WHEN json_type({field}) = 'OBJECT' THEN {field} ->> 'uint' END"
    )


def _field_integer(field: str) -> str:
    return (
        f"CASE WHEN json_type({field}) IN {_INTEGER_TYPES} THEN CAST({field} AS HUGEINT) "
        f"WHEN json_type({field}) = 'OBJECT' THEN CAST({field} ->> 'uint' AS HUGEINT) END"
    )


def _field_real(field: str) -> str:
    return f"CASE WHEN json_type({field}) = 'DOUBLE' THEN CAST({field} AS DOUBLE) END"


def _field_boolean(field: str) -> str:
    return f"CASE WHEN json_type({field}) = 'BOOLEAN' THEN CAST({field} AS BOOLEAN) END"


def weight_sql(tag: str, field: str) -> str:
    """How many events an event stands for, from its `WEIGHT_KEY` tag and field columns.

    Its ``samplerate`` field when that is an integer of at least 1; else 1
    (a tag of that name, a float, a string or a smaller number count as 1).
    """
    value = f"CASE WHEN {tag} IS NULL THEN {_field_integer(field)} END"
    # At most the largest int64, so that a weight fits the cache's BIGINT column.
    capped = f"least({value}, {2**63 - 1})"
    return f"CAST(COALESCE(CASE WHEN {value} >= 1 THEN {capped} END, 1) AS BIGINT)"


def field_value_key(field: str) -> str:
    """A field's value key (see the module documentation); NULL when absent."""
    return (
        f"CASE json_type({field}) "
        f"WHEN 'VARCHAR' THEN 's' || ({field} ->> '$') "
        f"WHEN 'BOOLEAN' THEN 'b' || CAST({field} AS VARCHAR) "
        f"WHEN 'BIGINT' THEN 'i' || CAST({field} AS VARCHAR) "
        f"WHEN 'UBIGINT' THEN 'i' || CAST({field} AS VARCHAR) "
        f"WHEN 'OBJECT' THEN 'i' || ({field} ->> 'uint') "
        f"WHEN 'DOUBLE' THEN 'f' || CAST(CAST({field} AS DOUBLE) + 0.0 AS VARCHAR) END"
    )


class Properties:
    """The property keys one query reads, and the SQL that resolves each over ``ev``.

    This is the layout read from the archive itself (``t<i>``, ``x<i>``).

    Args:
        keys: The keys (``measurement`` and ``event`` need no column).
    """

    scans_cheaply = False
    """Whether reading ``ev`` twice costs little (not: it may read the archive twice)."""

    def __init__(self, keys: Iterable[str]) -> None:
        self._index: dict[str, int] = {}
        for key in sorted(set(keys)):
            if key not in MEASUREMENT_KEYS:
                self._index[key] = len(self._index)

    @property
    def keys(self) -> list[str]:
        """The keys that have columns, in column order."""
        return list(self._index)

    def _field(self, key: str) -> str:
        return f"x{self._index[key]}"

    def _tag(self, key: str) -> str:
        return f"t{self._index[key]}"

    def present(self, key: str) -> str:
        """True when the event has the property."""
        if key in MEASUREMENT_KEYS:
            return "(m IS NOT NULL)"
        return f"({self._tag(key)} IS NOT NULL OR {self._field(key)} IS NOT NULL)"

    def _text(self, key: str) -> str:
        if key in MEASUREMENT_KEYS:
            return "m"
        return f"COALESCE({self._tag(key)}, {field_text(self._field(key))})"

    def text_in(self, key: str, values: Sequence[str], params: Params) -> str:
        """True when the property is a string equal to one of `values`.

        Where it is not, the condition is false or NULL: use it where NULL
        counts as false (``WHERE``, ``FILTER``, ``AND``, ``OR``), and
        under ``COALESCE(..., false)`` elsewhere.
        """
        if not values:
            return "false"
        if len(values) == 1:
            return f"({self._text(key)} = {params.add(values[0])})"
        return f"list_contains({params.add(list(values))}, {self._text(key)})"

    def text(self, key: str) -> str:
        """The property's value when it is a string (measurement, tag, string field), else NULL."""
        return self._text(key)

    def matches(self, key: str, pattern: str) -> str:
        """True when the pattern placeholder is found in the property's text.

        The text of a string is the string; of a number, its JSON text (as
        the archive holds it: ``503``, ``2.5``, ``1e20``). Bools have none.
        """
        if key in MEASUREMENT_KEYS:
            return f"COALESCE(regexp_matches(m, {pattern}), false)"
        number = self._untagged(key, _field_number_text(self._field(key)))
        return (
            f"(COALESCE(regexp_matches({self._text(key)}, {pattern}), false) "
            f"OR COALESCE(regexp_matches({number}, {pattern}), false))"
        )

    def weight(self) -> str:
        """How many events an event stands for (see `weight_sql`; reads `WEIGHT_KEY`)."""
        return weight_sql(self._tag(WEIGHT_KEY), self._field(WEIGHT_KEY))

    def order(self) -> str:
        """An event's place in funnels (`metricstream.query._eventid.order_sql`).

        Reads `EVENT_ID_KEY`.
        """
        return order_sql(self.text(EVENT_ID_KEY))

    def _untagged(self, key: str, expression: str) -> str:
        """`expression` (of the field) when the event has no tag of that name."""
        return f"CASE WHEN {self._tag(key)} IS NULL THEN {expression} END"

    def integer(self, key: str) -> str:
        """The property's value as a HUGEINT when it is an integer field, else NULL."""
        if key in MEASUREMENT_KEYS:
            return "CAST(NULL AS HUGEINT)"
        return self._untagged(key, _field_integer(self._field(key)))

    def real(self, key: str) -> str:
        """The property's value as a DOUBLE when it is a float field, else NULL."""
        if key in MEASUREMENT_KEYS:
            return "CAST(NULL AS DOUBLE)"
        return self._untagged(key, _field_real(self._field(key)))

    def boolean(self, key: str) -> str:
        """The property's value when it is a bool field, else NULL."""
        if key in MEASUREMENT_KEYS:
            return "CAST(NULL AS BOOLEAN)"
        return self._untagged(key, _field_boolean(self._field(key)))

    def value_key(self, key: str) -> str:
        """What events are grouped by: equal when the values are the same; NULL when absent."""
        if key in MEASUREMENT_KEYS:
            return "('s' || m)"
        tag = self._tag(key)
        return (
            f"CASE WHEN {tag} IS NOT NULL THEN 's' || {tag} "
            f"ELSE {field_value_key(self._field(key))} END"
        )

    def decode(self, key: str, column: str) -> str:
        """The value key (type letter and text) of a `value_key` group held in `column`."""
        del key
        return column


@dataclass(frozen=True)
class CachedKey:
    """Where the cache holds one property.

    Attributes:
        number: Its number in the cache (its columns are ``g<number>`` and
            ``x<number>``, its strings are numbered under it).
        other_values: Whether any event has a value of it that is not a string.
    """

    number: int
    other_values: bool


class CachedProperties(Properties):
    """The SQL of properties read from the cache's ``events`` (``g<i>``, ``x<i>``).

    Args:
        keys: The keys.
        cached: Where the cache holds each key (every key must be there).
        strings: The relation of the cache's strings (``key``, ``value``, ``id``).
        lookup: Finds the numbers of strings: ``(key number, values) -> {value: id}``
            (values the cache does not hold are left out).
    """

    scans_cheaply = True

    def __init__(
        self,
        keys: Iterable[str],
        cached: Mapping[str, CachedKey],
        strings: str,
        lookup: Callable[[int, list[str]], Mapping[str, int]],
    ) -> None:
        super().__init__(keys)
        self._cached = {key: cached[key] for key in self._index}
        self._strings = strings
        self._lookup = lookup
        self._found: dict[tuple[int, str], int | None] = {}

    def cache_columns(self) -> list[tuple[int, int]]:
        """For each key, in column order: (its column here, its number in the cache)."""
        return [(index, self._cached[key].number) for key, index in self._index.items()]

    def _string(self, key: str) -> str:
        return f"g{self._index[key]}"

    def present(self, key: str) -> str:
        """True when the event has the property."""
        if key in MEASUREMENT_KEYS:
            return "(m IS NOT NULL)"
        return f"({self._string(key)} IS NOT NULL OR {self._field(key)} IS NOT NULL)"

    def _numbers(self, key: str, condition: str) -> str:
        return (
            f"(SELECT id FROM {self._strings} "
            f"WHERE key = {self._cached[key].number} AND {condition})"
        )

    def text_in(self, key: str, values: Sequence[str], params: Params) -> str:
        """True when the property is one of the strings (see `Properties.text_in`).

        The strings' numbers are looked up now, so that the condition
        compares numbers (which DuckDB can test as it scans).
        """
        if key in MEASUREMENT_KEYS:
            return super().text_in(key, values, params)
        ids = self._ids(self._cached[key].number, values)
        if not ids:
            return "false"
        if len(ids) == 1:
            return f"({self._string(key)} = {params.add(ids[0])})"
        return f"list_contains({params.add(ids)}, {self._string(key)})"

    def _ids(self, number: int, values: Sequence[str]) -> list[int]:
        """The numbers of those of `values` the cache holds for key `number`, in order."""
        missing = sorted({value for value in values if (number, value) not in self._found})
        if missing:
            found = self._lookup(number, missing)
            for value in missing:
                self._found[number, value] = found.get(value)
        return sorted({i for value in values if (i := self._found[number, value]) is not None})

    def text(self, key: str) -> str:
        """The property's value when it is a string, else NULL (looked up by its number)."""
        if key in MEASUREMENT_KEYS:
            return "m"
        return f"(SELECT value FROM {self._strings} WHERE id = {self._string(key)})"

    def matches(self, key: str, pattern: str) -> str:
        """True when the pattern placeholder is found in the property's text (see `Properties`)."""
        if key in MEASUREMENT_KEYS:
            return super().matches(key, pattern)
        found = self._numbers(key, f"regexp_matches(value, {pattern})")
        number = _field_number_text(self._field(key))
        return (
            f"(COALESCE({self._string(key)} IN {found}, false) "
            f"OR COALESCE(regexp_matches({number}, {pattern}), false))"
        )

    def _untagged(self, key: str, expression: str) -> str:
        """`expression`: ``x<i>`` holds a field only when the event has no tag of its name."""
        del key
        return expression

    def weight(self) -> str:
        """How many events an event stands for: the cache's ``w`` column."""
        return "w"

    def order(self) -> str:
        """An event's place in funnels: the cache's ``o`` column."""
        return "o"

    def value_key(self, key: str) -> str:
        """The string's number when the key only ever has strings, else a value key."""
        if key in MEASUREMENT_KEYS:
            return "('s' || m)"
        string = self._string(key)
        if not self._cached[key].other_values:
            return string
        return (
            f"CASE WHEN {string} IS NOT NULL THEN 's' || CAST({string} AS VARCHAR) "
            f"ELSE {field_value_key(self._field(key))} END"
        )

    def decode(self, key: str, column: str) -> str:
        """The value key (type letter and text) of a `value_key` group held in `column`."""
        if key in MEASUREMENT_KEYS:
            return column
        if not self._cached[key].other_values:
            return f"('s' || (SELECT value FROM {self._strings} WHERE id = {column}))"
        number = f"TRY_CAST(substr({column}, 2) AS BIGINT)"
        return (
            f"CASE WHEN substr({column}, 1, 1) = 's' THEN 's' || "
            f"(SELECT value FROM {self._strings} WHERE id = {number}) ELSE {column} END"
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
