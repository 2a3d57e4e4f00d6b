"""InfluxDB: `InfluxDBSink` writes line protocol over the v1 and v2 HTTP APIs.

See `metricstream.sinks.influxdb.sink` for what is sent, how failures are
mapped and what the servers cannot store.
"""

from __future__ import annotations

from metricstream.sinks.influxdb.sink import (
    SCHEMES,
    InfluxDBPayload,
    InfluxDBSink,
    from_url,
    parse_retry_after,
)

__all__ = ["SCHEMES", "InfluxDBPayload", "InfluxDBSink", "from_url", "parse_retry_after"]
