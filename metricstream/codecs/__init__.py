"""Codecs: events to bytes and back.

- `metricstream.codecs.lineprotocol`: InfluxDB line protocol (encode, parse);
- `metricstream.codecs.json`: the JSON form of an event (JSON Lines);
- `metricstream.codecs.compression`: the payload codecs (zstd, gzip);
- `metricstream.codecs.frames`: reading concatenated compressed frames.

Importing this package also connects `MetricEvent`'s encoding methods to
these codecs (see `metricstream.event.codecs`).
"""

from __future__ import annotations

from metricstream import event as _event
from metricstream.codecs import json, lineprotocol
from metricstream.codecs.compression import Compression

__all__ = ["Compression", "json", "lineprotocol"]

_event.codecs.encode_line = lineprotocol.encode_event
_event.codecs.parse_line = lineprotocol.parse_line
_event.codecs.encode_json = json.encode_event
_event.codecs.decode_json = json.decode_event
