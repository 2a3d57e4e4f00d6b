"""Options declared once: `option`, `options_class`, `from_text`, `describe`, `takes_options`.

See `metricstream._options` for the whole story; the kinds of values live in
`metricstream._options.kinds`.
"""

from __future__ import annotations

import dataclasses
import functools
import inspect
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Concatenate, ParamSpec, TypeVar, overload

from metricstream._options.kinds import Kind
from metricstream._secrets import MASK, is_secret_name, redact_mapping, scrub_secrets
from metricstream.exceptions import ConfigError

if TYPE_CHECKING:
    from typing_extensions import dataclass_transform
else:

    def dataclass_transform(**_: object) -> Callable[[T], T]:
        """Python 3.10 has no `typing.dataclass_transform`; it only informs type checkers."""
        return lambda decorated: decorated


__all__ = [
    "Option", "declared", "describe", "from_text", "option", "options_class", "takes_options",
    "text_names",
]  # fmt: skip

_DECLARATION = "metricstream.option"
"""The key of an option's declaration in its dataclass field's metadata."""
_declared: dict[type[Any], tuple[Option, ...]] = {}

T = TypeVar("T")
OptionsT = TypeVar("OptionsT")
S = TypeVar("S")
P = ParamSpec("P")

# --- declaring options ----------------------------------------------------------


@dataclass(frozen=True)
class _Declaration:
    kind: Kind[Any]
    doc: str
    text: bool | str


@dataclass(frozen=True)
class Option:
    """One declared option, as `declared` lists it.

    Attributes:
        name: The parameter's name.
        kind: What it accepts.
        doc: One line saying what it does.
        default: Its default; `dataclasses.MISSING` when it is required.
        text_name: The name its text form goes by (a URL query option, the
            end of an environment variable's name); None when it has none.
        positional: Whether it may be passed by position.
    """

    name: str
    kind: Kind[Any]
    doc: str
    default: Any
    text_name: str | None
    positional: bool

    @property
    def required(self) -> bool:
        """Whether it has no default."""
        return self.default is dataclasses.MISSING

    @property
    def secret(self) -> bool:
        """Whether its name says it holds a secret, which no message may show."""
        return is_secret_name(self.name)


@overload
def option(
    *, default: T, kind: Kind[Any], doc: str, kw_only: bool = True, text: bool | str = True
) -> T: ...


@overload
def option(
    *, default_factory: Callable[[], T], kind: Kind[Any], doc: str, kw_only: bool = True,
    text: bool | str = True,
) -> T: ...  # fmt: skip


@overload
def option(*, kind: Kind[Any], doc: str, kw_only: bool = True, text: bool | str = True) -> Any: ...


def option(
    *,
    default: Any = dataclasses.MISSING,
    default_factory: Any = dataclasses.MISSING,
    kind: Kind[Any],
    doc: str,
    kw_only: bool = True,
    text: bool | str = True,
) -> Any:
    """Declare one option: a field of an `options_class`.

    Args:
        default: Its default; leave it out for a required option.
        default_factory: Makes the default (a fresh mutable value each time).
        kind: What it accepts (`integer`, `boolean`, `choice`... or a `Kind`
            of your own).
        doc: One line saying what it does, for the documentation.
        kw_only: False for an option that may be passed by position too (a
            sink's URL or path); those come first, in declaration order.
        text: Whether it can be written as text (a URL query option, an
            environment variable); a string gives its text form another
            name (``"rp"`` for ``retention_policy``).

    Returns:
        The dataclass field.
    """
    metadata = {_DECLARATION: _Declaration(kind, doc, text)}
    return dataclasses.field(
        default=default, default_factory=default_factory, kw_only=kw_only, metadata=metadata
    )


@dataclass_transform(kw_only_default=True, frozen_default=True, field_specifiers=(option,))
def options_class(cls: type[T]) -> type[T]:
    """Make `cls` an options class: a frozen, keyword-only dataclass checked when built.

    Building one checks each field declared with `option` by its kind and
    keeps what the check returns; then the class's own ``__post_init__``,
    if it has one, checks the rules that tie options together. Its docstring
    gets an ``Args:`` section made from the declarations; its ``repr``
    never shows a secret.
    """
    # A subclass without rules of its own keeps those of the options class it extends.
    inherited = getattr(getattr(cls, "__post_init__", None), "__wrapped__", None)
    own = cls.__dict__.get("__post_init__", inherited)

    def post_init(self: Any) -> None:
        _check_fields(self)
        if own is not None:
            own(self)

    post_init.__wrapped__ = own  # type: ignore[attr-defined]
    cls.__post_init__ = post_init  # type: ignore[attr-defined]
    if "__repr__" not in cls.__dict__:
        cls.__repr__ = _repr  # type: ignore[method-assign]
    made = dataclasses.dataclass(frozen=True, kw_only=True, repr=False)(cls)
    made.__doc__ = f"{inspect.cleandoc(made.__doc__ or '')}\n\n{describe(made)}"
    return made


def _repr(options: Any) -> str:
    """Show the options without a secret: secret-named values and mapping keys, URL passwords."""
    shown = []
    for declared_option in declared(type(options)):
        value = getattr(options, declared_option.name)
        if declared_option.secret and value is not None:
            text_value = repr(MASK)
        elif isinstance(value, Mapping):
            text_value = scrub_secrets(repr(redact_mapping(value)))
        else:
            text_value = scrub_secrets(repr(value))
        shown.append(f"{declared_option.name}={text_value}")
    return f"{type(options).__name__}({', '.join(shown)})"


def _check_fields(options: Any) -> None:
    for declared_option in declared(type(options)):
        name = declared_option.name
        value = getattr(options, name)
        try:
            checked = declared_option.kind.check(name, value)
        except ConfigError as exc:
            if not declared_option.secret:
                raise
            raise ConfigError(name, _masked(_problem(exc), value)) from None
        if checked is not value:
            object.__setattr__(options, name, checked)


def declared(cls: type[Any]) -> tuple[Option, ...]:
    """Return the options an options class declares, in declaration order."""
    known = _declared.get(cls)
    if known is None:
        known = _declared[cls] = _declarations(cls)
    return known


def _declarations(cls: type[Any]) -> tuple[Option, ...]:
    found = []
    for field in dataclasses.fields(cls):
        declaration = field.metadata.get(_DECLARATION)
        if not isinstance(declaration, _Declaration):
            continue
        if field.default_factory is not dataclasses.MISSING:
            default: Any = field.default_factory()
        else:
            default = field.default
        text_name = declaration.text if isinstance(declaration.text, str) else field.name
        found.append(
            Option(
                name=field.name,
                kind=declaration.kind,
                doc=declaration.doc,
                default=default,
                text_name=text_name if declaration.text else None,
                positional=not field.kw_only,
            )
        )
    return tuple(found)


def text_names(cls: type) -> tuple[str, ...]:
    """Return the names of the options of `cls` that can be written as text, sorted."""
    return tuple(sorted(o.text_name for o in declared(cls) if o.text_name is not None))


def from_text(
    cls: type, texts: Mapping[str, str], *, source: Callable[[str], str] | None = None
) -> dict[str, Any]:
    """Read options written as text (URL query options, environment variables).

    Args:
        cls: The options class.
        texts: Text by text name (see `Option.text_name`).
        source: Names where a text came from, for errors (``"rp"`` ->
            ``"METRICSTREAM_RP"``); by default the text name itself.

    Returns:
        The checked values by option name: keyword arguments for `cls`.

    Raises:
        ConfigError: For a text name `cls` does not declare, or a text that
            is not a valid value, naming its source; a secret's text is never
            shown.
    """
    by_text = {o.text_name: o for o in declared(cls) if o.text_name is not None}
    values: dict[str, Any] = {}
    for name, value in texts.items():
        where = name if source is None else source(name)
        found = by_text.get(name)
        if found is None:
            raise ConfigError(where, f"unknown option; known: {', '.join(sorted(by_text))}")
        try:
            values[found.name] = found.kind.read(found.name, value)
        except ConfigError as exc:
            problem = _masked(_problem(exc), value) if found.secret else _problem(exc)
            raise ConfigError(where, problem) from None
    return values


def _problem(error: ConfigError) -> str:
    return str(error).removeprefix(f"{error.option}: ")


def _masked(problem: str, value: object) -> str:
    """`problem` without the text of a secret `value` (a str or bytes), quoted or not."""
    if isinstance(value, (str, bytes)) and value.strip():
        problem = problem.replace(repr(value), repr(MASK))
        if isinstance(value, str):
            problem = problem.replace(value, MASK)
    return problem


def describe(cls: type) -> str:
    """Return the ``Args:`` section documenting the options of `cls`."""
    lines = ["Args:"]
    for declared_option in declared(cls):
        default = "required" if declared_option.required else f"default {declared_option.default!r}"
        text_form = ""
        if declared_option.text_name not in (None, declared_option.name):
            text_form = f"; as text ``{declared_option.text_name}``"
        lines.append(
            f"    {declared_option.name}: {declared_option.doc} "
            f"({declared_option.kind.expected}; {default}{text_form})"
        )
    return "\n".join(lines)


# --- a class built around its options -------------------------------------------


def takes_options(
    options_type: Callable[P, OptionsT],
) -> Callable[[Callable[[S, OptionsT], None]], Callable[Concatenate[S, P], None]]:
    """Give an ``__init__(self, options)`` the parameters of its options class.

    The decorated ``__init__`` is called as the options class is (the same
    parameters, which a type checker and ``help()`` see), builds and checks
    the options, and passes them on::

        class ArchiveSink:
            @takes_options(ArchiveOptions)
            def __init__(self, options: ArchiveOptions) -> None:
                self.options = options

        ArchiveSink("out.jsonl", rotate_bytes=1 << 20)

    Args:
        options_type: The options class.

    Returns:
        The decorator.
    """
    signature = inspect.signature(options_type)

    def decorate(init: Callable[[S, OptionsT], None]) -> Callable[Concatenate[S, P], None]:
        @functools.wraps(init)
        def init_from_arguments(self: S, /, *args: P.args, **kwargs: P.kwargs) -> None:
            init(self, options_type(*args, **kwargs))

        self_parameter = inspect.Parameter("self", inspect.Parameter.POSITIONAL_ONLY)
        init_from_arguments.__signature__ = signature.replace(  # type: ignore[attr-defined]
            parameters=[self_parameter, *signature.parameters.values()]
        )
        name = getattr(options_type, "__name__", "the options")
        documented = describe(options_type) if isinstance(options_type, type) else ""
        built = f"Build from the options of `{name}`.\n\n{documented}"
        init_from_arguments.__doc__ = built.rstrip()
        return init_from_arguments

    return decorate
