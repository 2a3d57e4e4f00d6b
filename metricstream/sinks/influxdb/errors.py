"""The one place where InfluxDB failures become `TransientSinkError` / `PermanentSinkError`.

A failed request is either an HTTP answer outside 2xx (`Response`) or an
exception of the HTTP client (urllib3, influxdb-client's ``ApiException``).
Statuses map by the table `RULES`, first matching row first; each row gives
the error class, whether the sink is unhealthy (every write will fail until
one succeeds) and the words after "ACTION to URL failed: ". Every permanent
row drops the events as ``rejected``:

- 500 with ``api="v1"`` and "retention policy not found": permanent,
  unhealthy; "retention policy RP not found in database DB (MESSAGE)";
- 408, 429, 5xx: transient, ``Retry-After`` read into ``retry_after``;
  "HTTP STATUS: MESSAGE";
- 413: `TooLargeError` (permanent): the writer splits the events in halves,
  and rejects one event that is too large alone; "HTTP 413: MESSAGE";
- 3xx: permanent, unhealthy; "HTTP STATUS: redirected to LOCATION; point url
  at that address";
- 401, 403: permanent, unhealthy; "authentication failed" / "permission
  denied", then who (the v1 user, or whether a v2 token was given), then
  "HTTP STATUS: MESSAGE";
- 404: permanent, unhealthy; "database DB not found" (v1) or "bucket B or
  org O not found (...)" (v2), then "HTTP 404: MESSAGE";
- 400 with "partial write: ... dropped=N": `PartialWriteError`
  (permanent): the server stored the other lines; "HTTP 400: MESSAGE";
- anything else: permanent; "HTTP STATUS: MESSAGE".

MESSAGE is the server's own (`server_message`), cut to 1,000 characters.

Exceptions: influxdb-client's ``ApiException`` with a status is mapped as
that status; connection errors, timeouts, TLS and protocol errors (and an
``ApiException`` without a status) are transient; anything else is a bug
and is raised as it is.

Messages never hold credentials: the URL is scrubbed, the 401/403 wording
avoids ``password=``/``token:`` (which health would mask anyway), and a
redirect's ``Location`` is scrubbed.
"""

from __future__ import annotations

import email.utils
import http.client
import json
import math
import re
import sys
import time
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass
from datetime import timezone
from typing import NamedTuple

from metricstream._secrets import scrub_secrets
from metricstream.exceptions import PermanentSinkError, SinkError, TransientSinkError
from metricstream.sinks.influxdb.config import InfluxDBOptions

__all__ = [
    "RULES",
    "Response",
    "PartialWriteError",
    "Rule",
    "TooLargeError",
    "error_for_exception",
    "error_for_response",
    "parse_retry_after",
    "server_message",
]

_MAX_MESSAGE_CHARS = 1000
_PARTIAL_WRITE = re.compile(r"partial write: (.*) dropped=([0-9]+)", re.DOTALL)


class Response(NamedTuple):
    """The parts of an HTTP response the error mapping needs."""

    status: int
    headers: Mapping[str, str]
    body: bytes


class TooLargeError(PermanentSinkError):
    """The server refused a body as too large (413); the writer splits it."""


class PartialWriteError(PermanentSinkError):
    """InfluxDB stored some lines of a body and refused ``dropped`` others (400).

    ``unparsed`` is True when the refused lines are ones the server could not
    parse: it then reports ``dropped=0`` whatever their number.
    """

    def __init__(self, message: str, *, dropped: int, unparsed: bool, sink: str) -> None:
        super().__init__(message, sink=sink)
        self.dropped = dropped
        self.unparsed = unparsed


def parse_retry_after(value: str | None, *, now: float | None = None) -> float | None:
    """Parse an HTTP ``Retry-After`` header into seconds to wait.

    Args:
        value: The header value: delay-seconds (``"120"``; decimals are
            accepted) or an HTTP-date (``"Wed, 21 Oct 2015 07:28:00 GMT"``).
        now: The current time as a Unix timestamp, for HTTP-dates; defaults
            to `time.time`.

    Returns:
        The seconds to wait (0.0 for a date in the past), or None when the
        header is absent, negative, not finite or unparseable.
    """
    if value is None:
        return None
    text = value.strip()
    if not text:
        return None
    try:
        seconds = float(text)
    except ValueError:
        try:
            when = email.utils.parsedate_to_datetime(text)
        except (TypeError, ValueError, IndexError):
            return None
        if when.tzinfo is None:
            when = when.replace(tzinfo=timezone.utc)
        current = time.time() if now is None else now
        return max(0.0, when.timestamp() - current)
    if not math.isfinite(seconds) or seconds < 0:
        return None
    return seconds


def server_message(failure: Response, *, limit: int | None = _MAX_MESSAGE_CHARS) -> str:
    """Return the error message a server put in a response, cut to `limit` characters."""
    message = ""
    if failure.body:
        try:
            decoded = json.loads(failure.body)
        except ValueError:
            decoded = None
        if isinstance(decoded, dict):
            for key in ("error", "message"):
                if isinstance(decoded.get(key), str):
                    message = decoded[key]
                    break
        if not message:
            message = failure.body.decode("utf-8", "replace").strip()
    if not message:
        for header in ("X-Influxdb-Error", "X-Platform-Error-Code"):
            if failure.headers.get(header):
                message = failure.headers[header]
                break
    if limit is not None and len(message) > limit:
        message = message[:limit] + "..."
    return message or "no message"


# --- the table ------------------------------------------------------------------

Explain = Callable[[Response, InfluxDBOptions], str]
"""Words for a failure: the message after "ACTION to URL failed: "."""


def _status(failure: Response, _target: InfluxDBOptions) -> str:
    return f"HTTP {failure.status}: {server_message(failure)}"


def _retention_policy_missing(failure: Response, target: InfluxDBOptions) -> bool:
    return target.api == "v1" and "retention policy not found" in server_message(failure)


def _retention_policy(failure: Response, target: InfluxDBOptions) -> str:
    return (
        f"retention policy {target.retention_policy!r} not found in database "
        f"{target.database!r} ({server_message(failure)})"
    )


def _redirect(failure: Response, _target: InfluxDBOptions) -> str:
    location = scrub_secrets(failure.headers.get("Location") or "")
    return f"HTTP {failure.status}: redirected to {location!r}; point url at that address"


def _refused(verb: str) -> Explain:
    def explain(failure: Response, target: InfluxDBOptions) -> str:
        if target.api == "v1":
            who = (
                f" for user {target.username!r}"
                if target.username is not None
                else ": no username and password were given"
            )
        else:
            given = target.token is not None
            who = ": the server refused the token" if given else ": no token was given"
        return f"{verb}{who}: {_status(failure, target)}"

    return explain


def _not_found(failure: Response, target: InfluxDBOptions) -> str:
    if target.api == "v1":
        what = f"database {target.database!r} not found"
    else:
        what = (
            f"bucket {target.bucket!r} or org {target.org!r} not found "
            "(or the server has no /api/v2/write; for InfluxDB 1.x use api='v1')"
        )
    return f"{what}: {_status(failure, target)}"


def _is_partial_write(failure: Response, _target: InfluxDBOptions) -> bool:
    return _PARTIAL_WRITE.fullmatch(server_message(failure, limit=None)) is not None


@dataclass(frozen=True, slots=True)
class Rule:
    """One row of the status table: which answers it covers and what they become.

    Attributes:
        statuses: The HTTP statuses of the row.
        error: The error class raised: `TransientSinkError`,
            `PermanentSinkError`, `TooLargeError` or `PartialWriteError`.
        unhealthy: Whether the failure stops every write (health shows the
            sink disconnected until a write succeeds).
        explain: The message after "ACTION to URL failed: ".
        when: A further condition on the answer; the row applies only when
            it holds (None: always).
    """

    statuses: Collection[int]
    error: type[TransientSinkError] | type[PermanentSinkError]
    unhealthy: bool = False
    explain: Explain = _status
    when: Callable[[Response, InfluxDBOptions], bool] | None = None


_RETRYABLE = frozenset({408, 429, *range(500, 1000)})

RULES: tuple[Rule, ...] = (
    Rule((500,), PermanentSinkError, True, _retention_policy, when=_retention_policy_missing),
    Rule(_RETRYABLE, TransientSinkError),
    Rule((413,), TooLargeError),
    Rule(range(300, 400), PermanentSinkError, True, _redirect),
    Rule((401,), PermanentSinkError, True, _refused("authentication failed")),
    Rule((403,), PermanentSinkError, True, _refused("permission denied")),
    Rule((404,), PermanentSinkError, True, _not_found),
    Rule((400,), PartialWriteError, when=_is_partial_write),
)
"""The status table, first matching row first; no row: `PermanentSinkError`."""

_OTHER = Rule((), PermanentSinkError)


def _rule_for(failure: Response, target: InfluxDBOptions) -> Rule:
    for rule in RULES:
        if failure.status in rule.statuses and (rule.when is None or rule.when(failure, target)):
            return rule
    return _OTHER


def error_for_response(failure: Response, target: InfluxDBOptions, *, action: str) -> SinkError:
    """Translate an HTTP answer outside 2xx into the sink error `RULES` gives it.

    Args:
        failure: The answer.
        target: The sink's options: what the message names (never a credential).
        action: ``"write"`` or ``"ping"``.
    """
    rule = _rule_for(failure, target)
    message = f"{action} to {scrub_secrets(target.url)} failed: {rule.explain(failure, target)}"
    if rule.error is PartialWriteError:
        return _partial_write(message, failure, target)
    if issubclass(rule.error, PermanentSinkError):
        return rule.error(message, unhealthy=rule.unhealthy, sink=target.name)
    retry_after = parse_retry_after(failure.headers.get("Retry-After"))
    return TransientSinkError(message, retry_after=retry_after, sink=target.name)


def _partial_write(message: str, failure: Response, target: InfluxDBOptions) -> PermanentSinkError:
    partial = _PARTIAL_WRITE.fullmatch(server_message(failure, limit=None))
    if partial is None:  # pragma: no cover - the row's condition matched it
        return PermanentSinkError(message, sink=target.name)
    return PartialWriteError(
        message,
        dropped=int(partial.group(2)),
        unparsed=partial.group(1).startswith("unable to parse"),
        sink=target.name,
    )


def error_for_exception(
    exc: BaseException, target: InfluxDBOptions, *, action: str
) -> SinkError | None:
    """Translate an exception of the HTTP client into a sink error.

    Args:
        exc: What the transport raised.
        target: The sink's options: what the message names (never a credential).
        action: ``"write"`` or ``"ping"``.

    Returns:
        The sink error, or None for an exception that is not about the
        request (a bug), to be raised as it is.
    """
    rest = sys.modules.get("influxdb_client.rest")
    api_exception = getattr(rest, "ApiException", ())
    status = getattr(exc, "status", None)
    if isinstance(exc, api_exception) and status:
        body = getattr(exc, "body", None) or b""
        failure = Response(
            int(status),
            getattr(exc, "headers", None) or {},
            body.encode() if isinstance(body, str) else bytes(body),
        )
        return error_for_response(failure, target, action=action)
    if isinstance(exc, api_exception) or _is_transport_error(exc):
        # influxdb-client reports transport failures (TLS) as status 0.
        return TransientSinkError(
            f"{action} to {scrub_secrets(target.url)} failed: {_describe(exc)}", sink=target.name
        )
    return None


def _is_transport_error(exc: BaseException) -> bool:
    """Tell whether `exc` is a network, TLS or HTTP protocol failure."""
    import urllib3  # optional; loaded already by the transport that raised

    return isinstance(exc, (OSError, http.client.HTTPException, urllib3.exceptions.HTTPError))


def _describe(exc: BaseException) -> str:
    """Describe a transport exception without URLs, headers or credentials."""
    import urllib3  # optional; loaded already by the transport that raised

    if isinstance(exc, urllib3.exceptions.NewConnectionError):
        reason = str(exc).rsplit(": ", 1)[-1]
        return f"cannot connect: {reason}"
    if isinstance(exc, urllib3.exceptions.TimeoutError):
        return f"timed out ({type(exc).__name__})"
    if isinstance(exc, urllib3.exceptions.ProtocolError) and exc.args:
        inner = exc.args[-1]
        return f"connection broken: {inner if isinstance(inner, BaseException) else exc}"
    detail = getattr(exc, "reason", None)
    if not isinstance(detail, str) or not detail:
        text = f"{type(exc).__name__}: {exc}"
    elif type(exc).__name__ == "ApiException":
        # influxdb-client reports transport failures as "<ErrorType>\n<message>".
        text = detail.replace("\n", ": ", 1)
    else:
        text = f"{type(exc).__name__}: {detail}"
    return " ".join(text.split())
