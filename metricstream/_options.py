"""Validation of configuration options: one rule per kind of option.

Every constructor and URL parser in the package checks its options with these
helpers, so the same mistake gets the same message everywhere. Each raises
`ConfigError` naming the option.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import TypeVar

from metricstream.exceptions import ConfigError

__all__ = [
    "parse_bool",
    "require_bool",
    "require_choice",
    "require_int",
    "require_name",
    "require_number",
    "require_optional_str",
]

_TRUE = frozenset({"1", "true", "yes", "on"})
_FALSE = frozenset({"0", "false", "no", "off"})

T = TypeVar("T")


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
        bound = f">= {minimum}" if maximum is None else f"between {minimum} and {maximum}"
        raise ConfigError(option, f"must be an integer {bound}, not {value!r}")
    return int(value)


def require_number(option: str, value: object, *, minimum: float, inclusive: bool = True) -> float:
    """Return `value` as a float if it is a finite number above `minimum`.

    Args:
        option: The option's name, for the error.
        value: The candidate.
        minimum: The lower bound.
        inclusive: Whether `minimum` itself is allowed.

    Raises:
        ConfigError: If it is not an int or float (bools are refused), not
            finite, or below the bound.
    """
    if (
        not isinstance(value, (int, float))
        or isinstance(value, bool)
        or not math.isfinite(value)
        or (value < minimum if inclusive else value <= minimum)
    ):
        bound = f">= {minimum:g}" if inclusive else f"> {minimum:g}"
        raise ConfigError(option, f"must be a finite number {bound}, not {value!r}")
    return float(value)


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
    for choice in choices:
        if value == choice and type(value) is type(choice):
            return choice
    listed = ", ".join(repr(choice) for choice in choices)
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
