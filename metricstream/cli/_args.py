"""Argument types and options shared by the CLI's commands."""

from __future__ import annotations

import argparse
import math
import sys
from collections.abc import Callable, Sequence
from typing import Any, NoReturn

__all__ = [
    "FORMATS",
    "OneLineParser",
    "add_deprecated_alias",
    "add_format_option",
    "bounded_float",
    "plain",
    "port",
    "positive_float",
    "positive_int",
]

FORMATS = ("table", "json")
"""What ``--format`` chooses between on the commands that print a report."""


class OneLineParser(argparse.ArgumentParser):
    """An argument parser whose errors are one line on standard error, then exit status 2."""

    def error(self, message: str) -> NoReturn:
        """Print `message` as one line, naming the command and its ``--help``; exit 2."""
        self.exit(2, f"{self.prog}: error: {message} (see '{self.prog} --help')\n")


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


def port(text: str) -> int:
    """A TCP port number, 0 to 65535 (0: any free port)."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a port number: {text!r}") from None
    if not 0 <= value <= 65535:
        raise argparse.ArgumentTypeError(f"must be between 0 and 65535, not {text}")
    return value


def add_format_option(
    parser: argparse.ArgumentParser,
    *,
    deprecated_json: bool = False,
    default: str | None = "table",
    choices: Sequence[str] = FORMATS,
) -> None:
    """Add ``--format table|json``, the output format flag every command shares.

    Args:
        parser: The command's parser.
        deprecated_json: Also accept ``--json``, the older spelling of
            ``--format json``, with a warning on standard error.
        default: The format when the flag is not given; None leaves the
            value to a parent parser (for a subcommand's own copy of the flag).
        choices: The formats offered.
    """
    parser.add_argument(
        "--format",
        choices=tuple(choices),
        default=argparse.SUPPRESS if default is None else default,
        help=f"print a {' or '.join(choices)} ({choices[0]})",
    )
    if deprecated_json:
        add_deprecated_alias(
            parser, "--json", replacement="--format json", dest="format", nargs=0, const="json"
        )


def add_deprecated_alias(
    parser: argparse.ArgumentParser, flag: str, *, replacement: str, **options: Any
) -> None:
    """Add `flag`, an older spelling that still works and warns that it is deprecated.

    Args:
        parser: The command's parser.
        flag: The old flag, e.g. ``--json``.
        replacement: What to write instead, e.g. ``--format json``.
        options: As for `argparse.ArgumentParser.add_argument` (``dest``,
            ``type``, or ``nargs=0`` with ``const``).
    """
    parser.add_argument(
        flag,
        action=_Deprecated,
        replacement=replacement,
        help=f"deprecated: the same as {replacement}",
        **options,
    )


class _Deprecated(argparse.Action):
    """Store like the flag it stands for, and warn on standard error."""

    def __init__(
        self, option_strings: Sequence[str], dest: str, *, replacement: str, **options: Any
    ) -> None:
        super().__init__(option_strings, dest, **options)
        self.replacement = replacement

    def __call__(
        self,
        parser: argparse.ArgumentParser,
        namespace: argparse.Namespace,
        values: str | Sequence[Any] | None,
        option_string: str | None = None,
    ) -> None:
        sys.stderr.write(
            f"{parser.prog}: warning: {option_string} is deprecated; use {self.replacement}\n"
        )
        setattr(namespace, self.dest, self.const if self.nargs == 0 else values)
