"""`Recording`: the facade's instruments and aggregators, one class `EventStreamer` inherits.

`EventStreamer` is one class; its recording methods (`timed`, `count`,
`gauge`, `aggregator`) live here, beside what they delegate to
(`metricstream.streamer.operations.instruments`,
`metricstream.streamer.operations.aggregation`), so that the facade's
module holds its hot path and its delegations. They read two attributes
of the streamer: its `CurrentPipeline` and its `Aggregations`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from metricstream.streamer.engine.current import CurrentPipeline
from metricstream.streamer.operations import instruments
from metricstream.streamer.operations.aggregation import DEFAULT_AGGREGATOR, Aggregations

if TYPE_CHECKING:
    from metricstream.aggregate import Aggregator

__all__ = ["Recording"]

_timer, _count, _gauge = instruments.timer, instruments.count, instruments.gauge


class Recording:
    """The recording methods of `EventStreamer` (see the module doc)."""

    _current: CurrentPipeline
    _aggregations: Aggregations

    if TYPE_CHECKING:
        # What a type checker sees: the options as the keyword-only parameters
        # they are. At run time they come in with the tags (see
        # `metricstream.streamer.operations.instrument_options`, which says why).

        def timed(
            self,
            name: str,
            /,
            *,
            tags: Mapping[str, Any] | None = None,
            sample_rate: float | None = None,
            aggregate: bool = False,
            **tag_keywords: Any,
        ) -> instruments.Timer:
            """Time a function or block (see the definition that runs)."""

        def count(
            self,
            name: str,
            /,
            n: int = 1,
            *,
            tags: Mapping[str, Any] | None = None,
            sample_rate: float | None = None,
            timestamp: int | None = None,
            aggregate: bool = False,
            **tag_keywords: Any,
        ) -> bool:
            """Send a count (see the definition that runs)."""

        def gauge(
            self,
            name: str,
            /,
            value: float,
            *,
            tags: Mapping[str, Any] | None = None,
            sample_rate: float | None = None,
            timestamp: int | None = None,
            aggregate: bool = False,
            **tag_keywords: Any,
        ) -> bool:
            """Send a gauge reading (see the definition that runs)."""

    else:

        def timed(self, name: str, /, **keywords: Any) -> instruments.Timer:
            """Time a function or block: send its duration in ms and its outcome.

            Use it as a decorator (sync or ``async`` functions) or as a ``with``
            / ``async with`` block::

                @streamer.timed("db.query", table="orders")
                def load(order_id): ...

                with streamer.timed("render", tags={"template.name": "home"}):
                    ...

            Each call or block sends one event: measurement `name`, the tags plus
            ``outcome`` (``ok``, or the exception's type name, such as
            ``KeyError``), and the field ``duration_ms``. An exception is never
            swallowed: it propagates once recorded.

            Args:
                name: The measurement.
                tags: Tags for every event, as a dict (for any key).
                sample_rate: Send about one call in N (see `send`).
                aggregate: Instead of an event per call, record each duration
                    (ms) in the distribution `name` of ``aggregator()`` (its
                    quantiles, min, max, sum and count per window).
                **keywords: The options above, and more tags (values are str,
                    int, float or bool); the names of the options are never
                    tags (see `metricstream.streamer.operations.instruments`).

            Returns:
                A `Timer` (`metricstream.streamer.operations.instruments`).

            Raises:
                InvalidEventError: If the name or a tag is invalid.
                ConfigError: If a tag is named ``outcome`` or after an option, a
                    ``timestamp`` is given, or `sample_rate` is invalid or given
                    with `aggregate`.
            """
            return _timer(self._current, name, keywords, self._aggregations)

        def count(self, name: str, /, n: int = 1, **keywords: Any) -> bool:
            """Send a count: measurement `name`, field ``count`` = `n` (an int64).

            Args:
                name: The measurement.
                n: The count.
                tags: Tags as a dict (for any key).
                sample_rate: Send about one call in N (see `send`).
                timestamp: The event's time in ns since the epoch (default: now).
                aggregate: Add `n` to the counter `name` of ``aggregator()``
                    instead (one event per series and window).
                **keywords: The options above, and more tags (``name=`` is a
                    tag: the name is positional).

            Returns:
                What `send` returns: True if queued (or sampled out, or
                aggregated), False if dropped and counted.

            Raises:
                InvalidEventError: If the name, a tag, `n` or the timestamp is invalid.
                ConfigError: If a tag is named after an option, or an option is
                    invalid (with `aggregate`, a rate or a timestamp).
            """
            return _count(self._current, name, n, keywords, self._aggregations)

        def gauge(self, name: str, /, value: float, **keywords: Any) -> bool:
            """Send a gauge reading: measurement `name`, field ``value``, always a float.

            Args:
                name: The measurement.
                value: An int or a finite float (sent as a float).
                tags: Tags as a dict (for any key).
                sample_rate: Send about one call in N (see `send`).
                timestamp: The event's time in ns since the epoch (default: now).
                aggregate: Set the gauge `name` of ``aggregator()`` instead
                    (``last``, ``min``, ``max``, ``sum``, ``count`` per window).
                **keywords: The options above, and more tags (``name=`` is a
                    tag: the name is positional).

            Returns:
                What `send` returns: True if queued (or sampled out, or
                aggregated), False if dropped and counted.

            Raises:
                InvalidEventError: If the name, a tag, the value or the timestamp is invalid.
                ConfigError: As for `count`.
            """
            return _gauge(self._current, name, value, keywords, self._aggregations)

    def aggregator(
        self,
        interval: float | str = 10.0,
        max_series: int = 10_000,
        *,
        name: str = DEFAULT_AGGREGATOR,
        clock: Callable[[], int] | None = None,
    ) -> Aggregator:
        """Return the aggregator `name`, flushed through this streamer once per `interval`.

        Record into it (``count``, ``gauge``, ``histogram``,
        ``distribution``, ``set``: `metricstream.aggregate.Aggregator`);
        each window aligned to `interval` is sent as one event per series,
        once it ends, on `flush`, and at `shutdown` (the open one too). An
        empty window sends nothing. Beyond `max_series`, a new series is
        folded into its name's ``overflow=true`` series, counted in health
        (``aggregators``, ``series_folded``) and ``/metrics``. The same
        `name` returns the same aggregator (see
        `metricstream.streamer.operations.aggregation`).

        Args:
            interval: The window: seconds, or text such as ``"10s"``.
            max_series: The most series.
            name: The aggregator's name in health.
            clock: The wall clock in ns (default `time.time_ns`), for tests.

        Returns:
            The aggregator.

        Raises:
            ConfigError: If an option is invalid, or `name` exists with
                another `interval` or `max_series`.
        """
        return self._aggregations.aggregator(name, interval, max_series, clock)

