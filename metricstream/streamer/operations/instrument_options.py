"""The instruments' options, told apart from their tags, and the calls that have any.

`EventStreamer.count`, ``gauge`` and ``timed`` take their tags as keyword
arguments and as ``tags={...}``; their options (`OPTION_NAMES`) are keyword
arguments too, and their names are never tags. Telling them apart costs a
call nothing when it has no option: the instruments look the keywords up
in `PLAIN_TAGS`, the tags already seen without an option and with text
values, and only a miss comes here (`split_options`), where the options are
taken out, the tags merged and checked, and the call made (`send_with_options`
for ``count`` and ``gauge``). Keyword-only parameters would do the same at
a cost to every call: CPython compares each keyword with each parameter's
name and fills keyword-only defaults from a dict, about 60 ns more per
call with four of them.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Protocol

from metricstream._bounded import BoundedDict
from metricstream._options import require_bool
from metricstream._timestamps import check_event_time
from metricstream.event import shared_tags
from metricstream.exceptions import ConfigError
from metricstream.streamer.engine.sampling import WEIGHT_FIELD

if TYPE_CHECKING:
    from metricstream.aggregate import Aggregator

__all__ = [
    "OPTION_NAMES",
    "PLAIN_TAGS",
    "Aggregating",
    "PartsSender",
    "instrument_tags",
    "remember_plain",
    "sampled",
    "send_with_options",
    "split_options",
]

OPTION_NAMES = ("sample_rate", "timestamp", "tags", "aggregate")
"""The instruments' options: never tags."""

_OPTIONS = frozenset(OPTION_NAMES)

PLAIN_TAGS: BoundedDict[tuple[tuple[str, str], ...], dict[str, str]] = BoundedDict(4096)
"""Keyword arguments seen without an option, all text (as their items) -> their shared tags."""

NO_TAGS = shared_tags({})

_NO_SAMPLING_AGGREGATED = (
    "{}(aggregate=True) records every call into its aggregator, whose figures are exact; "
    "sampling would only make them estimates"
)


class PartsSender(Protocol):
    """Where the instruments send: `metricstream.streamer.engine.current.CurrentPipeline`."""

    def send_parts(
        self, measurement: str, tags: dict[str, str], fields: dict[str, Any], timestamp_ns: int
    ) -> bool:
        """Send an event given as parts already checked; `EventStreamer.send`'s answer."""
        ...

    def sample(self, rate: float) -> int:
        """Decide one event: its weight if kept, 0 if sampled out (`Sampler.draw`)."""
        ...


class Aggregating(Protocol):
    """Where ``aggregate=True`` records: the streamer's aggregators."""

    def get(self) -> Aggregator:
        """The default aggregator (``streamer.aggregator()``)."""
        ...


def instrument_tags(
    function: str, tags: Mapping[str, Any] | None, keywords: dict[str, Any]
) -> dict[str, Any]:
    """The tags of one instrument call: ``tags={...}`` and the keyword arguments, merged.

    Args:
        function: The instrument (``"count"``...), for the errors.
        tags: What ``tags=`` gave, or None.
        keywords: The keyword arguments that are tags.

    Raises:
        ConfigError: If `tags` is not a mapping, holds the name of an option
            (`OPTION_NAMES`), or shares a key with the keywords.
    """
    if tags is None:
        return keywords
    if not isinstance(tags, Mapping):
        raise ConfigError("tags", f"must be a dict of tags, not {type(tags).__name__}")
    for key in tags:
        if key in _OPTIONS:
            raise ConfigError(
                "tags",
                f"{key!r} is an option of {function}(), not a tag; "
                f"send the event with send() to give it a tag named {key!r}",
            )
        if key in keywords:
            raise ConfigError("tags", f"tag {key!r} is given twice: in tags= and as a keyword")
    return {**tags, **keywords}


def split_options(function: str, keywords: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """Take the options out of an instrument call's keywords; merge and check its tags.

    Returns:
        (the tags, the options given: ``sample_rate``, ``timestamp``,
        ``aggregate``, each checked for its type where that is cheap).

    Raises:
        ConfigError: If the tags are invalid (see `instrument_tags`), a
            ``timestamp`` is given to `timed`, ``aggregate`` is not a bool,
            or ``aggregate=True`` comes with a rate or a timestamp.
    """
    options: dict[str, Any] = {}
    if not _OPTIONS.isdisjoint(keywords):
        keywords = dict(keywords)
        options = {name: keywords.pop(name) for name in OPTION_NAMES if name in keywords}
    tags = instrument_tags(function, options.pop("tags", None), keywords)
    if function == "timed" and "timestamp" in options:
        raise ConfigError(
            "timestamp", "timed() takes no timestamp: each event is stamped as its call ends"
        )
    if require_bool("aggregate", options.get("aggregate", False)):
        if options.get("sample_rate") is not None:
            raise ConfigError("sample_rate", _NO_SAMPLING_AGGREGATED.format(function))
        if options.get("timestamp") is not None:
            raise ConfigError(
                "timestamp", f"{function}(aggregate=True) records into the window open now"
            )
    return tags, options


def remember_plain(keywords: dict[str, Any], shared: dict[str, str]) -> None:
    """Remember the shared tags of keywords with text values only (see `PLAIN_TAGS`)."""
    if all(value.__class__ is str for value in keywords.values()):
        PLAIN_TAGS.remember(tuple(keywords.items()), shared)


def sampled(sender: PartsSender, fields: dict[str, Any], rate: float | None) -> bool:
    """Apply `rate` to an instrument's event: False when it is sampled out."""
    if rate is None:
        return True
    weight = sender.sample(rate)
    if weight > 1:
        fields[WEIGHT_FIELD] = weight
    return weight > 0


def send_with_options(
    function: str,
    sender: PartsSender,
    name: str,
    value: Any,
    keywords: dict[str, Any],
    *,
    aggregations: Aggregating | None,
) -> bool:
    """A ``count`` or ``gauge`` call whose keywords the instruments had not seen (the slow path).

    Args:
        function: ``"count"`` (field ``count``) or ``"gauge"`` (field ``value``).
        sender: Where its event goes.
        name: The measurement, checked.
        value: The value, checked.
        keywords: Its keyword arguments: tags and options.
        aggregations: Where ``aggregate=True`` records (None: nowhere).

    Returns:
        What `EventStreamer.send` returns (True when aggregated or sampled out).

    Raises:
        ConfigError: If an option or the tags are invalid.
        InvalidEventError: If a tag or the timestamp is invalid.
    """
    tags, options = split_options(function, keywords)
    if options.get("aggregate"):
        if aggregations is None:
            raise ConfigError("aggregate", f"this {function}() has no aggregator to record into")
        aggregator = aggregations.get()
        record = aggregator.count if function == "count" else aggregator.gauge
        record(name, value, tags)
        return True
    shared = shared_tags(tags) if tags else NO_TAGS
    if not options:
        remember_plain(keywords, shared)
    fields = {"count" if function == "count" else "value": value}
    if not sampled(sender, fields, options.get("sample_rate")):
        return True
    timestamp = options.get("timestamp")
    return sender.send_parts(
        name,
        shared,
        fields,
        time.time_ns() if timestamp is None else check_event_time(timestamp),
    )
