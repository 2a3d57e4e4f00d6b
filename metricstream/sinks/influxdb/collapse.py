"""Points of one batch that the server would collapse into one: found before anything is sent.

InfluxDB keeps one point per series (measurement and tag set) and timestamp:
a second point with the same series and timestamp is merged into the first,
its fields overwriting those of the same key. Timestamps are compared at the
precision written, so ``precision="ms"`` makes every event of a series within
one millisecond the same point, ``"s"`` within one second. A point whose every
field a later point of the batch repeats would leave nothing of its own on
the server: `collapsed_indexes` names such points, and the sink drops them
(reason ``collapsed``) instead of counting them written. A point only some of
whose fields are repeated leaves the others, so it is written. Across
batches the same holds on the server, where the last write wins, but a sink
cannot see it: a batch never looks at what earlier batches wrote.

Only a batch with two events of one measurement at one scaled timestamp is
looked at closer, and then only those events, so a batch of distinct
timestamps costs one set of them.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Hashable

from metricstream.codecs.lineprotocol import PRECISIONS
from metricstream.columns import EventColumns

__all__ = ["collapsed_indexes"]


def collapsed_indexes(columns: EventColumns, precision: str) -> list[int]:
    """The positions of the events a later event of the batch would overwrite whole.

    Args:
        columns: The batch's events.
        precision: The precision timestamps are written at (``ns``, ``us``, ``ms``, ``s``).

    Returns:
        Their positions, in order (empty when none).
    """
    divisor = PRECISIONS[precision]
    stamps = columns.timestamps
    if divisor != 1:
        # Truncated toward zero, as line protocol writes them.
        stamps = [t // divisor if t >= 0 else -(-t // divisor) for t in stamps]
    if len(set(stamps)) == len(stamps):
        return []
    moments = list(zip(columns.measurements, stamps, strict=True))
    if len(set(moments)) == len(moments):
        return []
    shared = Counter(moments)
    tags = columns.tags
    tag_sets: dict[int, frozenset[tuple[str, str]]] = {}  # by tag dict, alive all along
    points: defaultdict[Hashable, list[int]] = defaultdict(list)
    for index, moment in enumerate(moments):
        if shared[moment] > 1:
            found = tags[index]
            tag_set = tag_sets.get(id(found))
            if tag_set is None:
                tag_set = tag_sets[id(found)] = frozenset(found.items())
            points[moment, tag_set].append(index)
    collapsed: list[int] = []
    uniform = columns.field_keys is not None
    for same in points.values():
        if len(same) > 1:
            # With the same fields in every event, all but the last are overwritten.
            collapsed += same[:-1] if uniform else _overwritten(columns, same)
    return sorted(collapsed)


def _overwritten(columns: EventColumns, points: list[int]) -> list[int]:
    """Those of `points` (one series, one timestamp, in order) whose every field comes again."""
    fields = columns.fields
    later: set[str] = set()
    found = []
    for index in reversed(points):
        keys = fields[index].keys()
        if later.issuperset(keys):
            found.append(index)
        later.update(keys)
    return found
