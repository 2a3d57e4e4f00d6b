"""Errors an endpoint answers with, as JSON: ``{"error": ..., "path": ...}``."""

from __future__ import annotations

from collections.abc import Mapping

import orjson
from starlette.responses import Response

__all__ = ["ApiError", "json_response"]


def json_response(
    content: object, status: int = 200, headers: Mapping[str, str] | None = None
) -> Response:
    """A JSON response encoded by orjson."""
    return Response(
        orjson.dumps(content), status_code=status, headers=headers, media_type="application/json"
    )


class ApiError(Exception):
    """A request the server refuses, and how to answer it.

    Args:
        status: The HTTP status.
        message: What was wrong, for the client.
        path: Where in the body (``events[3].ts``), if it is about a part of it.
        headers: Extra response headers (``Retry-After``, ``WWW-Authenticate``).
    """

    def __init__(
        self,
        status: int,
        message: str,
        path: str | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.path = path
        self.headers = dict(headers or {})

    def body(self) -> dict[str, object]:
        """The JSON body of the answer."""
        found: dict[str, object] = {"error": self.message}
        if self.path is not None:
            found["path"] = self.path
        return found

    def response(self) -> Response:
        """The answer."""
        return json_response(self.body(), self.status, self.headers)
