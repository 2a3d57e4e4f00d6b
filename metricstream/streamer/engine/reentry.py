"""`Reentry`: what keeps `send` safe in a signal handler.

A Python signal handler runs on the main thread, between two bytecodes of
whatever that thread was doing: possibly inside the pipeline, holding one of
its locks (`Intake.lock`, the space condition under ``overflow="block"``, the
lock inside the batcher's wake-up event) or waiting for room. A `send` from
the handler that took one of those locks again would wait forever for
itself, and one that waited for room would let the next signal start another
wait on top of it, until the stack overflows.

So every part of the pipeline that an application thread runs and that may
take such a lock is a *section*: the thread is marked as inside while it
runs it. `send` never takes a lock on its fast path (one ``deque.extend``);
where it would (the buffer is full, the streamer is closed, a batch is
complete) it first asks `inside`. A thread already inside is a signal
handler that interrupted it: its event is put aside in `deferred`, a
`queue.SimpleQueue`, whose ``put`` may interrupt another ``put`` without
harm, and never waits. The batcher, a flush or a health snapshot applies
what was put aside (`Pipeline.take_deferred`) outside any section.

Marking costs a dict update at the start and end of a section; `send` pays
it only once per batch, never per event.
"""

from __future__ import annotations

import functools
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from queue import Empty, SimpleQueue
from typing import Any, Concatenate, ParamSpec, Protocol, TypeVar

__all__ = ["Reentry", "section"]

_get_ident = threading.get_ident


class Reentry:
    """Which threads are inside a section of the pipeline, and what was put aside meanwhile.

    Attributes:
        deferred: Rows of events (their parts) sent by a thread that was
            inside already, and drop reasons (``str``) to count, in order.
    """

    def __init__(self) -> None:
        self._depth: dict[int, int] = {}
        self.deferred: SimpleQueue[tuple[Any, ...] | str] = SimpleQueue()

    def inside(self) -> bool:
        """True when the calling thread is inside a section: a signal handler interrupted it."""
        return _get_ident() in self._depth

    def enter(self) -> int:
        """Mark the calling thread inside; return its ident for `leave`."""
        ident = _get_ident()
        depth = self._depth
        depth[ident] = depth.get(ident, 0) + 1
        return ident

    def leave(self, ident: int) -> None:
        """Undo one `enter` of thread `ident`."""
        depth = self._depth
        left = depth[ident] - 1
        if left:
            depth[ident] = left
        else:
            del depth[ident]

    @contextmanager
    def section(self) -> Iterator[None]:
        """Run the block as a section (see the module doc)."""
        ident = self.enter()
        try:
            yield
        finally:
            self.leave(ident)

    def put_aside(self, item: tuple[Any, ...] | str) -> None:
        """Keep an event's parts (or a drop reason) for later; never waits."""
        self.deferred.put(item)

    def take(self) -> tuple[Any, ...] | str | None:
        """The oldest item put aside, or None."""
        try:
            return self.deferred.get_nowait()
        except Empty:
            return None


class _HasIntake(Protocol):
    @property
    def intake(self) -> Any: ...


P = ParamSpec("P")
R = TypeVar("R")
S = TypeVar("S", bound=_HasIntake)


def section(method: Callable[Concatenate[S, P], R]) -> Callable[Concatenate[S, P], R]:
    """Run a method of an object with an ``intake`` as a section of its `Reentry`.

    A signal handler's `send` meanwhile is put aside (see the module doc).
    """

    @functools.wraps(method)
    def run(self: S, /, *args: P.args, **kwargs: P.kwargs) -> R:
        reentry: Reentry = self.intake.reentry
        ident = reentry.enter()
        try:
            return method(self, *args, **kwargs)
        finally:
            reentry.leave(ident)

    return run
