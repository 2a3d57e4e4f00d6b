"""What one worker holds while it runs: its slot, ids, archive, keys, ingest and figures."""

from __future__ import annotations

import asyncio
import concurrent.futures
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from metricstream.query import Archive
from metricstream.server._config import ServerConfig
from metricstream.server._idempotency import IdempotencyStore
from metricstream.server._ids import EventIds
from metricstream.server._ingest import Ingest
from metricstream.server._metrics import IngestRate, ServerMetrics
from metricstream.server._spread import LoadTable
from metricstream.server._worker import Slot, claim_slot, generation_alive

__all__ = ["ARCHIVE_GLOB", "IngestFactory", "ServerState", "archive_file"]

ARCHIVE_GLOB = "events-*.jsonl.zst"
"""The archive files of every worker (each rotated into ``events-N.M.jsonl.zst`` beside it)."""

IngestFactory = Callable[[ServerConfig, Path], Ingest]
"""Makes a worker's ingest: ``(config, the worker's archive file) -> Ingest``."""


def archive_file(config: ServerConfig, slot: int) -> Path:
    """The archive file the worker in `slot` writes."""
    return config.archive_dir / f"events-{slot}.jsonl.zst"


@dataclass
class ServerState:
    """One worker's parts; made by `open_state`, ended by `close`."""

    config: ServerConfig
    slot: Slot
    ids: EventIds
    archive: Archive
    keys: IdempotencyStore
    ingest: Ingest
    load: LoadTable | None = None
    metrics: ServerMetrics = field(default_factory=ServerMetrics)
    rate: IngestRate = field(default_factory=IngestRate)
    started: float = field(default_factory=time.time)
    queries: asyncio.Semaphore = field(init=False)
    query_pool: concurrent.futures.ThreadPoolExecutor = field(init=False)
    write_pool: concurrent.futures.ThreadPoolExecutor = field(init=False)

    def __post_init__(self) -> None:
        self.queries = asyncio.Semaphore(self.config.max_queries)
        self.query_pool = concurrent.futures.ThreadPoolExecutor(
            self.config.max_queries, thread_name_prefix="metricstream-query"
        )
        self.write_pool = concurrent.futures.ThreadPoolExecutor(
            8, thread_name_prefix="metricstream-write"
        )

    def close(self) -> None:
        """Flush the ingest, then release everything (the slot last)."""
        try:
            self.ingest.close(self.config.durable_timeout)
        finally:
            self.write_pool.shutdown(wait=True)
            self.query_pool.shutdown(wait=False, cancel_futures=True)
            self.archive.close()
            self.keys.close()
            if self.load is not None:
                self.load.close()
            self.slot.release()


def open_state(config: ServerConfig, make_ingest: IngestFactory) -> ServerState:
    """Take a slot and open this worker's parts.

    Raises:
        OSError: If the archive directory cannot be written.
    """
    config.archive_dir.mkdir(parents=True, exist_ok=True)
    slot = claim_slot(config.state_dir)
    try:
        path = archive_file(config, slot.index)
        path.touch(mode=0o600, exist_ok=True)
        archive = Archive(
            config.archive_dir / ARCHIVE_GLOB,
            cache=config.state_dir / "query-cache" / f"worker-{slot.index}",
        )

        keys = IdempotencyStore(
            config.state_dir / "idempotency.sqlite3",
            slot.generation,
            config.idempotency_hours * 3600,
            config.idempotency_max_keys,
            alive=lambda generation: generation_alive(config.state_dir, generation),
            stored=archive.holds_event_id,
        )
        ingest = make_ingest(config, path)
        load = LoadTable(config.state_dir, slot.index) if config.spread_connections else None
    except BaseException:
        slot.release()
        raise
    return ServerState(config, slot, EventIds(slot.generation), archive, keys, ingest, load)
