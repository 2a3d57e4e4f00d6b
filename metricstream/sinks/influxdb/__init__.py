"""InfluxDB: `InfluxDBSink` writes line protocol over the v1 and v2 HTTP APIs.

The package, by role (the same files as every sink folder):

- `config`: option and credential checks, redaction of URLs, and the
  ``influxdb://`` and ``influxdb2://`` URL schemes;
- `sink`: `InfluxDBSink` (prepare, write with splitting, check, close,
  fork) and `from_url`;
- `encode`: `InfluxDBPayload`, one encoded batch and which of its events
  are written, so a retry resends only the rest;
- `errors`: the one table mapping HTTP statuses and client exceptions to
  `TransientSinkError` / `PermanentSinkError`, and `parse_retry_after`;

and its own helpers:

- `storable`: what the servers cannot store as written, refused in
  ``prepare`` as ``invalid``;
- `transport`: the v1 (urllib3) and v2 (influxdb-client) write APIs.

Only `transport` imports the client libraries, when a sink is built.
"""

from __future__ import annotations

from metricstream.sinks.influxdb.config import SCHEMES, InfluxDBOptions
from metricstream.sinks.influxdb.encode import InfluxDBPayload
from metricstream.sinks.influxdb.errors import parse_retry_after
from metricstream.sinks.influxdb.sink import InfluxDBSink, from_url

__all__ = [
    "SCHEMES",
    "InfluxDBOptions",
    "InfluxDBPayload",
    "InfluxDBSink",
    "from_url",
    "parse_retry_after",
]
