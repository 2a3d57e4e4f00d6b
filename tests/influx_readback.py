"""Read back what InfluxDB 1.x and VictoriaMetrics stored, as `MetricEvent` objects.

- `influx_v1_events` asks InfluxDB 1.x with InfluxQL (``epoch=ns``) and gives
  each field the type the server stored it as (``SHOW FIELD KEYS``), so the
  result compares exactly with the events that were written.
- `vm_events` exports from VictoriaMetrics (``/api/v1/export``), which keeps
  one series per field named ``measurement_field``, millisecond timestamps and
  float64 values; it regroups the samples into events.
"""

from __future__ import annotations

import base64
import json
import time
import urllib.parse
import urllib.request
from typing import Any

from metricstream import MetricEvent, UInt

__all__ = [
    "influx_field_types",
    "influx_query",
    "influx_v1_events",
    "quote_identifier",
    "vm_events",
    "vm_regex",
    "vm_samples",
]

Sample = tuple[str, tuple[tuple[str, str], ...], int, float]
"""(metric name, sorted labels, timestamp in ms, value): one VictoriaMetrics sample."""

_TYPES: dict[str, type] = {
    "float": float,
    "integer": int,
    "unsigned": UInt,
    "boolean": bool,
    "string": str,
}


def _json_keeping_negative_zero(data: bytes) -> Any:
    """Decode JSON so that Go's ``-0`` (a negative-zero float) stays -0.0."""
    return json.loads(data, parse_int=lambda s: -0.0 if s == "-0" else int(s))


def quote_identifier(name: str) -> str:
    """Quote a measurement or key for InfluxQL (double quotes, backslash escapes)."""
    return '"' + name.replace("\\", "\\\\").replace('"', '\\"') + '"'


def influx_query(
    url: str, q: str, *, db: str | None = None, auth: tuple[str, str] | None = None
) -> Any:
    """Run InfluxQL with POST /query (epoch=ns) and return the decoded JSON.

    Raises:
        AssertionError: If a statement reports an error.
    """
    params = {"q": q, "epoch": "ns"}
    if db is not None:
        params["db"] = db
    request = urllib.request.Request(
        f"{url}/query", data=urllib.parse.urlencode(params).encode(), method="POST"
    )
    if auth is not None:
        secret = base64.b64encode(f"{auth[0]}:{auth[1]}".encode()).decode()
        request.add_header("Authorization", f"Basic {secret}")
    with urllib.request.urlopen(request, timeout=30) as resp:
        result = _json_keeping_negative_zero(resp.read())
    for statement in result["results"]:
        assert "error" not in statement, statement["error"]
    return result


def influx_field_types(
    url: str, db: str, measurement: str | None = None, *, auth: tuple[str, str] | None = None
) -> dict[tuple[str, str], str]:
    """Map (measurement, field key) to the type InfluxDB stored the field as.

    Raises:
        AssertionError: If a field has more than one type (InfluxDB 1.x keeps
            field types per shard, so this can happen across shards).
    """
    source = "/.*/" if measurement is None else quote_identifier(measurement)
    types: dict[tuple[str, str], str] = {}
    result = influx_query(url, f"SHOW FIELD KEYS FROM {source}", db=db, auth=auth)
    for series in result["results"][0].get("series", []):
        for key, kind in series["values"]:
            where = (series["name"], key)
            assert where not in types, f"field {where} is stored as {types[where]} and {kind}"
            types[where] = kind
    return types


def influx_v1_events(
    url: str, db: str, measurement: str | None = None, *, auth: tuple[str, str] | None = None
) -> list[MetricEvent]:
    """Every point of `measurement` (of every measurement when None) in database `db`.

    Field values get the type InfluxDB stored them as (a float stored as
    ``1`` comes back as ``1.0``; ``-0`` as ``-0.0``), tags absent from a point
    are left out, and timestamps are in nanoseconds.

    Returns:
        The points as events, sorted by measurement, timestamp, then tags.
    """
    types = influx_field_types(url, db, measurement, auth=auth)
    source = "/.*/" if measurement is None else quote_identifier(measurement)
    result = influx_query(url, f"SELECT * FROM {source} GROUP BY *", db=db, auth=auth)
    events = []
    for series in result["results"][0].get("series", []):
        name = series["name"]
        tags = {k: v for k, v in series.get("tags", {}).items() if v != ""}
        keys = series["columns"][1:]
        for timestamp, *values in series["values"]:
            fields = {
                key: _TYPES[types[(name, key)]](value)
                for key, value in zip(keys, values, strict=True)
                if value is not None
            }
            events.append(  # what the server stored, whatever its time
                MetricEvent(name, tags, fields, timestamp_ns=timestamp, before_2001=True)
            )
    return sorted(events, key=lambda e: (e.measurement, e.timestamp_ns, sorted(e.tags.items())))


def vm_regex(prefix: str) -> str:
    """A VictoriaMetrics ``__name__`` regex matching names that start with `prefix`."""
    special = set("\\.^$|?*+()[]{}")
    return "".join("\\\\" + c if c in special else c for c in prefix) + ".*"


def _vm_export(url: str, metric_regex: str) -> list[Sample]:
    urllib.request.urlopen(f"{url}/internal/force_flush", timeout=10).read()
    body = urllib.parse.urlencode({"match[]": f'{{__name__=~"{metric_regex}"}}'}).encode()
    with urllib.request.urlopen(f"{url}/api/v1/export", data=body, timeout=30) as resp:
        text = resp.read().decode()
    samples = []
    for line in text.splitlines():
        series = json.loads(line)
        labels = dict(series["metric"])
        name = labels.pop("__name__")
        for ts, value in zip(series["timestamps"], series["values"], strict=True):
            samples.append((name, tuple(sorted(labels.items())), ts, float(value)))
    return sorted(samples)


def vm_samples(
    url: str, metric_regex: str, expected: int | None = None, *, timeout: float = 30.0
) -> list[Sample]:
    """The samples of the series whose name matches `metric_regex`, sorted.

    VictoriaMetrics makes what it acknowledged searchable after
    ``/internal/force_flush``, which every read calls first.

    Args:
        url: VictoriaMetrics' base URL.
        metric_regex: A regex for ``__name__`` (see `vm_regex`).
        expected: Poll until at least this many samples are there (or the
            deadline passes); None reads once.
        timeout: Seconds to poll for.
    """
    deadline = time.monotonic() + timeout
    while True:
        samples = _vm_export(url, metric_regex)
        if expected is None or len(samples) >= expected or time.monotonic() > deadline:
            return samples
        time.sleep(0.2)


def vm_events(
    url: str, measurement: str, expected: int | None = None, *, timeout: float = 30.0
) -> list[MetricEvent]:
    """The events of `measurement` in VictoriaMetrics, rebuilt from its series.

    Each series ``measurement_field`` holds one field; the samples of one tag
    set and timestamp form one event, with float fields and the timestamp
    in whole milliseconds (as nanoseconds).

    Args:
        url: VictoriaMetrics' base URL.
        measurement: The measurement (the series names' prefix, before ``_``).
        expected: Poll until at least this many events are there (or the
            deadline passes); None reads once.
        timeout: Seconds to poll for.

    Returns:
        The events, sorted by timestamp, then tags.
    """
    prefix = f"{measurement}_"
    deadline = time.monotonic() + timeout
    while True:
        grouped: dict[tuple[tuple[tuple[str, str], ...], int], dict[str, float]] = {}
        for name, labels, ts, value in _vm_export(url, vm_regex(prefix)):
            grouped.setdefault((labels, ts), {})[name[len(prefix) :]] = value
        if expected is None or len(grouped) >= expected or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    events = [
        MetricEvent(measurement, tags=dict(labels), fields=fields, timestamp_ns=ts * 1_000_000)
        for (labels, ts), fields in grouped.items()
    ]
    return sorted(events, key=lambda e: (e.timestamp_ns, sorted(e.tags.items())))
