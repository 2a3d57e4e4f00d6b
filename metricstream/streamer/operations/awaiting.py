"""Blocking waits awaited from asyncio, each on a thread of its own.

`EventStreamer.flush_async` and `shutdown_async` wait for the streamer's
threads. They must not block the event loop, and they must keep their
deadlines: the loop's default executor (what `asyncio.to_thread` uses) is a
pool shared with the whole application, and when its workers are busy
(twelve other waits, a slow file read) a wait queued there starts late, so a
``shutdown_async(2.0)`` could take twenty seconds. `run_in_thread` starts a
daemon thread for each wait instead: the wait starts at once, and a thread
left waiting past the loop's end never keeps the interpreter alive.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import threading
from collections.abc import Callable
from typing import Any, TypeVar

__all__ = ["run_in_thread"]

T = TypeVar("T")


async def run_in_thread(name: str, fn: Callable[[], T]) -> T:
    """Run `fn` on a new daemon thread and await its result without blocking the loop.

    The thread runs in a copy of the caller's context (as `asyncio.to_thread`
    does), so correlation scopes follow it. Cancelling the await leaves the
    thread to finish on its own.

    Args:
        name: The thread's name.
        fn: The blocking call.

    Returns:
        What `fn` returned.

    Raises:
        BaseException: What `fn` raised.
    """
    loop = asyncio.get_running_loop()
    done: asyncio.Future[T] = loop.create_future()
    context = contextvars.copy_context()

    def report(outcome: Callable[[Any], None], value: object) -> None:
        def settle() -> None:
            if not done.done():  # not cancelled meanwhile
                outcome(value)

        with contextlib.suppress(RuntimeError):  # a closed loop: nobody awaits the answer
            loop.call_soon_threadsafe(settle)

    def run() -> None:
        try:
            result = context.run(fn)
        except BaseException as exc:  # handed to the awaiting task, as to_thread does
            report(done.set_exception, exc)
        else:
            report(done.set_result, result)

    threading.Thread(target=run, name=name, daemon=True).start()
    return await done
