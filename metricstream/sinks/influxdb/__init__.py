"""InfluxDB: `InfluxDBSink` writes line protocol over the v1 and v2 HTTP APIs.

The package, by responsibility:

- `sink`: `InfluxDBSink` (prepare, write with splitting, check, close, fork);
- `payload`: `InfluxDBPayload`, one encoded batch and which of its events
  are written, so a retry resends only the rest;
- `transport`: the v1 (urllib3) and v2 (influxdb-client) write APIs;
- `errors`: the one table mapping HTTP statuses and client exceptions to
  `TransientSinkError` / `PermanentSinkError`, and `parse_retry_after`;
- `storable`: what the servers cannot store as written, refused in
  ``prepare`` as ``invalid``;
- `config`: option and credential checks, and redaction of URLs;
- `url`: ``influxdb://`` and ``influxdb2://`` URLs (`from_url`, `SCHEMES`).

Only `transport` imports the client libraries, when a sink is built.
"""

from __future__ import annotations

from metricstream.sinks.influxdb.errors import parse_retry_after
from metricstream.sinks.influxdb.payload import InfluxDBPayload
from metricstream.sinks.influxdb.sink import InfluxDBSink
from metricstream.sinks.influxdb.url import SCHEMES, from_url

__all__ = ["SCHEMES", "InfluxDBPayload", "InfluxDBSink", "from_url", "parse_retry_after"]
