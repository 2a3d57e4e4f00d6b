"""One-line instrumentation: what `EventStreamer.timed`, ``count`` and ``gauge`` do.

::

    @streamer.timed("orders.lookup", table="orders")
    def lookup(order_id): ...

    async with streamer.timed("http.fetch", host="api"):
        ...

    streamer.count("cache.miss", region="eu")
    streamer.count("login", tags={"user.type": "admin"}, sample_rate=0.1)
    streamer.gauge("queue.depth", len(queue), queue="emails")

Each call sends one event as `EventStreamer.send` would, with the active
correlation id; since the instrument has validated its parts itself, it
hands them to the streamer's buffer directly (a `PartsSender`), without
building a `MetricEvent`, and costs the calling thread less than
``send(event_from_sample(...))``:

- `timed`: measurement `name`, the given tags plus ``outcome`` (``ok``, or
  the type name of the exception that ended the block), field
  ``duration_ms`` (float). The exception always propagates.
- `count`: measurement `name`, field ``count`` (int, default 1).
- `gauge`: measurement `name`, field ``value``, always a float (``3``
  becomes ``3.0``), so a series never changes type (InfluxDB refuses
  that).

Tags are keyword arguments, or a dict given as ``tags={...}`` (for keys
that are not Python names, such as ``user.type``), or both. The names of
the instruments' options (`OPTION_NAMES`: ``sample_rate``, ``timestamp``,
``tags``, ``aggregate``) are never tags: as keywords they are the options,
and in ``tags={...}`` they are refused with a `ConfigError`, so a tag can
never be mistaken for an option or the reverse. The measurement's name is
positional only, so ``name="emails"`` is a tag; ``n=`` and ``value=`` are
a count's and a gauge's value (a tag of those names goes in ``tags=``).
``sample_rate=`` samples as
`EventStreamer.send` does (a kept event carries ``samplerate``);
``timestamp=`` (ns since the epoch) sets a count's or a gauge's time. The
instruments' ``aggregate=True`` is the facade's (`EventStreamer.count`).

What can be decided once is decided when the instrument is made: `timed`
validates its name and tags and builds the ``outcome=ok`` tag set up front,
so a timed call only reads the clocks and sends.
"""

from __future__ import annotations

import functools
import inspect
import time
from collections.abc import Awaitable, Callable, Coroutine
from types import TracebackType
from typing import TYPE_CHECKING, Any, TypeVar, cast

from metricstream._bounded import BoundedDict
from metricstream._validate import (
    INT64_MAX,
    INT64_MIN,
    check_field_value,
    check_measurement,
    valid_measurements,
)
from metricstream.event import FieldValue, shared_tags
from metricstream.exceptions import ConfigError, InvalidEventError
from metricstream.streamer.engine.sampling import check_sample_rate
from metricstream.streamer.operations.instrument_options import (
    NO_TAGS,
    OPTION_NAMES,
    PLAIN_TAGS,
    Aggregating,
    PartsSender,
    sampled,
    send_with_options,
    split_options,
)

if TYPE_CHECKING:
    from metricstream.aggregate import Aggregator

__all__ = [
    "OPTION_NAMES",
    "OUTCOME_OK",
    "OUTCOME_TAG",
    "PartsSender",
    "Timer",
    "count",
    "gauge",
    "timer",
]

R = TypeVar("R")
F = TypeVar("F", bound=Callable[..., Any])

OUTCOME_TAG = "outcome"
"""The tag `timed` adds: ``ok``, or the type name of the exception raised."""
OUTCOME_OK = "ok"
"""The ``outcome`` of a block or call that returned normally."""


_NO_TAGS = NO_TAGS
_perf_ns = time.perf_counter_ns
_time_ns = time.time_ns


def _number(key: str, value: object, *, integral: bool) -> FieldValue:
    """Check a `count` (int) or `gauge` (int or float) value; the slow path of each."""
    allowed = (int,) if integral else (int, float)
    if isinstance(value, bool) or not isinstance(value, allowed):
        kind = "an int" if integral else "an int or a float"
        raise InvalidEventError(key, f"{key!r} must be {kind}, not {type(value).__name__}")
    return check_field_value(key, value)


_TimerSpec = tuple[str, dict[str, str], dict[str, str]]
_timer_specs: BoundedDict[tuple[object, ...], _TimerSpec] = BoundedDict(4096)
"""(name, *tags) -> the validated name, the tags, and the tags with ``outcome=ok``."""


def _new_timer_spec(name: str, tags: dict[str, Any]) -> _TimerSpec:
    """Validate a timer's name and tags; remember them for the next timer like it."""
    if OUTCOME_TAG in tags:
        raise ConfigError("tags", f"{OUTCOME_TAG!r} is set by timed() itself")
    checked = check_measurement(name)
    base = shared_tags(tags) if tags else _NO_TAGS
    spec = (checked, base, shared_tags({**base, OUTCOME_TAG: OUTCOME_OK}))
    # Only plain strings are remembered: 1, 1.0 and True are equal keys but different tags.
    if name.__class__ is str and all(value.__class__ is str for value in tags.values()):
        _timer_specs.remember((name, *tags.items()), spec)
    return spec


def _failure_tags(tags: dict[str, str], error: type[BaseException]) -> dict[str, str]:
    """The tags of a failed call: ``outcome`` is the exception's type name."""
    try:
        return shared_tags({**tags, OUTCOME_TAG: error.__name__})
    except InvalidEventError:  # a class renamed to something no tag can hold
        return shared_tags({**tags, OUTCOME_TAG: "error"})


class Timer:
    """Times a function or a block and sends its duration and outcome.

    Made by `timer` (``streamer.timed(name, **tags)``); use it as
    a decorator (sync or async functions), a ``with`` block or an ``async
    with`` block. As a decorator it keeps no state between calls, so a
    decorated function may run in many threads and tasks at once. As a
    context manager it holds the start of the block it times: write ``with
    streamer.timed(...)`` at each block (each call makes its own timer,
    cheaply) rather than sharing one timer object between blocks that run at
    the same time in several threads or tasks. Re-entering a timer inside its
    own block is fine: blocks nest.
    """

    __slots__ = ("_nested", "_sender", "_spec", "_started")

    _spec: _TimerSpec
    _sender: PartsSender
    _started: int  # perf_counter_ns() at the start of the open block; 0 when none is open
    _nested: list[int] | None  # starts of the enclosing blocks when the timer is re-entered

    @property
    def name(self) -> str:
        """The measurement."""
        return self._spec[0]

    def _record(self, started_ns: int, error: type[BaseException] | None) -> None:
        elapsed_ns = _perf_ns() - started_ns
        name, tags, ok_tags = self._spec
        self._sender.send_parts(
            name,
            ok_tags if error is None else _failure_tags(tags, error),
            {"duration_ms": elapsed_ns / 1e6},
            _time_ns(),
        )

    # --- decorator ---------------------------------------------------------------

    def __call__(self, function: F) -> F:
        """Time every call of `function` (a plain or an ``async`` function).

        Raises:
            TypeError: If `function` is a generator or an async generator
                function, whose body runs after the call returns.
        """
        if inspect.isgeneratorfunction(function) or inspect.isasyncgenfunction(function):
            raise TypeError(
                f"timed() cannot time the generator function {function.__qualname__}: "
                "its body runs while it is iterated; time the loop that consumes it"
            )
        if inspect.iscoroutinefunction(function):
            return cast(F, self._wrap_async(function))
        return cast(F, self._wrap_sync(function))

    def _wrap_sync(self, function: Callable[..., R]) -> Callable[..., R]:
        record = self._record

        @functools.wraps(function)
        def timed_call(*args: Any, **kwargs: Any) -> R:
            started = _perf_ns()
            try:
                result = function(*args, **kwargs)
            except BaseException as exc:
                record(started, exc.__class__)
                raise
            record(started, None)
            return result

        return timed_call

    def _wrap_async(
        self, function: Callable[..., Coroutine[Any, Any, R]]
    ) -> Callable[..., Awaitable[R]]:
        record = self._record

        @functools.wraps(function)
        async def timed_call(*args: Any, **kwargs: Any) -> R:
            started = _perf_ns()
            try:
                result = await function(*args, **kwargs)
            except BaseException as exc:
                record(started, exc.__class__)
                raise
            record(started, None)
            return result

        return timed_call

    # --- context manager ------------------------------------------------------

    def __enter__(self) -> Timer:
        if self._started:  # entered again inside its own block: keep the outer start
            if self._nested is None:
                self._nested = []
            self._nested.append(self._started)
        self._started = _perf_ns()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        started = self._started
        nested = self._nested
        self._started = nested.pop() if nested else 0
        self._record(started, exc_type)

    async def __aenter__(self) -> Timer:
        return self.__enter__()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.__exit__(exc_type, exc, tb)

    def __repr__(self) -> str:
        name, tags, _ = self._spec
        return f"Timer(name={name!r}, tags={dict(tags)!r})"


class _SampledTimer(Timer):
    """A `Timer` that sends about one call in 1/`_rate` (``timed(..., sample_rate=...)``)."""

    __slots__ = ("_rate",)

    _rate: float

    def _record(self, started_ns: int, error: type[BaseException] | None) -> None:
        elapsed_ns = _perf_ns() - started_ns
        name, tags, ok_tags = self._spec
        fields = {"duration_ms": elapsed_ns / 1e6}
        if sampled(self._sender, fields, self._rate):
            ok_tags = ok_tags if error is None else _failure_tags(tags, error)
            self._sender.send_parts(name, ok_tags, fields, _time_ns())


class _AggregatedTimer(Timer):
    """A `Timer` that records durations (ms) in a distribution (``timed(..., aggregate=True)``)."""

    __slots__ = ("_into",)

    _into: Aggregator

    def _record(self, started_ns: int, error: type[BaseException] | None) -> None:
        elapsed_ns = _perf_ns() - started_ns
        name, tags, ok_tags = self._spec
        ok_tags = ok_tags if error is None else _failure_tags(tags, error)
        self._into.distribution(name, elapsed_ns / 1e6, ok_tags)


def timer(
    sender: PartsSender,
    name: str,
    keywords: dict[str, Any],
    aggregations: Aggregating | None = None,
) -> Timer:
    """Return a `Timer` of `name` that sends to `sender` (`EventStreamer.timed`).

    Args:
        sender: Where its events go.
        name: The measurement.
        keywords: Its tags, and its options (``tags``, ``sample_rate``,
            ``aggregate``: see `EventStreamer.timed`).
        aggregations: Where ``aggregate=True`` records.

    Raises:
        InvalidEventError: If the name or a tag is invalid.
        ConfigError: If a tag is named ``outcome``, or an option is invalid.
    """
    made = Timer()
    key = (name, *keywords.items())
    try:
        made._spec = _timer_specs[key]
    except (KeyError, TypeError):
        made = _timer_with_options(name, keywords, aggregations)
    made._sender = sender
    made._started = 0
    made._nested = None
    return made


def _timer_with_options(
    name: str, keywords: dict[str, Any], aggregations: Aggregating | None
) -> Timer:
    """A timer whose keywords are not remembered: options taken out, tags checked (slow path)."""
    tags, options = split_options("timed", keywords)
    made: Timer
    if options.get("aggregate"):
        if aggregations is None:
            raise ConfigError("aggregate", "this timer has no aggregator to record into")
        from metricstream.aggregate import Quantiles  # imported when first needed

        Quantiles("aggregate")  # fails now, not at the first call, without ddsketch
        made = aggregated = _AggregatedTimer()
        aggregated._into = aggregations.get()
    elif options.get("sample_rate") is not None:
        check_sample_rate(options["sample_rate"])
        made = rated = _SampledTimer()
        rated._rate = options["sample_rate"]
    else:
        made = Timer()
    key = (name, *tags.items())
    try:
        made._spec = _timer_specs[key]
    except (KeyError, TypeError):
        made._spec = _new_timer_spec(name, tags)
    return made


def count(
    sender: PartsSender,
    name: str,
    n: int,
    keywords: dict[str, Any],
    aggregations: Aggregating | None = None,
) -> bool:
    """Send a count to `sender` (`EventStreamer.count`): field ``count`` = `n`.

    Args:
        sender: Where the event goes.
        name: The measurement.
        n: The count.
        keywords: Its tags, and its options (see `EventStreamer.count`).
        aggregations: Where ``aggregate=True`` records.

    Raises:
        InvalidEventError: If the name, a tag, `n` or the timestamp is invalid.
        ConfigError: If an option is invalid.
    """
    if name.__class__ is not str or name not in valid_measurements:
        name = check_measurement(name)
    if n.__class__ is not int or not INT64_MIN <= n <= INT64_MAX:
        n = cast(int, _number("count", n, integral=True))
    if not keywords:
        tags = NO_TAGS
    else:
        try:
            tags = PLAIN_TAGS[tuple(keywords.items())]
        except (KeyError, TypeError):
            return send_with_options("count", sender, name, n, keywords, aggregations=aggregations)
    return sender.send_parts(name, tags, {"count": n}, _time_ns())


def gauge(
    sender: PartsSender,
    name: str,
    value: float,
    keywords: dict[str, Any],
    aggregations: Aggregating | None = None,
) -> bool:
    """Send a gauge reading to `sender` (`EventStreamer.gauge`): field ``value``, a float.

    Args:
        sender: Where the event goes.
        name: The measurement.
        value: The reading.
        keywords: Its tags, and its options (see `EventStreamer.gauge`).
        aggregations: Where ``aggregate=True`` records.

    Raises:
        InvalidEventError: If the name, a tag, the value or the timestamp is invalid.
        ConfigError: If an option is invalid.
    """
    if name.__class__ is not str or name not in valid_measurements:
        name = check_measurement(name)
    cls = value.__class__
    if cls is float:
        if value - value != 0.0:  # NaN or infinity
            value = cast(float, _number("value", value, integral=False))
    elif cls is int and INT64_MIN <= value <= INT64_MAX:
        value = value + 0.0  # an int as a float, without a call of float()
    else:
        value = float(_number("value", value, integral=False))
    if not keywords:
        tags = NO_TAGS
    else:
        try:
            tags = PLAIN_TAGS[tuple(keywords.items())]
        except (KeyError, TypeError):
            return send_with_options(
                "gauge", sender, name, value, keywords, aggregations=aggregations
            )
    return sender.send_parts(name, tags, {"value": value}, _time_ns())
