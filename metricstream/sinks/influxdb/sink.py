"""`InfluxDBSink`: write batches as line protocol to InfluxDB over HTTP.

Two write APIs are spoken:

- ``api="v1"``: ``POST /write?db=&rp=&precision=`` for InfluxDB 1.x, with HTTP
  basic auth when a username is given, through `urllib3` (the HTTP client
  influxdb-client itself uses);
- ``api="v2"``: ``POST /api/v2/write?org=&bucket=&precision=`` for InfluxDB
  2.x/3.x and compatible servers such as VictoriaMetrics, through
  influxdb-client, synchronously and with its own retries switched off (the
  streamer's lane retries).

The body is the batch's shared line protocol encoding (computed once per batch
and precision, whichever sinks need it), gzip-compressed at level 1 in
`InfluxDBSink.prepare` when compression is on. influxdb-client's ``WriteApi``
can only gzip by compressing every request itself (at level 9, on every
attempt); the sink therefore calls ``WriteService.post_write`` -- the endpoint
binding ``WriteApi`` uses in synchronous mode -- with the pre-compressed body
and ``Content-Encoding: gzip``, so each body is compressed once.

Failures are translated in one place (`InfluxDBSink._sink_error`):

- connection errors, timeouts, 408, 429 and 5xx are transient (a
  ``Retry-After`` header becomes ``retry_after``);
- 400 and other 4xx are permanent (``reason="rejected"``), with the server's
  message;
- 401/403 (credentials), 404 (v1: database missing; v2: bucket or org
  missing) and, on v1, 500 "retention policy not found" are permanent and mark
  the sink unhealthy; `InfluxDBSink.check` keeps reporting them until a write
  succeeds;
- 413 (body too large) splits the events in halves and writes each half,
  recursively; a single event that is still too large is rejected;
- a 400 "partial write: ... dropped=N" (InfluxDB 1.x, for example a field
  type conflict) means the server stored every other line of the body. The
  error says so through `PermanentSinkError.written`, and the streamer counts
  exactly N events as rejected.

A partial write reports only the lines refused by the first shard that
failed: InfluxDB 1.x writes each shard group separately and returns one
shard's error. N is therefore taken as exact when all the events of the body
fall in one hour of UTC time (shard groups last whole hours in every InfluxDB
default, and are aligned to them). A body spanning more, or one whose partial
write comes from lines the server could not parse (it then says
``dropped=0``), is split in halves and written again, like a 413, until every
event is known to be written or refused. Rewriting a stored point is
harmless: InfluxDB keeps one point per series and timestamp.

What InfluxDB cannot store as written is refused in `InfluxDBSink.prepare`
with `InvalidEventError`, whose ``indexes`` name every such event of the
batch, so that the streamer drops exactly those events (as ``invalid``) and
writes the rest of their batch, without trying each event alone:

- a literal backslash right before a space, comma, ``=`` or ``"`` in a
  measurement, tag key, tag value or field key. Line protocol writes it as
  is, but InfluxDB 1.x and VictoriaMetrics read it as an escape: depending on
  the server, the element and the character, the point is lost after a 204,
  refused, or stored under another name;
- with ``api="v1"``, `UInt` fields (InfluxDB 1.x refuses ``3u``) and, at
  ``ns`` precision, the three int64 timestamps InfluxDB 1.x cannot store
  (``-2**63``, ``-2**63 + 1`` and ``2**63 - 1``). VictoriaMetrics stores
  unsigned fields, as floats.

Both checks start with a search of the batch's shared line protocol bytes, so
batches without a suspicious byte sequence cost no per-event work.

Exactly once across splits: an `InfluxDBPayload` records which event ranges
are still to be written. When the first half of a split batch is written and
the second fails transiently, the lane retries `write` with the same payload
and only what is left is sent again. (A request that timed out after the
server stored it is sent again in full; InfluxDB keeps one point per series
and timestamp, so the second copy overwrites the first instead of adding to
it.)

Memory: a payload holds only its request body (gzip-compressed when on) and
counters, never the events or, when compressed, their line protocol: a dead
server with a million events queued behind it costs their compressed size. A
split, which is rare, decodes the events back from the body
(`metricstream.parse_lines` reads exactly what the encoder wrote) and keeps
them until the payload is done.

Credentials (password, token) never appear in ``repr``, error messages or
health reports.
"""

from __future__ import annotations

import base64
import email.utils
import gzip
import http.client
import importlib
import json
import math
import os
import re
import sys
import time
import urllib.parse
from collections.abc import Mapping
from datetime import timezone
from typing import TYPE_CHECKING, Any, NamedTuple, overload

from metricstream._options import parse_bool
from metricstream._secrets import scrub_secrets
from metricstream.codecs.compression import Compression, compress
from metricstream.codecs.lineprotocol import PRECISIONS, encode_lines, parse_lines
from metricstream.event import MetricEvent, UInt
from metricstream.exceptions import (
    ConfigError,
    InvalidEventError,
    PermanentSinkError,
    SinkError,
    TransientSinkError,
)

if TYPE_CHECKING:
    from metricstream.contract import EventBatch

__all__ = ["SCHEMES", "InfluxDBPayload", "InfluxDBSink", "from_url", "parse_retry_after"]

SCHEMES = ("influxdb", "influxdb2")
"""The URL schemes this module builds sinks for (see `from_url`)."""

_V1_PRECISION = {"ns": "n", "us": "u", "ms": "ms", "s": "s"}
"""InfluxDB 1.x names for the precisions. It reads an unknown name such as
``us`` as nanoseconds without complaint, so the short forms are required."""

_MAX_MESSAGE_CHARS = 1000
_HOUR_NS = 3_600_000_000_000
_PARTIAL_WRITE = re.compile(r"partial write: (.*) dropped=([0-9]+)", re.DOTALL)
_UINT_TEXT = re.compile(rb"=[0-9]+u[ ,]")
"""Where a `UInt` field may be in line protocol (string values can match too)."""
_V1_MIN_NS = -(2**63) + 2
_V1_MAX_NS = 2**63 - 2
"""The range of timestamps InfluxDB 1.x stores (it refuses -2**63, -2**63 + 1 and 2**63 - 1)."""
_MISREAD = ("\\ ", "\\,", "\\=", '\\"')
"""A literal backslash before one of these is read by InfluxDB as an escape."""


class _Response(NamedTuple):
    """The parts of an HTTP response the error mapping needs."""

    status: int
    headers: Mapping[str, str]
    body: bytes


class _TooLargeError(PermanentSinkError):
    """The server refused a body as too large (413); the writer splits it."""


class _PartialWriteError(PermanentSinkError):
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


def _server_message(response: _Response, *, limit: int | None = _MAX_MESSAGE_CHARS) -> str:
    """Return the error message a server put in a response, cut to `limit` characters."""
    message = ""
    if response.body:
        try:
            decoded = json.loads(response.body)
        except ValueError:
            decoded = None
        if isinstance(decoded, dict):
            for key in ("error", "message"):
                if isinstance(decoded.get(key), str):
                    message = decoded[key]
                    break
        if not message:
            message = response.body.decode("utf-8", "replace").strip()
    if not message:
        for header in ("X-Influxdb-Error", "X-Platform-Error-Code"):
            if response.headers.get(header):
                message = response.headers[header]
                break
    if limit is not None and len(message) > limit:
        message = message[:limit] + "..."
    return message or "no message"


class InfluxDBPayload:
    """One batch encoded for InfluxDB, and how much of it has been written.

    Built by `InfluxDBSink.prepare`; `InfluxDBSink.write` consumes it. It
    keeps the request body and counters only; when a 413 or a partial write
    splits the batch, the payload decodes the events from the body once and
    remembers which event ranges are done, so a retry of the same payload
    resends only the rest.

    Args:
        body: The request body for all the events.
        count: How many events (lines) the body holds.
        gzipped: Whether ``body`` is gzip-compressed.

    Attributes:
        body: The request body for the whole batch: its line protocol,
            gzip-compressed when ``gzipped``.
        gzipped: Whether ``body`` (and any split halves) are gzip-compressed.
        count: How many events the body holds.
        events_written: How many events the server has stored so far.
        events_rejected: How many events were refused for good (400, a
            partial write, or a single event over the size limit).
    """

    __slots__ = (
        "_events",
        "_pending",
        "_rejections",
        "body",
        "count",
        "events_rejected",
        "events_written",
        "gzipped",
    )

    def __init__(self, body: bytes, count: int, *, gzipped: bool) -> None:
        self.body = body
        self.count = count
        self.gzipped = gzipped
        self.events_written = 0
        self.events_rejected = 0
        # Half-open event index ranges still to be written, front first.
        self._pending: list[tuple[int, int]] = [(0, count)] if count else []
        self._rejections: list[str] = []
        # The events decoded from the body, while a split payload is in progress.
        self._events: list[MetricEvent] | None = None

    def __len__(self) -> int:
        return self.count

    def __repr__(self) -> str:
        return (
            f"InfluxDBPayload(events={self.count}, bytes={len(self.body)}, "
            f"gzipped={self.gzipped}, written={self.events_written}, "
            f"rejected={self.events_rejected}, pending_ranges={len(self._pending)})"
        )

    @property
    def done(self) -> bool:
        """True when every event has been written or rejected."""
        return not self._pending

    def lines(self) -> bytes:
        """Return the line protocol of the whole batch (the body, decompressed)."""
        return gzip.decompress(self.body) if self.gzipped else self.body

    def _decoded(self, precision: str) -> list[MetricEvent]:
        """The batch's events, decoded from the body on first use (splits only)."""
        if self._events is None:
            self._events = parse_lines(self.lines(), precision)
        return self._events


class _V1Transport:
    """``POST /write`` and ``GET /ping`` for InfluxDB 1.x, over urllib3."""

    def __init__(
        self,
        base_url: str,
        *,
        database: str,
        retention_policy: str | None,
        precision: str,
        username: str | None,
        password: str | None,
        timeout: float,
        verify_ssl: bool,
        ssl_ca_cert: str | None,
    ) -> None:
        params = {"db": database}
        if retention_policy is not None:
            params["rp"] = retention_policy
        params["precision"] = _V1_PRECISION[precision]
        self.write_url = f"{base_url}/write?{urllib.parse.urlencode(params)}"
        self.ping_url = f"{base_url}/ping"
        self.auth_headers: dict[str, str] = {}
        if username is not None:
            secret = base64.b64encode(f"{username}:{password or ''}".encode()).decode()
            self.auth_headers["Authorization"] = f"Basic {secret}"
        try:
            import urllib3  # optional: installed with influxdb-client
        except ImportError:  # pragma: no cover - depends on the installation
            raise ConfigError(
                "api", "api='v1' needs urllib3: pip install 'metricstream[influxdb]'"
            ) from None
        self.timeout = urllib3.Timeout(total=timeout)
        pool_options: dict[str, Any] = {}
        if base_url.startswith("https:"):
            pool_options["cert_reqs"] = "CERT_REQUIRED" if verify_ssl else "CERT_NONE"
            if ssl_ca_cert is not None:
                pool_options["ca_certs"] = ssl_ca_cert
        self.pool = urllib3.PoolManager(num_pools=2, maxsize=2, retries=False, **pool_options)

    def post(self, body: bytes, *, gzipped: bool) -> _Response:
        headers = {"Content-Type": "text/plain; charset=utf-8", **self.auth_headers}
        if gzipped:
            headers["Content-Encoding"] = "gzip"
        resp = self.pool.request(
            "POST",
            self.write_url,
            body=body,
            headers=headers,
            timeout=self.timeout,
            retries=False,
            redirect=False,
        )
        return _Response(resp.status, resp.headers, resp.data)

    def ping(self) -> _Response:
        resp = self.pool.request(
            "GET", self.ping_url, timeout=self.timeout, retries=False, redirect=False
        )
        return _Response(resp.status, resp.headers, resp.data)

    def close(self) -> None:
        self.pool.clear()


class _V2Transport:
    """``POST /api/v2/write`` and ``GET /ping`` through influxdb-client."""

    def __init__(
        self,
        base_url: str,
        *,
        org: str,
        bucket: str,
        precision: str,
        token: str | None,
        timeout: float,
        verify_ssl: bool,
        ssl_ca_cert: str | None,
    ) -> None:
        try:
            # Typed as Any: influxdb-client ships py.typed but leaves most calls unannotated.
            client_module: Any = importlib.import_module("influxdb_client")
        except ImportError:  # pragma: no cover - depends on the installation
            raise ConfigError(
                "api",
                "api='v2' needs influxdb-client: pip install 'metricstream[influxdb]'",
            ) from None
        # enable_gzip stays off: bodies arrive already compressed (see module doc).
        self.client = client_module.InfluxDBClient(
            url=base_url,
            token=token,
            org=org,
            timeout=max(1, round(timeout * 1000)),
            enable_gzip=False,
            verify_ssl=verify_ssl,
            ssl_ca_cert=ssl_ca_cert,
            retries=False,
        )
        self.write_service = client_module.WriteService(self.client.api_client)
        self.ping_service = client_module.PingService(self.client.api_client)
        self.org = org
        self.bucket = bucket
        self.precision = precision

    def post(self, body: bytes, *, gzipped: bool) -> _Response:
        options: dict[str, str] = {"content_encoding": "gzip"} if gzipped else {}
        self.write_service.post_write(
            org=self.org,
            bucket=self.bucket,
            body=body,
            precision=self.precision,
            content_type="text/plain; charset=utf-8",
            **options,
        )
        return _Response(204, {}, b"")

    def ping(self) -> _Response:
        self.ping_service.get_ping()
        return _Response(204, {}, b"")

    def close(self) -> None:
        self.client.close()


class InfluxDBSink:
    """Write events to InfluxDB (1.x, 2.x, 3.x) or a compatible server.

    Args:
        url: The server's base URL, ``http://host:8086`` or ``https://...``
            (a path prefix is kept; credentials do not belong in it).
        api: ``"v1"`` (``/write``, InfluxDB 1.x) or ``"v2"``
            (``/api/v2/write``: InfluxDB 2.x/3.x, VictoriaMetrics).
        token: v2 API token (sent as ``Authorization: Token ...``).
        org: v2 organization; required with ``api="v2"`` (servers that ignore
            it, such as VictoriaMetrics and InfluxDB 3, accept any name).
        bucket: v2 bucket; required with ``api="v2"``.
        database: v1 database; required with ``api="v1"``.
        retention_policy: v1 retention policy; the database's default when
            None.
        username: v1 user for HTTP basic auth.
        password: v1 password; required when ``username`` is given.
        precision: Timestamp precision written: ``ns``, ``us``, ``ms`` or
            ``s``; timestamps are truncated to it.
        gzip: Compress request bodies with gzip. None (the default) means
            "not chosen": the streamer's ``compression`` option decides (any
            codec but ``none`` means gzip, the only encoding InfluxDB
            accepts), and without one the body is compressed.
        timeout: Seconds each HTTP request may take (> 0).
        verify_ssl: Verify the server's TLS certificate (https only).
        ssl_ca_cert: A CA bundle file to verify it with.
        name: The sink's name in health reports; ``"influxdb"`` by default.

    Raises:
        ConfigError: If an option is invalid or does not fit the API; it names
            the option.
    """

    def __init__(
        self,
        url: str,
        *,
        api: str = "v2",
        token: str | None = None,
        org: str | None = None,
        bucket: str | None = None,
        database: str | None = None,
        retention_policy: str | None = None,
        username: str | None = None,
        password: str | None = None,
        precision: str = "ns",
        gzip: bool | None = None,
        timeout: float = 10.0,
        verify_ssl: bool = True,
        ssl_ca_cert: str | os.PathLike[str] | None = None,
        name: str | None = None,
    ) -> None:
        self.url: str = _check_base_url(url)
        if api not in ("v1", "v2"):
            raise ConfigError("api", f"must be 'v1' or 'v2', not {api!r}")
        self.api: str = api
        if precision not in PRECISIONS:
            raise ConfigError(
                "precision", f"unknown precision {precision!r}; use one of ns, us, ms, s"
            )
        self.precision: str = precision
        if gzip is not None and not isinstance(gzip, bool):
            raise ConfigError("gzip", f"must be True, False or None, not {gzip!r}")
        self._gzip_choice = gzip
        self._gzip = True if gzip is None else gzip
        if (
            isinstance(timeout, bool)
            or not isinstance(timeout, (int, float))
            or not math.isfinite(timeout)
            or timeout <= 0
        ):
            raise ConfigError("timeout", f"must be a finite number of seconds > 0, not {timeout!r}")
        self.timeout: float = float(timeout)
        if not isinstance(verify_ssl, bool):
            raise ConfigError("verify_ssl", f"must be True or False, not {verify_ssl!r}")
        self.verify_ssl: bool = verify_ssl
        ca_cert = None if ssl_ca_cert is None else os.fspath(ssl_ca_cert)
        if ca_cert is not None and not os.path.isfile(ca_cert):
            raise ConfigError("ssl_ca_cert", f"no such file: {ca_cert!r}")
        self.ssl_ca_cert: str | None = ca_cert
        if name is not None and (not isinstance(name, str) or not name.strip()):
            raise ConfigError("name", f"must be a non-empty string, not {name!r}")
        self.name: str = name if name is not None else "influxdb"

        for option, value in (
            ("token", token), ("org", org), ("bucket", bucket), ("database", database),
            ("retention_policy", retention_policy), ("username", username),
        ):  # fmt: skip
            if value is not None and (not isinstance(value, str) or not value):
                raise ConfigError(option, f"must be a non-empty string, not {value!r}")
        if password is not None and not isinstance(password, str):
            raise ConfigError("password", "must be a string")

        self.database: str | None = database
        self.retention_policy: str | None = retention_policy
        self.org: str | None = org
        self.bucket: str | None = bucket
        self._username = username
        self._transport: _V1Transport | _V2Transport
        if api == "v1":
            _refuse_for_api("v1", token=token, org=org, bucket=bucket)
            if database is None:
                raise ConfigError("database", "required with api='v1' (the database to write to)")
            if (username is None) != (password is None):
                missing = "password" if password is None else "username"
                raise ConfigError(missing, "username and password must be given together")
            self._transport = _V1Transport(
                self.url,
                database=database,
                retention_policy=retention_policy,
                precision=precision,
                username=username,
                password=password,
                timeout=self.timeout,
                verify_ssl=verify_ssl,
                ssl_ca_cert=ca_cert,
            )
        else:
            _refuse_for_api(
                "v2",
                database=database,
                retention_policy=retention_policy,
                username=username,
                password=password,
            )
            if bucket is None:
                raise ConfigError("bucket", "required with api='v2' (the bucket to write to)")
            if org is None:
                raise ConfigError(
                    "org",
                    "required with api='v2': InfluxDB 2.x needs the organization; "
                    "VictoriaMetrics and InfluxDB 3 ignore it, so any name works there",
                )
            self._transport = _V2Transport(
                self.url,
                org=org,
                bucket=bucket,
                precision=precision,
                token=token,
                timeout=self.timeout,
                verify_ssl=verify_ssl,
                ssl_ca_cert=ca_cert,
            )
        # Set by failures that stop every write (credentials, missing
        # database); check() reports it until a write succeeds again.
        self._blocking_error: PermanentSinkError | None = None
        self._closed = False

    def __repr__(self) -> str:
        target = (
            f"database={self.database!r}, retention_policy={self.retention_policy!r}"
            if self.api == "v1"
            else f"org={self.org!r}, bucket={self.bucket!r}"
        )
        return (
            f"InfluxDBSink(name={self.name!r}, url={scrub_secrets(self.url)!r}, api={self.api!r}, "
            f"{target}, precision={self.precision!r}, gzip={self._gzip})"
        )

    @property
    def gzip(self) -> bool:
        """Whether request bodies are gzip-compressed."""
        return self._gzip

    def inherit_compression(self, compression: Compression | str | None) -> None:
        """Adopt the streamer's compression unless the user chose ``gzip``.

        Any codec but ``none`` turns gzip on (InfluxDB accepts only gzip, so
        ``zstd`` means gzip here); ``none`` turns it off; None changes nothing.

        Args:
            compression: The streamer's ``compression`` option.

        Raises:
            ConfigError: If the codec name is unknown.
        """
        if compression is None or self._gzip_choice is not None:
            return
        self._gzip = Compression.from_str(compression) is not Compression.NONE

    def prepare(self, batch: EventBatch) -> InfluxDBPayload:
        """Encode a batch: shared line protocol bytes, gzipped (level 1) when on.

        Events InfluxDB cannot store as written are refused here (see the
        module documentation), all named by their position in the batch; the
        streamer then drops exactly those, as ``invalid``, and writes the
        others.

        Args:
            batch: The batch to encode.

        Returns:
            The payload `write` sends.

        Raises:
            InvalidEventError: If an event has no fields, or cannot be stored
                as written: a name with a backslash right before a space,
                comma, ``=`` or ``"``; with ``api="v1"``, a `UInt` field or a
                timestamp outside InfluxDB 1.x's range. The message names the
                first such event; ``indexes`` gives the positions of all of
                them in the batch.
        """
        lines = batch.influx_bytes(self.precision)
        refused: list[tuple[int, InvalidEventError]] = []
        if b"\\" in lines and (b"\\\\" in lines or b'\\"' in lines or b"\\=" in lines):
            refused += _misread_names(batch.events)
        if self.api == "v1":
            if _UINT_TEXT.search(lines) is not None:
                refused += _unsigned_fields(batch.events)
            if self.precision == "ns" and b"922337203685477580" in lines:
                refused += _unstorable_timestamps(batch.events)
        if refused:
            _, first = min(refused, key=lambda found: found[0])
            raise InvalidEventError(
                first.key,
                first.problem,
                indexes=tuple(sorted({index for index, _ in refused})),
            )
        body = compress(lines, Compression.GZIP, 1) if self._gzip else lines
        return InfluxDBPayload(body, len(batch.events), gzipped=self._gzip)

    def write(self, payload: InfluxDBPayload) -> None:
        """Send what is left of a payload.

        A 413 splits the pending events in halves, written one after the
        other (recursively); so does a partial write whose count cannot be
        trusted (see the module documentation). Ranges already written are
        remembered in the payload, so calling this again after a transient
        error resends only the rest.

        Args:
            payload: A payload from `prepare`.

        Raises:
            TransientSinkError: The server is unreachable, timed out, busy
                (429, 5xx); ``retry_after`` carries its ``Retry-After``.
            PermanentSinkError: The server refused events (400, a partial
                write, an event too large even alone) or the sink cannot write
                at all (401, 403, missing database/bucket; ``unhealthy`` is
                then True). ``written`` says how many of the payload's events
                the server stored.
        """
        if self._closed:
            raise PermanentSinkError(
                f"sink {self.name!r} is closed", written=payload.events_written, sink=self.name
            )
        pending = payload._pending
        while pending:
            start, stop = pending[0]
            size = stop - start
            if size == payload.count:
                body = payload.body
            else:
                events = payload._decoded(self.precision)[start:stop]
                lines = encode_lines(events, self.precision).encode()
                body = compress(lines, Compression.GZIP, 1) if payload.gzipped else lines
            try:
                self._post(body, gzipped=payload.gzipped)
            except TransientSinkError as exc:
                exc.written = payload.events_written
                raise
            except _TooLargeError as exc:
                if size > 1:
                    middle = (start + stop) // 2
                    pending[0:1] = [(start, middle), (middle, stop)]
                    continue
                pending.pop(0)
                payload.events_rejected += 1
                payload._rejections.append(
                    f"event {start} of the batch is too large for the server even alone "
                    f"({len(body)} bytes): {exc}"
                )
                continue
            except _PartialWriteError as exc:
                if size > 1 and not self._partial_count_is_exact(payload, start, stop, exc):
                    middle = (start + stop) // 2
                    pending[0:1] = [(start, middle), (middle, stop)]
                    continue
                pending.pop(0)
                dropped = size if exc.unparsed else min(exc.dropped, size)
                payload.events_written += size - dropped
                payload.events_rejected += dropped
                payload._rejections.append(str(exc))
                continue
            except PermanentSinkError as exc:
                if exc.unhealthy:
                    exc.written = payload.events_written
                    raise
                pending.pop(0)
                payload.events_rejected += size
                payload._rejections.append(str(exc))
                continue
            pending.pop(0)
            payload.events_written += size
            self._blocking_error = None
        payload._events = None
        if payload._rejections:
            summary = "; ".join(payload._rejections[:3])
            if len(payload._rejections) > 3:
                summary += f"; and {len(payload._rejections) - 3} more"
            raise PermanentSinkError(summary, written=payload.events_written, sink=self.name)

    def _partial_count_is_exact(
        self, payload: InfluxDBPayload, start: int, stop: int, error: _PartialWriteError
    ) -> bool:
        """Tell whether a partial write's ``dropped=N`` counts every refused event.

        It does when the refusal is not about unparseable lines (those are
        reported with ``dropped=0``) and every event lies in one hour of UTC
        time, hence in one shard group.
        """
        if error.unparsed:
            return False
        events = payload._decoded(self.precision)
        first_hour = events[start].timestamp_ns // _HOUR_NS
        return all(event.timestamp_ns // _HOUR_NS == first_hour for event in events[start:stop])

    def check(self) -> None:
        """Ping the server (``/ping``); raise if it is down or refuses our writes.

        Raises:
            TransientSinkError: The server does not answer the ping.
            PermanentSinkError: The last write failed for a reason every write
                will hit (credentials, missing database) and none succeeded
                since, or the sink is closed.
        """
        if self._closed:
            raise PermanentSinkError(f"sink {self.name!r} is closed", sink=self.name)
        try:
            response = self._transport.ping()
        except Exception as exc:
            error = self._sink_error(exc, action="ping")
            if error is None:
                raise
            raise error from exc
        if not 200 <= response.status < 300:
            raise self._sink_error(response, action="ping")
        if self._blocking_error is not None:
            raise self._blocking_error

    def close(self) -> None:
        """Release the HTTP connections. Calling it again does nothing."""
        if self._closed:
            return
        self._closed = True
        self._transport.close()

    def _post(self, body: bytes, *, gzipped: bool) -> None:
        try:
            response = self._transport.post(body, gzipped=gzipped)
        except Exception as exc:
            error = self._sink_error(exc, action="write")
            if error is None:
                raise
            if isinstance(error, PermanentSinkError) and error.unhealthy:
                self._blocking_error = error
            raise error from exc
        if not 200 <= response.status < 300:
            error = self._sink_error(response, action="write")
            if isinstance(error, PermanentSinkError) and error.unhealthy:
                self._blocking_error = error
            raise error

    @overload
    def _sink_error(self, failure: _Response, *, action: str) -> SinkError: ...

    @overload
    def _sink_error(self, failure: BaseException, *, action: str) -> SinkError | None: ...

    def _sink_error(self, failure: _Response | BaseException, *, action: str) -> SinkError | None:
        """Translate a failed request (a response or an exception) into a sink error.

        This is the one place where HTTP statuses and client exceptions
        (urllib3, influxdb-client's ``ApiException``) become
        `TransientSinkError` / `PermanentSinkError`. Returns None for an
        exception that is not about the request (a bug), to be raised as is.
        """
        where = f"{action} to {scrub_secrets(self.url)} failed"
        if isinstance(failure, BaseException):
            rest = sys.modules.get("influxdb_client.rest")
            api_exception = getattr(rest, "ApiException", ())
            status = getattr(failure, "status", None)
            if isinstance(failure, api_exception) and status:
                body = getattr(failure, "body", None) or b""
                failure = _Response(
                    int(status),
                    getattr(failure, "headers", None) or {},
                    body.encode() if isinstance(body, str) else bytes(body),
                )
            elif isinstance(failure, api_exception) or _is_transport_error(failure):
                # influxdb-client reports transport failures (TLS) as status 0.
                return TransientSinkError(f"{where}: {_describe(failure)}", sink=self.name)
            else:
                return None

        status = failure.status
        message = _server_message(failure)
        retry_after = parse_retry_after(failure.headers.get("Retry-After"))
        if status in (408, 429) or status >= 500:
            if self.api == "v1" and status == 500 and "retention policy not found" in message:
                return PermanentSinkError(
                    f"{where}: retention policy {self.retention_policy!r} not found in database "
                    f"{self.database!r} ({message})",
                    unhealthy=True,
                    sink=self.name,
                )
            return TransientSinkError(
                f"{where}: HTTP {status}: {message}", retry_after=retry_after, sink=self.name
            )
        if status == 413:
            return _TooLargeError(f"{where}: HTTP 413: {message}", sink=self.name)
        if 300 <= status < 400:
            location = scrub_secrets(failure.headers.get("Location") or "")
            return PermanentSinkError(
                f"{where}: HTTP {status}: redirected to {location!r}; point url at that address",
                unhealthy=True,
                sink=self.name,
            )
        if status in (401, 403):
            # Worded without "password=" or "token:", which health scrubbing would mask.
            verb = "authentication failed" if status == 401 else "permission denied"
            if self.api == "v1":
                who = (
                    f" for user {self._username!r}"
                    if self._username is not None
                    else ": no username and password were given"
                )
            else:
                who = (
                    ": the server refused the token"
                    if self._transport_has_token()
                    else ": no token was given"
                )
            return PermanentSinkError(
                f"{where}: {verb}{who}: HTTP {status}: {message}",
                unhealthy=True,
                sink=self.name,
            )
        if status == 404:
            if self.api == "v1":
                what = f"database {self.database!r} not found"
            else:
                what = (
                    f"bucket {self.bucket!r} or org {self.org!r} not found "
                    "(or the server has no /api/v2/write; for InfluxDB 1.x use api='v1')"
                )
            return PermanentSinkError(
                f"{where}: {what}: HTTP 404: {message}", unhealthy=True, sink=self.name
            )
        if status == 400:
            partial = _PARTIAL_WRITE.fullmatch(_server_message(failure, limit=None))
            if partial is not None:
                return _PartialWriteError(
                    f"{where}: HTTP 400: {message}",
                    dropped=int(partial.group(2)),
                    unparsed=partial.group(1).startswith("unable to parse"),
                    sink=self.name,
                )
        return PermanentSinkError(f"{where}: HTTP {status}: {message}", sink=self.name)

    def _transport_has_token(self) -> bool:
        transport = self._transport
        return isinstance(transport, _V2Transport) and bool(transport.client.token)


def _misread_char(name: str) -> str | None:
    """The character a literal backslash in `name` comes right before, if InfluxDB misreads it."""
    if "\\" in name:
        for pair in _MISREAD:
            if pair in name:
                return pair[1]
    return None


def _misread_names(events: list[MetricEvent]) -> list[tuple[int, InvalidEventError]]:
    """The events with a name InfluxDB would misread (see the module doc), by position."""
    found = []
    # A plain loop: this runs on every batch whose string values hold a quote.
    for index, event in enumerate(events):
        suspect = "\\" in event.measurement
        if not suspect:
            for key, value in event.tags.items():
                if "\\" in key or "\\" in value:
                    suspect = True
                    break
            else:
                for key in event.fields:
                    if "\\" in key:
                        suspect = True
                        break
        if suspect:
            error = _misread_name(event)
            if error is not None:
                found.append((index, error))
    return found


def _misread_name(event: MetricEvent) -> InvalidEventError | None:
    """The error for the first name of `event` InfluxDB would read as an escape, if any."""
    named = [("measurement", event.measurement)]
    for key, value in event.tags.items():
        named += [("tag key", key), (f"tag value of {key!r}", value)]
    named += [("field key", key) for key in event.fields]
    for what, name in named:
        char = _misread_char(name)
        if char is not None:
            return InvalidEventError(
                name,
                f"event {event.measurement!r}: {what} {name!r} has a backslash right "
                f"before {char!r}; InfluxDB and VictoriaMetrics read that as an escape, "
                "so the point would be lost or stored under another name",
            )
    return None


def _unsigned_fields(events: list[MetricEvent]) -> list[tuple[int, InvalidEventError]]:
    """The events with a `UInt` field (InfluxDB 1.x refuses them), by position."""
    found = []
    for index, event in enumerate(events):
        for key, value in event.fields.items():
            if isinstance(value, UInt):
                error = InvalidEventError(
                    key,
                    f"event {event.measurement!r}: field {key!r} is unsigned (UInt({int(value)})), "
                    "which InfluxDB 1.x cannot store; send it as an int or float",
                )
                found.append((index, error))
                break
    return found


def _unstorable_timestamps(events: list[MetricEvent]) -> list[tuple[int, InvalidEventError]]:
    """The events whose timestamp InfluxDB 1.x refuses (at ns precision), by position."""
    return [
        (
            index,
            InvalidEventError(
                None,
                f"event {event.measurement!r}: timestamp {event.timestamp_ns} is outside the "
                f"range InfluxDB 1.x stores ({_V1_MIN_NS} to {_V1_MAX_NS})",
            ),
        )
        for index, event in enumerate(events)
        if not _V1_MIN_NS <= event.timestamp_ns <= _V1_MAX_NS
    ]


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


def _check_base_url(url: object) -> str:
    if not isinstance(url, str) or not url.strip():
        raise ConfigError("url", f"must be a non-empty http(s) URL, not {url!r}")
    try:
        parsed = urllib.parse.urlsplit(url.strip())
        parsed.port  # noqa: B018 - raises ValueError for a bad port
    except ValueError:
        raise ConfigError("url", f"cannot parse {scrub_secrets(url)!r}") from None
    if parsed.scheme.lower() not in ("http", "https") or not parsed.hostname:
        raise ConfigError(
            "url", f"must be http://host:port or https://host:port, not {scrub_secrets(url)!r}"
        )
    if parsed.username is not None or parsed.password is not None:
        raise ConfigError(
            "url",
            "must not contain credentials; pass username=/password= (v1) or token= (v2)",
        )
    if parsed.query or parsed.fragment:
        raise ConfigError(
            "url",
            f"must not have a query or fragment: {scrub_secrets(url)!r}; pass options as arguments",
        )
    return urllib.parse.urlunsplit(
        (parsed.scheme.lower(), parsed.netloc, parsed.path.rstrip("/"), "", "")
    )


def _refuse_for_api(api: str, **options: object) -> None:
    hints = {
        "token": "api='v1' authenticates with username= and password=",
        "org": "org belongs to api='v2'; api='v1' writes to database=",
        "bucket": "bucket belongs to api='v2'; api='v1' writes to database=",
        "database": "database belongs to api='v1'; api='v2' writes to bucket= "
        "(InfluxDB 1.8's v2 API reads bucket='database/retention_policy')",
        "retention_policy": "retention_policy belongs to api='v1'; with api='v2' use "
        "bucket='database/retention_policy'",
        "username": "api='v2' authenticates with token=",
        "password": "api='v2' authenticates with token=",
    }
    for option, value in options.items():
        if value is not None:
            raise ConfigError(option, f"not used with api={api!r}: {hints[option]}")


# --- URLs ---------------------------------------------------------------------

_V1_URL_OPTIONS = frozenset(
    {"rp", "precision", "gzip", "tls", "timeout", "name", "verify_ssl", "ssl_ca_cert"}
)
_V2_URL_OPTIONS = frozenset(
    {"org", "bucket", "token", "precision", "gzip", "tls", "timeout", "name", "verify_ssl",
     "ssl_ca_cert"}
)  # fmt: skip
_OVERRIDES = frozenset(
    {"token", "org", "bucket", "database", "retention_policy", "username", "password",
     "precision", "gzip", "timeout", "verify_ssl", "ssl_ca_cert", "name"}
)  # fmt: skip


def from_url(url: str, **overrides: Any) -> InfluxDBSink:
    """Build an `InfluxDBSink` from a URL; keyword arguments override URL options.

    Forms::

        influxdb://[user:password@]host[:port]/DATABASE[?rp=&precision=&gzip=&tls=]
        influxdb2://host[:port]?org=&bucket=[&token=&precision=&gzip=&tls=]

    The port defaults to 8086. ``tls=true`` speaks https. Both also take
    ``timeout``, ``name``, ``verify_ssl`` and ``ssl_ca_cert``. The v2 token
    comes from ``token=`` (argument, then URL) or else the ``INFLUX_TOKEN``
    environment variable. User, password and database are percent-decoded.

    Args:
        url: The URL.
        **overrides: Constructor arguments that replace the URL's options.

    Returns:
        The sink.

    Raises:
        ConfigError: If the URL or an option is invalid; it names the option
            and never shows the password or token.
    """
    shown = scrub_secrets(url)
    try:
        parsed = urllib.parse.urlsplit(url)
        port = parsed.port
    except ValueError:
        raise ConfigError("url", f"cannot parse {shown!r} (check the port)") from None
    scheme = parsed.scheme.lower()
    if scheme not in ("influxdb", "influxdb2"):
        raise ConfigError("url", f"expected an influxdb:// or influxdb2:// URL, not {shown!r}")
    if not parsed.hostname:
        raise ConfigError("url", f"no host in {shown!r}")
    for key in overrides:
        if key == "api":
            raise ConfigError(key, f"is set by the URL scheme ({scheme}://), not by an override")
        if key not in _OVERRIDES:
            raise ConfigError(
                key, f"unknown option for {scheme}:// URLs; known: {', '.join(sorted(_OVERRIDES))}"
            )

    options: dict[str, str] = {}
    allowed = _V1_URL_OPTIONS if scheme == "influxdb" else _V2_URL_OPTIONS
    for key, value in urllib.parse.parse_qsl(parsed.query, keep_blank_values=True):
        if key not in allowed:
            raise ConfigError(
                key, f"unknown option in {shown!r}; known: {', '.join(sorted(allowed))}"
            )
        if key in options:
            raise ConfigError(key, f"given more than once in {shown!r}")
        options[key] = value

    tls = parse_bool("tls", options.pop("tls", "false"))
    host = parsed.hostname
    if ":" in host:
        host = f"[{host}]"
    base_url = f"{'https' if tls else 'http'}://{host}:{port or 8086}"

    kwargs: dict[str, Any] = {}
    if "precision" in options:
        kwargs["precision"] = options.pop("precision")
    if "gzip" in options:
        kwargs["gzip"] = parse_bool("gzip", options.pop("gzip"))
    if "verify_ssl" in options:
        kwargs["verify_ssl"] = parse_bool("verify_ssl", options.pop("verify_ssl"))
    if "timeout" in options:
        text = options.pop("timeout")
        try:
            kwargs["timeout"] = float(text)
        except ValueError:
            raise ConfigError("timeout", f"must be a number of seconds, not {text!r}") from None
    for key in ("name", "ssl_ca_cert", "org", "bucket", "token"):
        if key in options:
            kwargs[key] = options.pop(key)

    path = urllib.parse.unquote(parsed.path.strip("/"))
    if scheme == "influxdb":
        if "rp" in options:
            kwargs["retention_policy"] = options.pop("rp")
        if not path and "database" not in overrides:
            raise ConfigError(
                "database", f"influxdb:// URLs name the database as their path: {shown!r}"
            )
        if "/" in path:
            raise ConfigError(
                "database", f"the path must be just the database name (use ?rp= for the "
                f"retention policy): {shown!r}"
            )  # fmt: skip
        if path:
            kwargs["database"] = path
        if parsed.username is not None:
            kwargs["username"] = urllib.parse.unquote(parsed.username)
            kwargs["password"] = urllib.parse.unquote(parsed.password or "")
        api = "v1"
    else:
        if path:
            raise ConfigError("url", f"influxdb2:// URLs take no path (use ?bucket=): {shown!r}")
        if parsed.username is not None or parsed.password is not None:
            raise ConfigError(
                "url", f"influxdb2:// URLs take token=, not user:password@: {shown!r}"
            )
        if "token" not in kwargs and "token" not in overrides:
            env_token = os.environ.get("INFLUX_TOKEN")
            if env_token:
                kwargs["token"] = env_token
        api = "v2"
    kwargs.update(overrides)
    return InfluxDBSink(base_url, api=api, **kwargs)
