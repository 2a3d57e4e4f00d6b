"""`MetricEvent`: one tagged measurement, and the helpers that build it.

An event is a measurement name, string tags, typed fields (bool, int, float,
str or `UInt`), a nanosecond timestamp and an optional correlation id. Every
part is validated when it is set (the rules live in `metricstream._validate`),
so an event that exists can be encoded; the one check left for later is that
it has at least one field, made when it is encoded or sent.

The encoders and decoders live a layer above, in `metricstream.codecs`; the
methods that use them (`MetricEvent.to_json`, `to_influx_line` and the
``from_`` constructors) call them through `codecs`, which that package fills
in when it is imported (``import metricstream`` always does).
"""

from __future__ import annotations

import datetime as _dt
import time
from collections.abc import Callable, Iterable, Mapping
from typing import TYPE_CHECKING, Any, ClassVar, NoReturn

from metricstream._bounded import BoundedDict
from metricstream._compiled import SPEEDUPS
from metricstream._timestamps import EARLIEST_TIMESTAMP_NS, check_event_time, timestamp_in
from metricstream._validate import (
    FLOAT_MAX,
    INT64_MAX,
    INT64_MIN,
    FieldValue,
    TagsLike,
    UInt,
    as_dict,
    check_correlation_id,
    check_field_value,
    check_fields,
    check_key,
    check_measurement,
    check_tag_value,
    check_tags,
    valid_keys,
    valid_measurements,
)
from metricstream.exceptions import InvalidEventError

if TYPE_CHECKING:
    from typing_extensions import Self

__all__ = [
    "PARTS_PER_EVENT",
    "SCHEMA_VERSION",
    "FieldValue",
    "MetricEvent",
    "SharedTags",
    "TagsLike",
    "UInt",
    "codecs",
    "event_from_sample",
    "shared_tags",
    "trusted_event",
]

SCHEMA_VERSION = 1
"""The version of the serialized event schema this library writes and reads."""


class Codecs:
    """The encoders and decoders `MetricEvent`'s methods delegate to.

    `metricstream.codecs` sets every attribute when it is imported.
    """

    encode_line: Callable[[MetricEvent, str], str]
    parse_line: Callable[[str | bytes, str], MetricEvent]
    encode_json: Callable[[MetricEvent], bytes]
    decode_json: Callable[[str | bytes], MetricEvent]


codecs = Codecs()
"""The codecs in use (see `Codecs`)."""


class MetricEvent:
    """One measurement with tags, typed fields, a timestamp and a correlation id.

    Build it in one call or fluently; each builder method validates its input,
    changes this event and returns it::

        ev = (MetricEvent("http_requests")
              .with_tag("route", "/api")
              .with_field("latency_ms", 12.5)
              .with_field("count", 1))

    Args:
        measurement: The measurement name.
        tags: Tag keys to string values (a mapping or (key, value) pairs).
        fields: Field keys to values: bool, int (int64), float (finite), str
            (up to 64 KiB) or `UInt`.
        timestamp_ns: Nanoseconds since the epoch (or an aware `datetime`);
            defaults to `time.time_ns()` now. A number before 2001 (below
            10**18) is refused, since it is nearly always seconds or
            milliseconds taken for nanoseconds; see `with_timestamp`.
        correlation_id: An optional id tying the event to a request or job.
        before_2001: Accept a `timestamp_ns` before 2001 as meant.

    Events built with equal tags share one read-only copy of them (a
    `SharedTags`), which keeps millions of pending events small and makes
    encoding them cheap: change an event's tags with `with_tag`, which gives
    it its own copy first, not by assigning into ``event.tags``.

    Raises:
        InvalidEventError: If any part is invalid; the message names the part.
    """

    __slots__ = ("correlation_id", "fields", "measurement", "tags", "timestamp_ns")

    schema_version: ClassVar[int] = SCHEMA_VERSION
    """The schema version of this event's serialized form."""

    measurement: str
    tags: dict[str, str]
    fields: dict[str, FieldValue]
    timestamp_ns: int
    correlation_id: str | None

    def __init__(
        self,
        measurement: str,
        tags: TagsLike | None = None,
        fields: Mapping[str, object] | Iterable[tuple[str, object]] | None = None,
        timestamp_ns: int | _dt.datetime | None = None,
        correlation_id: str | None = None,
        *,
        before_2001: bool = False,
    ) -> None:
        self.measurement = (
            measurement
            if measurement.__class__ is str and measurement in valid_measurements
            else check_measurement(measurement)
        )
        if not tags:
            self.tags = _NO_TAGS
        elif tags is _last_tags[0] and tags == (shared := _last_tags[1]):
            self.tags = shared
        elif (shared := _shared_tags_cache.get(_items_key(tags))) is not None:  # type: ignore[arg-type]
            _last_tags[0] = tags
            self.tags = _last_tags[1] = shared
        else:
            self.tags = shared_tags(tags)
        self.fields = check_fields(fields) if fields else {}
        if timestamp_ns is None:
            self.timestamp_ns = _time_ns()
        elif timestamp_ns.__class__ is int and EARLIEST_TIMESTAMP_NS <= timestamp_ns <= INT64_MAX:
            self.timestamp_ns = timestamp_ns
        else:
            self.timestamp_ns = check_event_time(timestamp_ns, before_2001=before_2001)
        self.correlation_id = (
            None if correlation_id is None else check_correlation_id(correlation_id)
        )

    def with_tag(self, key: str, value: str | int | float | bool) -> Self:
        """Set tag `key` to `value` (ints, floats and bools become strings).

        Returns:
            This event.

        Raises:
            InvalidEventError: If the key or value is invalid.
        """
        key = check_key(key, "tag")
        tags = self.tags
        if tags.__class__ is not dict:  # shared, read-only tags: take a copy first
            tags = self.tags = dict(tags)
        tags[key] = check_tag_value(key, value)
        return self

    def with_field(self, key: str, value: FieldValue) -> Self:
        """Set field `key` to `value`.

        Returns:
            This event.

        Raises:
            InvalidEventError: If the key or value is invalid.
        """
        key = check_key(key, "field")
        self.fields[key] = check_field_value(key, value)
        return self

    def with_correlation_id(self, correlation_id: str | None) -> Self:
        """Set (or with None, clear) the correlation id.

        Returns:
            This event.

        Raises:
            InvalidEventError: If the id is not a non-empty one-line string.
        """
        self.correlation_id = check_correlation_id(correlation_id)
        return self

    def with_timestamp(
        self,
        timestamp_ns: int | _dt.datetime | None = None,
        *,
        seconds: float | None = None,
        ms: float | None = None,
        us: float | None = None,
        before_2001: bool = False,
    ) -> Self:
        """Set the timestamp, given in one unit: nanoseconds (or a datetime), seconds, ms or us.

        ``with_timestamp(1_700_000_000_000_000_000)`` (nanoseconds),
        ``with_timestamp(seconds=time.time())``, ``with_timestamp(ms=1_700_000_000_000)``
        and ``with_timestamp(datetime.now(timezone.utc))`` all work. A number
        that makes a time before 2001 is refused, naming the unit it was
        probably meant in (``with_timestamp(1_700_000_000)`` is seconds read
        as nanoseconds: 1970), unless `before_2001` says it is meant. An
        aware datetime says its date and is taken as it is.

        Args:
            timestamp_ns: Nanoseconds since the epoch (int), or an aware `datetime`.
            seconds: Seconds since the epoch (int, or float as from `time.time`).
            ms: Milliseconds since the epoch.
            us: Microseconds since the epoch.
            before_2001: Accept a time before 2001 as meant.

        Returns:
            This event.

        Raises:
            InvalidEventError: If not exactly one of the four is given, or the
                timestamp is invalid, out of range, or before 2001 unmarked.
        """
        given = {
            unit: value
            for unit, value in (("ns", timestamp_ns), ("seconds", seconds), ("ms", ms), ("us", us))
            if value is not None
        }
        if len(given) != 1:
            raise InvalidEventError(
                None,
                "with_timestamp() takes one time: timestamp_ns, seconds=, ms= or us=, "
                f"not {len(given)}",
            )
        [(unit, value)] = given.items()
        self.timestamp_ns = (
            check_event_time(value, before_2001=before_2001)
            if unit == "ns"
            else timestamp_in(unit, value, before_2001=before_2001)
        )
        return self

    def copy(self) -> MetricEvent:
        """Return an independent copy (tags and fields are copied too)."""
        return trusted_event(
            self.measurement,
            dict(self.tags),
            dict(self.fields),
            self.timestamp_ns,
            self.correlation_id,
        )

    def to_influx_line(self, precision: str = "ns") -> str:
        """Encode as one line of InfluxDB line protocol, without a newline.

        Args:
            precision: Timestamp unit: ``ns``, ``us``, ``ms`` or ``s``.

        Raises:
            InvalidEventError: If the event has no fields.
            ConfigError: If the precision is unknown.
        """
        return codecs.encode_line(self, precision)

    def to_json(self) -> str:
        """Encode as one JSON object (the schema is described in `metricstream.codecs.json`).

        The object has ``measurement``, ``tags``, ``fields``, ``timestamp_ns``,
        ``schema_version`` and, when set, ``correlation_id``. Ints and floats
        keep their kind (``1`` vs ``1.0``); a `UInt` field is written as
        ``{"uint": N}``.

        Raises:
            InvalidEventError: If the event has no fields.
        """
        return codecs.encode_json(self).decode()

    @classmethod
    def from_json(cls, text: str | bytes) -> MetricEvent:
        """Decode one event written by `to_json`.

        Raises:
            SchemaVersionError: If it comes from a newer schema version.
            InvalidEventError: If the JSON is malformed or the event invalid.
        """
        return codecs.decode_json(text)

    @classmethod
    def from_influx_line(cls, line: str | bytes, precision: str = "ns") -> MetricEvent:
        """Decode exactly one line protocol entry (see `metricstream.parse_lines`).

        Args:
            line: The entry (bytes are decoded as UTF-8).
            precision: Unit of the timestamp in the text: ns, us, ms or s.

        Returns:
            The event; its timestamp is the current time when the entry has none.

        Raises:
            LineProtocolError: If the text is malformed or holds no entry or
                more than one.
        """
        return codecs.parse_line(line, precision)

    def __eq__(self, other: object) -> bool:
        """Events are equal when every part is, field values including their type."""
        if not isinstance(other, MetricEvent):
            return NotImplemented
        if (
            self.measurement != other.measurement
            or self.timestamp_ns != other.timestamp_ns
            or self.correlation_id != other.correlation_id
            or self.tags != other.tags
            or self.fields.keys() != other.fields.keys()
        ):
            return False
        theirs = other.fields
        return all(
            type(value) is type(theirs[key]) and _same_value(value, theirs[key])
            for key, value in self.fields.items()
        )

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        parts = [repr(self.measurement)]
        if self.tags:
            parts.append(f"tags={self.tags!r}")
        parts.append(f"fields={self.fields!r}")
        parts.append(f"timestamp_ns={self.timestamp_ns}")
        if self.correlation_id is not None:
            parts.append(f"correlation_id={self.correlation_id!r}")
        return f"MetricEvent({', '.join(parts)})"


_VALUE_FIELD = "value"
"""The default field key of `event_from_sample` (always valid)."""


def _same_value(a: FieldValue, b: FieldValue) -> bool:
    if a.__class__ is float:
        # 0.0 and -0.0 compare equal but encode differently.
        return a == b and str(a) == str(b)
    return a == b


def event_from_sample(
    metric: str,
    value: FieldValue,
    tags: TagsLike = (),
    *,
    field: str = _VALUE_FIELD,
    timestamp_ns: int | None = None,
    before_2001: bool = False,
) -> MetricEvent:
    """Build an event from one sample: ``event_from_sample("cpu", 0.73, {"host": "a"})``.

    Args:
        metric: The measurement name.
        value: The sample, stored under the field `field`.
        tags: Tags as a mapping or (key, value) pairs (shared: see `MetricEvent`).
        field: The field key for the value.
        timestamp_ns: Nanoseconds since the epoch; defaults to now.
        before_2001: Accept a `timestamp_ns` before 2001 (see `MetricEvent`).

    Returns:
        The new event.

    Raises:
        InvalidEventError: If any part is invalid.
    """
    # The hot path: known names are looked up, common values checked inline.
    if metric.__class__ is not str or metric not in valid_measurements:
        metric = check_measurement(metric)
    if field is not _VALUE_FIELD and (field.__class__ is not str or field not in valid_keys):
        field = check_key(field, "field")
    cls = value.__class__
    if cls is float:
        if not -FLOAT_MAX <= value <= FLOAT_MAX:  # type: ignore[operator]
            value = check_field_value(field, value)
    elif cls is int:
        if not INT64_MIN <= value <= INT64_MAX:  # type: ignore[operator]
            value = check_field_value(field, value)
    elif cls is not bool and cls is not UInt:
        value = check_field_value(field, value)
    shared = _NO_TAGS
    if tags and (tags is not _last_tags[0] or tags != (shared := _last_tags[1])):
        found = _shared_tags_cache.get(_items_key(tags))  # type: ignore[arg-type]
        if found is None:
            shared = shared_tags(tags)
        else:
            _last_tags[0] = tags
            _last_tags[1] = shared = found
    event: MetricEvent = _new_event(MetricEvent)
    event.measurement = metric
    event.tags = shared
    event.fields = {field: value}
    event.timestamp_ns = (
        _time_ns() if timestamp_ns is None else check_event_time(timestamp_ns, before_2001)
    )
    event.correlation_id = None
    return event


class SharedTags(dict):  # type: ignore[type-arg]
    """A read-only tag dict shared by the events built with equal tags.

    It compares, iterates and serialises as a plain dict; changing it raises
    `TypeError` (use `MetricEvent.with_tag`, which gives the event its own copy).

    Attributes:
        encoded: Set by the encoders on first use: what they made of these
            tags (the line protocol heads, by measurement), kept with the
            tags so that it lives and dies with them. Unset until then.
    """

    __slots__ = ("encoded",)

    encoded: dict[str, str]

    def _read_only(self, *_args: object, **_kwargs: object) -> NoReturn:
        raise TypeError(
            "these tags are shared between events and read-only; "
            "use event.with_tag(key, value) to change one event's tags"
        )

    __setitem__ = __delitem__ = __ior__ = _read_only
    clear = pop = popitem = setdefault = update = _read_only

    def __reduce__(self) -> tuple[type[dict[str, str]], tuple[dict[str, str]]]:
        return (dict, (dict(self),))


def _new_shared_tags(tags: dict[str, str]) -> SharedTags:
    shared = SharedTags(tags)
    shared.encoded = {}
    return shared


_NO_TAGS: dict[str, str] = _new_shared_tags({})
_shared_tags_cache: BoundedDict[tuple[tuple[str, str], ...] | None, dict[str, str]] = BoundedDict(
    16_384
)
_last_tags: list[Any] = [None, _NO_TAGS]
"""The dict last looked up in `_shared_tags_cache` and its shared copy.

A call site that passes the same dict every time finds its tags with an
identity and an equality check. The two items are written one after the
other, not atomically: the equality check is what makes a hit correct.
"""


def shared_tags(tags: TagsLike) -> dict[str, str]:
    """Return the shared, read-only copy of these tags, validating them the first time.

    Args:
        tags: Tag keys to values (a mapping or (key, value) pairs).

    Returns:
        A `SharedTags` when every key and value is a str, else a new dict.

    Raises:
        InvalidEventError: If a key or value is invalid.
    """
    if tags.__class__ is not dict:
        return _share_tags(as_dict(tags, "tags"))
    if tags is _last_tags[0] and tags == (found := _last_tags[1]):
        return found  # type: ignore[no-any-return]
    shared = _shared_tags_cache.get(_items_key(tags))
    if shared is None:
        return _share_tags(tags)
    _last_tags[0] = tags
    _last_tags[1] = shared
    return shared


def _share_tags(tags: dict[str, object]) -> dict[str, str]:
    """Validate `tags`; remember the result when every key and value is a plain str."""
    checked = check_tags(tags)
    key = _items_key(tags)  # type: ignore[arg-type]
    if key is None:
        return checked
    # Plain str throughout: the checked copy holds the same items, in order.
    return _shared_tags_cache.remember(key, _new_shared_tags(checked))


def _items_key_pure(tags: dict[str, str]) -> tuple[tuple[str, str], ...] | None:
    """The key of a tag dict in `_shared_tags_cache`: its items, if all are plain str.

    None for anything else, which the cache never holds. The compiled twin
    (`metricstream._compiled`) gives the same result.
    """
    if tags.__class__ is not dict:
        return None
    items = tuple(tags.items())
    for key, value in items:
        if key.__class__ is not str or value.__class__ is not str:
            return None
    return items


_items_key: Callable[[dict[str, str]], tuple[tuple[str, str], ...] | None] = (
    _items_key_pure if SPEEDUPS is None else SPEEDUPS.items_key
)
_new_event = object.__new__
_time_ns = time.time_ns


def trusted_event(
    measurement: str,
    tags: dict[str, str],
    fields: dict[str, FieldValue],
    timestamp_ns: int,
    correlation_id: str | None,
) -> MetricEvent:
    """Build an event from parts that are already validated, without checking them again.

    For decoders and copies, whose input has been through the checks of
    `metricstream._validate`; anything else builds events with `MetricEvent`
    or `event_from_sample`.
    """
    event: MetricEvent = _new_event(MetricEvent)
    event.measurement = measurement
    event.tags = tags
    event.fields = fields
    event.timestamp_ns = timestamp_ns
    event.correlation_id = correlation_id
    return event


# --- events as parts, from send() to the cut ----------------------------------

PARTS_PER_EVENT = 5
"""How the streamer holds a pending event: its five parts, in order.

Measurement, tags, fields, timestamp_ns and correlation id. From `send()`
until the batcher cuts a batch, a pending event is these references
appended to one flat sequence, never an object of its own: the garbage
collector has nothing per event to walk, and each event costs five
pointers besides its values. The cut turns them into columns
(`metricstream.columns.EventColumns.of_parts`).
"""
