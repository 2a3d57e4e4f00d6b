"""The streamer's ``default_tags``, added to each event that lacks them, off the sending thread.

The tags of each distinct tag dict of a batch are merged once. Tags assigned
to ``event.tags`` directly skip validation, so a merge can fail: such an
event costs only itself, never its batch or the batcher.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from metricstream._log import RateLimitedLog
from metricstream.event import PARTS_PER_EVENT, shared_tags
from metricstream.exceptions import InvalidEventError

__all__ = ["DefaultTags"]


class DefaultTags:
    """Merges the default tags into the events of a batch, given as parts.

    Args:
        defaults: The tags every event carries unless it sets them itself.
        warnings: Where the warning about an event dropped for its tags goes.
    """

    def __init__(self, defaults: Mapping[str, object] | None, warnings: RateLimitedLog) -> None:
        self.defaults: Mapping[str, object] = defaults or {}
        self._warnings = warnings

    def merge(self, parts: list[Any]) -> int:
        """Add the default tags to every event of `parts`, in place; drop those whose tags break.

        Returns:
            How many events were dropped (and warned about).
        """
        merged: dict[int, Any] = {}
        bad: list[int] = []
        for index in range(1, len(parts), PARTS_PER_EVENT):
            tags = parts[index]
            key = id(tags)  # every tag dict of the batch is alive, so ids are unique
            if key in merged:
                new = merged[key]
            else:
                new = merged[key] = self._with_defaults(tags, parts[index - 1])
            if new is None:
                bad.append(index - 1)
            elif new is not tags:
                parts[index] = new
        for first in reversed(bad):
            del parts[first : first + PARTS_PER_EVENT]
        return len(bad)

    def merge_all(self, parts: list[Any]) -> None:
        """Add the default tags to every event of `parts`, in place, or change nothing.

        Raises:
            InvalidEventError: If an event's tags cannot take them; it names
                the event's position.
        """
        merged: dict[int, Any] = {}
        for index in range(1, len(parts), PARTS_PER_EVENT):
            tags = parts[index]
            if id(tags) not in merged:
                try:
                    merged[id(tags)] = self._merged(tags)
                except (InvalidEventError, TypeError, AttributeError) as exc:
                    position = index // PARTS_PER_EVENT
                    raise InvalidEventError(
                        None, f"event {position} ({parts[index - 1]!r}) has invalid tags: {exc}"
                    ) from None
        for index in range(1, len(parts), PARTS_PER_EVENT):
            parts[index] = merged[id(parts[index])]

    def _merged(self, tags: Any) -> Any:
        defaults = self.defaults
        if defaults.keys() <= tags.keys():
            return tags
        return shared_tags({**defaults, **tags})

    def _with_defaults(self, tags: Any, measurement: object) -> Any:
        """`tags` with the default tags it lacks; None (and a warning) if they are invalid."""
        try:
            return self._merged(tags)
        except (InvalidEventError, TypeError, AttributeError) as exc:
            self._warnings.warning(
                ("*", "invalid-tags"),
                "dropped event %r: its tags are invalid: %s",
                measurement,
                exc,
            )
            return None
