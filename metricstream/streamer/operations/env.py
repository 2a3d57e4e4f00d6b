"""Configuration from the environment: the ``METRICSTREAM_*`` variables.

`EventStreamer.from_env` reads them through `read_environment`. Each option
of `StreamerConfig` that can be written as text is read from the variable
``METRICSTREAM_<OPTION>`` (``METRICSTREAM_BATCH_SIZE``,
``METRICSTREAM_SPOOL_DIR``...), through the option's own declaration
(`metricstream._options.from_text`): what it accepts and how its text reads
are written once, in `metricstream.streamer.config`. Besides them:

- ``METRICSTREAM_SINKS``: sink URLs separated by commas (required unless
  ``sinks=`` is passed). A comma starts a new URL only when ``scheme://``
  or a known ``scheme:`` follows it, so Kafka broker lists keep theirs.
- ``METRICSTREAM_HEALTH_PORT``: serve the health endpoint on this port (0:
  any free port), on ``METRICSTREAM_HEALTH_HOST`` (default ``127.0.0.1``;
  ``0.0.0.0`` to answer probes from other hosts), with
  ``METRICSTREAM_HEALTH_READY`` (``all``, the default, or ``any``) saying
  what ``/readyz`` asks of the sinks.

OpenTelemetry's own variables give default tags too, as its SDKs read them:
``OTEL_RESOURCE_ATTRIBUTES`` (``key=value,key=value``, values
percent-decoded; an attribute with an empty value is left out, since a
tag cannot be empty) and ``OTEL_SERVICE_NAME`` (the tag ``service.name``,
which wins over the same attribute in ``OTEL_RESOURCE_ATTRIBUTES``). A tag
of ``METRICSTREAM_DEFAULT_TAGS`` wins over both; ``default_tags=`` passed to
`from_env` replaces all of them (`otel_tags`).

A bad value is a `ConfigError` that names the variable and the value
(credentials removed). An unset or empty variable leaves the option at its
default; an option passed to `from_env` is not read from the environment at
all. A ``METRICSTREAM_*`` variable that metricstream does not read (a typo
such as ``METRICSTREAM_BATCHSIZE``) is reported with a `UserWarning` naming
the closest one it reads (`known_variables`).
"""

from __future__ import annotations

import difflib
import re
import urllib.parse
import warnings
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol, TypeVar

from metricstream._compiled import PURE_PYTHON_VARIABLE
from metricstream._log import logger
from metricstream._options import Kind, declared, from_text, integer
from metricstream._secrets import scrub_secrets
from metricstream._validate import check_tags
from metricstream.contract import Sink
from metricstream.exceptions import ConfigError, InvalidEventError
from metricstream.registry import schemes, sink_from_url
from metricstream.streamer.config import StreamerConfig
from metricstream.streamer.health import READY_POLICIES

__all__ = [
    "ENV_PREFIX",
    "HEALTH_HOST",
    "HEALTH_PORT",
    "HEALTH_READY",
    "OTEL_RESOURCE_ATTRIBUTES",
    "OTEL_SERVICE_NAME",
    "READ_ELSEWHERE",
    "SINKS",
    "EnvSettings",
    "build_sinks",
    "close_quietly",
    "from_environment",
    "known_variables",
    "otel_tags",
    "read_environment",
    "split_sink_urls",
    "variable",
]

ENV_PREFIX = "METRICSTREAM_"
"""The prefix of every variable read here."""

SINKS = "METRICSTREAM_SINKS"
"""Comma-separated sink URLs."""

HEALTH_PORT = "METRICSTREAM_HEALTH_PORT"
"""The port of the health endpoint; unset: none is served."""

HEALTH_HOST = "METRICSTREAM_HEALTH_HOST"
"""The address the health endpoint listens on."""

HEALTH_READY = "METRICSTREAM_HEALTH_READY"
"""What ``/readyz`` asks of the sinks: ``all`` healthy (the default) or ``any``."""

OTEL_SERVICE_NAME = "OTEL_SERVICE_NAME"
"""OpenTelemetry's service name: the default tag ``service.name``."""

OTEL_RESOURCE_ATTRIBUTES = "OTEL_RESOURCE_ATTRIBUTES"
"""OpenTelemetry's resource attributes (``key=value,...``): default tags."""

READ_ELSEWHERE = (
    PURE_PYTHON_VARIABLE,
    "METRICSTREAM_QUERY_CACHE",
    "METRICSTREAM_QUERY_MEMO",
    "METRICSTREAM_REDIS_URL",
    "METRICSTREAM_SERVE_TOKEN",
)
"""Variables other parts of metricstream read: the compiled helpers' switch, the
query cache's directory and memory of answers (`metricstream.query`), the default Redis URL of
``metricstream counters`` and the token of ``metricstream serve``; the layers
above name them too."""

_PORT = integer(minimum=0, maximum=65535)
T = TypeVar("T")


def variable(text_name: str) -> str:
    """The variable an option's text form is read from: ``METRICSTREAM_<TEXT NAME>``."""
    return f"{ENV_PREFIX}{text_name.upper()}"


def known_variables() -> tuple[str, ...]:
    """Every ``METRICSTREAM_*`` variable metricstream reads, sorted."""
    options = (variable(o.text_name) for o in declared(StreamerConfig) if o.text_name)
    return tuple(sorted({*options, SINKS, HEALTH_PORT, HEALTH_HOST, HEALTH_READY, *READ_ELSEWHERE}))


def warn_unknown(environ: Mapping[str, str]) -> list[str]:
    """Warn (`UserWarning`) about each ``METRICSTREAM_*`` variable metricstream does not read.

    Each warning names the closest variable it reads, when one is close.

    Returns:
        The unknown variables, sorted.
    """
    known = known_variables()
    unknown = sorted(name for name in environ if name.startswith(ENV_PREFIX) and name not in known)
    suffixes = {name.removeprefix(ENV_PREFIX): name for name in known}
    for name in unknown:
        closest = difflib.get_close_matches(name.removeprefix(ENV_PREFIX), suffixes, 1, 0.6)
        hint = f"; did you mean {suffixes[closest[0]]}?" if closest else ""
        warnings.warn(
            f"{name} is not a variable metricstream reads; it is ignored{hint}",
            UserWarning,
            stacklevel=4,
        )
    return unknown


@dataclass
class EnvSettings:
    """What the environment says, parsed and checked.

    Attributes:
        options: `EventStreamer` keyword arguments.
        sources: For each option in `options`: the variable and its text.
        sink_urls: The URLs of ``METRICSTREAM_SINKS``, in order.
        health: ``(host, port, ready)`` to serve health on, or None.
    """

    options: dict[str, Any] = field(default_factory=dict)
    sources: dict[str, tuple[str, str]] = field(default_factory=dict)
    sink_urls: list[str] = field(default_factory=list)
    health: tuple[str, int, str] | None = None

    def explain(self, error: ConfigError) -> ConfigError:
        """Return `error` restated in terms of the variable it came from, if any."""
        source = self.sources.get(error.option)
        if source is None:
            return error
        name, text = source
        return _bad(name, text, _problem(error))


def _problem(error: ConfigError) -> str:
    return str(error).removeprefix(f"{error.option}: ")


def _bad(name: str, text: str, problem: str) -> ConfigError:
    return ConfigError(name, f"{scrub_secrets(text)!r}: {problem}")


def _read(name: str, text: str, kind: Kind[T]) -> T:
    try:
        return kind.read(name, text)
    except ConfigError as exc:
        raise _bad(name, text, _problem(exc)) from None


def read_environment(environ: Mapping[str, str], overridden: Collection[str] = ()) -> EnvSettings:
    """Parse the ``METRICSTREAM_*`` variables of `environ` (see the module doc).

    Args:
        environ: The variables.
        overridden: `EventStreamer` options given otherwise, whose variables
            are not read at all (``"sinks"`` for ``METRICSTREAM_SINKS``).

    Raises:
        ConfigError: For the first bad value, naming the variable and the value.
    """
    settings = EnvSettings()
    texts: dict[str, str] = {}
    for declared_option in declared(StreamerConfig):
        text_name = declared_option.text_name
        if text_name is None or declared_option.name in overridden:
            continue
        text = environ.get(variable(text_name), "")
        if text.strip():
            texts[text_name] = text
            settings.sources[declared_option.name] = (variable(text_name), text)
    try:
        settings.options = from_text(StreamerConfig, texts, source=variable)
    except ConfigError as exc:
        text = next(t for name, t in texts.items() if variable(name) == exc.option)
        raise _bad(exc.option, text, _problem(exc)) from None
    port = environ.get(HEALTH_PORT, "")
    if port.strip():
        host = environ.get(HEALTH_HOST, "").strip() or "127.0.0.1"
        ready = environ.get(HEALTH_READY, "").strip() or "all"
        settings.health = (
            host,
            _read(HEALTH_PORT, port, _PORT),
            _read(HEALTH_READY, ready, READY_POLICIES),
        )
        settings.sources["health_port"] = (HEALTH_PORT, port)
    if "default_tags" not in overridden:
        _add_otel_tags(settings, environ)
    if "sinks" not in overridden:
        settings.sink_urls = split_sink_urls(environ.get(SINKS, ""))
    return settings


def otel_tags(environ: Mapping[str, str]) -> dict[str, str]:
    """The default tags OpenTelemetry's variables give (see the module doc), checked.

    Raises:
        ConfigError: If an attribute is not ``key=value``, or a key or value
            cannot be a tag; it names the variable.
    """
    tags: dict[str, str] = {}
    text = environ.get(OTEL_RESOURCE_ATTRIBUTES, "")
    for entry in text.split(","):
        if not entry.strip():
            continue
        key, sep, value = (urllib.parse.unquote(part.strip()) for part in entry.partition("="))
        if not sep or not key:
            raise _bad(OTEL_RESOURCE_ATTRIBUTES, text, f"{entry.strip()!r} is not key=value")
        if value:
            tags[key] = value
    service = environ.get(OTEL_SERVICE_NAME, "").strip()
    for name, written, checked in (
        (OTEL_RESOURCE_ATTRIBUTES, text, tags),
        (OTEL_SERVICE_NAME, service, {"service.name": service} if service else {}),
    ):
        try:
            check_tags(checked)
        except InvalidEventError as exc:
            raise _bad(name, written, str(exc)) from None
    if service:
        tags["service.name"] = service
    return tags


def _add_otel_tags(settings: EnvSettings, environ: Mapping[str, str]) -> None:
    """Put OpenTelemetry's default tags under those of ``METRICSTREAM_DEFAULT_TAGS``."""
    found = otel_tags(environ)
    if found:
        settings.options["default_tags"] = {**found, **settings.options.get("default_tags", {})}


def split_sink_urls(text: str) -> list[str]:
    """Split a comma-separated list of sink URLs.

    A comma starts a new URL only when ``scheme://`` or a known scheme and
    ``:`` follow it, so a comma inside a URL (``kafka://a:9092,b:9092/topic``)
    stays there.
    """
    text = text.strip()
    if not text:
        return []
    known = "".join(f"|{re.escape(scheme)}:" for scheme in schemes())
    parts = re.split(rf"\s*,\s*(?=[A-Za-z][A-Za-z0-9+.-]*://{known})", text)
    return [part.strip() for part in parts if part.strip()]


def build_sinks(urls: list[str]) -> list[Sink]:
    """Build a sink from each URL, closing those already built if one fails.

    Raises:
        ConfigError: If a URL is invalid, naming ``METRICSTREAM_SINKS`` and
            the URL (credentials removed).
    """
    if not urls:
        raise ConfigError(SINKS, "is not set: give at least one sink URL (or pass sinks=)")
    sinks: list[Sink] = []
    try:
        for url in urls:
            try:
                sinks.append(sink_from_url(url))
            except ConfigError as exc:
                raise _bad(SINKS, url, scrub_secrets(str(exc))) from None
    except BaseException:
        close_quietly(sinks)
        raise
    return sinks


def close_quietly(sinks: list[Sink]) -> None:
    """Close sinks that will not be used, ignoring their errors."""
    for sink in sinks:
        try:
            sink.close()
        except Exception:
            logger.debug("closing an unused sink failed", exc_info=True)


class Served(Protocol):
    """What `from_environment` needs of the streamer it builds."""

    def serve_health(
        self, host: str = ..., port: int = ..., *, ready: str | None = ...
    ) -> tuple[str, int]:
        """Serve the health endpoint."""
        ...

    def shutdown(self, timeout: float = ...) -> bool:
        """Shut down."""
        ...


S = TypeVar("S", bound=Served)


def from_environment(build: Callable[..., S], environ: Mapping[str, str], overrides: Any) -> S:
    """Build a streamer from the ``METRICSTREAM_*`` variables (`EventStreamer.from_env`).

    Args:
        build: Makes the streamer from its sinks and keyword options.
        environ: The variables.
        overrides: Keyword options that win over the environment.

    Raises:
        ConfigError: If a variable's value is invalid; it names the
            variable and the value (credentials removed).
    """
    warn_unknown(environ)
    settings = read_environment(environ, overrides)
    options = {**settings.options, **overrides}
    given_sinks = options.pop("sinks", None)
    sinks = build_sinks(settings.sink_urls) if given_sinks is None else given_sinks
    try:
        streamer = build(sinks, **options)
    except ConfigError as exc:
        if given_sinks is None:
            close_quietly(sinks)
        raise settings.explain(exc) from None
    if settings.health is not None:
        host, port, ready = settings.health
        try:
            streamer.serve_health(host, port, ready=ready)
        except ConfigError as exc:
            streamer.shutdown(timeout=1.0)
            problem = str(exc).removeprefix(f"{exc.option}: ")
            raise settings.explain(ConfigError("health_port", problem)) from None
    return streamer
