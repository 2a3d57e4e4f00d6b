"""Bounded caches: a dict and a set that forget everything when they are full.

The package remembers work it can reuse (names already validated, escaped
names, encoded heads of line protocol). Each such cache is one of these, so
memory stays bounded for any workload; lookups are plain ``dict``/``set``
lookups, and only a miss pays for `remember`.
"""

from __future__ import annotations

from typing import TypeVar

__all__ = ["BoundedDict", "BoundedSet"]

K = TypeVar("K")
V = TypeVar("V")
T = TypeVar("T")


class BoundedDict(dict[K, V]):
    """A dict of at most `limit` entries; it is cleared when a new key would exceed that.

    Args:
        limit: The most entries it holds.
    """

    __slots__ = ("limit",)

    def __init__(self, limit: int) -> None:
        super().__init__()
        self.limit = limit

    def remember(self, key: K, value: V) -> V:
        """Store `value` under `key` (clearing the cache first when it is full); return it."""
        if len(self) >= self.limit and key not in self:
            self.clear()
        self[key] = value
        return value


class BoundedSet(set[T]):
    """A set of at most `limit` items; it is cleared when a new item would exceed that.

    Args:
        limit: The most items it holds.
    """

    __slots__ = ("limit",)

    def __init__(self, limit: int) -> None:
        super().__init__()
        self.limit = limit

    def remember(self, item: T) -> None:
        """Add `item`, clearing the set first when it is full."""
        if len(self) >= self.limit:
            self.clear()
        self.add(item)
