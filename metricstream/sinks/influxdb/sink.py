"""`InfluxDBSink`: write batches as line protocol to InfluxDB over HTTP.

The body is the batch's shared line protocol encoding (computed once per batch
and precision, whichever sinks need it), gzip-compressed at level 1 in
`InfluxDBSink.prepare` when compression is on, after the events the server
cannot store as written are refused (`metricstream.sinks.influxdb.storable`).
`InfluxDBSink.write` sends it through the API's transport
(`metricstream.sinks.influxdb.transport`); failures become sink errors in one
place (`metricstream.sinks.influxdb.errors`), and two of them are handled
here:

- 413 (body too large) splits the events in halves and writes each half,
  recursively; a single event that is still too large is rejected;
- a 400 "partial write: ... dropped=N" (InfluxDB 1.x, for example a field
  type conflict) means the server stored every other line of the body. The
  error says so through ``PermanentSinkError.written``, and the streamer
  counts exactly N events as rejected.

A partial write reports only the lines refused by the first shard that
failed: InfluxDB 1.x writes each shard group separately and returns one
shard's error. N is therefore taken as exact when all the events of the body
fall in one hour of UTC time (shard groups last whole hours in every InfluxDB
default, and are aligned to them). A body spanning more, or one whose partial
write comes from lines the server could not parse (it then says
``dropped=0``), is split in halves and written again, like a 413, until every
event is known to be written or refused. Rewriting a stored point is
harmless: InfluxDB keeps one point per series and timestamp.

Every error ``write`` raises carries the payload's ``written`` and
``rejected`` counts, so a batch written in parts is accounted exactly: a
split whose first half was partly refused and whose second half runs out of
retries counts the refused events as ``rejected`` and only the rest as
``retries_exhausted``.

Credentials (password, token) never appear in ``repr``, error messages or
health reports.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from metricstream._options import takes_options
from metricstream._secrets import scrub_secrets
from metricstream.codecs.compression import Compression, compress
from metricstream.exceptions import (
    InvalidEventError,
    PermanentSinkError,
    SinkError,
    TransientSinkError,
)
from metricstream.sinks.influxdb.collapse import collapsed_indexes
from metricstream.sinks.influxdb.config import InfluxDBOptions, url_arguments
from metricstream.sinks.influxdb.encode import InfluxDBPayload
from metricstream.sinks.influxdb.errors import (
    PartialWriteError,
    Response,
    TooLargeError,
    error_for_exception,
    error_for_response,
)
from metricstream.sinks.influxdb.storable import refuse_unstorable
from metricstream.sinks.influxdb.transport import Transport, open_transport

if TYPE_CHECKING:
    from metricstream.contract import EventBatch

__all__ = ["InfluxDBSink", "from_url"]


class InfluxDBSink:
    """Write events to InfluxDB (1.x, 2.x, 3.x) or a compatible server.

    Takes the options of `InfluxDBOptions` (each documented there) as its
    parameters: ``InfluxDBSink(url, *, api="v2", token=None, org=None,
    bucket=None, database=None, ...)``; they are kept, checked, as `options`.

    Raises:
        ConfigError: If an option is invalid or does not fit the API, or a
            credential holds a control character (such as a trailing
            newline); it names the option and never shows a credential.
    """

    @takes_options(InfluxDBOptions)
    def __init__(self, options: InfluxDBOptions) -> None:
        self.options = options
        self.name: str = options.name
        self._gzip = True if options.gzip is None else options.gzip
        self._transport: Transport = open_transport(options)
        # Transports of the parent process, kept unused in a forked child (see after_fork).
        self._inherited: list[Transport] = []
        # Set by failures that stop every write (credentials, missing
        # database); check() reports it until a write succeeds again.
        self._blocking_error: PermanentSinkError | None = None
        self._closed = False

    def __repr__(self) -> str:
        options = self.options
        target = (
            f"database={options.database!r}, retention_policy={options.retention_policy!r}"
            if options.api == "v1"
            else f"org={options.org!r}, bucket={options.bucket!r}"
        )
        return (
            f"InfluxDBSink(name={self.name!r}, url={scrub_secrets(options.url)!r}, "
            f"api={options.api!r}, {target}, precision={options.precision!r}, gzip={self._gzip})"
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
        if compression is None or self.options.gzip is not None:
            return
        self._gzip = Compression.from_str(compression) is not Compression.NONE

    def after_fork(self) -> None:
        """Give a forked child connections of its own (called by the streamer).

        The parent's connection pool may hold a lock taken by a thread that
        does not exist in the child, and sockets the parent keeps using; the
        child gets a new pool (v1) or a new influxdb-client (v2). The
        parent's are left untouched, neither used nor closed nor collected
        in the child, since closing them would take those locks.
        """
        if self._closed:
            return
        self._inherited.append(self._transport)
        self._transport = open_transport(self.options)

    def prepare(self, batch: EventBatch) -> InfluxDBPayload:
        """Encode a batch: shared line protocol bytes, gzipped (level 1) when on.

        Events the server cannot store as written are refused here (see
        `metricstream.sinks.influxdb.storable`), all named by their position
        in the batch; the streamer then drops exactly those, as ``invalid``,
        and writes the others. So are the events a later event of the batch
        would overwrite whole on the server (same measurement, tags and
        timestamp at the sink's precision; see
        `metricstream.sinks.influxdb.collapse`), dropped as ``collapsed``.

        Args:
            batch: The batch to encode.

        Returns:
            The payload `write` sends.

        Raises:
            InvalidEventError: If an event has no fields, or cannot be stored
                as written: a name with a backslash right before a space,
                comma, ``=`` or ``"``; with ``api="v1"``, a `UInt` field or a
                timestamp outside InfluxDB 1.x's range; with ``api="v2"``, a
                string field holding a newline. The message names the first
                such event; ``indexes`` gives the positions of all of them in
                the batch. With ``reason="collapsed"``: events a later event
                of the batch overwrites whole.
        """
        precision = self.options.precision
        lines = batch.influx_bytes(precision)
        refuse_unstorable(batch, lines, api=self.options.api, precision=precision)
        keep = self.options.duplicate_points == "keep"
        collapsed = [] if keep else collapsed_indexes(batch.columns(), precision)
        if collapsed:
            raise InvalidEventError(
                None,
                f"{len(collapsed)} event(s) of the batch share their measurement, tags and "
                f"timestamp (at precision {precision!r}) with a later event that has all of "
                "their fields: the server would keep only the later point",
                indexes=tuple(collapsed),
                reason="collapsed",
            )
        body = compress(lines, Compression.GZIP, 1) if self._gzip else lines
        return InfluxDBPayload(body, len(batch), gzipped=self._gzip)

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
                then True). Both say how many of the payload's events the
                server stored (``written``) and refused (``rejected``) so far.
        """
        if self._closed:
            closed = PermanentSinkError(f"sink {self.name!r} is closed", sink=self.name)
            raise payload.account(closed)
        while (front := payload.front) is not None:
            body = payload.front_body(self.options.precision)
            try:
                self._post(body, gzipped=payload.gzipped)
            except TransientSinkError as exc:
                payload.account(exc)
                raise
            except TooLargeError as exc:
                if not payload.split_front():
                    payload.reject_front(
                        f"event {front[0]} of the batch is too large for the server even alone "
                        f"({len(body)} bytes): {exc}"
                    )
            except PartialWriteError as exc:
                self._partial_write(payload, exc)
            except PermanentSinkError as exc:
                if exc.unhealthy:
                    payload.account(exc)
                    raise
                payload.reject_front(str(exc))
            else:
                payload.front_written()
                self._blocking_error = None
        payload.finish(self.name)

    def _partial_write(self, payload: InfluxDBPayload, error: PartialWriteError) -> None:
        """Count a partial write of the front range, or split it when its count is not exact.

        ``dropped=N`` counts every refused event when the refusal is not
        about unparseable lines (those are reported with ``dropped=0``) and
        every event lies in one hour of UTC time, hence in one shard group.
        """
        exact = not error.unparsed and payload.front_in_one_hour(self.options.precision)
        if exact or not payload.split_front():
            refused = None if error.unparsed else error.dropped
            payload.reject_front(str(error), refused=refused)

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
        self._request(self._transport.ping, action="ping")
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
            self._request(lambda: self._transport.post(body, gzipped=gzipped), action="write")
        except PermanentSinkError as exc:
            if exc.unhealthy:
                self._blocking_error = exc
            raise

    def _request(self, send: Callable[[], Response], *, action: str) -> None:
        """Run one request; raise the sink error for a failure (see `errors`)."""
        try:
            response = send()
        except Exception as exc:
            error: SinkError | None = error_for_exception(exc, self.options, action=action)
            if error is None:
                raise
            raise error from exc
        if not 200 <= response.status < 300:
            raise error_for_response(response, self.options, action=action)


def from_url(url: str, **overrides: Any) -> InfluxDBSink:
    """Build an `InfluxDBSink` from an ``influxdb://`` or ``influxdb2://`` URL.

    See `url_arguments` for the forms; keyword arguments override URL options.

    Raises:
        ConfigError: If the URL or an option is invalid; it names the option
            and never shows the password or token.
    """
    return InfluxDBSink(**url_arguments(url, overrides))
