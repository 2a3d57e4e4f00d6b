"""``overflow="block"`` with a spool: a dead sink never holds the application or another sink back.

A spooled lane keeps what it cannot take in memory on disk, so under
``"block"`` only a full spool makes `send` wait; and `send_batch`, which
may have to cut the events `send` queued before its own, waits no longer
than ``block_timeout`` for room in the spool.
"""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

import metricstream as ms
from metricstream.testing import FaultySink, InMemorySink

from .support import NO_REASONS, assert_balanced, sample

EVENTS = 50_000


class TestADeadSinkBehindASpool:
    """One dead sink, one healthy one, a spool and ``"block"``: send never stalls."""

    def test_send_returns_every_time_and_the_healthy_sink_gets_everything(
        self, make_streamer, tmp_path: Path
    ) -> None:
        dead = FaultySink(then="hang", name="dead")
        healthy = InMemorySink("healthy")
        streamer = make_streamer(
            [dead, healthy],
            spool_dir=tmp_path / "spool",
            overflow="block",
            max_buffer=1_000,
            batch_size=100,
            flush_interval=0.05,
        )
        answers: list[bool] = []

        def application() -> None:
            answers.extend(streamer.send(sample(i)) for i in range(EVENTS))

        sender = threading.Thread(target=application, daemon=True)
        sender.start()
        sender.join(60)
        assert not sender.is_alive(), f"send() stalled after {len(answers)} of {EVENTS} events"
        assert answers == [True] * EVENTS
        assert healthy.wait_for(EVENTS, timeout=60)
        assert [e.fields["value"] for e in healthy.events] == list(range(EVENTS))
        health = streamer.health()
        assert_balanced(health, EVENTS)
        stuck = health.sinks["dead"]
        assert (stuck.events_accepted, stuck.events_written) == (EVENTS, 0)
        assert stuck.dropped_by_reason == NO_REASONS
        assert stuck.pending + stuck.spooled == EVENTS
        assert stuck.pending <= 1_000 + 100  # in memory: max_buffer, and the payload in flight
        assert health.sinks["healthy"].events_written == EVENTS


class TestSendBatchBehindAFullSpool:
    """Cutting the events `send` queued before waits for the spool no longer than block_timeout."""

    def test_the_wait_for_room_ends_at_block_timeout_and_keeps_the_queued_events(
        self, make_streamer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        sink = InMemorySink()
        streamer = make_streamer(
            [sink],
            spool_dir=tmp_path / "spool",
            overflow="block",
            block_timeout=0.2,
            batch_size=100,
            flush_interval=60,
        )
        spool = streamer._pipeline.spool
        assert spool is not None
        # The spool has room when send_batch first looks, and none once it
        # cuts the events send() queued before (another writer filled it).
        answers = iter([False])
        monkeypatch.setattr(spool, "is_full", lambda: next(answers, True))
        for i in range(50):
            assert streamer.send(sample(i)) is True
        outcome: list[BaseException | ms.BatchReceipt] = []

        def service() -> None:
            try:
                outcome.append(streamer.send_batch([sample(100), sample(101)]))
            except BaseException as exc:
                outcome.append(exc)

        caller = threading.Thread(target=service, daemon=True)
        caller.start()
        caller.join(30)
        stalled = caller.is_alive()
        monkeypatch.setattr(spool, "is_full", lambda: False)  # let a stalled caller go
        caller.join(30)
        assert not stalled, "send_batch waited past block_timeout for the spool"
        [error] = outcome
        assert isinstance(error, ms.BackpressureError)
        assert str(error).startswith("cannot take 2 events now: the spool is full")
        assert streamer.flush(30) is True
        assert [e.fields["value"] for e in sink.events] == list(range(50))
        assert_balanced(streamer.health(), 50)
