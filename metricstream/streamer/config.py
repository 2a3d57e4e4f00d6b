"""The streamer's options, declared once: `StreamerConfig`, and `StreamerArguments` (+ sinks).

Each option is declared here once (`metricstream._options.option`: its
default, its kind and one line of documentation). Everything else derives
from the declaration: the parameters of `EventStreamer` (through
`StreamerArguments` and `takes_options`), the checks (every way of
configuring a streamer gets the same rules and the same errors), the
``METRICSTREAM_<OPTION>`` environment variables `EventStreamer.from_env`
reads (through `from_text`), and the documentation (the ``Args:`` sections
of these classes and of `EventStreamer`).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any, Literal

from metricstream._options import (
    Kind,
    boolean,
    choice,
    duration,
    integer,
    option,
    optional,
    options_class,
    text,
)
from metricstream._validate import check_tags
from metricstream.codecs.compression import Compression
from metricstream.contract import Sink
from metricstream.event import MetricEvent
from metricstream.exceptions import ConfigError, InvalidEventError
from metricstream.streamer.engine.lane.retry import RetryConfig

__all__ = [
    "OVERFLOW_POLICIES",
    "OnDrop",
    "SPOOL_FSYNC_MODES",
    "OverflowPolicy",
    "SpoolFsync",
    "StreamerArguments",
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

OnDrop = Callable[[str, str, int, "MetricEvent | None"], object]
"""``on_drop(sink, reason, count, first_event)``: see ``EventStreamer(on_drop=...)``."""


def _check_retry(name: str, value: object) -> RetryConfig:
    if value is None:
        return RetryConfig()
    if not isinstance(value, RetryConfig):
        raise ConfigError(name, f"must be a RetryConfig, not {type(value).__name__}")
    return value


def _check_compression(name: str, value: object) -> Compression:
    if not isinstance(value, (str, Compression)):
        raise ConfigError(name, f"must be 'zstd', 'gzip' or 'none', not {value!r}")
    return Compression.from_str(value)


def _check_default_tags(name: str, value: object) -> dict[str, str]:
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise ConfigError(name, f"must be a mapping of tags, not {type(value).__name__}")
    try:
        return check_tags(value) if value else {}
    except InvalidEventError as exc:
        raise ConfigError(name, str(exc)) from None


def _parse_default_tags(name: str, written: str) -> dict[str, str]:
    tags: dict[str, str] = {}
    for entry in written.split(","):
        if not entry.strip():
            continue
        key, sep, value = entry.partition("=")
        if not sep or not key.strip():
            raise ConfigError(name, f"{entry.strip()!r} is not key=value")
        if key.strip() in tags:
            raise ConfigError(name, f"tag {key.strip()!r} is given twice")
        tags[key.strip()] = value.strip()
    return tags


def _check_directory(name: str, value: object) -> str:
    if not isinstance(value, (str, os.PathLike)):
        raise ConfigError(name, f"must be a path, not {type(value).__name__}")
    directory = os.fspath(value)
    if not isinstance(directory, str) or not directory.strip():
        raise ConfigError(name, f"must be a non-empty path, not {directory!r}")
    return os.path.abspath(directory)


def _stripped(_name: str, written: str) -> str:
    return written.strip()


def _check_callable(name: str, value: object) -> object:
    if not callable(value):
        raise ConfigError(name, f"must be a callable, not {type(value).__name__}")
    return value


@options_class
class StreamerConfig:
    """The options of an `EventStreamer`, each checked once (see `metricstream.streamer.config`).

    Raises:
        ConfigError: If an option is invalid; it names the option.
    """

    batch_size: int = option(
        default=1000,
        kind=integer(minimum=1),
        doc="Events per batch; a batch is cut when this many are waiting.",
    )
    flush_interval: float = option(
        default=1.0,
        kind=duration(),
        doc="Seconds after which waiting events are sent even if fewer than batch_size.",
    )
    flush_jitter: float = option(
        default=0.0,
        kind=duration(inclusive=True),
        doc="Up to this many random seconds added to each interval, so that many processes "
        "do not flush in step.",
    )
    max_buffer: int = option(
        default=100_000,
        kind=integer(minimum=1),
        doc="The most events one sink may have waiting (queued or being written), and the "
        "most waiting to be batched.",
    )
    overflow: OverflowPolicy = option(
        default="drop_oldest",
        kind=choice(OVERFLOW_POLICIES, fold_case=True),
        doc="What a full buffer does to new events: 'drop_oldest' (make room by dropping "
        "the oldest waiting batch), 'drop_newest' (drop the new events) or 'block' (send "
        "waits for room, up to block_timeout, then drops the new event).",
    )
    block_timeout: float | None = option(
        default=None,
        kind=optional(duration(inclusive=True)),
        doc="Seconds send may wait under 'block'; None waits as long as it takes.",
    )
    retry: RetryConfig | None = option(
        default_factory=RetryConfig,
        kind=Kind("a RetryConfig (None: the default one)", _check_retry),
        doc="The retry policy for failed writes.",
        text=False,
    )
    compression: str | Compression | None = option(
        default=None,
        kind=optional(Kind("'zstd', 'gzip' or 'none'", _check_compression)),
        doc="Default codec for sinks that compress; a sink's own setting wins.",
    )
    default_tags: Mapping[str, object] | None = option(
        default_factory=dict,
        kind=Kind("tags (as text: key=value,key=value)", _check_default_tags, _parse_default_tags),
        doc="Tags added to every event that does not set them itself.",
    )
    correlation_prefix: str | None = option(
        default=None,
        kind=optional(text()),
        doc="Prefix of generated correlation ids; None: the program name.",
    )
    register_atexit: bool = option(
        default=True,
        kind=boolean(),
        doc="Shut down when the interpreter exits (all streamers together get 2 s).",
    )
    unhealthy_after: int = option(
        default=3,
        kind=integer(minimum=1),
        doc="Consecutive failed writes after which a sink counts as unhealthy.",
    )
    probe_interval: float = option(
        default=5.0,
        kind=duration(),
        doc="Seconds between health probes (Sink.check) of a disconnected, idle sink.",
    )
    spool_dir: str | os.PathLike[str] | None = option(
        default=None,
        kind=optional(Kind("a directory path", _check_directory, _stripped)),
        doc="A directory for the write-ahead spool (README, 'Delivery guarantees'): each "
        "batch is appended there once before delivery, batches a sink cannot take yet stay "
        "on disk, and a streamer opened on it later delivers what was left; None keeps "
        "everything in memory.",
    )
    spool_max_bytes: int = option(
        default=1 << 30,
        kind=integer(minimum=1 << 20),
        doc="The most bytes the spool may hold; when full, the overflow policy applies to it.",
    )
    spool_fsync: SpoolFsync = option(
        default="batch",
        kind=choice(SPOOL_FSYNC_MODES, fold_case=True),
        doc="When appended batches are forced to disk: 'batch' (each one), 'interval' (about "
        "once a second) or 'never' (the operating system decides).",
    )
    self_metrics_interval: float | None = option(
        default=None,
        kind=optional(duration()),
        doc="Every this many seconds, send every sink one metricstream_internal event per "
        "sink with its counters, never counted in the accounting; None sends none.",
    )
    max_series_per_measurement: int | None = option(
        default=None,
        kind=optional(integer(minimum=1)),
        doc="The most series (distinct tag sets) of one measurement that send() delivers; "
        "events of a new series beyond it are dropped as 'cardinality'. None: no limit.",
    )
    sample_seed: int | None = option(
        default=None,
        kind=optional(integer(minimum=0)),
        doc="Seeds the random draws of sample_rate (send, count, gauge, timed) for a "
        "reproducible sequence; None: seeded by the system, again in a forked child.",
    )
    on_drop: OnDrop | None = option(
        default=None,
        kind=optional(Kind("a callable", _check_callable)),
        doc="Called as on_drop(sink, reason, count, first_event) on a thread of its own, at "
        "most once a second per sink and reason, with the events dropped since its last call.",
        text=False,
    )
    dead_letter_dir: str | os.PathLike[str] | None = option(
        default=None,
        kind=optional(Kind("a directory path", _check_directory, _stripped)),
        doc="A directory where the events a sink dropped as 'rejected' or 'invalid' are "
        "written as JSON Lines with the reason and the error (README, 'Dead letters'); None "
        "writes none.",
    )
    dead_letter_max_bytes: int = option(
        default=1 << 30,
        kind=integer(minimum=1 << 20),
        doc="The most bytes the dead-letter files may hold; beyond it, dead letters are "
        "counted in health instead of written.",
    )

    def __post_init__(self) -> None:
        """A batch must fit in the buffer."""
        if self.batch_size > self.max_buffer:
            raise ConfigError(
                "batch_size", f"{self.batch_size} exceeds max_buffer={self.max_buffer}"
            )

    @property
    def retry_policy(self) -> RetryConfig:
        """`retry`, as checked (a `RetryConfig`, never None)."""
        return _check_retry("retry", self.retry)

    @property
    def codec(self) -> Compression | None:
        """`compression`, as the `Compression` it was checked into (None: none chosen)."""
        return None if self.compression is None else Compression.from_str(self.compression)


def _check_sinks(name: str, value: object) -> tuple[Sink, ...]:
    sinks, _ = check_sinks(value)
    return tuple(sinks)


@options_class
class StreamerArguments(StreamerConfig):
    """What `EventStreamer` takes: its sinks, then every option of `StreamerConfig`."""

    sinks: Sequence[Sink] = option(
        kind=Kind("a list of sinks with unique names", _check_sinks),
        doc="The destinations (objects following metricstream.Sink); names must be unique.",
        kw_only=False,
        text=False,
    )

    def config(self) -> StreamerConfig:
        """The options without the sinks."""
        options: dict[str, Any] = {name: getattr(self, name) for name in _CONFIG_FIELDS}
        return StreamerConfig(**options)


_CONFIG_FIELDS = tuple(StreamerConfig.__dataclass_fields__)

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
