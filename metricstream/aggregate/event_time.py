"""`EventTimeWindows`: aggregates of events per group and event-time window.

What the relay runs between decoding and its sinks. Events are grouped by
properties (``by=["host", "route"]``; a property is the measurement, a tag or
a field, by the one rule of `metricstream.properties`), assigned to windows
by their timestamps (`metricstream.aggregate.windows`) and aggregated
(``count,sum:bytes,quantiles:latency_ms``: see `parse_aggregates`) with the
accumulators of `metricstream.aggregate.accumulators`, so quantiles are
within 1% of the exact value of their rank and ``unique`` is exact up to
``exact_unique`` members, then within about 1.6% (one standard error).

A `WatermarkTracker` says when a window is complete: `EventTimeWindows.close`
returns the windows whose end the watermark has reached, one `WindowResult`
each: an event with measurement `measurement`, tags = the group plus
``window=<tumbling|sliding|session>``, timestamp = the window's start, and a
deterministic identity (group, start, end) from which a relay derives a
batch id. An event that arrives for a window already complete is late: it
is counted (`late_events`), returned by `EventTimeWindows.add` so that the
caller can send it elsewhere, and kept out of that window (a sliding
window's event still counts in those of its windows that are open).

Open windows are rebuilt by adding the same events again in the same order
(a relay that restarts re-reads them from its committed offsets), and two
instances merge (`EventTimeWindows.merge`) into what one would hold had it
seen both streams. For such a reader each window remembers its *sources*:
the partitions whose events it holds and the earliest position (a Kafka
offset) of each, which `EventTimeWindows.open_positions` sums up as the
position every partition must be read again from to rebuild what is open,
and a `WindowResult` carries as `WindowResult.sources`.

A property that an event lacks, or whose value cannot be a tag (an empty
string), leaves that tag out of the event's group; numeric aggregates skip
values that are not numbers.
"""

from __future__ import annotations

import hashlib
from collections.abc import Hashable, Iterable, Sequence
from typing import Any, NamedTuple, Union

from metricstream._validate import (
    INT64_MIN,
    check_measurement,
    check_tag_value,
    valid_tag_values,
)
from metricstream.aggregate._parse import QUANTILES, AggregateSpec, parse_aggregates, parse_by
from metricstream.aggregate.accumulators import (
    DEFAULT_EXACT_UNIQUE,
    Quantiles,
    Stats,
    Total,
    Unique,
)
from metricstream.aggregate.watermark import WatermarkTracker
from metricstream.aggregate.windows import Session, Window, WindowSpec, parse_window
from metricstream.columns import EventColumns
from metricstream.event import FieldValue, MetricEvent, trusted_event
from metricstream.exceptions import ConfigError, InvalidEventError
from metricstream.properties import property_columns

__all__ = ["EventTimeWindows", "WindowResult"]

Group = tuple[Union[str, None], ...]
"""The values of the grouping properties of one event, as tag text (None where absent)."""


class WindowResult(NamedTuple):
    """One complete window of one group.

    Attributes:
        kind: ``tumbling``, ``sliding`` or ``session``.
        group: The group's tags, (name, value) pairs in the order of ``by``.
        window: The window (start and end in ns).
        event: The result event (timestamp = the window's start).
        sources: (partition, earliest position) of each source partition
            whose events the window holds, in the order they first
            contributed (positions as given to `EventTimeWindows.add`).
    """

    kind: str
    group: tuple[tuple[str, str], ...]
    window: Window
    event: MetricEvent
    sources: tuple[tuple[Hashable, int], ...] = ()

    @property
    def identity(self) -> tuple[str, str, tuple[tuple[str, str], ...], int, int]:
        """What tells this window from any other: measurement, kind, group, start, end."""
        return (self.event.measurement, self.kind, self.group, self.window.start, self.window.end)

    @property
    def window_id(self) -> str:
        """A stable id of `identity` (32 hex digits), the same in every process."""
        return hashlib.blake2b(repr(self.identity).encode(), digest_size=16).hexdigest()


class _Plan:
    """The accumulators behind a list of aggregates, and the fields they give."""

    def __init__(self, specs: Sequence[AggregateSpec], exact_unique: int) -> None:
        self.specs = tuple(specs)
        self.exact_unique = exact_unique
        slots: dict[tuple[str, str | None], int] = {}
        for spec in specs:
            slots.setdefault(_slot(spec), len(slots))
        self.slots = tuple(slots)
        self.properties = tuple(dict.fromkeys(p for _, p in self.slots if p is not None))

    def new(self) -> list[Any]:
        """Empty accumulators, one per slot."""
        made: list[Any] = []
        for kind, _ in self.slots:
            if kind == "total":
                made.append(Total())
            elif kind == "stats":
                made.append(Stats())
            elif kind == "unique":
                made.append(Unique(self.exact_unique, "unique"))
            else:
                made.append(Quantiles("quantiles"))
        return made

    def columns(self, values: dict[str, list[Any]]) -> list[tuple[str, list[Any] | None]]:
        """Each slot's kind with the column of values it reads (None for the count)."""
        return [(kind, None if name is None else values[name]) for kind, name in self.slots]

    @staticmethod
    def add(
        accumulators: list[Any],
        columns: list[tuple[str, list[Any] | None]],
        index: int,
        time_ns: int,
    ) -> None:
        """Add the event at `index` of `columns` (see `columns`)."""
        for accumulator, (kind, column) in zip(accumulators, columns):  # noqa: B905 - same length
            if column is None:
                accumulator.count += 1
                continue
            value = column[index]
            if kind == "unique":
                if value is not None:
                    accumulator.add(value if value.__class__ is str else repr(value))
            elif value.__class__ in _NUMBERS or (
                isinstance(value, (int, float)) and not isinstance(value, bool)
            ):
                if kind == "stats":
                    accumulator.add(float(value), time_ns)
                else:
                    accumulator.add(float(value))

    def fields(self, accumulators: list[Any]) -> dict[str, FieldValue]:
        """The result fields; an aggregate that received no value gives none."""
        by_slot = dict(zip(self.slots, accumulators, strict=True))
        fields: dict[str, FieldValue] = {}
        for spec in self.specs:
            accumulator = by_slot[_slot(spec)]
            name = spec.fields[0]
            if spec.function == "count":
                fields[name] = accumulator.count
            elif spec.function == "unique":
                if accumulator.estimate():
                    fields[name] = accumulator.estimate()
            elif spec.function == "quantiles":
                if accumulator.stats.count:
                    for (q, _), field in zip(QUANTILES, spec.fields, strict=True):
                        fields[field] = accumulator.quantile(q)
            elif accumulator.count:
                fields[name] = getattr(accumulator, spec.function)
        return fields


_NUMBERS = (float, int)


def _slot(spec: AggregateSpec) -> tuple[str, str | None]:
    if spec.function == "count":
        return ("total", None)
    if spec.function in ("unique", "quantiles"):
        return (spec.function, spec.name)
    return ("stats", spec.name)


class _Open:
    """One open window of one group: its accumulators, its events and its sources."""

    __slots__ = ("accumulators", "events", "sources")

    def __init__(self, accumulators: list[Any]) -> None:
        self.accumulators = accumulators
        self.events = 0
        self.sources: dict[Hashable, int] = {}

    def merge(self, other: _Open) -> None:
        """Take in the events of `other` (the earliest position of each source wins)."""
        for accumulator, theirs in zip(self.accumulators, other.accumulators, strict=True):
            accumulator.merge(theirs)
        self.events += other.events
        sources = self.sources
        for partition, position in other.sources.items():
            if position < sources.get(partition, position + 1):
                sources[partition] = position


class EventTimeWindows:
    """Aggregates of events per group and event-time window, closed by a watermark.

    Args:
        measurement: The measurement of the result events.
        window: A window assigner or its text (``"tumbling 60s"``,
            ``"sliding 60s every 10s"``, ``"session gap 30s"``).
        by: The properties to group by (a list or ``"host,route"``).
        aggregates: The aggregates (``"count,sum:bytes,quantiles:latency_ms"``
            or a list of items).
        watermark: The tracker that says when windows are complete (default:
            ``WatermarkTracker()``, 10 s of allowed lateness).
        exact_unique: Distinct members ``unique`` counts exactly before it
            turns into a HyperLogLog sketch.

    Raises:
        ConfigError: If an option is invalid, naming it.
    """

    def __init__(
        self,
        measurement: str,
        window: WindowSpec | str,
        by: str | Iterable[str] | None = None,
        aggregates: str | Sequence[str] = "count",
        *,
        watermark: WatermarkTracker | None = None,
        exact_unique: int = DEFAULT_EXACT_UNIQUE,
    ) -> None:
        try:
            self.measurement = check_measurement(measurement)
        except InvalidEventError as exc:
            raise ConfigError("measurement", str(exc)) from None
        self.window = parse_window(window)
        self._sessions = isinstance(self.window, Session)
        self.by = parse_by(by)
        self._plan = _Plan(parse_aggregates(aggregates), exact_unique)
        self.watermark = watermark if watermark is not None else WatermarkTracker()
        self.late_events = 0
        self.replayed_events = 0
        self.closed_through = INT64_MIN
        self._open: dict[Group, dict[Window, _Open]] = {}

    @property
    def open_windows(self) -> int:
        """How many windows are open (over every group)."""
        return sum(len(windows) for windows in self._open.values())

    def open_positions(self) -> dict[Hashable, int]:
        """The earliest position, per source partition, of an event in an open window.

        Reading each partition again from there (and adding its events in
        the same order) rebuilds every open window; a partition without an
        event in an open window is left out.
        """
        earliest: dict[Hashable, int] = {}
        for windows in self._open.values():
            for state in windows.values():
                for partition, position in state.sources.items():
                    if position < earliest.get(partition, position + 1):
                        earliest[partition] = position
        return earliest

    def add(
        self,
        events: Sequence[MetricEvent],
        partition: Hashable = 0,
        positions: Sequence[int] | None = None,
    ) -> list[MetricEvent]:
        """Add events from one source partition, in the order they arrived.

        An event is late when every window it belongs to has ended at or
        before the watermark, or (tumbling and sliding windows) at or
        before the floor its partition resumed from
        (`WatermarkTracker.resume`). A session grows as events join it, so
        a resumed partition's events rebuild their sessions; one that
        closes by the floor of each of its partitions was emitted before
        the resume and is dropped, its events counted in `replayed_events`.

        Args:
            events: The events.
            partition: The source partition they come from (for the watermark).
            positions: Each event's position in its partition (a Kafka
                offset), never decreasing; windows remember the earliest
                one per partition (see `open_positions`). Default: all 0.

        Returns:
            The late events (each also counted in `late_events`).
        """
        if not events:
            return []
        columns = EventColumns.of_events(events)
        values = property_columns(columns, dict.fromkeys((*self.by, *self._plan.properties)))
        groups = self._groups([values[name] for name in self.by], len(events))
        slots = self._plan.columns(values)
        floor = INT64_MIN if isinstance(self.window, Session) else self.watermark.floor(partition)
        observe = self.watermark.observer(partition)
        add_one = self._add_one
        late = []
        for index, time_ns in enumerate(columns.timestamps):
            watermark = observe(time_ns)
            position = 0 if positions is None else positions[index]
            if not add_one(
                groups[index], slots, index, time_ns, floor if floor > watermark else watermark,
                source=(partition, position),
            ):  # fmt: skip
                late.append(events[index])
        self.late_events += len(late)
        return late

    def _groups(self, columns: list[list[Any]], count: int) -> list[Group]:
        """Each event's group: the values of its grouping properties, as tag text."""
        if not columns:
            return [()] * count
        texts = [
            [
                value
                if value.__class__ is str and value in valid_tag_values
                else _tag_text(name, value)
                for value in column
            ]
            for name, column in zip(self.by, columns, strict=True)
        ]
        return list(zip(*texts, strict=True))

    def _add_one(
        self,
        group: Group,
        slots: list[tuple[str, list[Any] | None]],
        index: int,
        time_ns: int,
        watermark: int,
        *,
        source: tuple[Hashable, int],
    ) -> bool:
        """Add one event to its open windows; return False if it was late."""
        windows = self._open.get(group)
        if windows is None:
            windows = {}
        if self._sessions:
            window = self._session_for(windows, self.window.assign(time_ns)[0], watermark)
            targets: tuple[Window, ...] = () if window is None else (window,)
            on_time = window is not None
        else:
            assigned = self.window.assign(time_ns)
            targets = tuple(w for w in assigned if w.end > watermark)
            on_time = len(targets) == len(assigned)
        if not targets:
            return on_time
        partition, position = source
        add = self._plan.add
        for window in targets:
            state = windows.get(window)
            if state is None:
                state = windows[window] = _Open(self._plan.new())
            add(state.accumulators, slots, index, time_ns)
            state.events += 1
            if partition not in state.sources:
                state.sources[partition] = position
        self._open[group] = windows
        return on_time

    @staticmethod
    def _session_for(windows: dict[Window, _Open], opened: Window, watermark: int) -> Window | None:
        """Merge `opened` with the group's open sessions it overlaps; None if it is late."""
        joined = [w for w in windows if w.end > watermark and w.overlaps(opened)]
        merged = Window(
            min([opened.start, *(w.start for w in joined)]),
            max([opened.end, *(w.end for w in joined)]),
        )
        if merged.end <= watermark:
            return None
        if joined and merged not in windows:
            first = windows.pop(joined[0])
            for other in joined[1:]:
                first.merge(windows.pop(other))
            windows[merged] = first
        return merged

    def close(self) -> list[WindowResult]:
        """Return the windows the watermark has completed (end <= watermark), and forget them.

        Results are ordered by window end, then start, then group. The
        watermark they were closed at is kept as `closed_through`: every
        window ending at or before it has been returned.
        """
        watermark = self.watermark.watermark()
        results = self._take(watermark)
        self.closed_through = max(self.closed_through, watermark)
        return results

    def close_all(self) -> list[WindowResult]:
        """Return every open window, complete or not (to drain), and forget them."""
        return self._take(None)

    def discard(self) -> None:
        """Forget every open window and the watermark, without a result.

        For a reader that will rebuild them: a relay whose partitions
        changed reads them again from its checkpoints. The watermark starts
        over (`WatermarkTracker.fresh`), and so does `closed_through`.
        """
        self._open = {}
        self.watermark = self.watermark.fresh()
        self.closed_through = INT64_MIN

    def _take(self, watermark: int | None) -> list[WindowResult]:
        results = []
        for group, windows in list(self._open.items()):
            for window in [w for w in windows if watermark is None or w.end <= watermark]:
                state = windows.pop(window)
                if watermark is not None and self._emitted_before(window, state):
                    self.replayed_events += state.events
                    continue
                fields = self._plan.fields(state.accumulators)
                if fields:
                    results.append(self._result(group, window, fields, state.sources))
            if not windows:
                del self._open[group]
        results.sort(key=lambda r: (r.window.end, r.window.start, r.group))
        return results

    def _emitted_before(self, window: Window, state: _Open) -> bool:
        """A session rebuilt after a resume that every source had emitted already."""
        if not isinstance(self.window, Session) or not state.sources:
            return False
        floor = self.watermark.floor
        return all(window.end <= floor(partition) for partition in state.sources)

    def _result(
        self, group: Group, window: Window, fields: dict[str, FieldValue], sources: dict[Any, int]
    ) -> WindowResult:
        named = zip(self.by, group, strict=True)
        pairs = tuple((name, value) for name, value in named if value is not None)
        tags = {**dict(pairs), "window": self.window.kind}
        event = trusted_event(self.measurement, tags, fields, window.start, None)
        return WindowResult(self.window.kind, pairs, window, event, tuple(sources.items()))

    def merge(self, other: EventTimeWindows) -> None:
        """Take in the open windows, late count and watermark of `other` (same options).

        Raises:
            ConfigError: If `other` has another window, grouping or aggregates.
        """
        if (other.window, other.by, other._plan.specs) != (self.window, self.by, self._plan.specs):
            raise ConfigError("merge", "the two have different windows, groups or aggregates")
        for group, windows in other._open.items():
            mine = self._open.setdefault(group, {})
            for window, state in windows.items():
                if isinstance(self.window, Session):
                    joined = [w for w in mine if w.overlaps(window)]
                    for other_window in joined:
                        state.merge(mine.pop(other_window))
                    merged = Window(
                        min([window.start, *(w.start for w in joined)]),
                        max([window.end, *(w.end for w in joined)]),
                    )
                    mine[merged] = state
                elif window in mine:
                    mine[window].merge(state)
                else:
                    mine[window] = state
        other._open = {}
        self.late_events += other.late_events
        self.watermark.merge(other.watermark)


def _tag_text(name: str, value: object) -> str | None:
    """A group value as tag text; None if absent or unusable as a tag."""
    if value.__class__ is str and value in valid_tag_values:
        return value
    if value is None:
        return None
    try:
        return check_tag_value(name, value)
    except InvalidEventError:
        return None
