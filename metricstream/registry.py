"""Sink URL schemes: which factory builds a sink from a URL, and `sink_from_url`.

The registry is part of the sink contract: the streamer (`EventStreamer.from_env`)
and the CLI resolve URLs through it without importing any sink, and sinks are
found as plug-ins.

Where schemes come from:

- a built-in sink declares them in its own module: a ``SCHEMES`` tuple and a
  ``from_url(url, **overrides)`` function; the registry finds every module
  and package of `metricstream.sinks` that has both (importing them by name,
  as plug-ins), so adding a sink is adding a module (or folder) there;
- a third-party package declares an entry point in the ``metricstream.sinks``
  group, named after the scheme, whose object is a ``from_url``-style
  callable::

      [project.entry-points."metricstream.sinks"]
      s3 = "my_package.s3_sink:from_url"

- `register_scheme` adds one at run time.

A scheme registered at run time wins over an entry point, which wins over a
built-in sink. Built-in modules are imported, and entry points loaded, only
when a URL is first resolved; a sink module imports its client library only
when a sink is built.
"""

from __future__ import annotations

import importlib
import importlib.metadata
import os
import pkgutil
import re
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

from metricstream._secrets import scrub_secrets
from metricstream.contract import Sink
from metricstream.exceptions import ConfigError

__all__ = ["ENTRY_POINT_GROUP", "SinkFactory", "register_scheme", "schemes", "sink_from_url"]

ENTRY_POINT_GROUP = "metricstream.sinks"
"""The entry-point group third-party sinks register their schemes in."""

SinkFactory = Callable[..., Sink]
"""Builds a sink from a URL and keyword overrides: ``factory(url, **overrides)``."""

_SINKS_PACKAGE = "metricstream.sinks"
_SINKS_DIR = Path(__file__).resolve().parent / "sinks"
_SCHEME = re.compile(r"[a-z][a-z0-9+.-]*")
_lock = threading.Lock()
_runtime: dict[str, SinkFactory] = {}
_builtin: dict[str, SinkFactory] | None = None


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


def _builtin_schemes() -> dict[str, SinkFactory]:
    global _builtin  # noqa: PLW0603 - discovered once, on first use
    with _lock:
        if _builtin is None:
            found: dict[str, SinkFactory] = {}
            for info in pkgutil.iter_modules([str(_SINKS_DIR)]):
                if info.name.startswith("_"):
                    continue
                module = importlib.import_module(f"{_SINKS_PACKAGE}.{info.name}")
                declared = getattr(module, "SCHEMES", None)
                factory = getattr(module, "from_url", None)
                if declared and callable(factory):
                    for scheme in declared:
                        found[scheme] = factory
            _builtin = found
        return _builtin


def _entry_points() -> dict[str, importlib.metadata.EntryPoint]:
    return {ep.name: ep for ep in importlib.metadata.entry_points(group=ENTRY_POINT_GROUP)}


def schemes() -> dict[str, str]:
    """Return every known scheme and where its factory comes from (a module or entry point)."""
    known: dict[str, str] = {
        scheme: getattr(factory, "__module__", "?")
        for scheme, factory in _builtin_schemes().items()
    }
    known.update({name: f"entry point {ep.value}" for name, ep in _entry_points().items()})
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
    return _builtin_schemes().get(scheme)


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
