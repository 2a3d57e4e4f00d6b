"""Options declared once, and the rules every option value is checked by.

An option is declared once, as a field of an *options class* (a frozen,
keyword-only dataclass made by `options_class`) with `option`: its default,
its `Kind` and one line of documentation::

    @options_class
    class ArchiveOptions:
        path: str = option(kind=text(), doc="The file to write.", kw_only=False)
        rotate_bytes: int | None = option(
            default=None, kind=optional(integer(minimum=1)), doc="Rotate past this size."
        )

The rest derives from it: the constructor (the dataclass's, and through
`takes_options` that of a class built around its options, such as a sink,
with parameters a type checker sees); validation (each field checked by its
kind when built, keeping what the check returns, then the class's own
``__post_init__`` for rules between options); text (`from_text` reads URL
query options and environment variables: this module is the one place where
text becomes a number, a boolean or a duration); documentation (an ``Args:``
section in the class's docstring, `describe`, and `declared` for tests).

Every error is a `ConfigError` naming the option, or where its text came
from; the value of an option whose name says it is secret is never shown.
"""

from __future__ import annotations

from metricstream._options.declare import (
    Option,
    declared,
    describe,
    from_text,
    option,
    options_class,
    takes_options,
    text_names,
)
from metricstream._options.kinds import (
    Kind,
    boolean,
    choice,
    duration,
    integer,
    number,
    optional,
    parse_bool,
    require_bool,
    require_choice,
    require_int,
    require_name,
    require_number,
    require_optional_str,
    seconds_from_text,
    text,
)

__all__ = [
    "Kind", "Option", "boolean", "choice", "declared", "describe", "duration", "from_text",
    "integer", "number", "option", "optional", "options_class", "parse_bool", "require_bool",
    "require_choice", "require_int", "require_name", "require_number", "require_optional_str",
    "seconds_from_text", "takes_options", "text", "text_names",
]  # fmt: skip
