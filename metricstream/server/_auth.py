"""The token: which requests must carry it, and how they may carry it.

With a token set, every endpoint but ``/healthz`` and ``/readyz`` needs it,
as ``Authorization: Bearer TOKEN``; or as HTTP Basic credentials whose
password is the token (what a browser sends for the query page after
asking once); the InfluxDB write endpoints also take ``Authorization: Token
TOKEN`` and the ``u``/``p`` query parameters (``p`` is the token). Tokens
are compared in constant time and never logged; a refusal answers 401.
"""

from __future__ import annotations

import base64
import binascii
import hmac
from urllib.parse import parse_qs

from starlette.types import ASGIApp, Receive, Scope, Send

from metricstream.server._errors import ApiError

__all__ = ["OPEN_PATHS", "TokenAuth"]

OPEN_PATHS = frozenset({"/healthz", "/readyz"})
"""Paths that never need the token."""

INFLUX_PATHS = frozenset({"/write", "/api/v2/write"})
"""Paths that also take InfluxDB's ways of sending a token."""

PAGE_PATHS = ("/", "/page/")
"""Paths a browser opens itself: a refusal asks it for Basic credentials."""


def _basic_password(value: str) -> str | None:
    try:
        decoded = base64.b64decode(value, validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError):
        return None
    return decoded.partition(":")[2]


def presented(scope: Scope) -> list[str]:
    """Every token the request carries, in any of the accepted ways."""
    found = []
    for name, value in scope.get("headers", ()):
        if name != b"authorization":
            continue
        scheme, _, rest = value.decode("latin-1").strip().partition(" ")
        scheme = scheme.lower()
        if scheme == "bearer":
            found.append(rest.strip())
        elif scheme == "basic":
            password = _basic_password(rest.strip())
            if password is not None:
                found.append(password)
        elif scheme == "token" and scope["path"] in INFLUX_PATHS:
            found.append(rest.strip())
    if scope["path"] in INFLUX_PATHS and scope.get("query_string"):
        query = parse_qs(scope["query_string"].decode("latin-1"))
        found.extend(query.get("p", [])[:1])
    return found


class TokenAuth:
    """ASGI middleware: refuse requests without the token (see the module documentation).

    Args:
        app: The application.
        token: The token.
    """

    def __init__(self, app: ASGIApp, token: str) -> None:
        self.app = app
        self._token = token.encode()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] in OPEN_PATHS or self._allowed(scope):
            await self.app(scope, receive, send)
            return
        page = scope["path"] == "/" or scope["path"].startswith("/page/")
        challenge = 'Basic realm="metricstream"' if page else 'Bearer realm="metricstream"'
        headers = {"WWW-Authenticate": challenge}
        error = ApiError(401, "this server needs its token", headers=headers)
        await error.response()(scope, receive, send)

    def _allowed(self, scope: Scope) -> bool:
        allowed = False
        for candidate in presented(scope):
            # Every candidate is compared, in constant time, so timing tells nothing.
            allowed |= hmac.compare_digest(candidate.encode(), self._token)
        return allowed
