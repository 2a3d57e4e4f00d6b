"""File-system errors, translated into sink errors in one place: `sink_error`.

Errors an operator must fix (``EACCES``, ``EPERM``, ``EROFS``, ``EISDIR``,
``ENOTDIR``, ``ENAMETOOLONG``, ``ELOOP``, ``EINVAL``, ``EFBIG``) are
permanent and mark the sink unhealthy; everything else (``ENOSPC``,
``EDQUOT``, ``EIO``, ``ENOENT``, ``EMFILE``...) is transient, so the lane
retries once space, the directory or descriptors come back.
"""

from __future__ import annotations

import errno
from pathlib import Path

from metricstream.exceptions import PermanentSinkError, SinkError, TransientSinkError

__all__ = ["PERMANENT_ERRNOS", "sink_error"]

PERMANENT_ERRNOS = frozenset(
    {
        errno.EACCES,
        errno.EPERM,
        errno.EROFS,
        errno.EISDIR,
        errno.ENOTDIR,
        errno.ENAMETOOLONG,
        errno.ELOOP,
        errno.EINVAL,
        errno.EFBIG,
    }
)
"""The error numbers that retrying cannot fix."""


def sink_error(exc: OSError, sink: str, path: Path) -> SinkError:
    """Map an `OSError` from file I/O to the sink error the lane acts on."""
    message = f"JSON Lines sink {sink!r}: writing {str(path)!r} failed: {exc}"
    if exc.errno in PERMANENT_ERRNOS:
        return PermanentSinkError(message, unhealthy=True, sink=sink)
    return TransientSinkError(message, sink=sink)
