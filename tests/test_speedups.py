"""The encoders' compiled helpers give the bytes of their pure-Python twins.

The helpers are optional (`metricstream.codecs._compiled`): without a C
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

from metricstream import InvalidEventError, MetricEvent, UInt
from metricstream.codecs import _columns, _compiled, lineprotocol

from .servers import require_module

turned_off = os.environ.get(_compiled.PURE_PYTHON_VARIABLE, "") not in ("", "0")
if not turned_off:
    # Built by `pip install` wherever there is a C compiler: under CI a build
    # that failed is a failure here, not 14 tests skipped in silence.
    require_module("metricstream.codecs._speedups", "the encoders' compiled helpers")
compiled = _compiled.SPEEDUPS
pytestmark = pytest.mark.skipif(
    compiled is None,
    reason=f"the compiled helpers are turned off ({_compiled.PURE_PYTHON_VARIABLE})",
)

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


def compiled_fields_text(fields: dict[str, Any]) -> str:
    assert compiled is not None
    return compiled.fields_text(
        lineprotocol._field_prefix_cache,
        lineprotocol._field_prefix,
        lineprotocol._format_value,
        fields,
    )


class TestFieldsText:
    @settings(max_examples=500, deadline=None)
    @given(st.dictionaries(FIELD_KEYS, FIELD_VALUES, min_size=1, max_size=6))
    def test_the_field_set_is_the_pure_pythons(self, raw: dict[str, Any]) -> None:
        try:
            fields = MetricEvent("m", fields=raw).fields
        except InvalidEventError:
            assume(False)
            raise
        assert compiled_fields_text(fields) == lineprotocol.fields_text(fields)

    def test_each_kind_of_value(self) -> None:
        fields = {"f": 12.5, "w": 5.0, "i": -(2**63), "b": True, "s": 'a "q"', "u": UInt(7)}
        expected = 'f=12.5,w=5,i=-9223372036854775808i,b=true,s="a \\"q\\"",u=7u'
        assert lineprotocol.fields_text(fields) == expected
        assert compiled_fields_text(fields) == expected

    def test_bad_arguments_are_type_errors(self) -> None:
        assert compiled is not None
        with pytest.raises(TypeError, match="4 arguments"):
            compiled.fields_text({}, {})  # type: ignore[call-arg]
        with pytest.raises(TypeError, match="not a str"):
            compiled.fields_text({}, lambda key: 3, str, {"k": 1})  # type: ignore[arg-type,return-value]


def pure_sample_lines(
    befores: list[bytes], values: bytes, between: bytes, stamps: list[int], after: bytes
) -> bytes:
    return _columns.join_lines(
        befores,
        values[1:-1].split(b","),
        between=between,
        timestamps=_columns.number_texts(stamps),
        after=after,
    )


@st.composite
def sample_columns(draw: st.DrawFn) -> tuple[list[bytes], bytes, list[int]]:
    kind = draw(st.sampled_from(["float", "int", "bool", "mixed"]))
    values_of = {
        "float": st.floats(allow_nan=False, allow_infinity=False),
        "int": INT64,
        "bool": st.booleans(),
        "mixed": st.one_of(st.floats(allow_nan=False, allow_infinity=False), INT64),
    }[kind]
    count = draw(st.integers(1, 40))
    values = draw(st.lists(values_of, min_size=count, max_size=count))
    befores = draw(st.lists(st.binary(max_size=30), min_size=count, max_size=count))
    stamps = draw(st.lists(INT64, min_size=count, max_size=count))
    return befores, orjson.dumps(values), stamps


class TestSampleLines:
    @settings(max_examples=500, deadline=None)
    @given(sample_columns(), st.binary(max_size=20), st.binary(max_size=20))
    def test_the_lines_are_the_pure_pythons(
        self, columns: tuple[list[bytes], bytes, list[int]], between: bytes, after: bytes
    ) -> None:
        assert compiled is not None
        befores, values, stamps = columns
        expected = pure_sample_lines(befores, values, between, stamps, after)
        assert compiled.sample_lines(befores, values, between, stamps, after) == expected
        assert expected.count(b"\n") >= len(befores) - 1

    def test_one_line(self) -> None:
        assert compiled is not None
        got = compiled.sample_lines([b"a="], b"[1.5]", b" ", [-(2**63)], b"!")
        assert got == b"a=1.5 -9223372036854775808!"

    @pytest.mark.parametrize(
        ("befores", "values", "stamps", "problem"),
        [
            ([b"a", b"b"], b"[1]", [1, 2], "one item per line"),
            ([b"a"], b"[1,2]", [1], "one item per line"),
            ([b"a"], b"[]", [1], "one item per line"),
            ([b"a"], b"1", [1], "not a JSON array"),
            ([b"a"], b"[1]", [1, 2], "differ in length"),
        ],
    )
    def test_columns_that_do_not_match_are_value_errors(
        self, befores: list[bytes], values: bytes, stamps: list[int], problem: str
    ) -> None:
        assert compiled is not None
        with pytest.raises(ValueError, match=problem):
            compiled.sample_lines(befores, values, b" ", stamps, b"")

    def test_a_timestamp_that_is_not_an_int_is_a_type_error(self) -> None:
        assert compiled is not None
        with pytest.raises(TypeError, match="other than int"):
            compiled.sample_lines([b"a"], b"[1]", b" ", [True], b"")

    def test_the_wrapper_falls_back_to_the_pure_code_for_odd_timestamps(self) -> None:
        lines = _columns.sample_lines(
            [b"a ", b"b "], b"[1,2]", between=b" ", timestamps=[True, 5], after=b""
        )
        assert lines == pure_sample_lines([b"a ", b"b "], b"[1,2]", b" ", [True, 5], b"")
        assert lines == b"a 1 true\nb 2 5"

    def test_a_timestamp_outside_int64_is_an_overflow_error(self) -> None:
        assert compiled is not None
        with pytest.raises(OverflowError):
            compiled.sample_lines([b"a"], b"[1]", b" ", [2**63], b"")


def test_the_environment_variable_turns_the_helpers_off() -> None:
    code = "from metricstream.codecs import _compiled; print(_compiled.SPEEDUPS is None)"
    for setting, off in (("1", "True"), ("0", "False")):
        env = {**os.environ, _compiled.PURE_PYTHON_VARIABLE: setting}
        done = subprocess.run(
            [sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True
        )
        assert done.stdout.strip() == off
