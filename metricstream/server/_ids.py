"""Event ids for one worker: a generation taken once, and a counter.

The format is `metricstream.query._eventid`'s.

The generation is the number in ``.metricstream/generation``, raised by one
under an exclusive lock and synced to disk before the worker uses it, so no
two workers, and no worker started later, ever share one.
"""

from __future__ import annotations

import fcntl
import os
import threading
from pathlib import Path

from metricstream._compiled import SPEEDUPS
from metricstream.exceptions import ConfigError
from metricstream.query import format_event_id
from metricstream.query._eventid import COUNTER_LIMIT, GENERATION_LIMIT

_OFFSET = 1 << 63

__all__ = ["EventIds", "claim_generation"]


def claim_generation(state_dir: Path) -> int:
    """Take the next generation of the archive whose state is in `state_dir`.

    Raises:
        ConfigError: When every generation is used up or the file holds no number.
        OSError: If the file cannot be read or written.
    """
    state_dir.mkdir(parents=True, exist_ok=True)
    descriptor = os.open(state_dir / "generation", os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(descriptor, fcntl.LOCK_EX)
        text = os.pread(descriptor, 64, 0).decode("ascii", "replace").strip() or "0"
        if not text.isdigit():
            raise ConfigError("generation", f"{state_dir / 'generation'} holds {text!r}")
        generation = int(text) + 1
        if generation >= GENERATION_LIMIT:
            raise ConfigError("generation", "every generation of this archive is used up")
        os.ftruncate(descriptor, 0)
        os.pwrite(descriptor, f"{generation}\n".encode(), 0)
        os.fsync(descriptor)
    finally:
        os.close(descriptor)
    return generation


class EventIds:
    """Gives the events a worker receives their ids, in the order they arrive.

    Args:
        generation: This worker's generation (`claim_generation`).
    """

    def __init__(self, generation: int) -> None:
        format_event_id(0, generation, 1)  # checks the generation once
        self.generation = generation
        self._generation_hex = f"{generation:06x}"
        self._pattern = f"%016x{self._generation_hex}%010x".__mod__
        self._counter = 0
        self._lock = threading.Lock()

    def reserve(self, count: int) -> int:
        """Reserve `count` consecutive counters; return the first (unused ones are skipped).

        Raises:
            ConfigError: When this generation's counters are used up.
        """
        with self._lock:
            first = self._counter + 1
            if first + count >= COUNTER_LIMIT:
                raise ConfigError("counter", "this worker's event ids are used up; restart it")
            self._counter += count
        return first

    def format(self, timestamp_ns: int, counter: int) -> str:
        """The id of the event with this counter (a reserved one, at an int64 timestamp)."""
        # `format_event_id` without its checks: `reserve` and the timestamp's
        # checks already hold them, and this runs once per event.
        return f"{timestamp_ns + _OFFSET:016x}{self._generation_hex}{counter:010x}"

    def format_all(self, timestamps: list[int], first: int) -> list[str]:
        """The ids of events at `timestamps`, with the reserved counters from `first` on.

        The compiled helper (`metricstream._compiled`) writes them when it is
        built; `format_all_pure` is its twin.
        """
        if SPEEDUPS is not None:
            ids: list[str] = SPEEDUPS.event_ids(timestamps, self.generation, first)
            return ids
        return self.format_all_pure(timestamps, first)

    def format_all_pure(self, timestamps: list[int], first: int) -> list[str]:
        """`format_all` in Python."""
        shifted = [timestamp + _OFFSET for timestamp in timestamps]
        counters = range(first, first + len(timestamps))
        return list(map(self._pattern, zip(shifted, counters, strict=True)))
