"""Health and accounting snapshots: `SinkHealth` and `StreamerHealth`.

For every sink, in every snapshot::

    events_accepted == events_written + events_dropped + pending + spooled

where ``events_dropped`` is the sum of ``dropped_by_reason``. Events
sampled out (``send(event, sample_rate=...)``) are in no term: they are
counted apart, in `StreamerHealth.sampled_out`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

import orjson

from metricstream._options import choice

__all__ = [
    "DROP_REASONS",
    "READY_POLICIES",
    "AggregatorHealth",
    "DeadLetterHealth",
    "SinkHealth",
    "SpoolHealth",
    "StreamerHealth",
]

READY_POLICIES = choice(("all", "any"), fold_case=True)
"""What readiness asks of the sinks (`StreamerHealth.ready`): all healthy, or any one."""

DROP_REASONS: tuple[str, ...] = (
    "overflow",
    "invalid",
    "rejected",
    "retries_exhausted",
    "shutdown",
    "corrupt",
    "collapsed",
    "unconfirmed",
    "cardinality",
)
"""Why events are dropped:

- ``overflow``: the buffer was full (``max_buffer``) under a drop policy, or
  ``block_timeout`` ran out; with a spool, the spool was full too
  (``spool_max_bytes``, or a full disk and the lane's memory);
- ``invalid``: the sink could not encode the event, or an integration could
  not build it (`EventStreamer.count_invalid`);
- ``rejected``: the destination refused it for good (`PermanentSinkError`);
- ``retries_exhausted``: every retry failed (only under a `RetryConfig` with
  a limit; the default retries while the sink is down; never with a spool,
  where events wait and are written again);
- ``shutdown``: still undelivered when the shutdown deadline passed, or sent
  after shutdown;
- ``corrupt``: lost to damage found in the spool (a bit flip, a truncated file);
- ``collapsed``: a later event of the same batch, with the same measurement,
  tags and timestamp at the sink's precision and every one of its fields,
  would overwrite it on the server (the InfluxDB sink);
- ``unconfirmed``: handed to the destination, but its fate was still unknown
  at the shutdown deadline (a write in flight, a Kafka message without its
  delivery report); a report that comes later still counts it as written;
- ``cardinality``: a new series (tag set) of a measurement that has
  ``max_series_per_measurement`` series already.

A sink may drop events under a reason of its own (`InvalidEventError.reason`,
for example the Redis counter sink's ``limits``); health shows such a reason
once it has occurred.
"""


@dataclass(frozen=True)
class SinkHealth:
    """One sink's state and exact accounting at one moment.

    Attributes:
        name: The sink's name.
        connected: False after a failed write or probe until the next success.
        healthy: Connected and below the streamer's consecutive-failure threshold.
        last_write_ns: Wall-clock time of the last successful write, or None.
        events_accepted: Events `send` accepted while this sink was attached.
        events_written: Events the sink confirmed written.
        events_dropped: Events dropped for this sink, all reasons.
        dropped_by_reason: Drops by reason (every reason in `DROP_REASONS` present).
        write_errors: Failed write attempts.
        retries: Retries performed.
        pending: Events accepted but neither written nor dropped yet.
        consecutive_failures: Failed attempts since the last success.
        last_error: The last error message (credentials removed), or None.
        last_write_latency_ms: Duration of the last successful write.
        spooled: Events waiting for this sink on disk only, in the spool
            (0 without one); after shutdown, what stays there for the next
            streamer. With a spool, `events_accepted` includes the events an
            earlier streamer left there for this sink.
    """

    name: str
    connected: bool
    healthy: bool
    last_write_ns: int | None
    events_accepted: int
    events_written: int
    events_dropped: int
    dropped_by_reason: Mapping[str, int]
    write_errors: int
    retries: int
    pending: int
    consecutive_failures: int
    last_error: str | None
    last_write_latency_ms: float | None
    spooled: int = 0

    def to_dict(self) -> dict[str, Any]:
        """Return the snapshot as plain data (JSON-ready)."""
        data = asdict(self)
        data["dropped_by_reason"] = dict(self.dropped_by_reason)
        return data


@dataclass(frozen=True)
class SpoolHealth:
    """What the spool holds beyond each sink's own figures.

    Attributes:
        directory: The spool directory.
        unclaimed: Events the spool holds for sinks this streamer does not
            have (renamed or removed), by their name: never delivered by
            this streamer, and deleted once its own sinks are done with
            them (replay them with ``metricstream spool replay``).
        untrusted: For each sink whose saved position could not be trusted
            when the spool was opened (a damaged or missing position file):
            the events it received again from the oldest stored record.
    """

    directory: str
    unclaimed: Mapping[str, int] = field(default_factory=dict)
    untrusted: Mapping[str, int] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """Return the figures as plain data (JSON-ready)."""
        return {
            "directory": self.directory,
            "unclaimed": dict(self.unclaimed),
            "untrusted": dict(self.untrusted),
        }


@dataclass(frozen=True)
class AggregatorHealth:
    """The series of one aggregator (``streamer.aggregator(...)``).

    Attributes:
        interval: Its window, in seconds.
        max_series: Its cardinality limit.
        series: The series it holds (its ``overflow=true`` series not included).
        series_folded: Distinct series folded into ``overflow=true`` series
            because `max_series` were there already.
    """

    interval: float
    max_series: int
    series: int
    series_folded: int


@dataclass(frozen=True)
class DeadLetterHealth:
    """What became of the events the sinks refused (``dead_letter_dir``).

    Attributes:
        directory: Where the dead-letter files are.
        events_written: Events written there.
        events_not_written: Events that could not be (the directory full at
            ``dead_letter_max_bytes``, an error writing it, or more waiting
            than ``max_buffer``); each is still counted as dropped.
        last_error: The last error writing there, or None.
    """

    directory: str
    events_written: int = 0
    events_not_written: int = 0
    last_error: str | None = None


@dataclass(frozen=True)
class StreamerHealth:
    """The streamer's state: every sink's `SinkHealth` by name.

    Attributes:
        healthy: True when every sink is healthy and the streamer is running.
        running: False once shutdown has begun.
        events_accepted: Events `send` accepted in total.
        sinks: `SinkHealth` by sink name.
        error: What is wrong with the streamer itself (its batcher thread
            died), or None.
        live: True while the streamer's own threads work: the batcher and
            each sink's preparer and writer are alive (or were stopped by a
            shutdown). False only after a bug in metricstream killed one;
            a sink that is down leaves it True.
        spool: The spool's own figures, or None without a spool.
        sampled_out: Events ``sample_rate`` left out (never accepted, so in
            no term of the accounting).
        aggregators: Each aggregator's series, by name.
        on_drop_errors: Calls of the ``on_drop`` callback that raised.
        dead_letters: What became of the refused events, with a
            ``dead_letter_dir``; None without one.
    """

    healthy: bool
    running: bool
    events_accepted: int
    sinks: Mapping[str, SinkHealth] = field(default_factory=dict)
    error: str | None = None
    live: bool = True
    spool: SpoolHealth | None = None
    sampled_out: int = 0
    aggregators: Mapping[str, AggregatorHealth] = field(default_factory=dict)
    on_drop_errors: int = 0
    dead_letters: DeadLetterHealth | None = None

    @property
    def series_folded(self) -> int:
        """Distinct series the aggregators folded into ``overflow=true`` series, in all."""
        return sum(aggregator.series_folded for aggregator in self.aggregators.values())

    def ready(self, policy: str = "all") -> bool:
        """Whether the streamer is running and its sinks are healthy: all of them, or any.

        Args:
            policy: ``"all"`` (every sink healthy) or ``"any"`` (at least one).
        """
        if not (self.running and self.live):
            return False
        states = [sink.healthy for sink in self.sinks.values()]
        return all(states) if policy == "all" else any(states)

    def to_dict(self) -> dict[str, Any]:
        """Return the snapshot as plain data (JSON-ready)."""
        return {
            "healthy": self.healthy,
            "running": self.running,
            "events_accepted": self.events_accepted,
            "sinks": {name: sink.to_dict() for name, sink in self.sinks.items()},
            "error": self.error,
            "live": self.live,
            "spool": None if self.spool is None else self.spool.to_dict(),
            "sampled_out": self.sampled_out,
            "aggregators": {name: asdict(a) for name, a in self.aggregators.items()},
            "series_folded": self.series_folded,
            "on_drop_errors": self.on_drop_errors,
            "dead_letters": None if self.dead_letters is None else asdict(self.dead_letters),
        }

    def to_json(self) -> str:
        """Return the snapshot as a JSON document."""
        return orjson.dumps(self.to_dict()).decode()
