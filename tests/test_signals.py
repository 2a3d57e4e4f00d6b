"""`send` from a signal handler: never a deadlock, never a lost or doubled event.

Each case runs in a process of its own (`tests/signal_cases.py`), since a
deadlock would hang the test run; a case that does not answer within
`DEADLINE` seconds failed. Three cases deliver the signal exactly where the
main thread holds a lock of the pipeline (waiting for room under
``"block"``; in `health()` after shutdown; inside the batcher's wake-up
event); the fourth is the reported one: a 200 Hz timer sending from its
handler while the main thread sends under ``"block"``.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import orjson
import pytest

ROOT = Path(__file__).resolve().parent.parent
DEADLINE = 60.0
"""Seconds after which a case is taken for deadlocked."""


def run_case(name: str) -> dict[str, object]:
    try:
        done = subprocess.run(
            [sys.executable, "-m", "tests.signal_cases", name],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=DEADLINE,
            check=False,
        )
    except subprocess.TimeoutExpired:
        pytest.fail(f"{name}: no answer in {DEADLINE} s: send() deadlocked in the signal handler")
    assert done.returncode == 0, done.stderr
    answer: dict[str, object] = orjson.loads(done.stdout)
    return answer


class TestSendFromASignalHandler:
    """The handler's event is delivered, or counted, once, whatever the signal interrupts."""

    def test_while_send_waits_for_room_under_block(self) -> None:
        assert run_case("blocked-send") == {
            "values": [*range(11), 1000],
            "accepted": 12,
            "written": 12,
            "dropped": {},
            "pending": 0,
            "raised": True,
        }

    def test_while_health_holds_the_intake_after_shutdown(self) -> None:
        assert run_case("health-while-closed") == {
            "values": [0],
            "accepted": 2,
            "written": 1,
            "dropped": {"shutdown": 1},
            "pending": 0,
            "raised": True,
            "answers": [False],
        }

    def test_while_send_wakes_the_batcher(self) -> None:
        assert run_case("wake-at-a-batch-boundary") == {
            "values": [0, 1],
            "accepted": 2,
            "written": 2,
            "dropped": {},
            "pending": 0,
            "raised": True,
        }

    def test_a_200_hz_timer_beside_a_blocked_sender(self) -> None:
        answer = run_case("timer-at-200-hz")
        expected = answer["expected"]
        assert answer == {
            "expected": expected,
            "accepted": expected,
            "written": expected,
            "distinct": expected,
            "dropped": 0,
        }
