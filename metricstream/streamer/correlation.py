"""Correlation ids: generate them and carry the current one in a contextvar.

The current id lives in a `contextvars.ContextVar`, so it follows asyncio
tasks and threads started with a copied context (``contextvars.copy_context``,
``asyncio.to_thread``), and never leaks between concurrent requests.
"""

from __future__ import annotations

import contextvars
import itertools
import os
import re
import sys
from collections.abc import Iterator
from contextlib import contextmanager

from metricstream._validate import check_correlation_id

__all__ = [
    "correlation",
    "current_correlation_id",
    "default_prefix",
    "generate_correlation_id",
    "scopes_entered",
]

_current: contextvars.ContextVar[str | None] = contextvars.ContextVar(
    "metricstream_correlation_id", default=None
)
_counter = itertools.count(1)

current_correlation_id = _current.get
"""Return the correlation id of the current context, or None."""

scopes_entered = [False]
"""``[True]`` once any `correlation` scope has been entered in this process.

Until then no context holds an id, and `EventStreamer.send` does not look.
"""


def default_prefix() -> str:
    """Return the program name, reduced to ``[A-Za-z0-9_.]`` characters."""
    argv0 = sys.argv[0] if sys.argv and sys.argv[0] else "python"
    name = os.path.splitext(os.path.basename(argv0))[0] or "python"
    name = re.sub(r"[^A-Za-z0-9_.]+", "_", name).strip("_")
    return name or "python"


def generate_correlation_id(prefix: str | None = None) -> str:
    """Return a new id ``"{prefix}-{pid}-{counter}"``, unique within this host.

    The pid is read at each call, so ids made in a forked child differ from
    the parent's. The prefix defaults to the program name.
    """
    return f"{prefix or default_prefix()}-{os.getpid()}-{next(_counter)}"


@contextmanager
def correlation(cid: str | None = None, *, prefix: str | None = None) -> Iterator[str]:
    """Make `cid` (or a new id when None) current inside the ``with`` block.

    Events sent inside the block without a correlation id of their own get
    this one. Blocks nest; leaving one restores the outer id.

    Yields:
        The correlation id in force.

    Raises:
        InvalidEventError: If `cid` is not a valid correlation id.
    """
    cid = generate_correlation_id(prefix) if cid is None else check_correlation_id(cid)
    scopes_entered[0] = True
    token = _current.set(cid)
    try:
        yield cid
    finally:
        _current.reset(token)
