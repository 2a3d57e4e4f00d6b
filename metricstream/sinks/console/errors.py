"""The stream's errors, translated into sink errors in one place: `sink_error`.

The first row that matches decides (a `BrokenPipeError` is an `OSError`, a
`UnicodeEncodeError` a `ValueError`):

| exception | error | unhealthy | why |
|---|---|---|---|
| `BrokenPipeError` | permanent | yes | the reader of a pipe went away |
| `UnicodeEncodeError` | permanent | no | the stream cannot encode this text |
| `ValueError` | permanent | yes | io's error for a closed stream |
| `OSError` | transient | no | anything else the stream's file reports |
"""

from __future__ import annotations

from typing import NamedTuple

from metricstream.exceptions import PermanentSinkError, SinkError, TransientSinkError

__all__ = ["sink_error"]


class _Row(NamedTuple):
    exception: type[BaseException]
    permanent: bool
    unhealthy: bool
    message: str


_TABLE = (
    _Row(BrokenPipeError, True, True, "the reader of the stream went away ({})"),
    _Row(UnicodeEncodeError, True, False, "the stream cannot encode the text ({})"),
    _Row(ValueError, True, True, "{}"),
    _Row(OSError, False, False, "write failed: {}"),
)


def sink_error(exc: BaseException, *, sink: str) -> SinkError | None:
    """Return the sink error for an exception a stream raised, or None if it is not one of ours.

    Args:
        exc: What ``write`` or ``flush`` raised.
        sink: The sink's name, for the message.
    """
    for row in _TABLE:
        if isinstance(exc, row.exception):
            message = f"console sink {sink!r}: {row.message.format(exc)}"
            if row.permanent:
                return PermanentSinkError(message, unhealthy=row.unhealthy, sink=sink)
            return TransientSinkError(message, sink=sink)
    return None
