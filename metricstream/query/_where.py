"""Filters written as one short expression: ``key=text``, ``count:=1``, ``path~^/d``.

The forms (``metricstream query --where``, the event store's ``where=``):

============  ===============================================
``key=text``  the property is the string `text` (``eq``)
``key!=text`` it is not (``neq``)
``key:=JSON`` it equals a typed value: ``count:=1``, ``ok:=true``
``key~re``    the pattern is found in its text (``regex``)
``key>N``     a number greater than N; ``>=``, ``<``, ``<=`` likewise
``key``       the property is present (``all``)
============  ===============================================
"""

from __future__ import annotations

import re

import orjson

from metricstream.exceptions import ConfigError

__all__ = ["parse_where"]

_WHERE = re.compile(r"^(?P<key>[^=!~<>:]+?)(?P<op>:=|!=|>=|<=|=|~|>|<)(?P<value>.*)$", re.S)
_OPS = {
    "=": "eq",
    "!=": "neq",
    ":=": "eq",
    "~": "regex",
    ">": "gt",
    ">=": "gte",
    "<": "lt",
    "<=": "lte",
}


def parse_where(text: str, option: str = "--where") -> dict[str, object]:
    """Turn one expression into a filter of the query document.

    Args:
        text: The expression (see the module documentation).
        option: What to name in errors.

    Raises:
        ConfigError: If the expression has no key or a value is not valid.
    """
    match = _WHERE.match(text)
    if match is None:
        key = text.strip()
        if not key or any(ch in key for ch in "=!~<>"):
            raise ConfigError(option, f"cannot read the filter {text!r}")
        return {"type": "all", "key": key}
    key, op, raw = match.group("key").strip(), match.group("op"), match.group("value")
    if not key:
        raise ConfigError(option, f"the filter {text!r} names no property")
    value: object = raw
    if op == ":=":
        try:
            value = orjson.loads(raw)
        except orjson.JSONDecodeError:
            raise ConfigError(option, f"{raw!r} after ':=' is not JSON") from None
    elif op in (">", ">=", "<", "<="):
        try:
            value = int(raw) if re.fullmatch(r"[+-]?\d+", raw.strip()) else float(raw)
        except ValueError:
            raise ConfigError(option, f"{raw!r} after {op!r} is not a number") from None
    return {"type": _OPS[op], "key": key, "value": value}
