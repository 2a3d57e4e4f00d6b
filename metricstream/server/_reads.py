"""The endpoints that read the archive: ``/query``, ``/query/validate``, ``/keys``.

Every read first waits (within its time limit) until the archive holds
every event this worker acknowledged before it, so a client reads its own
writes. It runs on the worker's query threads under two limits: at most
`ServerConfig.max_queries` at once (more wait for a place, within the time
limit), and `ServerConfig.query_timeout` seconds each, after which DuckDB is
interrupted and the answer is 503 with ``Retry-After`` (a read still waiting
for the archive then is not run at all).
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable
from typing import Any, TypeVar

from starlette.requests import Request
from starlette.responses import Response

from metricstream.exceptions import ConfigError
from metricstream.query import QueryDocumentError, QueryError, parse_where
from metricstream.query._document import plan_document
from metricstream.server._body import read_json
from metricstream.server._errors import ApiError, json_response
from metricstream.server._state import ServerState

__all__ = ["get_keys", "get_values", "limited", "post_query", "post_validate"]

T = TypeVar("T")

MAX_LIMIT = 1000
"""The most keys or values one request lists."""

MAX_QUERY_BYTES = 1 << 20
"""The largest query document."""


def _state(request: Request) -> ServerState:
    state: ServerState = request.app.state.server
    return state


async def limited(state: ServerState, work: Callable[[], T]) -> T:
    """Run `work` on a query thread within the limits (see the module documentation).

    Raises:
        ApiError: 503 when no place came free in time or the work ran too long;
            400 for a query document or arguments that are wrong.
    """
    timeout = state.config.query_timeout
    started = time.monotonic()
    retry = {"Retry-After": str(max(1, round(timeout)))}
    try:
        await asyncio.wait_for(state.queries.acquire(), timeout)
    except asyncio.TimeoutError:
        busy = f"{state.config.max_queries} queries are running"
        raise ApiError(503, busy, headers=retry) from None
    loop = asyncio.get_running_loop()
    thread: list[int] = []
    abandoned = threading.Event()

    def run() -> T:
        thread.append(threading.get_ident())
        # Read your writes: what this worker acknowledged is in the archive first.
        state.ingest.caught_up(max(0.0, timeout - (time.monotonic() - started)))
        if abandoned.is_set():
            # Answered 503 while waiting: the work would hold a place for no one.
            raise _AbandonedError
        return work()

    future = loop.run_in_executor(state.query_pool, run)
    future.add_done_callback(lambda _: state.queries.release())
    try:
        remaining = max(0.0, timeout - (time.monotonic() - started))
        return await asyncio.wait_for(asyncio.shield(future), remaining)
    except asyncio.TimeoutError:
        abandoned.set()
        if thread:
            state.archive.interrupt(thread[0])
        future.add_done_callback(_quietly)
        raise ApiError(503, f"the query ran longer than {timeout:g} s", headers=retry) from None
    except QueryDocumentError as exc:
        raise ApiError(400, str(exc).split(": ", 1)[1], exc.option) from None
    except ConfigError as exc:
        raise ApiError(400, str(exc), exc.option) from None
    except QueryError as exc:
        raise ApiError(500, str(exc)) from None
    finally:
        state.metrics.query_seconds.observe(time.monotonic() - started)


class _AbandonedError(Exception):
    """The query answered 503 before its work began: the work is not done."""


def _quietly(future: asyncio.Future[Any]) -> None:
    """Collect the outcome of an abandoned query (interrupted, it raises)."""
    if not future.cancelled():
        future.exception()


async def _document(request: Request, state: ServerState) -> object:
    limit = min(state.config.max_body_bytes, MAX_QUERY_BYTES)
    return await read_json(request, limit, state.config.max_json_depth)


async def post_query(request: Request) -> Response:
    """``POST /query``: answer a query document (see `metricstream.query`)."""
    state = _state(request)
    document = await _document(request, state)
    return json_response(await limited(state, lambda: state.archive.run(document)))


async def post_validate(request: Request) -> Response:
    """``POST /query/validate``: check a document without running it (the page's editor)."""
    state = _state(request)
    document = await _document(request, state)
    try:
        await limited(state, lambda: plan_document(state.archive, document))
    except ApiError as exc:
        if exc.status != 400:
            raise
        return json_response({"valid": False, **exc.body()})
    return json_response({"valid": True})


def _arguments(request: Request, default_limit: int) -> tuple[str, list[dict[str, object]], int]:
    params = request.query_params
    where = []
    for index, text in enumerate(params.getlist("where")):
        try:
            where.append(parse_where(text, f"where[{index}]"))
        except ConfigError as exc:
            raise ApiError(400, str(exc).split(": ", 1)[1], exc.option) from None
    text = params.get("limit", str(default_limit))
    if not text.isdigit() or not 1 <= int(text) <= MAX_LIMIT:
        raise ApiError(400, f"expected a limit from 1 to {MAX_LIMIT}, not {text!r}", "limit")
    return params.get("prefix", ""), where, int(text)


def _skipped(result: Any) -> dict[str, Any]:
    return {
        "bytes": sum(item.length for item in result.skipped),
        "regions": [item.to_dict() for item in result.skipped],
    }


async def get_keys(request: Request) -> Response:
    """``GET /keys?prefix=&where=&limit=``: the properties events have, with their counts."""
    state = _state(request)
    prefix, where, limit = _arguments(request, 100)
    result = await limited(state, lambda: state.archive.keys(prefix, where, limit))
    keys = [{"key": item.key, "count": item.count} for item in result.value]
    return json_response({"keys": keys, "skipped": _skipped(result)})


async def get_values(request: Request) -> Response:
    """``GET /keys/{key}/values?prefix=&where=&limit=``: a property's top values."""
    state = _state(request)
    key = request.path_params["key"]
    prefix, where, limit = _arguments(request, 10)
    result = await limited(state, lambda: state.archive.values(key, prefix, limit, where))
    values = [{"value": item.value, "count": item.count} for item in result.value]
    return json_response({"key": key, "values": values, "skipped": _skipped(result)})
