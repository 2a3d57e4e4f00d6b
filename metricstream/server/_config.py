"""The event store's options, declared once: `ServerConfig`.

Each option is a field with its default and its meaning; `create_app`,
``metricstream serve`` and the checks all read them from here.
"""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from metricstream._options import require_choice, require_int, require_number
from metricstream.exceptions import ConfigError

__all__ = ["SPOOL_FSYNC_MODES", "TOKEN_ENV", "ServerConfig"]

SpoolFsync = Literal["batch", "interval", "never"]

SPOOL_FSYNC_MODES: tuple[SpoolFsync, ...] = ("batch", "interval", "never")
"""When accepted events are forced to disk before the answer (see `ServerConfig.spool_fsync`)."""

TOKEN_ENV = "METRICSTREAM_SERVE_TOKEN"  # noqa: S105  (a variable name, not a secret)
"""The environment variable ``metricstream serve`` reads the token from."""

STATE_DIR = ".metricstream"
"""The directory, inside the archive directory, of the server's own files."""


@dataclass(frozen=True)
class ServerConfig:
    """How an event store runs (see `create_app`).

    Attributes:
        archive_dir: Where the events are stored: one JSON Lines file per
            worker (``events-<worker>.jsonl.zst``, rotated), and the server's
            own state under ``.metricstream/``.
        token: When set, every endpoint but ``/healthz`` and ``/readyz``
            needs it (see `metricstream.server._auth`).
        max_body_bytes: The largest request body, compressed or not.
        max_events: The most events one request may carry.
        max_json_depth: The deepest nesting of a JSON body.
        spool_fsync: ``batch`` (the answer waits until the events are
            appended to the spool and synced), ``interval`` (appended; synced
            within a second) or ``never`` (appended; the system syncs).
        spool_max_bytes: The spool's size; when it is full, writes answer 503.
        rotate_bytes: An archive file is rotated at this size.
        measurement: The measurement of posted events that name none.
        query_timeout: Seconds a query may run before it answers 503.
        max_queries: Queries run at once in one worker; more wait.
        idempotency_hours: How long an ``Idempotency-Key`` is remembered.
        idempotency_max_keys: The most keys remembered (the oldest go first).
        cors_origins: Origins allowed to call the API from a browser.
        sinks: Sink URLs every accepted event is also sent to.
        durable_timeout: Seconds a write waits for its events to be durable
            before it answers 503.
        spread_connections: Whether a worker that holds two connections
            more than another closes keep-alive connections after their
            answers, so that clients connect again to a less busy worker
            (see `metricstream.server._spread`). ``metricstream serve``
            turns it on with ``--workers`` above 1, and counts each worker's
            connections in the HTTP protocol it gives uvicorn (under another
            server none are counted, and none is closed).
    """

    archive_dir: Path
    token: str | None = None
    max_body_bytes: int = 16 << 20
    max_events: int = 100_000
    max_json_depth: int = 32
    spool_fsync: SpoolFsync = "batch"
    spool_max_bytes: int = 1 << 30
    rotate_bytes: int = 256 << 20
    measurement: str = "event"
    query_timeout: float = 10.0
    max_queries: int = 4
    idempotency_hours: float = 24.0
    idempotency_max_keys: int = 100_000
    cors_origins: tuple[str, ...] = ()
    sinks: tuple[str, ...] = field(default=())
    durable_timeout: float = 30.0
    spread_connections: bool = False

    def __post_init__(self) -> None:
        object.__setattr__(self, "archive_dir", Path(os.fspath(self.archive_dir)).absolute())
        if self.token is not None and (not isinstance(self.token, str) or not self.token):
            raise ConfigError("token", "expected a non-empty token or None")
        require_int("max_body_bytes", self.max_body_bytes, minimum=1024)
        require_int("max_events", self.max_events, minimum=1)
        require_int("max_json_depth", self.max_json_depth, minimum=4, maximum=512)
        require_choice("spool_fsync", self.spool_fsync, SPOOL_FSYNC_MODES)
        require_int("spool_max_bytes", self.spool_max_bytes, minimum=1 << 20)
        require_int("rotate_bytes", self.rotate_bytes, minimum=1 << 16)
        if not isinstance(self.measurement, str) or not self.measurement:
            raise ConfigError(
                "measurement", f"expected a measurement name, not {self.measurement!r}"
            )
        require_number("query_timeout", self.query_timeout, minimum=0.0, inclusive=False)
        require_int("max_queries", self.max_queries, minimum=1)
        require_number("idempotency_hours", self.idempotency_hours, minimum=0.0, inclusive=False)
        require_int("idempotency_max_keys", self.idempotency_max_keys, minimum=1)
        require_number("durable_timeout", self.durable_timeout, minimum=0.0, inclusive=False)
        if not isinstance(self.spread_connections, bool):
            raise ConfigError(
                "spread_connections", f"expected True or False, not {self.spread_connections!r}"
            )
        for origin in self.cors_origins:
            if not isinstance(origin, str) or not origin:
                raise ConfigError("cors_origins", f"expected origins, not {origin!r}")

    @property
    def state_dir(self) -> Path:
        """The server's own files: generations, idempotency keys, spools, query caches."""
        return self.archive_dir / STATE_DIR

    def replace(self, **changes: object) -> ServerConfig:
        """A copy with some options changed (checked again)."""
        return dataclasses.replace(self, **changes)  # type: ignore[arg-type]

    def __repr__(self) -> str:
        shown = "set" if self.token else None
        return f"ServerConfig(archive_dir={str(self.archive_dir)!r}, token={shown!r}, ...)"
