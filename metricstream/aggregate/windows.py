"""Event-time windows: which windows an event's timestamp belongs to.

Three assigners, each built in Python or from the text the relay's command
line takes:

- `tumbling` (``"tumbling 60s"``): back-to-back windows of one size,
  ``[k*size, (k+1)*size)``; an event is in exactly one;
- `sliding` (``"sliding 60s every 10s"``): windows of one size starting
  every ``every``, ``[k*every, k*every + size)``; an event is in
  ``size / every`` of them (rounded up or down by where it falls);
- `session` (``"session gap 30s"``): an event opens ``[t, t + gap)``; windows
  of a group that overlap merge into one (an event between two sessions
  joins them), so a session ends ``gap`` after its last event.

Times are nanoseconds since the epoch; a window is ``[start, end)``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple, Union

from metricstream.aggregate._parse import parse_duration
from metricstream.exceptions import ConfigError

__all__ = [
    "Session",
    "Sliding",
    "Tumbling",
    "Window",
    "WindowSpec",
    "parse_window",
    "session",
    "sliding",
    "tumbling",
]


class Window(NamedTuple):
    """A window of event time: ``[start, end)`` in ns since the epoch."""

    start: int
    end: int

    def overlaps(self, other: Window) -> bool:
        """Whether the two share an instant (windows that only touch do not)."""
        return self.start < other.end and other.start < self.end


@dataclass(frozen=True)
class Tumbling:
    """Back-to-back windows of `size_ns`, aligned to multiples of it."""

    size_ns: int
    kind = "tumbling"

    def assign(self, time_ns: int) -> tuple[Window, ...]:
        """The one window holding `time_ns`."""
        start = time_ns - time_ns % self.size_ns
        return (Window(start, start + self.size_ns),)


@dataclass(frozen=True)
class Sliding:
    """Windows of `size_ns` starting at every multiple of `every_ns`."""

    size_ns: int
    every_ns: int
    kind = "sliding"

    def assign(self, time_ns: int) -> tuple[Window, ...]:
        """Every window holding `time_ns`, the earliest first."""
        every = self.every_ns
        last = time_ns - time_ns % every
        first = (time_ns - self.size_ns) // every * every + every  # the first start > t - size
        return tuple(Window(start, start + self.size_ns) for start in range(first, last + 1, every))


@dataclass(frozen=True)
class Session:
    """Sessions: an event opens ``[t, t + gap_ns)``; overlapping ones merge."""

    gap_ns: int
    kind = "session"

    def assign(self, time_ns: int) -> tuple[Window, ...]:
        """The window the event opens by itself, before merging."""
        return (Window(time_ns, time_ns + self.gap_ns),)


WindowSpec = Union[Tumbling, Sliding, Session]
"""Any window assigner."""


def tumbling(size: float | str) -> Tumbling:
    """Tumbling windows of `size` (seconds, or text such as ``"60s"``).

    Raises:
        ConfigError: (option ``size``) if it is not a positive duration.
    """
    return Tumbling(parse_duration("size", size))


def sliding(size: float | str, every: float | str) -> Sliding:
    """Windows of `size` starting every `every` (each seconds or text such as ``"10s"``).

    Raises:
        ConfigError: (option ``size`` or ``every``) if one is not a positive
            duration, or `every` is longer than `size` (events between two
            windows would belong to none).
    """
    size_ns = parse_duration("size", size)
    every_ns = parse_duration("every", every)
    if every_ns > size_ns:
        raise ConfigError("every", f"{every!r} is longer than the window size {size!r}")
    return Sliding(size_ns, every_ns)


def session(gap: float | str) -> Session:
    """Session windows closing `gap` (seconds or text such as ``"30s"``) after their last event.

    Raises:
        ConfigError: (option ``gap``) if it is not a positive duration.
    """
    return Session(parse_duration("gap", gap))


_FORMS = "'tumbling 60s', 'sliding 60s every 10s' or 'session gap 30s'"


def parse_window(value: WindowSpec | str) -> WindowSpec:
    """Return the window assigner `value` names (or `value` itself if it is one).

    Args:
        value: ``"tumbling 60s"``, ``"sliding 60s every 10s"``,
            ``"session gap 30s"`` or an assigner.

    Raises:
        ConfigError: (option ``window``) if the text is none of these forms,
            or (``size``, ``every``, ``gap``) if a duration is invalid.
    """
    if isinstance(value, (Tumbling, Sliding, Session)):
        return value
    if not isinstance(value, str):
        raise ConfigError("window", f"must be {_FORMS}, not {value!r}")
    words = value.split()
    match words:
        case ["tumbling", size]:
            return tumbling(size)
        case ["sliding", size, "every", every]:
            return sliding(size, every)
        case ["session", "gap", gap]:
            return session(gap)
    raise ConfigError("window", f"must be {_FORMS}, not {value!r}")
