"""`create_app`: the event store as an ASGI application, its routes in one table."""

from __future__ import annotations

import asyncio
import contextlib
import importlib.resources
import logging
import os
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.middleware.cors import CORSMiddleware
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from metricstream.query import query_schema
from metricstream.server._auth import TokenAuth
from metricstream.server._config import ServerConfig
from metricstream.server._errors import ApiError, json_response
from metricstream.server._events import events_schema
from metricstream.server._reads import get_keys, get_values, post_query, post_validate
from metricstream.server._spread import SpreadConnections
from metricstream.server._state import IngestFactory, ServerState, open_state
from metricstream.server._status import (
    get_healthz,
    get_metrics,
    get_readyz,
    get_stats,
    publish_rate,
)
from metricstream.server._writes import post_events, post_influx_v1, post_influx_v2

__all__ = ["ROUTES", "create_app"]

log = logging.getLogger("metricstream.server")

PAGE_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        "connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
}


def _page_file(name: str) -> bytes:
    return importlib.resources.files("metricstream.server").joinpath(f"page/{name}").read_bytes()


async def get_page(request: Request) -> Response:
    """``GET /``: the query page."""
    del request
    return Response(_page_file("index.html"), media_type="text/html; charset=utf-8")


async def get_query_schema(request: Request) -> Response:
    """``GET /schema/query.json``: the query document's JSON Schema."""
    del request
    return json_response(query_schema())


async def get_events_schema(request: Request) -> Response:
    """``GET /schema/events.json``: the JSON Schema of ``POST /events`` bodies."""
    del request
    return json_response(events_schema())


async def get_ping(request: Request) -> Response:
    """``GET /ping``: what InfluxDB clients and agents check before writing."""
    del request
    return Response(status_code=204, headers={"X-Influxdb-Version": "1.8-metricstream"})


ROUTES = [
    Route("/events", post_events, methods=["POST"]),
    Route("/query", post_query, methods=["POST"]),
    Route("/query/validate", post_validate, methods=["POST"]),
    Route("/keys", get_keys, methods=["GET"]),
    Route("/keys/{key:path}/values", get_values, methods=["GET"]),
    Route("/stats", get_stats, methods=["GET"]),
    Route("/healthz", get_healthz, methods=["GET"]),
    Route("/readyz", get_readyz, methods=["GET"]),
    Route("/metrics", get_metrics, methods=["GET"]),
    Route("/write", post_influx_v1, methods=["POST"]),
    Route("/api/v2/write", post_influx_v2, methods=["POST"]),
    Route("/ping", get_ping, methods=["GET", "HEAD"]),
    Route("/schema/query.json", get_query_schema, methods=["GET"]),
    Route("/schema/events.json", get_events_schema, methods=["GET"]),
    Route("/", get_page, methods=["GET"]),
    Mount("/page", StaticFiles(packages=[("metricstream.server", "page")]), name="page"),
]
"""Every endpoint: its path, handler and methods."""


class Observed:
    """ASGI middleware: count each answer by route and status; add the security headers."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        status = [500]

        async def sending(message: Message) -> None:
            if message["type"] == "http.response.start":
                status[0] = message["status"]
                headers = list(message.get("headers", []))
                headers += [(k.lower().encode(), v.encode()) for k, v in PAGE_HEADERS.items()]
                message["headers"] = headers
            await send(message)

        try:
            await self.app(scope, receive, sending)
        finally:
            route = scope.get("route")
            template = getattr(route, "path", None) or "unmatched"
            state: ServerState | None = getattr(scope["app"].state, "server", None)
            if state is not None:
                state.metrics.requests.labels(template, scope["method"], str(status[0])).inc()


async def _api_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, ApiError)
    del request
    return exc.response()


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    del request
    return ApiError(exc.status_code, exc.detail, headers=exc.headers).response()


async def _unexpected(request: Request, exc: Exception) -> Response:
    log.error("%s %s failed", request.method, request.url.path, exc_info=exc)
    return ApiError(500, "the server failed to answer; see its log").response()


def _lifespan(
    config: ServerConfig, make_ingest: IngestFactory
) -> Callable[[Starlette], contextlib.AbstractAsyncContextManager[None]]:
    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        state = await asyncio.to_thread(open_state, config, make_ingest)
        app.state.server = state
        publisher = asyncio.create_task(_publish(state))
        try:
            yield
        finally:
            publisher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await publisher
            await asyncio.to_thread(state.close)

    return lifespan


async def _publish(state: ServerState) -> None:
    while True:
        with contextlib.suppress(OSError):
            await asyncio.to_thread(publish_rate, state)
        await asyncio.sleep(1.0)


def create_app(
    archive_dir: str | os.PathLike[str],
    *,
    ingest: IngestFactory | None = None,
    **options: Any,
) -> Starlette:
    """The event store as an ASGI application, to embed or to run under any ASGI server.

    The worker's parts (its slot, archive file, ingest, query cache) are
    opened when the application starts (the ASGI lifespan) and flushed and
    closed when it stops.

    Args:
        archive_dir: Where the events are stored.
        ingest: Makes the worker's ingest (default: the streamer with its
            spool, `metricstream.server.StreamerIngest`).
        **options: Any `ServerConfig` option (``token``, ``spool_fsync``,
            ``query_timeout``...).

    Raises:
        ConfigError: If an option is invalid.
    """
    config = ServerConfig(Path(os.fspath(archive_dir)), **options)
    make_ingest = ingest if ingest is not None else _default_ingest()
    middleware = [Middleware(Observed), Middleware(SpreadConnections)]
    if config.cors_origins:
        middleware.append(
            Middleware(
                CORSMiddleware,
                allow_origins=list(config.cors_origins),
                allow_methods=["GET", "POST"],
                allow_headers=[
                    "Authorization",
                    "Content-Type",
                    "Content-Encoding",
                    "Idempotency-Key",
                ],
            )
        )
    if config.token is not None:
        middleware.append(Middleware(TokenAuth, token=config.token))
    app = Starlette(
        routes=ROUTES,
        middleware=middleware,
        exception_handlers={
            ApiError: _api_error,
            HTTPException: _http_error,
            Exception: _unexpected,
        },
        lifespan=_lifespan(config, make_ingest),
    )
    app.state.config = config
    return app


def _default_ingest() -> IngestFactory:
    from metricstream.server._streamer import StreamerIngest

    factory: IngestFactory = StreamerIngest
    return factory
