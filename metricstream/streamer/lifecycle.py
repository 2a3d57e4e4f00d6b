"""Process lifecycle: shutdown at interpreter exit, and fresh pipelines after a fork.

Every streamer registers here when it is created. One `atexit` hook shuts
down, together, every live streamer that asked for it, under one shared
deadline, so several streamers cost one deadline, not one each. After
``os.fork()`` the child calls each streamer's ``after_fork_in_child`` so it
starts with fresh, empty lanes, threads and sinks' clients.
"""

from __future__ import annotations

import atexit
import os
import threading
import time
import weakref
from typing import Protocol

__all__ = ["EXIT_DEADLINE", "Managed", "forget", "track"]

EXIT_DEADLINE = 2.0
"""Seconds every streamer together has to deliver what is pending at exit."""


class Managed(Protocol):
    """What the lifecycle needs from a streamer."""

    def shutdown(self, timeout: float = ...) -> bool:
        """Stop, delivering what is pending within `timeout` seconds."""
        ...

    def after_fork_in_child(self) -> None:
        """Start afresh in a forked child."""
        ...


_live: weakref.WeakSet[Managed] = weakref.WeakSet()
_at_exit: weakref.WeakSet[Managed] = weakref.WeakSet()
_lock = threading.Lock()


def track(streamer: Managed, *, at_exit: bool) -> None:
    """Follow `streamer` across forks and, when `at_exit`, shut it down at exit."""
    with _lock:
        _live.add(streamer)
        if at_exit:
            _at_exit.add(streamer)


def forget(streamer: Managed) -> None:
    """Stop following `streamer` (it has shut down)."""
    with _lock:
        _live.discard(streamer)
        _at_exit.discard(streamer)


def _shutdown_all_at_exit() -> None:
    with _lock:
        streamers = list(_at_exit)
    if not streamers:
        return
    deadline = time.monotonic() + EXIT_DEADLINE
    threads = [
        threading.Thread(
            target=streamer.shutdown,
            kwargs={"timeout": EXIT_DEADLINE},
            name="metricstream-exit",
            daemon=True,
        )
        for streamer in streamers
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(max(0.0, deadline - time.monotonic()) + 0.5)


def _reset_after_fork() -> None:
    global _lock  # noqa: PLW0603 - a lock held by a parent thread at fork time is replaced
    _lock = threading.Lock()
    for streamer in list(_live):
        streamer.after_fork_in_child()


atexit.register(_shutdown_all_at_exit)
if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_reset_after_fork)
