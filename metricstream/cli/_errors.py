"""The error a command raises when its input or a server's answer cannot be used."""

from __future__ import annotations

__all__ = ["DataError"]


class DataError(Exception):
    """The input or a server's answer cannot be used (exit status 1).

    Commands raise it for what they read (a file that is not what it should
    be, an answer that is not what was asked for); `metricstream.cli.main`
    prints its message as the one line of the error.
    """
