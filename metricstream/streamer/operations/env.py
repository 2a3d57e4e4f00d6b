"""Configuration from the environment: the ``METRICSTREAM_*`` variables.

`EventStreamer.from_env` reads them through `read_environment`; each
variable maps to one option, and a bad value is a `ConfigError` that names
the variable and the value (credentials removed). An unset or empty
variable leaves the option at its default; an option passed to `from_env`
is not read from the environment at all.

- ``METRICSTREAM_SINKS``: sink URLs separated by commas (required unless
  ``sinks=`` is passed). A comma starts a new URL only when ``scheme://``
  or a known ``scheme:`` follows it, so Kafka broker lists keep theirs.
- ``METRICSTREAM_DEFAULT_TAGS``: ``key=value,key=value``.
- ``METRICSTREAM_BATCH_SIZE``, ``METRICSTREAM_MAX_BUFFER``: integers >= 1.
- ``METRICSTREAM_FLUSH_INTERVAL``: seconds > 0.
- ``METRICSTREAM_OVERFLOW``: ``drop_oldest``, ``drop_newest`` or ``block``.
- ``METRICSTREAM_COMPRESSION``: ``zstd``, ``gzip`` or ``none``.
- ``METRICSTREAM_SELF_METRICS_INTERVAL``: seconds > 0 between self-telemetry
  emissions.
- ``METRICSTREAM_HEALTH_PORT``: serve the health endpoint on this port (0:
  any free port), on ``METRICSTREAM_HEALTH_HOST`` (default ``127.0.0.1``;
  ``0.0.0.0`` to answer probes from other hosts).
- ``METRICSTREAM_SPOOL_DIR``: the spool directory (``spool_dir``), with
  ``METRICSTREAM_SPOOL_MAX_BYTES`` and ``METRICSTREAM_SPOOL_FSYNC``
  (``batch``, ``interval`` or ``never``).
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol, TypeVar

from metricstream._log import logger
from metricstream._options import require_choice
from metricstream._secrets import scrub_secrets
from metricstream._validate import check_tags
from metricstream.codecs.compression import Compression
from metricstream.contract import Sink
from metricstream.exceptions import ConfigError, InvalidEventError
from metricstream.registry import schemes, sink_from_url
from metricstream.streamer.config import OVERFLOW_POLICIES, SPOOL_FSYNC_MODES

__all__ = [
    "ENV_PREFIX",
    "HEALTH_HOST",
    "HEALTH_PORT",
    "SINKS",
    "SPOOL_DIR",
    "EnvSettings",
    "build_sinks",
    "close_quietly",
    "from_environment",
    "read_environment",
    "spool_option",
    "split_sink_urls",
]

ENV_PREFIX = "METRICSTREAM_"
"""The prefix of every variable read here."""

SINKS = "METRICSTREAM_SINKS"
"""Comma-separated sink URLs."""

HEALTH_PORT = "METRICSTREAM_HEALTH_PORT"
"""The port of the health endpoint; unset: none is served."""

HEALTH_HOST = "METRICSTREAM_HEALTH_HOST"
"""The address the health endpoint listens on."""

SPOOL_DIR = "METRICSTREAM_SPOOL_DIR"
"""The spool directory (see `spool_option`)."""


@dataclass
class EnvSettings:
    """What the environment says, parsed and checked.

    Attributes:
        options: `EventStreamer` keyword arguments.
        sources: For each option in `options`: the variable and its text.
        sink_urls: The URLs of ``METRICSTREAM_SINKS``, in order.
        health: ``(host, port)`` to serve health on, or None.
    """

    options: dict[str, Any] = field(default_factory=dict)
    sources: dict[str, tuple[str, str]] = field(default_factory=dict)
    sink_urls: list[str] = field(default_factory=list)
    health: tuple[str, int] | None = None

    def explain(self, error: ConfigError) -> ConfigError:
        """Return `error` restated in terms of the variable it came from, if any."""
        source = self.sources.get(error.option)
        if source is None:
            return error
        variable, text = source
        message = str(error).removeprefix(f"{error.option}: ")
        return _bad(variable, text, message)


def _bad(variable: str, text: str, problem: str) -> ConfigError:
    return ConfigError(variable, f"{scrub_secrets(text)!r}: {problem}")


def _integer(variable: str, text: str, minimum: int, maximum: int | None = None) -> int:
    try:
        value = int(text.strip())
    except ValueError:
        value = None
    if value is None or value < minimum or (maximum is not None and value > maximum):
        bound = f">= {minimum}" if maximum is None else f"from {minimum} to {maximum}"
        raise _bad(variable, text, f"must be an integer {bound}")
    return value


def _seconds(variable: str, text: str) -> float:
    try:
        value = float(text.strip())
    except ValueError:
        value = math.nan
    if not math.isfinite(value) or value <= 0:
        raise _bad(variable, text, "must be a number of seconds > 0")
    return value


def _overflow(variable: str, text: str) -> str:
    try:
        return require_choice("overflow", text.strip(), OVERFLOW_POLICIES)
    except ConfigError:
        raise _bad(variable, text, f"must be one of {', '.join(OVERFLOW_POLICIES)}") from None


def _compression(variable: str, text: str) -> Compression:
    try:
        return Compression.from_str(text.strip())
    except ConfigError as exc:
        raise _bad(variable, text, str(exc).removeprefix(f"{exc.option}: ")) from None


def _default_tags(variable: str, text: str) -> dict[str, str]:
    tags: dict[str, str] = {}
    for entry in text.split(","):
        if not entry.strip():
            continue
        key, sep, value = entry.partition("=")
        if not sep or not key.strip():
            raise _bad(variable, text, f"{entry.strip()!r} is not key=value")
        tags[key.strip()] = value.strip()
    try:
        return check_tags(tags)
    except InvalidEventError as exc:
        raise _bad(variable, text, str(exc)) from None


def _fsync(variable: str, text: str) -> str:
    try:
        return require_choice("spool_fsync", text.strip(), SPOOL_FSYNC_MODES)
    except ConfigError:
        raise _bad(variable, text, f"must be one of {', '.join(SPOOL_FSYNC_MODES)}") from None


_Parser = Callable[[str, str], Any]
_OPTIONS: tuple[tuple[str, str, _Parser], ...] = (
    ("METRICSTREAM_DEFAULT_TAGS", "default_tags", _default_tags),
    ("METRICSTREAM_BATCH_SIZE", "batch_size", lambda var, text: _integer(var, text, 1)),
    ("METRICSTREAM_FLUSH_INTERVAL", "flush_interval", _seconds),
    ("METRICSTREAM_MAX_BUFFER", "max_buffer", lambda var, text: _integer(var, text, 1)),
    ("METRICSTREAM_OVERFLOW", "overflow", _overflow),
    ("METRICSTREAM_COMPRESSION", "compression", _compression),
    ("METRICSTREAM_SELF_METRICS_INTERVAL", "self_metrics_interval", _seconds),
    ("METRICSTREAM_SPOOL_MAX_BYTES", "spool_max_bytes", lambda var, t: _integer(var, t, 1 << 20)),
    ("METRICSTREAM_SPOOL_FSYNC", "spool_fsync", _fsync),
)
"""(variable, `EventStreamer` option, parser) for every plain option."""


def spool_option(path: str) -> dict[str, Any]:
    """Return the `EventStreamer` options that ``METRICSTREAM_SPOOL_DIR`` stands for."""
    return {"spool_dir": path}


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
    for variable, option, parse in _OPTIONS:
        text = environ.get(variable, "")
        if text.strip() and option not in overridden:
            settings.options[option] = parse(variable, text)
            settings.sources[option] = (variable, text)
    spool_dir = environ.get(SPOOL_DIR, "")
    if spool_dir.strip():
        settings.options.update(spool_option(spool_dir.strip()))
    port = environ.get(HEALTH_PORT, "")
    if port.strip():
        host = environ.get(HEALTH_HOST, "").strip() or "127.0.0.1"
        settings.health = (host, _integer(HEALTH_PORT, port, 0, 65535))
        settings.sources["health_port"] = (HEALTH_PORT, port)
    if "sinks" not in overridden:
        settings.sink_urls = split_sink_urls(environ.get(SINKS, ""))
    return settings


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
            logger.debug("metricstream: closing an unused sink failed", exc_info=True)


class Served(Protocol):
    """What `from_environment` needs of the streamer it builds."""

    def serve_health(self, host: str = ..., port: int = ...) -> tuple[str, int]:
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
        try:
            streamer.serve_health(*settings.health)
        except ConfigError as exc:
            streamer.shutdown(timeout=1.0)
            problem = str(exc).removeprefix(f"{exc.option}: ")
            raise settings.explain(ConfigError("health_port", problem)) from None
    return streamer
