"""Events to InfluxDB, then a dashboard query of the last minute.

Run with ``python examples/influx_dashboard.py [--database NAME] [--requests 600]``.
It writes to the InfluxDB 1.x server at ``$INFLUXDB_URL`` (default
``http://localhost:8086``) and fails with a clear message when that server
does not answer. Against the test server of ``scripts/services.sh start``::

    INFLUXDB_URL=http://127.0.0.1:28086 python examples/influx_dashboard.py

It creates the database (``metricstream_example`` by default), streams a
minute of simulated HTTP requests (timestamps spread over the last 55
seconds) through an ``InfluxDBSink``, flushes, and then asks InfluxDB what a
dashboard panel would: requests, mean and 95th percentile latency per route
over the last minute. The count and mean are printed beside the ones
computed from the events sent, to show that nothing was lost on the way.
Each run tags its events with a run id, so runs never mix.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import random
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid
from collections import defaultdict
from typing import Any

import metricstream as ms

INFLUXDB_URL = os.environ.get("INFLUXDB_URL", "http://localhost:8086")
ROUTES = {"/api/orders": 40.0, "/api/users": 12.0, "/api/search": 95.0, "/health": 1.5}
"""Route -> typical latency in ms."""


def influx(path: str, **params: str) -> Any:
    """GET `path` on the InfluxDB server with query `params`; the decoded JSON (or None)."""
    url = f"{INFLUXDB_URL.rstrip('/')}{path}?{urllib.parse.urlencode(params)}"
    if not url.startswith(("http://", "https://")):
        raise SystemExit(f"influx_dashboard: not an http(s) URL: {INFLUXDB_URL!r}")
    method = "POST" if params.get("q", "").startswith("CREATE") else "GET"
    request = urllib.request.Request(url, method=method)  # noqa: S310 - http(s) only, checked above
    with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310
        body = response.read()
    return json.loads(body) if body else None


def require_server() -> None:
    """Exit with a clear message unless the server answers /ping."""
    try:
        influx("/ping")
    except (OSError, urllib.error.URLError) as exc:
        sys.exit(
            f"influx_dashboard: InfluxDB is not reachable at {INFLUXDB_URL} ({exc}).\n"
            "Set INFLUXDB_URL to the address of an InfluxDB 1.x server."
        )


def simulated_requests(count: int, run: str, now_ns: int) -> list[ms.MetricEvent]:
    rng = random.Random(7)
    events = []
    for _ in range(count):
        route = rng.choice(list(ROUTES))
        latency = round(rng.lognormvariate(math.log(ROUTES[route]), 0.5), 3)
        status = 500 if rng.random() < 0.02 else 200
        events.append(
            ms.MetricEvent(
                "http_requests",
                tags={"route": route, "run": run},
                fields={"latency_ms": latency, "status": status},
                timestamp_ns=now_ns - rng.randrange(55_000_000_000),
            )
        )
    return events


def dashboard(database: str, run: str) -> dict[str, tuple[int, float, float]]:
    """The last minute per route, as InfluxDB computes it: (requests, mean, p95)."""
    query = (
        'SELECT count("latency_ms"), mean("latency_ms"), percentile("latency_ms", 95) '
        'FROM "http_requests" WHERE "run" = $run AND time > now() - 1m GROUP BY "route"'
    )
    params = json.dumps({"run": run})
    result = influx("/query", db=database, q=query, params=params)["results"][0]
    if "error" in result:
        sys.exit(f"influx_dashboard: the query failed: {result['error']}")
    rows = {}
    for series in result.get("series", []):
        _, count, mean, p95 = series["values"][0]
        rows[series["tags"]["route"]] = (int(count), float(mean), float(p95))
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--database", default="metricstream_example")
    parser.add_argument("--requests", type=int, default=600)
    args = parser.parse_args()

    require_server()
    influx("/query", q=f'CREATE DATABASE "{args.database}"')
    run = uuid.uuid4().hex[:8]
    events = simulated_requests(args.requests, run, time.time_ns())
    sink = ms.sinks.InfluxDBSink(INFLUXDB_URL, api="v1", database=args.database)
    with ms.EventStreamer([sink], batch_size=500, flush_interval=0.5) as streamer:
        streamer.send_many(events)
        delivered = streamer.flush(timeout=30)
        health = streamer.health().sinks["influxdb"]
    print(
        f"sent {len(events)} events to {INFLUXDB_URL}, database {args.database!r} (run {run}): "
        f"written {health.events_written}, dropped {health.events_dropped}"
    )
    if not delivered or health.events_written != len(events):
        sys.exit(f"influx_dashboard: not everything was written: {health.last_error}")

    sent: dict[str, list[float]] = defaultdict(list)
    for event in events:
        sent[event.tags["route"]].append(float(event.fields["latency_ms"]))
    rows = dashboard(args.database, run)
    print("\nLast minute, per route, from InfluxDB (in brackets: computed from the events sent):")
    print(f"  {'route':<14} {'requests':>16} {'mean ms':>20} {'p95 ms':>10}")
    for route in sorted(sent):
        count, mean, p95 = rows.get(route, (0, math.nan, math.nan))
        ours = sum(sent[route]) / len(sent[route])
        requests = f"{count} ({len(sent[route])})"
        means = f"{mean:.2f} ({ours:.2f})"
        print(f"  {route:<14} {requests:>16} {means:>20} {p95:>10.2f}")
    same = all(
        rows.get(route, (0, 0.0, 0.0))[0] == len(values)
        and math.isclose(rows[route][1], sum(values) / len(values), rel_tol=1e-9)
        for route, values in sent.items()
    )
    print(f"\nInfluxDB agrees with what was sent: {'yes' if same else 'NO'}")
    if not same:
        sys.exit(1)


if __name__ == "__main__":
    main()
