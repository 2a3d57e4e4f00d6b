"""`SeriesLimit`: at most N series per measurement, checked by the batcher, off `send()`.

With ``max_series_per_measurement=N`` the events of a measurement's first N
series (distinct tag sets) are delivered, and an event of any other series
of it is dropped as ``cardinality``: a tag holding a user id then costs
neither memory nor the destination without bound. The admitted series are
kept for the life of the pipeline (a forked child starts afresh).

The check runs on the batcher thread, once per batch, so `send()` pays
nothing for it. Each distinct tag dict of a batch is looked at once: tag
dicts are shared by the events built with equal tags (`SharedTags`, the
instruments' tags), and a small cache keyed by a dict's identity (holding
the dict, so the identity cannot be reused while cached) remembers its
series key, so a tag set seen before costs one lookup per event.
"""

from __future__ import annotations

from typing import Any

from metricstream.event import PARTS_PER_EVENT

__all__ = ["SeriesLimit"]

_CACHED_TAG_DICTS = 8192


class SeriesLimit:
    """Admits the first `limit` series of each measurement; refuses the events of others.

    Args:
        limit: Series per measurement.

    Attributes:
        limit: Series per measurement.
    """

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self._series: dict[str, set[frozenset[tuple[str, Any]]]] = {}
        self._keys: dict[int, tuple[Any, frozenset[tuple[str, Any]]]] = {}

    def _key(self, tags: Any) -> frozenset[tuple[str, Any]]:
        cached = self._keys.get(id(tags))
        if cached is not None and cached[0] is tags:
            return cached[1]
        key = frozenset(tags.items())
        if len(self._keys) >= _CACHED_TAG_DICTS:
            self._keys.clear()
        self._keys[id(tags)] = (tags, key)
        return key

    def refuse(self, parts: list[Any]) -> tuple[int, list[Any] | None]:
        """Remove from `parts` (in place) the events of series beyond the limit.

        Returns:
            (how many events were removed, the parts of the first of them or
            None).
        """
        series = self._series
        limit = self.limit
        decided: dict[tuple[str, int], bool] = {}
        refused: list[int] = []
        for index in range(0, len(parts), PARTS_PER_EVENT):
            measurement, tags = parts[index], parts[index + 1]
            seen = (measurement, id(tags))  # every tag dict of the batch is alive: ids are unique
            admitted = decided.get(seen)
            if admitted is None:
                key = self._key(tags)
                known = series.get(measurement)
                if known is None:
                    known = series[measurement] = set()
                admitted = key in known or len(known) < limit
                if admitted:
                    known.add(key)
                decided[seen] = admitted
            if not admitted:
                refused.append(index)
        if not refused:
            return 0, None
        first = parts[refused[0] : refused[0] + PARTS_PER_EVENT]
        kept: list[Any] = []
        after = 0
        for index in refused:
            kept += parts[after:index]
            after = index + PARTS_PER_EVENT
        kept += parts[after:]
        parts[:] = kept
        return len(refused), first
