"""Sink URL schemes: which factory builds a sink from a URL, and `sink_from_url`.

The registry is part of the sink contract: the streamer (`EventStreamer.from_env`)
and the CLI resolve URLs through it without importing any sink.

Every sink, built in or not, registers its schemes the same way: as entry
points of the ``metricstream.sinks`` group, named after the scheme, whose
object is a ``from_url(url, **overrides)`` callable. metricstream's own are
in its ``pyproject.toml``::

    [project.entry-points."metricstream.sinks"]
    kafka = "metricstream.sinks.kafka:from_url"
    s3 = "my_package.s3_sink:from_url"        # a third-party package's

(an editable install reads them when installed: ``pip install -e .`` again
after adding one). `register_scheme` adds one at run time, and wins over an
entry point of the same name; a third-party entry point wins over one of
metricstream's. Nothing here scans a folder or imports a module by a name it
computes: a sink's module is imported when its entry point is loaded, the
first time a URL of its scheme is resolved, and its client library when a
sink is built. The entry points are read once for each `sys.path`.
"""

from __future__ import annotations

import os
import re
import sys
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from metricstream._secrets import scrub_secrets
from metricstream.contract import Sink
from metricstream.exceptions import ConfigError

if TYPE_CHECKING:
    from importlib.metadata import EntryPoint

__all__ = ["ENTRY_POINT_GROUP", "SinkFactory", "register_scheme", "schemes", "sink_from_url"]

ENTRY_POINT_GROUP = "metricstream.sinks"
"""The entry-point group third-party sinks register their schemes in."""

SinkFactory = Callable[..., Sink]
"""Builds a sink from a URL and keyword overrides: ``factory(url, **overrides)``."""

_OWN_DISTRIBUTION = "metricstream"
_SCHEME = re.compile(r"[a-z][a-z0-9+.-]*")
_lock = threading.Lock()
_runtime: dict[str, SinkFactory] = {}
_entry_points_read: tuple[tuple[str, ...], dict[str, EntryPoint]] | None = None


def register_scheme(scheme: str, factory: SinkFactory, *, replace: bool = False) -> None:
    """Make `sink_from_url` build URLs of `scheme` with `factory`.

    Args:
        scheme: The URL scheme, lower case (``"s3"`` for ``s3://...``).
        factory: Called as ``factory(url, **overrides)``; returns the sink.
        replace: Allow replacing a scheme registered at run time before.

    Raises:
        ConfigError: If the scheme is malformed, the factory is not callable,
            or the scheme is registered already and `replace` is False.
    """
    if not isinstance(scheme, str) or _SCHEME.fullmatch(scheme) is None:
        raise ConfigError("scheme", f"must be a lower-case URL scheme like 'kafka', not {scheme!r}")
    if not callable(factory):
        raise ConfigError("factory", f"must be callable, not {type(factory).__name__}")
    with _lock:
        if scheme in _runtime and not replace:
            raise ConfigError("scheme", f"{scheme!r} is registered already; pass replace=True")
        _runtime[scheme] = factory


def _entry_points() -> dict[str, EntryPoint]:
    """The ``metricstream.sinks`` entry points by scheme, read once for each `sys.path`."""
    global _entry_points_read  # noqa: PLW0603 - a cache, replaced whole under the lock
    path = tuple(sys.path)
    with _lock:
        if _entry_points_read is None or _entry_points_read[0] != path:
            import importlib.metadata

            found = importlib.metadata.entry_points(group=ENTRY_POINT_GROUP)
            # metricstream's own first, so that a third-party package's wins.
            ordered = sorted(found, key=lambda ep: _distribution(ep) != _OWN_DISTRIBUTION)
            _entry_points_read = (path, {ep.name: ep for ep in ordered})
        return _entry_points_read[1]


def _distribution(entry_point: EntryPoint) -> str | None:
    dist = getattr(entry_point, "dist", None)
    return None if dist is None else str(dist.name)


def schemes() -> dict[str, str]:
    """Return every known scheme and where its factory comes from.

    An entry point shows as ``module:function``; a scheme registered at run
    time as the module of its factory. No sink module is imported.
    """
    known = {name: ep.value for name, ep in _entry_points().items()}
    with _lock:
        known.update({s: getattr(f, "__module__", "?") for s, f in _runtime.items()})
    return dict(sorted(known.items()))


def _factory(scheme: str) -> SinkFactory | None:
    with _lock:
        factory = _runtime.get(scheme)
    if factory is not None:
        return factory
    entry_point = _entry_points().get(scheme)
    if entry_point is not None:
        loaded = entry_point.load()
        if not callable(loaded):
            raise ConfigError(
                "url", f"entry point {entry_point.value!r} for scheme {scheme!r} is not callable"
            )
        return loaded  # type: ignore[no-any-return]
    return None


def sink_from_url(url: str, **overrides: Any) -> Sink:
    """Build a sink from a URL; keyword arguments override URL options.

    ``${VAR}`` and ``$VAR`` in the URL are expanded from the environment, so
    ``influxdb2://host:8086?org=o&bucket=b&token=${INFLUX_TOKEN}`` works.
    The scheme (the text before the first ``:``) chooses the sink; see
    `schemes` for the known ones.

    Raises:
        ConfigError: If the scheme is unknown or an option is invalid; the
            message never contains credentials.
    """
    if not isinstance(url, str) or not url.strip():
        raise ConfigError("url", "a sink URL must be a non-empty string")
    expanded = os.path.expandvars(url.strip())
    scheme, sep, _ = expanded.partition(":")
    scheme = scheme.lower()
    factory = _factory(scheme) if sep and _SCHEME.fullmatch(scheme) else None
    if factory is None:
        known = ", ".join(f"{s}:" for s in schemes())
        raise ConfigError(
            "url", f"unknown sink URL scheme in {scrub_secrets(url)!r}; known: {known}"
        )
    sink: Sink = factory(expanded, **overrides)
    return sink
