"""The Sink contract, checked for every sink the project ships.

Each case builds a sink and reads back what it delivered. The same checks run
for all of them: the protocol's members, delivery through an EventStreamer
with exact accounting, the shared-encoding rule (prepare does no I/O), health
probes and idempotent close.
"""

from __future__ import annotations

import io
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

import metricstream as ms
from metricstream.sinks import ConsoleSink, JsonLinesSink, Sink
from metricstream.sinks.jsonl import read_events
from metricstream.testing import FaultySink, InMemorySink

from . import servers
from .influx_readback import influx_v1_events, vm_events


@dataclass
class SinkCase:
    """How to build one kind of sink and read back what it delivered."""

    id: str
    make: Callable[[Path, str], Sink]
    read_back: Callable[[Sink, Path, str], list[ms.MetricEvent]]
    requires: Callable[[], None] | None = None
    """Checks that the destination's server answers (the case is then marked ``servers``)."""
    field_types: tuple[str, ...] = ("float", "int", "bool", "str")
    step_ns: int = 1000
    """Nanoseconds between the events' timestamps (a destination's resolution)."""


def _console_make(_tmp: Path, _tag: str) -> Sink:
    return ConsoleSink(io.StringIO(), format="line", name="console")


def _console_read(sink: Sink, _tmp: Path, _tag: str) -> list[ms.MetricEvent]:
    stream = sink.stream  # type: ignore[attr-defined]
    return ms.parse_lines(stream.getvalue())


def _jsonl_make(tmp: Path, _tag: str) -> Sink:
    return JsonLinesSink(tmp / "events.jsonl")


def _jsonl_zstd_make(tmp: Path, _tag: str) -> Sink:
    return JsonLinesSink(tmp / "events.jsonl.zst", name="jsonl-zstd")


def _jsonl_read(sink: Sink, _tmp: Path, _tag: str) -> list[ms.MetricEvent]:
    path = sink.path  # type: ignore[attr-defined]
    return list(read_events(path)) if path.exists() else []


def _memory_read(sink: Sink, _tmp: Path, _tag: str) -> list[ms.MetricEvent]:
    return list(sink.events)  # type: ignore[attr-defined]


def _influx_v1_make(_tmp: Path, tag: str) -> Sink:
    from metricstream.sinks.influxdb import InfluxDBSink

    return InfluxDBSink(
        servers.INFLUXDB_V1_URL, api="v1", database="metricstream_test", name="influxdb-v1"
    )


def _influx_v1_read(_sink: Sink, _tmp: Path, tag: str) -> list[ms.MetricEvent]:
    return influx_v1_events(servers.INFLUXDB_V1_URL, "metricstream_test", f"contract_{tag}")


def _vm_make(_tmp: Path, _tag: str) -> Sink:
    from metricstream.sinks.influxdb import InfluxDBSink

    return InfluxDBSink(
        servers.VM_URL,
        api="v2",
        org="metricstream",
        bucket="metricstream",
        token="unused",
        name="influxdb-v2",
    )


def _vm_read(_sink: Sink, _tmp: Path, tag: str) -> list[ms.MetricEvent]:
    return vm_events(servers.VM_URL, f"contract_{tag}")


CASES = [
    SinkCase("memory", lambda _t, _g: InMemorySink(), _memory_read),
    SinkCase("faulty-ok", lambda _t, _g: FaultySink(), _memory_read),
    SinkCase("console", _console_make, _console_read),
    SinkCase("jsonl", _jsonl_make, _jsonl_read),
    SinkCase("jsonl-zstd", _jsonl_zstd_make, _jsonl_read),
    SinkCase(
        "influxdb-v1",
        _influx_v1_make,
        _influx_v1_read,
        requires=lambda: servers.require_url("InfluxDB 1.6", servers.INFLUXDB_V1_URL),
    ),
    SinkCase(
        "influxdb-v2",
        _vm_make,
        _vm_read,
        requires=lambda: servers.require_url("VictoriaMetrics", servers.VM_URL),
        # VictoriaMetrics stores every number as a float64, at millisecond resolution.
        field_types=("float",),
        step_ns=1_000_000,
    ),
]


def make_events(
    tag: str, count: int, field_types: tuple[str, ...], step_ns: int = 1000
) -> list[ms.MetricEvent]:
    base = 1_700_000_000_000_000_000
    events = []
    for i in range(count):
        event = ms.MetricEvent(
            f"contract_{tag}",
            tags={"host": f"h{i % 3}", "seq": str(i)},
            timestamp_ns=base + i * step_ns,
        )
        if "float" in field_types:
            event.with_field("f", i + 0.25)
        if "int" in field_types:
            event.with_field("n", i)
        if "bool" in field_types:
            event.with_field("ok", i % 2 == 0)
        if "str" in field_types:
            event.with_field("s", f'say "{i}"')
        events.append(event)
    return events


@pytest.fixture(
    params=[
        pytest.param(c, id=c.id, marks=[pytest.mark.servers] if c.requires else []) for c in CASES
    ]
)
def case(request: pytest.FixtureRequest) -> SinkCase:
    chosen: SinkCase = request.param
    if chosen.requires is not None:
        chosen.requires()
    return chosen


@pytest.fixture
def tag() -> str:
    return uuid.uuid4().hex[:12]


@pytest.fixture
def built(case: SinkCase, tmp_path: Path, tag: str) -> Iterator[Sink]:
    sink = case.make(tmp_path, tag)
    yield sink
    sink.close()


class TestSinkContract:
    """Every sink: the protocol, exact delivery through a streamer, probes and close."""

    def test_it_follows_the_sink_protocol(self, built: Sink) -> None:
        assert isinstance(built, Sink)
        assert isinstance(built.name, str)
        assert built.name

    def test_events_sent_through_a_streamer_arrive_exactly_and_are_counted(
        self, case: SinkCase, built: Sink, tmp_path: Path, tag: str
    ) -> None:
        events = make_events(tag, 250, case.field_types, case.step_ns)
        streamer = ms.EventStreamer(
            [built], batch_size=100, flush_interval=0.05, register_atexit=False
        )
        assert streamer.send_many(e.copy() for e in events) == 250
        assert streamer.flush(30) is True
        health = streamer.health().sinks[built.name]
        assert (
            health.events_accepted,
            health.events_written,
            health.events_dropped,
            health.pending,
        ) == (250, 250, 0, 0)
        streamer.shutdown(timeout=10)
        received = case.read_back(built, tmp_path, tag)
        key = lambda e: int(e.tags["seq"])  # noqa: E731
        assert sorted(received, key=key) == events

    def test_prepare_encodes_without_writing_anything(
        self, case: SinkCase, built: Sink, tmp_path: Path, tag: str
    ) -> None:
        events = make_events(tag, 3, case.field_types, case.step_ns)
        payload: Any = built.prepare(ms.EventBatch(events))
        assert case.read_back(built, tmp_path, tag) == []
        built.write(payload)
        received = case.read_back(built, tmp_path, tag)
        assert sorted(received, key=lambda e: int(e.tags["seq"])) == events

    def test_check_passes_when_the_destination_is_healthy(self, built: Sink) -> None:
        assert built.check() is None

    def test_close_is_idempotent(self, built: Sink) -> None:
        built.close()
        built.close()
