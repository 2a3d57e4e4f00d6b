"""InfluxDB-compatible writes: line protocol in, InfluxDB's answers out.

``POST /write?db=&precision=`` (1.x) and ``POST /api/v2/write?bucket=&org=&precision=``
(2.x) take line protocol (gzip or zstd bodies too), parsed by
`metricstream.parse_lines`. Every valid line is stored, with an ``event_id``
field like posted events; the answer is 204, or 400 when a line is bad, in
InfluxDB's error shape (1.x ``{"error": ...}``, 2.x ``{"code": "invalid",
"message": ...}``) naming each bad line by its number (also in ``line``,
the first). A line that carries ``event_id`` is bad: the server sets it.

Precision: 1.x ``n``, ``u``, ``ms``, ``s``; 2.x ``ns``, ``us``, ``ms``,
``s`` (either spelling is taken on both). The database or bucket is
required, as InfluxDB requires it, and is not stored.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from metricstream.codecs.lineprotocol import parse_lines
from metricstream.event import MetricEvent
from metricstream.exceptions import LineProtocolError
from metricstream.server._errors import ApiError

__all__ = ["InfluxWrite", "read_influx"]

PRECISIONS = {"n": "ns", "ns": "ns", "u": "us", "us": "us", "ms": "ms", "s": "s"}
MAX_REPORTED = 10
"""The most bad lines an answer names."""


@dataclass
class InfluxWrite:
    """The events of a write's valid lines, and its bad lines.

    Attributes:
        version: 1 or 2 (which error shape to answer in).
        events: The valid lines' events, in order.
        errors: ``(line number, text, problem)`` of each bad line.
    """

    version: int
    events: list[MetricEvent] = field(default_factory=list)
    errors: list[tuple[int, str, str]] = field(default_factory=list)

    def error_body(self) -> dict[str, Any]:
        """The 400 answer, in the shape of the version's InfluxDB."""
        shown = [
            f"unable to parse '{text}': {problem} (line {line})"
            for line, text, problem in self.errors[:MAX_REPORTED]
        ]
        if len(self.errors) > MAX_REPORTED:
            shown.append(f"and {len(self.errors) - MAX_REPORTED} more bad lines")
        written = f"; {len(self.events)} valid lines were written"
        first = self.errors[0][0]
        if self.version == 1:
            return {"error": "partial write: " + "\n".join(shown) + written, "line": first}
        message = "failed to parse line protocol: errors encountered on line(s):\n"
        return {"code": "invalid", "message": message + "\n".join(shown) + written, "line": first}


def _target(params: dict[str, str], version: int) -> None:
    name = "db" if version == 1 else "bucket"
    if not params.get(name):
        message = "database is required" if version == 1 else "bucket is required"
        raise ApiError(400, message, name)


def read_influx(params: dict[str, str], body: bytes, arrival_ns: int, version: int) -> InfluxWrite:
    """Parse a write's body, line by line (see the module documentation).

    Raises:
        ApiError: 400 for a missing database or bucket or an unknown precision.
    """
    _target(params, version)
    given = params.get("precision", "ns") or "ns"
    if given not in PRECISIONS:
        raise ApiError(400, f"precision {given!r} is not one of n, ns, u, us, ms, s", "precision")
    precision = PRECISIONS[given]
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ApiError(400, f"the body is not UTF-8 text: {exc}") from None
    write = InfluxWrite(version)
    if "event_id" in text:
        _line_by_line(write, text, precision, arrival_ns)
        return write
    lines = text.split("\n")
    start = 0
    while start < len(lines):
        try:
            found = parse_lines("\n".join(lines[start:]), precision, arrival_ns)
        except LineProtocolError as exc:
            bad = start + exc.line - 1
            write.events += parse_lines("\n".join(lines[start:bad]), precision, arrival_ns)
            write.errors.append((bad + 1, exc.text, exc.problem))
            start = bad + 1
            continue
        write.events += found
        break
    return write


def _line_by_line(write: InfluxWrite, text: str, precision: str, arrival_ns: int) -> None:
    """The slow way, for a body that mentions ``event_id``: a line that sets it is bad."""
    for number, line in enumerate(text.split("\n"), start=1):
        try:
            found = parse_lines(line, precision, arrival_ns)
        except LineProtocolError as exc:
            write.errors.append((number, exc.text, exc.problem))
            continue
        for event in found:
            if "event_id" in event.fields or "event_id" in event.tags:
                write.errors.append((number, line.rstrip("\r"), "event_id is set by the server"))
            else:
                write.events.append(event)
