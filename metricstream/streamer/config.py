"""`StreamerConfig`: the validated options of an `EventStreamer`.

`EventStreamer` takes its options as keyword arguments and checks them here,
once, so that every way of configuring a streamer (arguments, the
environment) gets the same rules and the same errors.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Literal

from metricstream._options import require_choice, require_int, require_number
from metricstream._validate import check_tags
from metricstream.codecs.compression import Compression
from metricstream.contract import Sink
from metricstream.exceptions import ConfigError, InvalidEventError
from metricstream.streamer.engine.lane.retry import RetryConfig

__all__ = [
    "OVERFLOW_POLICIES",
    "SPOOL_FSYNC_MODES",
    "OverflowPolicy",
    "SpoolFsync",
    "StreamerConfig",
    "check_sinks",
]

OverflowPolicy = Literal["drop_oldest", "drop_newest", "block"]
"""What a full buffer does to new events."""

OVERFLOW_POLICIES: tuple[OverflowPolicy, ...] = ("drop_oldest", "drop_newest", "block")
"""Every `OverflowPolicy`."""

SpoolFsync = Literal["batch", "interval", "never"]
"""When the spool forces what it appends to disk."""

SPOOL_FSYNC_MODES: tuple[SpoolFsync, ...] = ("batch", "interval", "never")
"""Every `SpoolFsync` mode."""


@dataclass(frozen=True)
class StreamerConfig:
    """The options of an `EventStreamer`, validated (see its documentation).

    Raises:
        ConfigError: If an option is invalid; it names the option.
    """

    batch_size: int = 1000
    flush_interval: float = 1.0
    flush_jitter: float = 0.0
    max_buffer: int = 100_000
    overflow: OverflowPolicy = "drop_oldest"
    block_timeout: float | None = None
    retry: RetryConfig = field(default_factory=RetryConfig)
    compression: Compression | None = None
    default_tags: Mapping[str, str] = field(default_factory=dict)
    correlation_prefix: str | None = None
    register_atexit: bool = True
    unhealthy_after: int = 3
    probe_interval: float = 5.0
    spool_dir: str | None = None
    spool_max_bytes: int = 1 << 30
    spool_fsync: SpoolFsync = "batch"
    self_metrics_interval: float | None = None

    def __post_init__(self) -> None:
        require_int("batch_size", self.batch_size, minimum=1)
        require_int("max_buffer", self.max_buffer, minimum=1)
        if self.batch_size > self.max_buffer:
            raise ConfigError(
                "batch_size", f"{self.batch_size} exceeds max_buffer={self.max_buffer}"
            )
        require_number("flush_interval", self.flush_interval, minimum=0, inclusive=False)
        require_number("flush_jitter", self.flush_jitter, minimum=0)
        require_choice("overflow", self.overflow, OVERFLOW_POLICIES)
        if self.block_timeout is not None:
            require_number("block_timeout", self.block_timeout, minimum=0)
        if not isinstance(self.retry, RetryConfig):
            raise ConfigError("retry", f"must be a RetryConfig, not {type(self.retry).__name__}")
        if self.compression is not None:
            object.__setattr__(self, "compression", Compression.from_str(self.compression))
        try:
            tags = check_tags(self.default_tags) if self.default_tags else {}
        except InvalidEventError as exc:
            raise ConfigError("default_tags", str(exc)) from None
        object.__setattr__(self, "default_tags", tags)
        prefix = self.correlation_prefix
        if prefix is not None and (not isinstance(prefix, str) or not prefix.strip()):
            raise ConfigError("correlation_prefix", f"must be a non-empty str, not {prefix!r}")
        require_int("unhealthy_after", self.unhealthy_after, minimum=1)
        require_number("probe_interval", self.probe_interval, minimum=0, inclusive=False)
        if self.spool_dir is not None:
            try:
                directory = os.fspath(self.spool_dir)
            except TypeError:
                raise ConfigError(
                    "spool_dir", f"must be a path, not {type(self.spool_dir).__name__}"
                ) from None
            if not isinstance(directory, str) or not directory:
                raise ConfigError("spool_dir", f"must be a non-empty path, not {directory!r}")
            object.__setattr__(self, "spool_dir", os.path.abspath(directory))
        require_int("spool_max_bytes", self.spool_max_bytes, minimum=1 << 20)
        require_choice("spool_fsync", self.spool_fsync, SPOOL_FSYNC_MODES)
        if self.self_metrics_interval is not None:
            require_number(
                "self_metrics_interval", self.self_metrics_interval, minimum=0, inclusive=False
            )


_SINK_METHODS = ("prepare", "write", "check", "close")


def check_sinks(sinks: object) -> tuple[list[Sink], list[str]]:
    """Return the sinks, checked, and their unique names (a sink's ``name``, or its type's).

    Raises:
        ConfigError: If `sinks` is not a non-empty list of objects with
            ``prepare``, ``write``, ``check`` and ``close``, or two share a name.
    """
    if isinstance(sinks, (str, bytes)) or not isinstance(sinks, Iterable):
        raise ConfigError("sinks", "must be a list of sinks")
    sink_list: list[Sink] = list(sinks)
    if not sink_list:
        raise ConfigError("sinks", "at least one sink is required")
    names: list[str] = []
    for sink in sink_list:
        missing = [m for m in _SINK_METHODS if not callable(getattr(sink, m, None))]
        if missing:
            lacks = ", ".join(f"{member}()" for member in missing)
            raise ConfigError("sinks", f"{sink!r} is not a sink: it lacks {lacks}")
        name = getattr(sink, "name", None)
        if name is None:
            name = type(sink).__name__
        elif not isinstance(name, str) or not name:
            raise ConfigError("sinks", f"sink {sink!r} has an invalid name {name!r}")
        if name in names:
            raise ConfigError("sinks", f"two sinks are named {name!r}; give each a unique name=")
        names.append(name)
    return sink_list, names
