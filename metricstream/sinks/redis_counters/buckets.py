"""`TimeBuckets`: which daily and hourly bucket an instant falls in, in a time zone.

A bucket is named by the unix seconds of its start, in the configured zone:

- a day starts at local midnight; when a clock change skips midnight (some
  zones move their clocks at 00:00), it starts at the first instant of the
  local date, i.e. at the change;
- an hour starts at the local hour's start (``HH:00``); when the UTC offset
  changes within an hour, the instants after the change are a bucket of
  their own, starting at the change.

So across daylight saving changes:

- the skipped local hour (spring forward, e.g. 02:00-03:00) has no bucket:
  the day has 23 hourly buckets, and the hour after the gap starts at the
  change (03:00 new time);
- the repeated local hour (fall back, e.g. 01:00-02:00 twice) has two
  buckets, one per occurrence, each starting at its own ``01:00``: the day
  has 25 hourly buckets;
- a change by half an hour (Australia/Lord_Howe) splits that hour into two
  buckets at the change.

Every instant belongs to exactly one bucket of each size, buckets never
overlap, and a bucket's start is never after the instants in it.
"""

from __future__ import annotations

import datetime as _dt
import math
import threading
import zoneinfo

from metricstream._bounded import BoundedDict
from metricstream._options import require_bool
from metricstream.exceptions import ConfigError

__all__ = ["TimeBuckets"]

_UTC_NAMES = frozenset({"UTC", "Etc/UTC", "Etc/UCT", "UCT", "Etc/Universal", "Universal", "Zulu"})
_WINDOW_NS = 60_000_000_000
"""Instants are looked up by the minute; a minute whose buckets agree at both ends is cached."""
_DAY = 86_400
_HOUR = 3_600
_HOUR_STEP = 300
"""Hour buckets are at least this long (the shortest real one is 30 minutes)."""


class TimeBuckets:
    """Daily buckets always, hourly ones optionally, in one time zone.

    Args:
        hourly: Also count in hourly buckets.
        timezone: An IANA zone name (``"UTC"``, ``"Europe/Berlin"``).

    Raises:
        ConfigError: If the zone is unknown or `hourly` is not a bool.
    """

    __slots__ = ("_cache", "_lock", "_zone", "hourly", "timezone")

    def __init__(self, hourly: bool = False, timezone: str = "UTC") -> None:
        self.hourly: bool = require_bool("hourly", hourly)
        if not isinstance(timezone, str) or not timezone.strip():
            raise ConfigError("timezone", f"must be an IANA zone name, not {timezone!r}")
        self.timezone: str = timezone.strip()
        self._zone: _dt.tzinfo | None
        if self.timezone in _UTC_NAMES:
            self._zone = None
        else:
            try:
                self._zone = zoneinfo.ZoneInfo(self.timezone)
            except (zoneinfo.ZoneInfoNotFoundError, ValueError):
                raise ConfigError(
                    "timezone", f"unknown time zone {timezone!r}; use an IANA name like UTC"
                ) from None
        self._cache: BoundedDict[int, tuple[int, int | None]] = BoundedDict(4096)
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"TimeBuckets(hourly={self.hourly!r}, timezone={self.timezone!r})"

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, TimeBuckets):
            return NotImplemented
        return (self.hourly, self.timezone) == (other.hourly, other.timezone)

    def __hash__(self) -> int:
        return hash((self.hourly, self.timezone))

    @property
    def zone(self) -> _dt.tzinfo:
        """The zone as a `tzinfo`."""
        return _dt.timezone.utc if self._zone is None else self._zone

    # --- one instant -----------------------------------------------------------

    def _offset(self, seconds: int) -> int:
        zone = self._zone
        if zone is None:
            return 0
        offset = _dt.datetime.fromtimestamp(seconds, zone).utcoffset()
        return 0 if offset is None else int(offset.total_seconds())

    def _change_after(self, before: int, at: int, offset: int) -> int:
        """The first instant in (before, at] from which the offset is `offset` up to `at`."""
        while at - before > 1:
            middle = (before + at) // 2
            if self._offset(middle) == offset:
                at = middle
            else:
                before = middle
        return at

    def hour_start(self, seconds: int) -> int:
        """Return the start of the hour bucket holding the unix second `seconds`."""
        offset = self._offset(seconds)
        start = seconds - (seconds + offset) % _HOUR
        if self._offset(start) == offset:
            return start
        return self._change_after(start, seconds, offset)

    def day_start(self, seconds: int) -> int:
        """Return the start of the day bucket holding the unix second `seconds`."""
        offset = self._offset(seconds)
        start = seconds - (seconds + offset) % _DAY
        if self._offset(start) == offset:
            return start
        # The offset changed since local midnight: find the first instant of the date.
        zone = self.zone
        date = _dt.datetime.fromtimestamp(seconds, zone).date()
        before, at = seconds - 2 * _DAY, seconds
        while at - before > 1:
            middle = (before + at) // 2
            if _dt.datetime.fromtimestamp(middle, zone).date() >= date:
                at = middle
            else:
                before = middle
        return at

    def bucket_start(self, seconds: int, bucket: str) -> int:
        """Return the start of the ``"d"`` or ``"h"`` bucket holding `seconds`.

        Raises:
            ConfigError: If the bucket is neither ``"d"`` nor ``"h"``.
        """
        if bucket == "d":
            return self.day_start(seconds)
        if bucket == "h":
            return self.hour_start(seconds)
        raise ConfigError("bucket", f"must be 'd' (daily) or 'h' (hourly), not {bucket!r}")

    def _starts(self, seconds: int) -> tuple[int, int | None]:
        return self.day_start(seconds), self.hour_start(seconds) if self.hourly else None

    def minute_starts(self, minute: int) -> tuple[int, int | None] | None:
        """Return (day start, hour start or None) shared by every instant of a minute.

        Args:
            minute: ``timestamp_ns // 60_000_000_000``.

        Returns:
            The starts, or None when a bucket boundary falls inside the minute
            (only in zones whose offsets are not whole minutes); then ask
            `starts_ns` for each instant.
        """
        found = self._cache.get(minute)
        if found is not None:
            return found
        first = minute * (_WINDOW_NS // 1_000_000_000)
        starts = self._starts(first)
        if self._starts(first + 59) != starts:
            return None
        with self._lock:
            self._cache.remember(minute, starts)
        return starts

    def starts_ns(self, timestamp_ns: int) -> tuple[int, int | None]:
        """Return (day start, hour start or None) for a nanosecond timestamp.

        The sink's hot path: instants are looked up by the minute, and a
        minute whose first and last second fall in the same buckets is
        remembered.
        """
        starts = self.minute_starts(timestamp_ns // _WINDOW_NS)
        return self._starts(timestamp_ns // 1_000_000_000) if starts is None else starts

    # --- ranges ------------------------------------------------------------------

    def enumerate(self, start: float, end: float, bucket: str = "d") -> list[int]:
        """Return the starts of the buckets whose start lies in ``[start, end]``, oldest first.

        Args:
            start: Unix seconds.
            end: Unix seconds.
            bucket: ``"d"`` or ``"h"``.

        Raises:
            ConfigError: If the bucket is unknown.
        """
        size = _DAY if bucket == "d" else _HOUR
        self.bucket_start(0, bucket)  # validates the bucket
        first, last = int(start // 1), int(end // 1)
        if last < first:
            return []
        if self._zone is None:
            aligned = first + (-first) % size
            return list(range(aligned, last + 1, size))
        step = _HOUR if bucket == "d" else _HOUR_STEP
        found: list[int] = []
        moment = first
        while True:
            begins = self.bucket_start(min(moment, last), bucket)
            if begins >= start and (not found or begins != found[-1]):
                found.append(begins)
            if moment >= last:
                return found
            moment += step

    def overlapping(self, start: float, end: float, bucket: str = "d") -> list[tuple[int, int]]:
        """Return (start, end) of every bucket that overlaps ``[start, end]``, oldest first.

        The first is the bucket holding `start`, so a range that starts inside
        a bucket counts that bucket whole; a bucket ends where the next one
        starts (exclusive).

        Args:
            start: Unix seconds.
            end: Unix seconds.
            bucket: ``"d"`` or ``"h"``.

        Raises:
            ConfigError: If the bucket is unknown.
        """
        first = self.bucket_start(math.floor(start), bucket)
        starts = self.enumerate(first, end, bucket) if end >= start else []
        if not starts:
            return []
        size = _DAY if bucket == "d" else _HOUR
        after = self.enumerate(starts[-1] + 1, starts[-1] + 2 * size, bucket)[0]
        return list(zip(starts, [*starts[1:], after], strict=True))

    def to_seconds(self, moment: float | _dt.datetime) -> float:
        """Return unix seconds for a datetime (naive ones are local time in this zone) or a number.

        Raises:
            ConfigError: If it is neither.
        """
        if isinstance(moment, _dt.datetime):
            if moment.tzinfo is None:
                moment = moment.replace(tzinfo=self.zone)
            return moment.timestamp()
        if isinstance(moment, (int, float)) and not isinstance(moment, bool):
            return float(moment)
        raise ConfigError("start/end", f"expected a datetime or unix seconds, not {moment!r}")
