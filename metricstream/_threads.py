"""Starting a daemon thread, or doing its work at once when no thread can start.

Python 3.12 refuses to start a thread once the interpreter is finalizing,
which is when `atexit` hooks run there (3.13 allows it again): a shutdown
at exit that hands its work to threads would then lose what was pending.
`start_daemon` runs such work on the calling thread instead, so the exit
hook delivers on every version, one piece of work after another.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

__all__ = ["start_daemon"]


def start_daemon(
    target: Callable[..., object], *args: Any, name: str | None = None
) -> threading.Thread | None:
    """Run ``target(*args)`` on a new daemon thread, or here if threads cannot start now.

    Args:
        target: The work.
        *args: Its arguments.
        name: The thread's name.

    Returns:
        The started thread, or None when the work already ran on the
        calling thread (the interpreter is finalizing, or no thread could
        start).
    """
    thread = threading.Thread(target=target, args=args, name=name, daemon=True)
    try:
        thread.start()
    except RuntimeError:
        # Finalizing (or out of threads): the work must still be done.
        target(*args)
        return None
    return thread

