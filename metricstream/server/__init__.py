"""The event store: a server that stores events durably and answers the event store's queries.

Needs the ``server`` extra (``pip install 'metricstream[server]'``). Run it
with ``metricstream serve ARCHIVE_DIR``, or embed it::

    from metricstream.server import create_app

    app = create_app("archive/", token="s3cret", spool_fsync="batch")
    # uvicorn.run(app, host="127.0.0.1", port=8080)

Endpoints (the routes are in `metricstream.server._app.ROUTES`):

==============================  ==================================================
``POST /events``                store events: ``{"events": [{"ts", "samplerate", "data"}]}``
``POST /query``                 answer a query document (`metricstream.query`)
``POST /query/validate``        check a query document without running it
``GET /keys``                   the properties events have (``prefix``, ``where``)
``GET /keys/{key}/values``      a property's top values (``prefix``, ``limit``, ``where``)
``GET /stats``                  events stored, ingest rate, archive bytes, status
``GET /healthz``, ``/readyz``   liveness and readiness (never need the token)
``GET /metrics``                Prometheus text
``POST /write``                 InfluxDB 1.x line protocol writes
``POST /api/v2/write``          InfluxDB 2.x line protocol writes
``GET /``                       the query page
==============================  ==================================================

How events are checked: `metricstream.server._events`; event ids:
`metricstream.query._eventid`; idempotency: `metricstream.server._idempotency`;
the token: `metricstream.server._auth`; bodies: `metricstream.server._body`.
"""

from __future__ import annotations

from metricstream.server._app import ROUTES, create_app
from metricstream.server._config import SPOOL_FSYNC_MODES, TOKEN_ENV, ServerConfig
from metricstream.server._events import events_schema
from metricstream.server._ingest import Ingest, IngestBusyError, Receipt
from metricstream.server._streamer import StreamerIngest

__all__ = [
    "ROUTES",
    "SPOOL_FSYNC_MODES",
    "TOKEN_ENV",
    "Ingest",
    "IngestBusyError",
    "Receipt",
    "ServerConfig",
    "StreamerIngest",
    "create_app",
    "events_schema",
]
