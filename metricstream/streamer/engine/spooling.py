"""The pipeline's spool: opening it for a streamer, and its periodic upkeep."""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Sequence

from metricstream.exceptions import ConfigError
from metricstream.spool import ACK_INTERVAL, Spool
from metricstream.streamer.config import StreamerConfig
from metricstream.streamer.health import SpoolHealth

__all__ = ["SpoolUpkeep", "open_spool", "spool_health"]


class SpoolUpkeep:
    """The spool's periodic work on the batcher thread (a `PeriodicTask`).

    It writes the acknowledged positions that changed once their
    `ACK_INTERVAL` is over (an acknowledgement writes them only when the
    last write is that old, so the last one of a burst waits for this), and,
    under ``spool_fsync="interval"``, syncs what was appended once its
    second is over when no append comes to do it, so that every batch is on
    disk about a second after it was appended.
    """

    def __init__(self, spool: Spool, on_synced: Callable[[], None]) -> None:
        self._spool = spool
        self._on_synced = on_synced
        self.due = time.monotonic() + ACK_INTERVAL

    def run(self, now: float) -> None:
        """Write the positions due, and sync under ``interval`` if the spool's second is over."""
        self.due = now + ACK_INTERVAL
        self._spool.persist_due()
        if self._spool.fsync == "interval" and self._spool.sync_if_due():
            self._on_synced()


def open_spool(
    config: StreamerConfig,
    names: Sequence[str],
    directory: str | os.PathLike[str] | None,
    *,
    ephemeral: bool = False,
) -> Spool | None:
    """Open the spool in `directory` for the sinks `names`, or None without a directory.

    Raises:
        ConfigError: If the directory, or what is in it, cannot be used; it
            names ``spool_dir``.
    """
    if directory is None:
        return None
    try:
        return Spool(
            directory,
            sinks=names,
            max_bytes=config.spool_max_bytes,
            fsync=config.spool_fsync,
            ephemeral=ephemeral,
        )
    except OSError as exc:  # what is inside the directory cannot be used (a file named segments)
        raise ConfigError("spool_dir", f"cannot use {os.fspath(directory)!r}: {exc}") from exc


def spool_health(spool: Spool | None) -> SpoolHealth | None:
    """The spool's own figures for health, or None without a spool."""
    if spool is None:
        return None
    return SpoolHealth(str(spool.directory), spool.unclaimed(), dict(spool.untrusted))
