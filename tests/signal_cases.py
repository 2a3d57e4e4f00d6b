"""Programs that call `send` from a signal handler, run by `tests/test_signals.py`, one per process.

Run one as ``python -m tests.signal_cases CASE``; it prints one JSON object.
A case that deadlocks never prints, and the test, which waits with a
timeout, fails.

The exact cases deliver a real signal (`signal.raise_signal`) at a chosen
line of the pipeline, found with a trace function on the main thread: the
handler then runs between two bytecodes of that line, as a timer's signal
would when it lands there, holding what that line holds.
"""

from __future__ import annotations

import signal
import sys
import threading
import time
from types import FrameType
from typing import Any

import orjson

import metricstream as ms
from metricstream.contract import EventBatch

T0 = 1_700_000_000_000_000_000


class GateSink:
    """A sink whose writes wait until `opened` is set; keeps the values it wrote."""

    name = "gate"

    def __init__(self) -> None:
        self.opened = threading.Event()
        self.values: list[object] = []

    def prepare(self, batch: EventBatch) -> list[object]:
        return [event.fields["value"] for event in batch.events]

    def write(self, payload: list[object]) -> None:
        self.opened.wait()
        self.values.extend(payload)

    def check(self) -> None:
        pass

    def close(self) -> None:
        self.opened.set()


def event(value: int) -> ms.MetricEvent:
    return ms.event_from_sample("m", value, timestamp_ns=T0 + value)


def signal_at(code_name: str, line_text: str, filename_end: str) -> threading.Event:
    """Raise SIGUSR1 once, on the main thread, when it runs the line holding `line_text`.

    Returns:
        An event set when the signal is raised.
    """
    raised = threading.Event()

    def local(frame: FrameType, why: str, arg: Any) -> Any:
        if why == "line" and not raised.is_set():
            import linecache

            text = linecache.getline(frame.f_code.co_filename, frame.f_lineno)
            if line_text in text:
                raised.set()
                signal.raise_signal(signal.SIGUSR1)
        return local

    def calls(frame: FrameType, why: str, arg: Any) -> Any:
        code = frame.f_code
        if code.co_name == code_name and code.co_filename.endswith(filename_end):
            return local
        return None

    sys.settrace(calls)
    return raised


def report(sink: GateSink, streamer: ms.EventStreamer, **extra: object) -> None:
    health = streamer.health().sinks["gate"]
    print(
        orjson.dumps(
            {
                "values": sorted(sink.values),  # type: ignore[type-var]
                "accepted": health.events_accepted,
                "written": health.events_written,
                "dropped": {k: v for k, v in health.dropped_by_reason.items() if v},
                "pending": health.pending,
                **extra,
            }
        ).decode()
    )


def blocked_send() -> None:
    """Under "block", the signal lands while `send` holds the space condition, waiting for room."""
    sink = GateSink()
    streamer = ms.EventStreamer(
        [sink], overflow="block", max_buffer=10, batch_size=5, register_atexit=False
    )
    signal.signal(signal.SIGUSR1, lambda signum, frame: streamer.send(event(1000)))
    for value in range(10):
        streamer.send(event(value))
    # Ten events fill max_buffer while the sink holds its first batch: the
    # eleventh waits for room, and the signal comes while it holds the
    # condition it waits on. The sink opens once the handler has run.
    raised = signal_at("_admit", "self._space.wait(", "pipeline.py")
    opener = threading.Thread(target=lambda: (raised.wait(), sink.opened.set()))
    opener.start()
    streamer.send(event(10))
    sys.settrace(None)
    opener.join()
    assert streamer.flush(30)
    report(sink, streamer, raised=raised.is_set())
    streamer.shutdown(5)


def health_while_closed() -> None:
    """The signal lands while `health()` holds the intake's lock, after shutdown."""
    sink = GateSink()
    sink.opened.set()
    streamer = ms.EventStreamer([sink], register_atexit=False)
    streamer.send(event(0))
    streamer.shutdown(5)
    sent: list[bool] = []
    signal.signal(signal.SIGUSR1, lambda signum, frame: sent.append(streamer.send(event(1))))
    raised = signal_at("health", "buffered = len(intake.buffer)", "pipeline.py")
    streamer.health()
    sys.settrace(None)
    report(sink, streamer, raised=raised.is_set(), answers=sent)


def wake_at_a_batch_boundary() -> None:
    """The signal lands inside the batcher's wake-up event (a batch of one is always complete)."""
    sink = GateSink()
    sink.opened.set()
    streamer = ms.EventStreamer([sink], batch_size=1, register_atexit=False)
    signal.signal(signal.SIGUSR1, lambda signum, frame: streamer.send(event(1)))
    raised = signal_at("set", "self._flag = True", "threading.py")
    streamer.send(event(0))
    sys.settrace(None)
    assert streamer.flush(30)
    report(sink, streamer, raised=raised.is_set())
    streamer.shutdown(5)


def timer_at_200_hz() -> None:
    """A 200 Hz timer sends from its handler while the main thread sends, blocked at times."""
    sink = GateSink()
    sink.opened.set()
    streamer = ms.EventStreamer(
        [sink], overflow="block", max_buffer=50, batch_size=10, register_atexit=False
    )
    handled = [0]

    def handler(signum: int, frame: FrameType | None) -> None:
        handled[0] += 1
        streamer.send(event(1_000_000 + handled[0]))

    original_write = sink.write

    def slow_write(payload: list[object]) -> None:
        time.sleep(0.002)
        original_write(payload)

    sink.write = slow_write  # type: ignore[method-assign]
    signal.signal(signal.SIGALRM, handler)
    signal.setitimer(signal.ITIMER_REAL, 0.005, 0.005)
    sent = 0
    while handled[0] < 300:
        streamer.send(event(sent))
        sent += 1
        if sent % 500 == 0:
            streamer.health()
            streamer.flush(0.01)
    signal.setitimer(signal.ITIMER_REAL, 0, 0)
    assert streamer.flush(30)
    health = streamer.health().sinks["gate"]
    print(
        orjson.dumps(
            {
                "expected": sent + handled[0],
                "accepted": health.events_accepted,
                "written": health.events_written,
                "distinct": len(set(sink.values)),
                "dropped": health.events_dropped,
            }
        ).decode()
    )
    streamer.shutdown(5)


CASES = {
    "blocked-send": blocked_send,
    "health-while-closed": health_while_closed,
    "wake-at-a-batch-boundary": wake_at_a_batch_boundary,
    "timer-at-200-hz": timer_at_200_hz,
}

if __name__ == "__main__":
    CASES[sys.argv[1]]()
