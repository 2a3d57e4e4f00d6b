"""The encoders' compiled helpers give the bytes of their pure-Python twins.

The helpers are optional (`metricstream._compiled`): without a C
compiler the package runs the pure-Python code, which `make test` also runs
over the codec tests with ``METRICSTREAM_PURE_PYTHON=1``.
"""

from __future__ import annotations

import os
import subprocess
import sys
from typing import Any

import orjson
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from metricstream import InvalidEventError, MetricEvent, UInt, _compiled, _validate, event
from metricstream.codecs import _lines, lineprotocol
from metricstream.columns import field_columns_pure
from metricstream.query import parse_event_id
from metricstream.server._ids import EventIds

from .servers import require_module

turned_off = os.environ.get(_compiled.PURE_PYTHON_VARIABLE, "") not in ("", "0")
if not turned_off:
    # Built by `pip install` wherever there is a C compiler: under CI a build
    # that failed is a failure here, not 14 tests skipped in silence.
    require_module("metricstream._speedups", "the compiled helpers")
compiled = _compiled.SPEEDUPS
pytestmark = pytest.mark.skipif(
    compiled is None,
    reason=f"the compiled helpers are turned off ({_compiled.PURE_PYTHON_VARIABLE})",
)


class Key(str):
    pass


class Fields(dict):  # type: ignore[type-arg]
    pass


INT64 = st.integers(-(2**63), 2**63 - 1)
FIELD_VALUES = st.one_of(
    st.floats(allow_nan=False, allow_infinity=False),
    st.floats(min_value=-2e6, max_value=2e6),
    st.sampled_from([0.0, -0.0, 1e-05, 999999.9, 1e6, -1e6, 5.0, 1e16, 1.5e-300]),
    INT64,
    st.booleans(),
    st.text(max_size=20),
    st.integers(0, 2**64 - 1).map(UInt),
)
FIELD_KEYS = st.text(min_size=1, max_size=12).filter(lambda key: not key.startswith("_"))
ODD_VALUES = [float("nan"), float("inf"), 2**63, -(2**63) - 1, "é", "x" * 17_000]
DECIMALS = st.integers(-999_999_999, 999_999_999).map(lambda n: n / 1000)


def compiled_entry_text(head: str, fields: dict[str, Any], timestamp: int) -> str:
    assert compiled is not None
    return compiled.entry_text(
        lineprotocol._field_prefix_cache,
        lineprotocol._field_prefix,
        lineprotocol._format_value,
        head,
        fields,
        timestamp,
    )


class TestEntryText:
    @settings(max_examples=500, deadline=None)
    @given(
        st.dictionaries(FIELD_KEYS, st.one_of(FIELD_VALUES, DECIMALS), min_size=1, max_size=6),
        INT64,
    )
    def test_the_entry_is_the_pure_pythons(self, raw: dict[str, Any], timestamp: int) -> None:
        try:
            fields = MetricEvent("m", fields=raw).fields
        except InvalidEventError:
            assume(False)
            raise
        expected = lineprotocol.entry_text("m,h=a", fields, timestamp)
        assert compiled_entry_text("m,h=a", fields, timestamp) == expected

    @settings(max_examples=1000, deadline=None)
    @given(
        st.one_of(
            DECIMALS, st.floats(-1e6, 1e6, exclude_min=True, exclude_max=True), st.floats(-1, 1)
        )
    )
    def test_floats_are_written_as_repr_writes_them(self, value: float) -> None:
        """From -1e6 to 1e6 (exclusive) a float is its repr, less a trailing ".0"."""
        expected = f"m v={repr(value).removesuffix('.0')} 1"
        assert compiled_entry_text("m", {"v": value}, 1) == expected

    def test_each_kind_of_value(self) -> None:
        fields = {"f": 12.5, "w": 5.0, "i": -(2**63), "b": True, "s": 'a "q"', "u": UInt(7)}
        fields |= {"z": -0.0, "t": 0.001, "e": 1e-05, "m": -999_999.999}
        expected = (
            'm f=12.5,w=5,i=-9223372036854775808i,b=true,s="a \\"q\\"",u=7u,'
            "z=-0,t=0.001,e=1e-05,m=-999999.999 -1"
        )
        assert lineprotocol.entry_text("m", fields, -1) == expected
        assert compiled_entry_text("m", fields, -1) == expected

    def test_bad_arguments_are_type_errors(self) -> None:
        assert compiled is not None
        with pytest.raises(TypeError, match="6 arguments"):
            compiled.entry_text({}, {})  # type: ignore[call-arg]
        with pytest.raises(TypeError, match="not a str"):
            compiled.entry_text({}, lambda key: 3, str, "m", {"k": 1}, 1)  # type: ignore[arg-type,return-value]
        with pytest.raises(TypeError, match="int"):
            compiled_entry_text("m", {"k": 1}, 1.5)  # type: ignore[arg-type]
        with pytest.raises(OverflowError):
            compiled_entry_text("m", {"k": 1}, 2**63)


class TestValidationHelpers:
    """The compiled checks of fields and tag items decide as the pure code does."""

    @settings(max_examples=500, deadline=None)
    @given(
        st.dictionaries(
            st.one_of(st.sampled_from(["v", "n", "new key"]), FIELD_KEYS),
            st.one_of(
                FIELD_VALUES,
                st.sampled_from(ODD_VALUES),
            ),
            max_size=4,
        )
    )
    def test_check_fields_gives_the_pure_result(self, raw: dict[str, Any]) -> None:
        def outcome(fast: bool) -> object:
            saved = _validate._checked_fields
            _validate._checked_fields = saved if fast else None
            try:
                return ("ok", _validate.check_fields(raw))
            except InvalidEventError as exc:
                return ("error", str(exc))
            finally:
                _validate._checked_fields = saved

        MetricEvent("m", fields={"v": 1, "n": 2})  # known keys
        fast, pure = outcome(True), outcome(False)
        assert fast == pure
        if fast[0] == "ok":
            kinds = [[type(value) for value in found[1].values()] for found in (fast, pure)]  # type: ignore[union-attr]
            assert kinds[0] == kinds[1]

    def test_checked_fields_leaves_anything_odd_to_the_pure_code(self) -> None:
        assert compiled is not None
        keys = {"v"}
        assert compiled.checked_fields({"v": 1.5}, keys, UInt, 10) == {"v": 1.5}
        for odd in ({"w": 1}, {"v": float("nan")}, {"v": 2**63}, {"v": "é"}, {"v": "x" * 11}):
            assert compiled.checked_fields(odd, keys, UInt, 10) is None
        assert compiled.checked_fields(Fields(v=1), keys, UInt, 10) is None

    @settings(max_examples=300, deadline=None)
    @given(
        st.lists(
            st.one_of(
                st.dictionaries(
                    st.one_of(st.sampled_from(["v", "n", "new key", "skip"]), FIELD_KEYS),
                    st.one_of(FIELD_VALUES, st.sampled_from(ODD_VALUES)),
                    max_size=4,
                ),
                st.sampled_from([None, [("v", 1)], Fields(v=1), {Key("v"): 1}, {"v": Key("x")}]),
            ),
            max_size=6,
        )
    )
    def test_fields_needing_checks_is_the_pure_one(self, items: list[Any]) -> None:
        MetricEvent("m", fields={"v": 1, "n": 2, "skip": 3})  # known keys
        excluded = frozenset({"skip"})
        saved = _validate._fields_needing_checks
        try:
            fast = _validate.fields_needing_checks(items, excluded)
            _validate._fields_needing_checks = None
            pure = _validate.fields_needing_checks(items, excluded)
        finally:
            _validate._fields_needing_checks = saved
        assert fast == pure
        for index, item in enumerate(items):
            if index not in fast:
                assert _validate.check_fields(item) == item
                assert [type(value) for value in _validate.check_fields(item).values()] == [
                    type(value) for value in item.values()
                ]

    def test_fields_needing_checks_takes_a_list_and_sets(self) -> None:
        assert compiled is not None
        with pytest.raises(TypeError, match="takes"):
            compiled.fields_needing_checks(({"v": 1},), {"v"}, UInt, 10, frozenset())  # type: ignore[arg-type]

    @settings(max_examples=300, deadline=None)
    @given(
        st.one_of(
            st.dictionaries(st.text(max_size=3), st.one_of(st.text(max_size=3), st.integers())),
            st.sampled_from([{Key("a"): "b"}, {"a": Key("b")}, Fields(a="b"), {}]),
        )
    )
    def test_items_key_is_the_pure_one(self, tags: dict[Any, Any]) -> None:
        assert compiled is not None
        assert compiled.items_key(tags) == event._items_key_pure(tags)


FIELD_ROWS = st.lists(
    st.one_of(
        st.dictionaries(st.sampled_from(["a", "b", "c"]), INT64, max_size=3),
        st.sampled_from(
            [{"a": 1, "b": 2}, {"b": 2, "a": 1}, {Key("a"): 1}, {"a": 1, Key("b"): 2}, {1: 2}]
        ),
        st.builds(Fields, st.dictionaries(st.sampled_from(["a", "b"]), INT64)),
    ),
    max_size=6,
)


class TestFieldColumns:
    def test_a_key_of_a_str_subclass_after_the_first_row(self) -> None:
        assert compiled is not None
        rows = [{"a": 1, "b": 2}, {"a": 3, Key("b"): 4}]
        expected = (("a", "b"), ([1, 3], [2, 4]))
        assert compiled.field_columns(rows) == field_columns_pure(rows) == expected
        assert compiled.field_columns(rows[::-1]) is field_columns_pure(rows[::-1]) is None

    @settings(max_examples=500, deadline=None)
    @given(FIELD_ROWS)
    def test_the_columns_are_the_pure_pythons(self, fields: list[Any]) -> None:
        assert compiled is not None
        assert compiled.field_columns(fields) == field_columns_pure(fields)

    def test_the_same_keys_in_one_order(self) -> None:
        assert compiled is not None
        rows = [{"a": 1, "b": 2.5}, {"a": 3, "b": 4.5}]
        assert compiled.field_columns(rows) == (("a", "b"), ([1, 3], [2.5, 4.5]))
        for odd in ({"b": 1, "a": 2}, {"a": 1}, {"a": 1, "b": 2, "c": 3}, Fields(a=1, b=2)):
            assert compiled.field_columns([*rows, odd]) is None

    def test_a_list_is_needed(self) -> None:
        assert compiled is not None
        with pytest.raises(TypeError, match="takes a list"):
            compiled.field_columns(({"a": 1},))  # type: ignore[arg-type]


def reference_lines(
    befores: list[bytes],
    columns: list[Any],
    separators: list[bytes],
    stamps: list[int],
    afters: Any,
) -> bytes:
    """Line by line, as the helpers document it."""
    texts = [c if isinstance(c, list) else c[1:-1].split(b",") for c in columns]
    lines = []
    for i, before in enumerate(befores):
        line = before
        for column, separator in zip(texts, separators, strict=True):
            line += column[i] + separator
        after = afters if isinstance(afters, bytes) else afters[i]
        lines.append(line + str(stamps[i]).encode() + after)
    return b"\n".join(lines)


@st.composite
def line_columns(draw: st.DrawFn) -> tuple[list[bytes], list[Any], list[bytes], list[int], Any]:
    count = draw(st.integers(1, 30))
    befores = draw(st.lists(st.binary(max_size=30), min_size=count, max_size=count))
    columns: list[Any] = []
    for _ in range(draw(st.integers(0, 4))):
        kind = draw(st.sampled_from(["float", "int", "bool", "mixed", "texts"]))
        if kind == "texts":
            columns.append(draw(st.lists(st.binary(max_size=12), min_size=count, max_size=count)))
            continue
        values_of = {
            "float": st.floats(allow_nan=False, allow_infinity=False),
            "int": INT64,
            "bool": st.booleans(),
            "mixed": st.one_of(st.floats(allow_nan=False, allow_infinity=False), INT64),
        }[kind]
        columns.append(orjson.dumps(draw(st.lists(values_of, min_size=count, max_size=count))))
    separators = draw(st.lists(st.binary(max_size=8), min_size=len(columns), max_size=len(columns)))
    stamps = draw(st.lists(INT64, min_size=count, max_size=count))
    afters = draw(
        st.one_of(
            st.binary(max_size=10),
            st.lists(st.binary(max_size=10), min_size=count, max_size=count),
        )
    )
    return befores, columns, separators, stamps, afters


class TestJoinLines:
    @settings(max_examples=500, deadline=None)
    @given(line_columns())
    def test_the_lines_are_the_pure_pythons(self, given_columns: tuple[Any, ...]) -> None:
        assert compiled is not None
        expected = reference_lines(*given_columns)
        assert _lines.join_lines_pure(*given_columns) == expected
        assert compiled.join_lines(*given_columns) == expected

    def test_one_line(self) -> None:
        assert compiled is not None
        got = compiled.join_lines([b"a="], [b"[1.5]", [b"x"]], [b",b=", b" "], [-(2**63)], b"!")
        assert got == b"a=1.5,b=x -9223372036854775808!"

    @pytest.mark.parametrize(
        ("befores", "columns", "stamps", "problem"),
        [
            ([b"a", b"b"], [b"[1]"], [1, 2], "one value per line"),
            ([b"a"], [b"[1,2]"], [1], "one value per line"),
            ([b"a"], [b"[]"], [1], "one value per line"),
            ([b"a"], [b"1"], [1], "one value per line"),
            ([b"a"], [[b"1", b"2"]], [1], "one value per line"),
            ([b"a"], [b"[1]"], [1, 2], "differ in length"),
        ],
    )
    def test_columns_that_do_not_match_are_value_errors(
        self, befores: list[bytes], columns: list[Any], stamps: list[int], problem: str
    ) -> None:
        assert compiled is not None
        with pytest.raises(ValueError, match=problem):
            compiled.join_lines(befores, columns, [b" "], stamps, b"")
        with pytest.raises(ValueError, match=problem):
            _lines.join_lines_pure(befores, columns, [b" "], stamps, b"")

    def test_one_separator_per_column(self) -> None:
        assert compiled is not None
        with pytest.raises(ValueError, match="one separator per column"):
            compiled.join_lines([b"a"], [b"[1]"], [], [1], b"")

    def test_texts_that_are_not_bytes_are_type_errors(self) -> None:
        assert compiled is not None
        with pytest.raises(TypeError, match="other than bytes"):
            compiled.join_lines([b"a"], [["1"]], [b" "], [1], b"")  # type: ignore[list-item]
        with pytest.raises(TypeError, match="other than bytes"):
            compiled.join_lines(["a"], [b"[1]"], [b" "], [1], b"")  # type: ignore[list-item]

    def test_a_timestamp_that_is_not_an_int_is_a_type_error(self) -> None:
        assert compiled is not None
        with pytest.raises(TypeError, match="other than int"):
            compiled.join_lines([b"a"], [b"[1]"], [b" "], [True], b"")

    def test_the_wrapper_falls_back_to_the_pure_code_for_odd_timestamps(self) -> None:
        given_columns: tuple[Any, ...] = ([b"a ", b"b "], [b"[1,2]"], [b" "], [True, 5], b"")
        lines = _lines.join_lines(*given_columns)
        assert lines == _lines.join_lines_pure(*given_columns) == b"a 1 true\nb 2 5"

    def test_a_timestamp_outside_int64_is_an_overflow_error(self) -> None:
        assert compiled is not None
        with pytest.raises(OverflowError):
            compiled.join_lines([b"a"], [b"[1]"], [b" "], [2**63], b"")


class TestEventIds:
    @given(
        st.lists(INT64, max_size=50),
        st.integers(1, 2**24 - 1),
        st.integers(1, 2**40 - 60),
    )
    def test_the_ids_are_the_pure_pythons(
        self, timestamps: list[int], generation: int, first: int
    ) -> None:
        ids = EventIds(generation)
        assert compiled.event_ids(timestamps, generation, first) == ids.format_all_pure(
            timestamps, first
        )

    def test_the_digits_and_their_order(self) -> None:
        found = compiled.event_ids([-(2**63), -1, 0, 2**63 - 1], 0xABCDEF, 2**40 - 5)
        assert found == [
            "0000000000000000abcdeffffffffffb",
            "7fffffffffffffffabcdeffffffffffc",
            "8000000000000000abcdeffffffffffd",
            "ffffffffffffffffabcdeffffffffffe",
        ]
        assert [parse_event_id(i) for i in found] == [
            (t, 0xABCDEF, 2**40 - 5 + n) for n, t in enumerate([-(2**63), -1, 0, 2**63 - 1])
        ]

    @pytest.mark.parametrize(
        ("arguments", "error", "message"),
        [
            (((1,), 1, 1), TypeError, "a list and two ints"),
            (([1.5], 1, 1), TypeError, "a timestamp is not an int"),
            (([2**63], 1, 1), OverflowError, "too big"),
            (([1], 0, 1), ValueError, "out of range"),
            (([1], 2**24, 1), ValueError, "out of range"),
            (([1], 1, 0), ValueError, "out of range"),
            (([1, 2], 1, 2**40 - 2), ValueError, "out of range"),
        ],
    )
    def test_bad_arguments(self, arguments: tuple[Any, ...], error: type, message: str) -> None:
        with pytest.raises(error, match=message):
            compiled.event_ids(*arguments)

    def test_the_last_counter(self) -> None:
        assert compiled.event_ids([0], 1, 2**40 - 2) == ["8000000000000000000001fffffffffe"]


def test_the_environment_variable_turns_the_helpers_off() -> None:
    code = "from metricstream import _compiled; print(_compiled.SPEEDUPS is None)"
    for setting, off in (("1", "True"), ("0", "False")):
        env = {**os.environ, _compiled.PURE_PYTHON_VARIABLE: setting}
        done = subprocess.run(
            [sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True
        )
        assert done.stdout.strip() == off
