"""Reading a request body: its size, its encoding, its type and, for JSON, its shape.

- A body over `ServerConfig.max_body_bytes` (as sent, and again once
  decompressed) answers 413; the server stops reading it there.
- ``Content-Encoding`` may be ``gzip``, ``zstd`` or ``identity``; anything
  else answers 415, and a body that does not decompress answers 400.
- JSON endpoints take ``application/json`` (a missing type is read as
  JSON); another type answers 415. JSON nested deeper than
  `ServerConfig.max_json_depth` answers 400.
"""

from __future__ import annotations

import zlib
from typing import Any

import orjson
from starlette.requests import Request

from metricstream.server._errors import ApiError

__all__ = ["check_depth", "read_body", "read_json"]

_ENCODINGS = ("gzip", "x-gzip", "zstd", "identity", "")


def _too_large(limit: int) -> ApiError:
    return ApiError(413, f"the request body is larger than {limit} bytes")


async def _raw(request: Request, limit: int) -> bytes:
    declared = request.headers.get("content-length")
    if declared is not None:
        try:
            size = int(declared)
        except ValueError:
            raise ApiError(400, f"Content-Length {declared!r} is not a number") from None
        if size > limit:
            raise _too_large(limit)
    chunks = []
    received = 0
    async for chunk in request.stream():
        received += len(chunk)
        if received > limit:
            raise _too_large(limit)
        chunks.append(chunk)
    return b"".join(chunks)


def _gunzip(body: bytes, limit: int) -> bytes:
    inflater = zlib.decompressobj(wbits=16 + zlib.MAX_WBITS)
    try:
        found = inflater.decompress(body, limit + 1)
    except zlib.error as exc:
        raise ApiError(400, f"the gzip body does not decompress: {exc}") from None
    if len(found) > limit or inflater.unconsumed_tail:
        raise _too_large(limit)
    if not inflater.eof:
        raise ApiError(400, "the gzip body is cut short")
    return found


def _unzstd(body: bytes, limit: int) -> bytes:
    import zstandard

    reader = zstandard.ZstdDecompressor().stream_reader(body, read_across_frames=True)
    try:
        found = reader.read(limit + 1)
    except zstandard.ZstdError as exc:
        raise ApiError(400, f"the zstd body does not decompress: {exc}") from None
    if len(found) > limit:
        raise _too_large(limit)
    return found


async def read_body(request: Request, limit: int) -> bytes:
    """The request's body, decompressed, at most `limit` bytes either way.

    Raises:
        ApiError: 413 when too large, 415 for an unknown encoding, 400 when
            it does not decompress.
    """
    encoding = request.headers.get("content-encoding", "").strip().lower()
    if encoding not in _ENCODINGS:
        raise ApiError(415, f"Content-Encoding {encoding!r} is not gzip, zstd or identity")
    body = await _raw(request, limit)
    if encoding in ("gzip", "x-gzip"):
        return _gunzip(body, limit)
    if encoding == "zstd":
        return _unzstd(body, limit)
    return body


def check_depth(value: object, limit: int) -> None:
    """Refuse JSON nested deeper than `limit` (arrays and objects count).

    Raises:
        ApiError: 400.
    """
    stack: list[tuple[object, int]] = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, dict):
            children: Any = item.values()
        elif isinstance(item, list):
            children = item
        else:
            continue
        if depth > limit:
            raise ApiError(400, f"the JSON body is nested deeper than {limit} levels")
        stack.extend((child, depth + 1) for child in children)


async def read_json(request: Request, limit: int, depth: int | None) -> object:
    """The request's JSON body (see the module documentation).

    Args:
        request: The request.
        limit: The most bytes, compressed or not.
        depth: The deepest nesting allowed; None to leave it to the caller.

    Raises:
        ApiError: 413, 415 or 400, saying what was wrong.
    """
    kind = request.headers.get("content-type", "application/json").split(";")[0].strip().lower()
    if kind not in ("application/json", "") and not kind.endswith("+json"):
        raise ApiError(415, f"expected Content-Type application/json, not {kind!r}")
    body = await read_body(request, limit)
    try:
        value = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise ApiError(400, f"the body is not JSON: {exc}") from None
    if depth is not None:
        check_depth(value, depth)
    return value
