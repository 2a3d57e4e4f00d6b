"""The rules every option value is checked by, one per kind of value, and their text forms.

A `Kind` bundles a rule (``check``), how text reads as that kind
(``parse``) and how to name it in documentation and messages. This module
is the one place where text becomes a number, a boolean or a duration.
Every error is a `ConfigError` naming the option.
"""

from __future__ import annotations

import functools
import math
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from metricstream.exceptions import ConfigError

__all__ = [
    "Kind", "boolean", "choice", "duration", "integer", "number", "optional", "parse_bool",
    "require_bool", "require_choice", "require_int", "require_name", "require_number",
    "require_optional_str", "seconds_from_text", "text",
]  # fmt: skip

_TRUE = frozenset({"1", "true", "yes", "on"})
_FALSE = frozenset({"0", "false", "no", "off"})

T = TypeVar("T")

# --- the rules, one per kind of value -------------------------------------------


def require_int(option: str, value: object, *, minimum: int, maximum: int | None = None) -> int:
    """Return `value` if it is an int (not a bool) in ``minimum..maximum``.

    Raises:
        ConfigError: Otherwise, naming `option`.
    """
    if (
        not isinstance(value, int)
        or isinstance(value, bool)
        or value < minimum
        or (maximum is not None and value > maximum)
    ):
        raise ConfigError(option, f"must be {_int_text(minimum, maximum)}, not {value!r}")
    return int(value)


def require_number(option: str, value: object, *, minimum: float, inclusive: bool = True) -> float:
    """Return `value` as a float if it is a finite int or float (not a bool) above `minimum`.

    Raises:
        ConfigError: Otherwise (`inclusive`: `minimum` itself is allowed), naming `option`.
    """
    if not _number_within(value, minimum, inclusive):
        bound = _bound_text(minimum, inclusive)
        raise ConfigError(option, f"must be a finite number {bound}, not {value!r}")
    return float(value)  # type: ignore[arg-type]


def require_bool(option: str, value: object) -> bool:
    """Return `value` if it is True or False.

    Raises:
        ConfigError: Otherwise, naming `option`.
    """
    if not isinstance(value, bool):
        raise ConfigError(option, f"must be True or False, not {value!r}")
    return value


def require_name(option: str, value: object) -> str:
    """Return `value` if it is a non-empty string that is not only whitespace.

    Raises:
        ConfigError: Otherwise, naming `option`.
    """
    if not isinstance(value, str) or not value.strip():
        raise ConfigError(option, f"must be a non-empty string, not {value!r}")
    return value


def require_optional_str(option: str, value: object) -> str | None:
    """Return `value` if it is None or a non-empty string.

    Raises:
        ConfigError: Otherwise, naming `option`.
    """
    if value is None:
        return None
    return require_name(option, value)


def require_choice(option: str, value: object, choices: Sequence[T]) -> T:
    """Return `value` if it is one of `choices`.

    Raises:
        ConfigError: Otherwise, naming `option` and listing the choices.
    """
    for candidate in choices:
        if value == candidate and type(value) is type(candidate):
            return candidate
    listed = ", ".join(repr(candidate) for candidate in choices)
    raise ConfigError(option, f"must be one of {listed}, not {value!r}")


def parse_bool(option: str, text: str) -> bool:
    """Read a boolean written as text (URL options, environment variables).

    ``1``, ``true``, ``yes`` and ``on`` are true; ``0``, ``false``, ``no``
    and ``off`` are false, in any case.

    Raises:
        ConfigError: For any other text, naming `option`.
    """
    flag = text.strip().lower()
    if flag in _TRUE:
        return True
    if flag in _FALSE:
        return False
    raise ConfigError(option, f"must be true or false (or 1/0, yes/no, on/off), not {text!r}")


def _int_text(minimum: int, maximum: int | None) -> str:
    bound = f">= {minimum}" if maximum is None else f"between {minimum} and {maximum}"
    return f"an integer {bound}"


def _bound_text(minimum: float, inclusive: bool) -> str:
    return f">= {minimum:g}" if inclusive else f"> {minimum:g}"


def _number_within(value: object, minimum: float, inclusive: bool) -> bool:
    return (
        isinstance(value, (int, float))
        and not isinstance(value, bool)
        and math.isfinite(value)
        and (value >= minimum if inclusive else value > minimum)
    )


# --- kinds: a rule, its text form and its name ----------------------------------


@dataclass(frozen=True)
class Kind(Generic[T]):
    """What one option accepts: its rule, how its text reads, and how to name it.

    Attributes:
        expected: What a valid value is, in words (``"an integer >= 1"``), for
            the documentation and the messages.
        check: ``check(option, value)`` returns the value to keep (possibly
            normalized) or raises `ConfigError` naming `option`. It accepts
            its own results, so checking twice changes nothing.
        parse: ``parse(option, text)`` turns text into a value for `check`;
            None when the text itself is the value.
    """

    expected: str
    check: Callable[[str, Any], T]
    parse: Callable[[str, str], Any] | None = None

    def read(self, option: str, text: str) -> T:
        """Return the checked value that `text` stands for.

        Raises:
            ConfigError: If the text does not read as this kind, naming `option`.
        """
        return self.check(option, text if self.parse is None else self.parse(option, text))


def _text_parser(convert: Callable[[str], object], expected: str) -> Callable[[str, str], Any]:
    def parse(option: str, text: str) -> object:
        try:
            return convert(text.strip())
        except ValueError:
            raise ConfigError(option, f"must be {expected}, not {text!r}") from None

    return parse


def integer(*, minimum: int, maximum: int | None = None, base: int = 10) -> Kind[int]:
    """An int in ``minimum..maximum``; text in `base` (8: ``640`` or ``0o640``)."""
    text_form = _int_text(minimum, maximum)
    if base == 8:
        upper = "" if maximum is None else f" and {maximum:#o}"
        text_form = f"an octal integer {'between' if upper else '>='} {minimum:#o}{upper}"
    return Kind(
        _int_text(minimum, maximum),
        functools.partial(require_int, minimum=minimum, maximum=maximum),
        _text_parser(functools.partial(int, base=base), text_form),
    )


def number(*, minimum: float, inclusive: bool = True) -> Kind[float]:
    """A finite int or float above `minimum`, kept as a float."""
    expected = f"a finite number {_bound_text(minimum, inclusive)}"
    return Kind(
        expected,
        functools.partial(require_number, minimum=minimum, inclusive=inclusive),
        _text_parser(float, expected),
    )


def duration(*, unit: str = "seconds", minimum: float = 0, inclusive: bool = False) -> Kind[float]:
    """A length of time as a finite number of `unit`, kept as a float.

    Text is a number of `unit`; in seconds it may also carry a unit
    (``"500ms"``, ``"10s"``, ``"1.5m"``, ``"1h"``: see `seconds_from_text`).
    """
    expected = f"a number of {unit} {_bound_text(minimum, inclusive)}"
    return Kind(
        expected,
        functools.partial(_check_duration, expected=expected, minimum=minimum, inclusive=inclusive),
        functools.partial(seconds_from_text, expected=expected)
        if unit == "seconds"
        else _text_parser(float, expected),
    )


_SECONDS_PER_UNIT = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}
_DURATION_TEXT = re.compile(r"([-+]?\d+(?:\.\d*)?|[-+]?\.\d+)\s*(ms|s|m|h)?")


def seconds_from_text(option: str, text: str, *, expected: str = "a duration") -> float:
    """Read a duration written as text, in seconds: ``"1.5"``, ``"500ms"``, ``"10s"``, ``"1h"``.

    Args:
        option: The option's name, for the error.
        text: A number of seconds, or a number with a unit (``ms``, ``s``, ``m``, ``h``).
        expected: What a valid value is, in words, for the error.

    Raises:
        ConfigError: If the text is neither, naming `option`.
    """
    found = _DURATION_TEXT.fullmatch(text.strip())
    if found is None:
        units = "'500ms', '10s', '1.5m', '1h'"
        raise ConfigError(option, f"must be {expected} (or with a unit: {units}), not {text!r}")
    return float(found.group(1)) * _SECONDS_PER_UNIT[found.group(2) or "s"]


def _check_duration(
    option: str, value: object, *, expected: str, minimum: float, inclusive: bool
) -> float:
    if not _number_within(value, minimum, inclusive):
        raise ConfigError(option, f"must be {expected}, not {value!r}")
    return float(value)  # type: ignore[arg-type]


def boolean() -> Kind[bool]:
    """True or False; text ``true``/``false``, ``1``/``0``, ``yes``/``no``, ``on``/``off``."""
    return Kind("True or False", require_bool, parse_bool)


def text() -> Kind[str]:
    """A non-empty string that is not only whitespace."""
    return Kind("a non-empty string", require_name)


def choice(choices: Sequence[T], *, fold_case: bool = False) -> Kind[T]:
    """One of `choices`; with `fold_case`, a string is stripped and lower-cased first."""
    listed = ", ".join(repr(candidate) for candidate in choices)
    return Kind(
        f"one of {listed}",
        functools.partial(_check_choice, choices=tuple(choices), fold_case=fold_case),
    )


def _check_choice(option: str, value: object, *, choices: tuple[T, ...], fold_case: bool) -> T:
    if fold_case and isinstance(value, str):
        value = value.strip().lower()
    return require_choice(option, value, choices)


def optional(kind: Kind[T]) -> Kind[T | None]:
    """`kind`, or None."""
    return Kind(
        f"{kind.expected}, or None", functools.partial(_check_optional, kind=kind), kind.parse
    )


def _check_optional(option: str, value: object, *, kind: Kind[T]) -> T | None:
    return None if value is None else kind.check(option, value)
