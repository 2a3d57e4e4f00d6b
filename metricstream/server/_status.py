"""``/stats``, ``/healthz``, ``/readyz`` and ``/metrics``.

``/stats`` answers what the archive holds (events, bytes, the oldest and
newest event, read from the archive), how fast events arrived over the last
minute (every worker's, added up: each worker writes its figure to
``.metricstream/stats/<slot>.json`` every second) and the ingest's status.
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import os
import time
from typing import Any

import orjson
from starlette.requests import Request
from starlette.responses import Response

from metricstream.server._errors import json_response
from metricstream.server._reads import limited
from metricstream.server._state import ServerState
from metricstream.server._worker import generation_alive

__all__ = ["get_healthz", "get_metrics", "get_readyz", "get_stats", "publish_rate"]

FRESH_SECONDS = 5.0
"""A worker's published figure older than this is not counted."""


def _state(request: Request) -> ServerState:
    state: ServerState = request.app.state.server
    return state


def _stats_dir(state: ServerState) -> Any:
    found = state.config.state_dir / "stats"
    found.mkdir(parents=True, exist_ok=True)
    return found


def publish_rate(state: ServerState) -> None:
    """Write this worker's ingest rate where the other workers read it."""
    path = _stats_dir(state) / f"{state.slot.index}.json"
    figure = {
        "generation": state.slot.generation,
        "rate": state.rate.per_second(),
        "at": time.time(),
    }
    temporary = path.with_name(path.name + ".tmp")
    temporary.write_bytes(orjson.dumps(figure))
    os.replace(temporary, path)


def _rate(state: ServerState) -> tuple[float, int]:
    """Every running worker's rate added up, and how many workers that is."""
    total, workers = state.rate.per_second(), 1
    for path in _stats_dir(state).glob("*.json"):
        with contextlib.suppress(OSError, ValueError):
            figure = orjson.loads(path.read_bytes())
            if figure["generation"] == state.slot.generation:
                continue
            if time.time() - figure["at"] > FRESH_SECONDS:
                continue
            if not generation_alive(state.config.state_dir, figure["generation"]):
                continue
            total += float(figure["rate"])
            workers += 1
    return total, workers


def _time(ns: int | None) -> str | None:
    if ns is None:
        return None
    moment = _dt.datetime(1970, 1, 1, tzinfo=_dt.timezone.utc) + _dt.timedelta(
        microseconds=ns // 1000
    )
    return moment.isoformat().replace("+00:00", "Z")


def _archive_bytes(state: ServerState) -> int:
    total = 0
    for path in state.config.archive_dir.glob("events-*.jsonl.zst*"):
        with contextlib.suppress(OSError):
            total += path.stat().st_size
    return total


async def get_stats(request: Request) -> Response:
    """``GET /stats``: the archive, the ingest rate and the status."""
    state = _state(request)

    def measure() -> tuple[int, int | None, int | None]:
        def build(properties: Any, params: Any) -> str:
            del properties, params
            return "SELECT count(*), min(ts), max(ts) FROM ev"

        rows, _ = state.archive._rows(set(), [build])
        count, oldest, newest = rows[0][0]
        return int(count), oldest, newest

    count, oldest, newest = await limited(state, measure)
    rate, workers = _rate(state)
    ingest = state.ingest.status()
    return json_response(
        {
            "events": count,
            "ingest_rate_per_second": round(rate, 3),
            "archive_bytes": _archive_bytes(state),
            "oldest_event": _time(oldest),
            "newest_event": _time(newest),
            "status": ingest.get("status", "ok"),
            "workers": workers,
            "uptime_seconds": round(time.time() - state.started, 3),
            "ingest": ingest,
        }
    )


async def get_healthz(request: Request) -> Response:
    """``GET /healthz``: the process answers."""
    del request
    return json_response({"status": "ok"})


async def get_readyz(request: Request) -> Response:
    """``GET /readyz``: 200 once the worker can store events, else 503."""
    status = _state(request).ingest.status()
    ready = bool(status.get("ready", True))
    return json_response({"ready": ready, **status}, 200 if ready else 503)


async def get_metrics(request: Request) -> Response:
    """``GET /metrics``: Prometheus text (see `metricstream.server._metrics`)."""
    body = _state(request).metrics.render()
    return Response(body, media_type="text/plain; version=0.0.4; charset=utf-8")
