"""The endpoints that store events: ``POST /events`` and the InfluxDB writes.

Every write goes the same way: the body is read and checked, each event
gets its id, the ``Idempotency-Key`` (if any) is claimed, the events go to
the ingest as one batch, and the answer waits until they are durable. What
is answered 200 (or 204) is durable; what is refused stores nothing.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any

import orjson
from starlette.requests import Request
from starlette.responses import Response

from metricstream.columns import EventColumns
from metricstream.server._body import read_body
from metricstream.server._errors import ApiError, json_response
from metricstream.server._events import event_list, first_event_id, read_events
from metricstream.server._idempotency import Claim, Replay, fingerprint
from metricstream.server._influx import InfluxWrite, read_influx
from metricstream.server._ingest import IngestBusyError, Receipt
from metricstream.server._state import ServerState

__all__ = ["post_events", "post_influx_v1", "post_influx_v2"]

ANSWER_LATER_TIMEOUT = 3600.0
"""Seconds a key's answer waits for events that were not durable when the request ended."""


def _state(request: Request) -> ServerState:
    state: ServerState = request.app.state.server
    return state


def _check_json_type(request: Request) -> None:
    kind = request.headers.get("content-type", "application/json").split(";")[0].strip().lower()
    if kind not in ("application/json", "") and not kind.endswith("+json"):
        raise ApiError(415, f"expected Content-Type application/json, not {kind!r}")


async def post_events(request: Request) -> Response:
    """``POST /events``: store the events of the body (see `metricstream.server._events`)."""
    state = _state(request)
    arrival = time.time_ns()
    _check_json_type(request)
    raw = await read_body(request, state.config.max_body_bytes)
    loop = asyncio.get_running_loop()
    receipt: Receipt | None = None
    if "idempotency-key" in request.headers:
        events = await loop.run_in_executor(state.write_pool, _parse_events, state, raw, arrival)
    else:
        # With no key to claim in between, one trip to a write thread checks
        # the events and hands them over.
        events, receipt = await loop.run_in_executor(
            state.write_pool, _parse_and_submit, state, raw, arrival
        )
    planned: dict[str, object] = {"accepted": len(events), "first_event_id": first_event_id(events)}
    return await _store(
        request, state, raw=raw, events=events, planned=planned, endpoint="events", receipt=receipt
    )


def _parse_events(state: ServerState, raw: bytes, arrival: int) -> EventColumns:
    try:
        body = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise ApiError(400, f"the body is not JSON: {exc}") from None
    count = len(event_list(body, state.config.max_events))
    first = state.ids.reserve(count)

    def ids_for(timestamps: list[int]) -> list[str]:
        return state.ids.format_all(timestamps, first)

    return read_events(
        body,
        arrival,
        ids_for,
        default_measurement=state.config.measurement,
        max_events=state.config.max_events,
    )


def _parse_and_submit(
    state: ServerState, raw: bytes, arrival: int
) -> tuple[EventColumns, Receipt | None]:
    """Check the body's events and hand them over (None when there is none)."""
    events = _parse_events(state, raw, arrival)
    return events, (_submit(state, events) if len(events) else None)


async def _store(
    request: Request,
    state: ServerState,
    *,
    raw: bytes,
    events: EventColumns,
    planned: dict[str, object],
    endpoint: str,
    answer: Callable[[], Response] | None = None,
    receipt: Receipt | None = None,
) -> Response:
    """Claim the key, hand the events over, wait until durable; answer `planned` (or `answer()`).

    A `receipt` says the events were handed over already (a request without a key).
    """
    claim: Claim | None = None
    key = request.headers.get("idempotency-key")
    if key is not None:
        digest = fingerprint(request.url.path + "?" + request.url.query, raw)
        found = state.keys.claim(key, digest, first_event_id(events), planned)
        if isinstance(found, Replay):
            return json_response(found.body, found.status, {"Idempotent-Replayed": "true"})
        claim = found
    if len(events):
        try:
            if receipt is None:
                loop = asyncio.get_running_loop()
                receipt = await loop.run_in_executor(state.write_pool, _submit, state, events)
            await _durable(state, receipt)
        except _NotYetDurableError as exc:
            if claim is not None:
                _answer_later(state, claim, exc.receipt, planned)
            raise
        except BaseException:
            if claim is not None:
                state.keys.release(claim)
            raise
        state.metrics.events.labels(endpoint).inc(len(events))
        state.rate.add(len(events))
    if claim is not None:
        state.keys.answer(claim, 200, planned)
    return answer() if answer is not None else json_response(planned)


class _NotYetDurableError(ApiError):
    """Handed over but not durable in time: the events may still be stored.

    Attributes:
        receipt: The batch's receipt.
    """

    def __init__(self, receipt: Receipt, timeout: float) -> None:
        super().__init__(
            503, f"the events were not durable within {timeout:g} s", headers={"Retry-After": "1"}
        )
        self.receipt = receipt


def _answer_later(
    state: ServerState, claim: Claim, receipt: Receipt, planned: dict[str, object]
) -> None:
    """Store the key's answer once its events are durable (a retry then gets it)."""

    def finish() -> None:
        if receipt.wait_durable(ANSWER_LATER_TIMEOUT):
            state.keys.answer(claim, 200, planned)

    state.write_pool.submit(finish)


def _submit(state: ServerState, events: EventColumns) -> Receipt:
    """Hand the events over as one batch (on a write thread: appending may sync the spool).

    Raises:
        ApiError: 503 when the spool is full.
    """
    # The first event id names the batch: a sink that keeps batch ids
    # (the Redis counter sink) applies a batch the spool delivers twice once.
    try:
        return state.ingest.submit(events, str(first_event_id(events)))
    except IngestBusyError as exc:
        retry = str(max(1, round(exc.retry_after)))
        raise ApiError(503, f"the spool is full: {exc}", headers={"Retry-After": retry}) from None


async def _durable(state: ServerState, receipt: Receipt) -> None:
    """Wait until the handed-over events are durable.

    Raises:
        _NotYetDurableError: When they are not within `ServerConfig.durable_timeout`.
    """
    if receipt.wait_durable(0):  # synced as it was appended (--spool-fsync batch)
        return
    loop = asyncio.get_running_loop()
    timeout = state.config.durable_timeout
    if not await loop.run_in_executor(state.write_pool, receipt.wait_durable, timeout):
        raise _NotYetDurableError(receipt, timeout)


async def _influx(request: Request, version: int) -> Response:
    state = _state(request)
    arrival = time.time_ns()
    raw = await read_body(request, state.config.max_body_bytes)
    loop = asyncio.get_running_loop()
    write: InfluxWrite = await loop.run_in_executor(
        state.write_pool, read_influx, dict(request.query_params), raw, arrival, version
    )
    first = state.ids.reserve(len(write.events))
    events = EventColumns.of_events(
        [
            event.with_field("event_id", state.ids.format(event.timestamp_ns, first + index))
            for index, event in enumerate(write.events)
        ]
    )
    planned: dict[str, Any] = {"accepted": len(events), "rejected": len(write.errors)}

    def answer() -> Response:
        if write.errors:
            return json_response(write.error_body(), 400)
        return Response(status_code=204)

    return await _store(
        request,
        state,
        raw=raw,
        events=events,
        planned=planned,
        endpoint=f"influx_v{version}",
        answer=answer,
    )


async def post_influx_v1(request: Request) -> Response:
    """``POST /write?db=&precision=``: InfluxDB 1.x line protocol writes."""
    return await _influx(request, 1)


async def post_influx_v2(request: Request) -> Response:
    """``POST /api/v2/write?bucket=&org=&precision=``: InfluxDB 2.x line protocol writes."""
    return await _influx(request, 2)
