"""Options declared once: the constructor, checks, text and documentation all come from it."""

from __future__ import annotations

import dataclasses
import inspect
from pathlib import Path
from typing import Any

import pytest

from metricstream._options import (
    Kind,
    boolean,
    choice,
    declared,
    describe,
    duration,
    from_text,
    integer,
    number,
    option,
    optional,
    options_class,
    takes_options,
    text,
    text_names,
)
from metricstream.exceptions import ConfigError


def _absolute(option_name: str, value: object) -> Path:
    if not isinstance(value, (str, Path)) or not str(value):
        raise ConfigError(option_name, f"must be a path, not {value!r}")
    return Path(value).absolute()


@options_class
class ArchiveOptions:
    """The options of an archive, for these tests."""

    path: str | Path = option(kind=Kind("a path", _absolute), doc="The file.", kw_only=False)
    rotate_bytes: int | None = option(
        default=None, kind=optional(integer(minimum=1)), doc="Rotate past this size."
    )
    timeout: float = option(default=10.0, kind=duration(), doc="Seconds a write may take.")
    ratio: float = option(default=0.5, kind=number(minimum=0), doc="A ratio.")
    fsync: bool = option(default=False, kind=boolean(), doc="Sync every write.")
    mode: str = option(
        default="append", kind=choice(("append", "replace"), fold_case=True), doc="How to write."
    )
    retention_policy: str | None = option(
        default=None, kind=optional(text()), doc="Where it goes.", text="rp"
    )
    token: str | None = option(default=None, kind=optional(text()), doc="A secret.")
    labels: dict[str, str] = option(
        default_factory=dict, kind=Kind("a dict", lambda _, v: dict(v)), doc="Labels.", text=False
    )

    def __post_init__(self) -> None:
        if self.mode == "replace" and self.rotate_bytes is not None:
            raise ConfigError("rotate_bytes", "cannot rotate a file that is replaced")


class Archive:
    """A class built around its options."""

    @takes_options(ArchiveOptions)
    def __init__(self, options: ArchiveOptions) -> None:
        self.options = options


class TestDeclaration:
    """The declaration is read back as it was written."""

    def test_declared_lists_every_option_in_order(self) -> None:
        found = [(o.name, o.required, o.positional, o.text_name) for o in declared(ArchiveOptions)]
        assert found == [
            ("path", True, True, "path"),
            ("rotate_bytes", False, False, "rotate_bytes"),
            ("timeout", False, False, "timeout"),
            ("ratio", False, False, "ratio"),
            ("fsync", False, False, "fsync"),
            ("mode", False, False, "mode"),
            ("retention_policy", False, False, "rp"),
            ("token", False, False, "token"),
            ("labels", False, False, None),
        ]
        assert [o.secret for o in declared(ArchiveOptions)][-2:] == [True, False]

    def test_text_names_are_the_options_that_read_text(self) -> None:
        assert text_names(ArchiveOptions) == (
            "fsync", "mode", "path", "ratio", "rotate_bytes", "rp", "timeout", "token",
        )  # fmt: skip

    def test_the_docstring_documents_every_option(self) -> None:
        doc = ArchiveOptions.__doc__ or ""
        assert doc.startswith("The options of an archive, for these tests.\n\nArgs:\n")
        assert doc.endswith(describe(ArchiveOptions))
        rotate = "    rotate_bytes: Rotate past this size. (an integer >= 1, or None; default None)"
        assert rotate in doc
        assert "    path: The file. (a path; required)" in doc
        assert "(a non-empty string, or None; default None; as text ``rp``)" in doc

    def test_the_repr_shows_no_secret(self) -> None:
        options = ArchiveOptions(
            "a", token="hunter2", labels={"password": "pw1", "url": "http://u:pw2@h/"}
        )
        shown = repr(options)
        assert "hunter2" not in shown
        assert "pw1" not in shown
        assert "pw2" not in shown
        assert "token='***'" in shown
        assert "labels={'password': '***', 'url': 'http://u:***@h/'}" in shown
        assert shown.startswith(f"ArchiveOptions(path={Path('a').absolute()!r}, rotate_bytes=None")

    def test_options_are_frozen(self) -> None:
        options = ArchiveOptions("a")
        with pytest.raises(dataclasses.FrozenInstanceError):
            options.fsync = True  # type: ignore[misc]


class TestChecks:
    """Building options checks each one by its kind, then the rules between them."""

    def test_values_are_normalized_by_their_check(self) -> None:
        options = ArchiveOptions("out.jsonl", timeout=2, ratio=1, mode=" Replace ")
        assert options.path == Path("out.jsonl").absolute()
        assert (options.timeout, options.ratio, options.mode) == (2.0, 1.0, "replace")
        assert type(options.timeout) is float
        assert options.labels == {}

    @pytest.mark.parametrize(
        ("arguments", "option_name", "message"),
        [
            ({"rotate_bytes": 0}, "rotate_bytes", "must be an integer >= 1, not 0"),
            ({"rotate_bytes": True}, "rotate_bytes", "not True"),
            ({"timeout": 0}, "timeout", "must be a number of seconds > 0, not 0"),
            ({"timeout": float("nan")}, "timeout", "seconds > 0, not nan"),
            ({"ratio": -1}, "ratio", "must be a finite number >= 0, not -1"),
            ({"fsync": "yes"}, "fsync", "must be True or False, not 'yes'"),
            ({"mode": "delete"}, "mode", "must be one of 'append', 'replace', not 'delete'"),
            ({"mode": "replace", "rotate_bytes": 5}, "rotate_bytes", "cannot rotate"),
        ],
    )
    def test_a_bad_value_names_its_option(
        self, arguments: dict[str, Any], option_name: str, message: str
    ) -> None:
        with pytest.raises(ConfigError, match=message) as info:
            ArchiveOptions("a", **arguments)
        assert info.value.option == option_name

    def test_a_secret_is_never_shown(self) -> None:
        with pytest.raises(ConfigError) as info:
            ArchiveOptions("a", token=b"hunter2")  # type: ignore[arg-type]
        assert str(info.value) == "token: must be a non-empty string, not '***'"

    def test_a_secret_in_a_check_message_is_masked(self) -> None:
        def refuse(option_name: str, value: object) -> str:
            raise ConfigError(option_name, f"{value!r} is not allowed")

        @options_class
        class Secretive:
            password: str = option(default="x", kind=Kind("text", refuse), doc="A password.")

        with pytest.raises(ConfigError) as info:
            Secretive(password="hunter2")
        assert "hunter2" not in str(info.value)
        assert str(info.value) == "password: '***' is not allowed"


class TestText:
    """Text (URL query options, environment variables) reads through each kind."""

    def test_text_becomes_checked_values_by_option_name(self) -> None:
        values = from_text(
            ArchiveOptions,
            {"rotate_bytes": " 5 ", "timeout": "0.25", "fsync": "on", "mode": "REPLACE",
             "rp": "weekly", "ratio": "1e-3"},
        )  # fmt: skip
        assert values == {
            "rotate_bytes": 5, "timeout": 0.25, "fsync": True, "mode": "replace",
            "retention_policy": "weekly", "ratio": 0.001,
        }  # fmt: skip

    @pytest.mark.parametrize(
        ("texts", "message"),
        [
            ({"rotate_bytes": "ten"}, "ROTATE_BYTES: must be an integer >= 1, not 'ten'"),
            ({"rotate_bytes": "1.5"}, "ROTATE_BYTES: must be an integer >= 1, not '1.5'"),
            (
                {"timeout": "soon"},
                "TIMEOUT: must be a number of seconds > 0 (or with a unit: '500ms', '10s', '1.5m', "
                "'1h'), not 'soon'",
            ),
            ({"timeout": "-1"}, "TIMEOUT: must be a number of seconds > 0, not -1.0"),
            ({"fsync": "maybe"}, "FSYNC: must be true or false (or 1/0, yes/no, on/off), not"),
            ({"labels": "a=b"}, "LABELS: unknown option; known: fsync, mode, path, ratio,"),
            ({"retention_policy": "x"}, "RETENTION_POLICY: unknown option"),
        ],
    )
    def test_bad_text_names_where_it_came_from(self, texts: dict[str, str], message: str) -> None:
        with pytest.raises(ConfigError) as info:
            from_text(ArchiveOptions, texts, source=lambda name: f"APP_{name.upper()}")
        assert str(info.value).startswith(f"APP_{message}")
        assert info.value.option.startswith("APP_")

    def test_without_a_source_the_text_name_is_named(self) -> None:
        with pytest.raises(ConfigError) as info:
            from_text(ArchiveOptions, {"rp": " "})
        assert info.value.option == "rp"


class TestTakesOptions:
    """A class built around its options takes their parameters."""

    def test_the_constructor_takes_the_options_parameters(self) -> None:
        archive = Archive("a.jsonl", rotate_bytes=10, fsync=True)
        assert archive.options == ArchiveOptions("a.jsonl", rotate_bytes=10, fsync=True)

    def test_the_signature_is_the_options_signature(self) -> None:
        assert list(inspect.signature(Archive).parameters) == [
            o.name for o in declared(ArchiveOptions)
        ]
        assert str(inspect.signature(Archive)) == str(inspect.signature(ArchiveOptions))
        assert (Archive.__init__.__doc__ or "").endswith(describe(ArchiveOptions))

    def test_unknown_and_missing_parameters_are_refused(self) -> None:
        with pytest.raises(TypeError):
            Archive()  # type: ignore[call-arg]
        with pytest.raises(TypeError):
            Archive("a", colour="red")  # type: ignore[call-arg]
        with pytest.raises(TypeError):
            Archive("a", 5)  # type: ignore[misc]

    def test_a_bad_option_is_a_config_error(self) -> None:
        with pytest.raises(ConfigError, match="timeout"):
            Archive("a", timeout=-1)
