"""Process lifecycle: exit, garbage collection and fork.

- Exit: one `atexit` hook shuts down every live streamer that asked for it
  (``register_atexit=True``) together, under one shared deadline
  (`EXIT_DEADLINE`), so several streamers cost one deadline, not one each.
- ``multiprocessing`` workers started with the ``fork`` method leave through
  ``os._exit``, which skips `atexit`; they run multiprocessing's own
  finalizers first, and the same shutdown is registered there.
- ``multiprocessing`` children are ended by SIGTERM when their parent calls
  ``terminate()``, which ``with Pool() as pool:`` does on leaving the
  block: in a child whose main thread has SIGTERM at its default action,
  SIGTERM first runs the same shutdown (within `EXIT_DEADLINE`), then ends
  the process by SIGTERM as before (`deliver_on_terminate`).
- Garbage collection: a streamer that nobody references any more is
  collected. Its pipeline is then "orphaned": it delivers what it holds in
  the background (``ORPHAN_DEADLINE``) and closes its sinks; at exit, the
  orphans still stopping share the exit deadline with the live streamers.
- Fork: before ``os.fork()`` each streamer holds its aggregators' locks
  (``before_fork``), so that no lock is copied while another thread holds
  it; the parent releases them (``after_fork_in_parent``), and the child
  calls each streamer's ``after_fork_in_child`` so it starts with fresh,
  empty lanes, threads, sink clients and aggregated series.
"""

from __future__ import annotations

import atexit
import os
import signal
import threading
import time
import weakref
from types import FrameType
from typing import Protocol

from metricstream._threads import start_daemon

__all__ = [
    "EXIT_DEADLINE",
    "ORPHAN_DEADLINE",
    "Managed",
    "Stoppable",
    "deliver_on_terminate",
    "forget",
    "orphan",
    "track",
]

EXIT_DEADLINE = 2.0
"""Seconds every streamer together has to deliver what is pending at exit."""

ORPHAN_DEADLINE = 10.0
"""Seconds the pipeline of a collected streamer has to deliver what it holds."""


class Managed(Protocol):
    """What the lifecycle needs from a streamer."""

    def shutdown(self, timeout: float = ...) -> bool:
        """Stop, delivering what is pending within `timeout` seconds."""
        ...

    def before_fork(self) -> None:
        """Hold what a fork must not copy while another thread holds it."""
        ...

    def after_fork_in_parent(self) -> None:
        """Release what `before_fork` held."""
        ...

    def after_fork_in_child(self) -> None:
        """Start afresh in a forked child (releasing what `before_fork` held)."""
        ...


class Stoppable(Protocol):
    """What the lifecycle needs from the pipeline of a collected streamer."""

    def stop(self, deadline: float) -> tuple[bool, int]:
        """Deliver what is pending until the monotonic `deadline`, then give up."""
        ...


_live: weakref.WeakSet[Managed] = weakref.WeakSet()
_at_exit: weakref.WeakSet[Managed] = weakref.WeakSet()
_orphans: set[Stoppable] = set()
_forking = threading.local()  # .streamers: those `_before_fork` asked, until its fork is over
_lock = threading.Lock()
_multiprocessing_hooked = False
_terminate_hooked = False


def track(streamer: Managed, *, at_exit: bool) -> None:
    """Follow `streamer` across forks and, when `at_exit`, shut it down at exit."""
    with _lock:
        _live.add(streamer)
        if at_exit:
            _at_exit.add(streamer)
    _hook_multiprocessing()


def forget(streamer: Managed) -> None:
    """Stop following `streamer` (it has shut down)."""
    with _lock:
        _live.discard(streamer)
        _at_exit.discard(streamer)


def orphan(pipeline: Stoppable) -> None:
    """Stop the pipeline of a collected streamer in the background (see the module doc)."""

    def stop() -> None:
        try:
            pipeline.stop(time.monotonic() + ORPHAN_DEADLINE)
        finally:
            with _lock:
                _orphans.discard(pipeline)

    with _lock:
        _orphans.add(pipeline)
    threading.Thread(target=stop, name="metricstream-orphan", daemon=True).start()


def shutdown_all(deadline_seconds: float = EXIT_DEADLINE) -> None:
    """Shut down every streamer registered for exit, and every orphan, together."""
    with _lock:
        streamers = list(_at_exit)
        orphans = list(_orphans)
    if not streamers and not orphans:
        return
    deadline = time.monotonic() + deadline_seconds
    started = [
        start_daemon(_shutdown_by, streamer, deadline, name="metricstream-exit")
        for streamer in streamers
    ]
    started += [
        start_daemon(pipeline.stop, deadline, name="metricstream-exit") for pipeline in orphans
    ]
    for thread in started:
        if thread is not None:
            thread.join(max(0.0, deadline - time.monotonic()) + 0.5)


def _shutdown_by(streamer: Managed, deadline: float) -> None:
    """Shut `streamer` down with what is left until the monotonic `deadline`."""
    streamer.shutdown(timeout=max(0.0, deadline - time.monotonic()))


def _hook_multiprocessing() -> None:
    """Have multiprocessing children deliver before they leave, whichever way they leave.

    A child forked after this (a ``fork`` worker) gets both hooks when
    multiprocessing starts it; a child that makes its first streamer itself
    (``spawn``, ``forkserver``) gets both now. The finalizer is needed
    because a multiprocessing child leaves by ``os._exit`` (a pool worker
    that finds no more work, too), which runs no ``atexit`` hook.
    """
    global _multiprocessing_hooked  # noqa: PLW0603 - hooked once per process
    if _multiprocessing_hooked:
        return
    _multiprocessing_hooked = True
    import multiprocessing
    import multiprocessing.util as mp_util

    mp_util.register_after_fork(_hook_multiprocessing, _register_worker_finalizer)
    if multiprocessing.parent_process() is not None:
        _register_worker_finalizer(None)


def _register_worker_finalizer(_key: object) -> None:
    import multiprocessing.util as mp_util

    mp_util.Finalize(None, shutdown_all, exitpriority=100)
    deliver_on_terminate()


def deliver_on_terminate() -> bool:
    """In a multiprocessing child: on SIGTERM, shut every streamer down, then die of SIGTERM.

    ``Process.terminate()`` and ``Pool.terminate()`` (which ``with Pool() as
    pool:`` calls when the block ends) send SIGTERM, whose default action
    ends the process at once, with what its streamers held. This handler
    runs `shutdown_all` on a thread of its own (so that nothing the
    interrupted code holds can stop it), waits for it at most
    `EXIT_DEADLINE` and a second, restores the default action and sends
    the signal again: the process ends as it would have, its events
    delivered. Installed only on the main thread, and only where SIGTERM
    has its default action: a handler of the application's stays.

    Returns:
        Whether the handler was installed.
    """
    global _terminate_hooked  # noqa: PLW0603 - one handler per process
    if _terminate_hooked or threading.current_thread() is not threading.main_thread():
        return False
    if signal.getsignal(signal.SIGTERM) is not signal.SIG_DFL:
        return False
    signal.signal(signal.SIGTERM, _on_terminate)
    _terminate_hooked = True
    return True


def _on_terminate(signum: int, _frame: FrameType | None) -> None:
    stopper = threading.Thread(target=shutdown_all, name="metricstream-terminate", daemon=True)
    stopper.start()
    stopper.join(EXIT_DEADLINE + 1.0)
    signal.signal(signum, signal.SIG_DFL)
    os.kill(os.getpid(), signum)


def _before_fork() -> None:
    streamers = list(_live)
    _forking.streamers = streamers
    for streamer in streamers:
        streamer.before_fork()


def _after_fork_in_parent() -> None:
    streamers: list[Managed] = getattr(_forking, "streamers", [])
    _forking.streamers = []
    for streamer in streamers:
        streamer.after_fork_in_parent()


def _reset_after_fork() -> None:
    global _lock, _terminate_hooked  # noqa: PLW0603 - the parent's state is not the child's
    _forking.streamers = []
    _lock = threading.Lock()
    _terminate_hooked = signal.getsignal(signal.SIGTERM) is _on_terminate
    _orphans.clear()  # their threads stayed in the parent
    for streamer in list(_live):
        streamer.after_fork_in_child()


atexit.register(shutdown_all)
if hasattr(os, "register_at_fork"):
    os.register_at_fork(
        before=_before_fork,
        after_in_parent=_after_fork_in_parent,
        after_in_child=_reset_after_fork,
    )
