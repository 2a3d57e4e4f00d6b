"""`RelayOptions`: a relay's options, declared once (constructor, checks and docs follow)."""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

from metricstream._options import (
    Kind,
    duration,
    integer,
    option,
    optional,
    options_class,
    text,
)
from metricstream.aggregate.event_time import EventTimeWindows
from metricstream.aggregate.watermark import WatermarkTracker
from metricstream.aggregate.windows import Session, Sliding, Tumbling, WindowSpec, parse_window
from metricstream.contract import Sink
from metricstream.exceptions import ConfigError
from metricstream.relay.source import KafkaSource, parse_source
from metricstream.streamer.engine.lane.retry import RetryConfig

__all__ = ["RelayOptions"]


def _check_source(option_name: str, value: object) -> KafkaSource:
    if isinstance(value, (str, KafkaSource)):
        return parse_source(value)
    raise ConfigError(option_name, f"must be a kafka:// URL or a KafkaSource, not {value!r}")


def _check_sinks(option_name: str, value: object, *, required: bool = True) -> tuple[Any, ...]:
    if isinstance(value, (str, Sink)):
        value = (value,)
    if not isinstance(value, Sequence):
        raise ConfigError(option_name, f"must be a list of sinks or sink URLs, not {value!r}")
    if required and not value:
        raise ConfigError(option_name, "name at least one sink (a Sink or a URL such as console:)")
    for item in value:
        if not isinstance(item, str) and not isinstance(item, Sink):
            raise ConfigError(option_name, f"{item!r} is neither a sink nor a sink URL")
    return tuple(value)


def _check_late_sinks(option_name: str, value: object) -> tuple[Any, ...]:
    return _check_sinks(option_name, value, required=False)


def _check_windows(option_name: str, value: object) -> EventTimeWindows | WindowSpec | None:
    if value is None or isinstance(value, EventTimeWindows):
        return value
    if isinstance(value, (str, Tumbling, Sliding, Session)):
        return parse_window(value)
    raise ConfigError(option_name, f"must be EventTimeWindows or a window text, not {value!r}")


def _check_retry(option_name: str, value: object) -> RetryConfig | None:
    if value is None or isinstance(value, RetryConfig):
        return value
    raise ConfigError(option_name, f"must be a RetryConfig or None, not {value!r}")


def _check_directory(option_name: str, value: object) -> str | None:
    if value is None:
        return None
    if not isinstance(value, (str, os.PathLike)) or not os.fspath(value):
        raise ConfigError(option_name, f"must be a directory, not {value!r}")
    return str(os.fspath(value))


@options_class
class RelayOptions:
    """The options of a `Relay`, each checked when the relay is built."""

    source: KafkaSource = option(
        kind=Kind("a kafka:// URL or a KafkaSource", _check_source),
        doc="What to read: kafka://HOST:PORT/TOPIC[,TOPIC...]?group=GROUP (see KafkaSource).",
        kw_only=False,
    )
    sinks: tuple[Sink | str, ...] = option(
        kind=Kind("sinks or sink URLs", _check_sinks),
        doc="Where events (or, with windows, window results) go: sinks or URLs (--to).",
        kw_only=False,
    )
    windows: EventTimeWindows | WindowSpec | None = option(
        default=None,
        kind=Kind("EventTimeWindows, a window or its text, or None", _check_windows),
        doc="Aggregate into event-time windows: 'tumbling 60s', 'sliding 60s every 10s', "
        "'session gap 30s' (with name, by, aggregates...), or a configured EventTimeWindows.",
    )
    name: str | None = option(
        default=None,
        kind=optional(text()),
        doc="The measurement of window results (needed with a window text).",
    )
    by: str | None = option(
        default=None, kind=optional(text()), doc="Properties to group windows by ('host,route')."
    )
    aggregates: str = option(
        default="count",
        kind=text(),
        doc="The window aggregates ('count,sum:bytes,quantiles:latency_ms').",
    )
    allowed_lateness: float = option(
        default=10.0,
        kind=duration(minimum=0, inclusive=True),
        doc="How much older than the newest event an event may be and still count.",
    )
    idle_timeout: float = option(
        default=60.0,
        kind=duration(),
        doc="After how long without events a partition stops holding the watermark back.",
    )
    late_to: tuple[Sink | str, ...] = option(
        default=(),
        kind=Kind("sinks or sink URLs", _check_late_sinks),
        doc="Where late events go, raw (at least once); none: they are only counted.",
    )
    spool_dir: str | None = option(
        default=None,
        kind=Kind("a directory, or None", _check_directory),
        doc="Spool batches on disk here before the sinks (see EventStreamer's spool_dir).",
    )
    max_buffer: int = option(
        default=100_000,
        kind=integer(minimum=1),
        doc="Events held (read, not yet delivered) at most; beyond, the partitions pause.",
    )
    batch_messages: int = option(
        default=1000,
        kind=integer(minimum=1),
        doc="No batch spans a multiple of this many offsets (the same for every relay of a group).",
    )
    max_batch_events: int = option(
        default=10_000,
        kind=integer(minimum=1),
        doc="The most events in one batch (the same for every relay of a group).",
    )
    linger: float = option(
        default=0.5,
        kind=duration(),
        doc="Seconds a partition's last batch waits for more messages before it is sent.",
    )
    commit_interval: float = option(
        default=1.0, kind=duration(), doc="Seconds between offset commits."
    )
    revoke_timeout: float = option(
        default=10.0,
        kind=duration(minimum=0, inclusive=True),
        doc="Seconds a revoked partition's deliveries are awaited before it is handed over.",
    )
    stop_timeout: float = option(
        default=30.0,
        kind=duration(minimum=0, inclusive=True),
        doc="Seconds stop() waits for the sinks to deliver what was read.",
    )
    retry: RetryConfig | None = option(
        default=None,
        kind=Kind("a RetryConfig, or None", _check_retry),
        doc="How the sinks' writes are retried; None: RetryConfig(), without end "
        "(Kafka keeps the events and the partitions pause).",
        text=False,
    )
    health_host: str = option(
        default="127.0.0.1", kind=text(), doc="The address of the health endpoint."
    )
    health_port: int | None = option(
        default=None,
        kind=optional(integer(minimum=0, maximum=65535)),
        doc="Serve /healthz and /metrics on this port (0: any free one); None: not served.",
    )

    def __post_init__(self) -> None:
        if self.max_batch_events > self.max_buffer:
            raise ConfigError(
                "max_batch_events",
                f"{self.max_batch_events} is more than max_buffer={self.max_buffer} can hold",
            )
        if isinstance(self.windows, (Tumbling, Sliding, Session)):
            if self.name is None:
                raise ConfigError("name", "name the measurement of the window results (--name)")
            self.build_windows()  # checks the name, the groups and the aggregates
        if self.windows is None and self.late_to:
            raise ConfigError("late_to", "late events exist only with windows")
        strategy = str(self.source.consumer_config.get("partition.assignment.strategy", ""))
        if "cooperative" in strategy:
            raise ConfigError(
                "partition.assignment.strategy",
                "the relay rebalances eagerly (range or roundrobin), not cooperatively",
            )

    def build_windows(self) -> EventTimeWindows | None:
        """The windows these options describe (a new instance for a window text)."""
        if self.windows is None or isinstance(self.windows, EventTimeWindows):
            return self.windows
        return EventTimeWindows(
            self.name or "",
            self.windows,
            by=self.by,
            aggregates=self.aggregates,
            watermark=WatermarkTracker(self.allowed_lateness, self.idle_timeout),
        )
