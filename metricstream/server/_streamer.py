"""`StreamerIngest`: the event store's ingest, an `EventStreamer` with its write-ahead spool.

Each worker runs one streamer whose sinks are its archive file (a zstd
`JsonLinesSink` named ``archive``) and every ``--to`` sink, and whose spool
is ``.metricstream/spool/<slot>``: a request's events are one batch
(`EventStreamer.send_batch`), appended to the spool (and synced, under
``--spool-fsync batch``) before the request is answered, then delivered to
every sink from there. A worker that starts in the slot of one that died
opens the same spool and delivers what it left first; it is ready
(``/readyz``) once that is done.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from metricstream.event import MetricEvent
from metricstream.exceptions import BackpressureError, StreamerClosedError
from metricstream.server._config import ServerConfig
from metricstream.server._ingest import IngestBusyError, Receipt
from metricstream.sinks import JsonLinesSink, sink_from_url
from metricstream.streamer import EventStreamer

__all__ = ["ARCHIVE_SINK", "RECOVERY_TIMEOUT", "StreamerIngest"]

ARCHIVE_SINK = "archive"
"""The name of the archive file's sink (the spool keeps its position under it)."""

RECOVERY_TIMEOUT = 300.0
"""Seconds a starting worker waits to deliver what an earlier one left in its spool."""


class StreamerIngest:
    """A worker's ingest (see the module documentation).

    Args:
        config: The server's options.
        path: The worker's archive file (``events-<slot>.jsonl.zst``).
    """

    def __init__(self, config: ServerConfig, path: Path) -> None:
        slot = path.name.split(".", 1)[0]
        sinks: list[Any] = [
            JsonLinesSink(
                path, compression="zstd", rotate_bytes=config.rotate_bytes, name=ARCHIVE_SINK
            )
        ]
        sinks += [sink_from_url(url) for url in config.sinks]
        self._streamer = EventStreamer(
            sinks,
            spool_dir=config.state_dir / "spool" / slot,
            spool_fsync=config.spool_fsync,
            spool_max_bytes=config.spool_max_bytes,
            max_buffer=max(config.max_events * 4, 100_000),
            register_atexit=False,
        )
        self._ready = threading.Event()
        if self._streamer.flush(RECOVERY_TIMEOUT):
            self._ready.set()

    def submit(self, events: Sequence[MetricEvent], batch_id: str) -> Receipt:
        """Take the events as one batch; see `metricstream.server.Ingest`."""
        try:
            return self._streamer.send_batch(events, batch_id=batch_id or None)
        except BackpressureError as exc:
            raise IngestBusyError(str(exc), exc.retry_after) from None
        except StreamerClosedError as exc:
            raise IngestBusyError(str(exc), 1.0) from None

    def caught_up(self, timeout: float) -> bool:
        """Wait until the archive sink wrote (or dropped) every event accepted before now."""
        deadline = time.monotonic() + timeout
        target = self._streamer.health().sinks[ARCHIVE_SINK].events_accepted
        pause = 0.001
        while True:
            sink = self._streamer.health().sinks[ARCHIVE_SINK]
            if sink.events_written + sink.events_dropped >= target:
                return True
            if time.monotonic() >= deadline:
                return False
            time.sleep(pause)
            pause = min(pause * 2, 0.02)

    def status(self) -> dict[str, Any]:
        """Readiness, and each sink's figures."""
        health = self._streamer.health()
        sinks = {
            name: {
                "written": sink.events_written,
                "dropped": sink.events_dropped,
                "pending": sink.pending,
                "spooled": sink.spooled,
            }
            for name, sink in health.sinks.items()
        }
        ok = self._streamer.is_healthy()
        return {"ready": self._ready.is_set(), "status": "ok" if ok else "degraded", "sinks": sinks}

    def close(self, timeout: float) -> None:
        """Deliver what was accepted (what cannot be stays in the spool), then stop."""
        self._streamer.shutdown(timeout)
