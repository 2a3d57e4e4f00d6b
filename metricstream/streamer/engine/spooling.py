"""The pipeline's spool: opening it for a streamer, and its ``interval`` sync."""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Sequence

from metricstream.exceptions import ConfigError
from metricstream.spool import Spool
from metricstream.streamer.config import StreamerConfig

__all__ = ["SpoolSync", "open_spool"]


class SpoolSync:
    """Under ``spool_fsync="interval"``: sync what was appended once its second is over.

    The spool syncs at an append a second after its last sync; this task
    syncs when no append comes, so that every batch is on disk about a
    second after it was appended.
    """

    CHECK_EVERY = 0.25

    def __init__(self, spool: Spool, on_synced: Callable[[], None]) -> None:
        self._spool = spool
        self._on_synced = on_synced
        self.due = time.monotonic() + self.CHECK_EVERY

    def run(self, now: float) -> None:
        """Sync if the spool's second is over (a `PeriodicTask`)."""
        self.due = now + self.CHECK_EVERY
        if self._spool.sync_if_due():
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
