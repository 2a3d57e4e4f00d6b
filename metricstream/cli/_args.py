"""Argument types shared by the CLI's commands."""

from __future__ import annotations

import argparse
import math
from collections.abc import Callable

__all__ = ["bounded_float", "plain", "positive_float", "positive_int"]


def positive_float(text: str) -> float:
    """A finite number > 0 (``inf`` and ``nan`` are refused)."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not math.isfinite(value) or not value > 0:
        raise argparse.ArgumentTypeError(f"must be a finite number > 0, not {text}")
    return value


def bounded_float(maximum: float) -> Callable[[str], float]:
    """A `positive_float` that is at most `maximum`."""

    def parse(text: str) -> float:
        value = positive_float(text)
        if value > maximum:
            raise argparse.ArgumentTypeError(f"must be at most {maximum:,.0f}, not {text}")
        return value

    return parse


def plain(doc: str | None) -> str:
    """The first paragraph of a docstring without reStructuredText markup, for ``--help``."""
    first = (doc or "").split("\n\n")[0]
    return " ".join(first.replace("``", "").replace("`", "").split())


def positive_int(text: str) -> int:
    """An integer >= 1."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an integer: {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1, not {text}")
    return value
