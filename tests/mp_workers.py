"""Functions multiprocessing workers run in the tests, in a module light to import (``spawn``)."""

from __future__ import annotations

import os
from pathlib import Path

import metricstream as ms
from metricstream.sinks import JsonLinesSink

T0 = 1_700_000_000_000_000_000
_streamer: list[ms.EventStreamer] = []


def start_streamer(directory: str) -> None:
    """A worker's initializer: its own streamer, writing ``DIRECTORY/events.PID.jsonl.zst``."""
    path = Path(directory) / f"events.{os.getpid()}.jsonl.zst"
    _streamer[:] = [ms.EventStreamer([JsonLinesSink(path)], flush_interval=60, batch_size=10_000)]


def send(count: int) -> int:
    """Send `count` events from the worker's streamer, without flushing; return the pid."""
    _streamer[0].send_many(
        ms.event_from_sample("worker", i, timestamp_ns=T0 + i) for i in range(count)
    )
    return os.getpid()


def raise_invalid(key: str) -> None:
    """Raise an `InvalidEventError` with every attribute set, as a worker's task."""
    raise ms.InvalidEventError(key, f"{key!r} is bad", indexes=(3, 5), reason="limits")
