"""The asyncio face: async with, flush_async and shutdown_async never block the event loop.

A coroutine blocks the loop when it waits on the loop's own thread. The
stall tests prove that `flush_async` and `shutdown_async` do not, without a
clock: while one waits behind a sink whose writes hang until released, the
loop runs other tasks to completion and the wait is still pending, and the
blocking wait underneath runs on another thread. A control proves that the
same probe sees a loop that a blocking call does hold.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest

import metricstream as ms
from metricstream.testing import FaultySink, InMemorySink

from .support import FAST_RETRY, assert_balanced, sample

WAIT = 30.0
"""The timeout given to the waits under test: far longer than the probe takes on any machine."""


def dead_streamer() -> tuple[ms.EventStreamer, FaultySink, InMemorySink]:
    """A streamer with a sink whose writes hang until released and a healthy one; 50 events sent."""
    alive = InMemorySink("alive")
    hanging = FaultySink(then=FaultySink.hang(), name="dead")
    streamer = ms.EventStreamer(
        [hanging, alive], batch_size=10, register_atexit=False, retry=FAST_RETRY
    )
    streamer.send_many(sample(i) for i in range(50))
    return streamer, hanging, alive


async def loop_stays_free(waiting: Awaitable[bool]) -> tuple[bool, asyncio.Future[bool]]:
    """Start `waiting`, run other work on the loop, and say whether `waiting` is still pending.

    A wait that blocks the loop runs to its end (its timeout) at the first
    chance the loop gives it, before the other work goes on: it is done
    when the other work is.
    """
    task = asyncio.ensure_future(waiting)
    other = asyncio.ensure_future(asyncio.sleep(0, "other work"))
    for _ in range(20):
        await asyncio.sleep(0)
    assert await other == "other work"
    return not task.done(), task


def recording_threads(monkeypatch: pytest.MonkeyPatch, streamer: ms.EventStreamer) -> list[int]:
    """Record the thread of every call to the streamer's blocking `flush` and `shutdown`."""
    threads: list[int] = []
    for name in ("flush", "shutdown"):
        blocking: Callable[..., bool] = getattr(streamer, name)

        def recorded(*args: Any, _blocking: Callable[..., bool] = blocking, **kwargs: Any) -> bool:
            threads.append(threading.get_ident())
            return _blocking(*args, **kwargs)

        monkeypatch.setattr(streamer, name, recorded)
    return threads


class TestStall:
    """Flushing and shutting down behind a dead sink never block the event loop."""

    def test_the_loop_runs_other_tasks_while_flush_async_waits(
        self, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        streamer, hanging, alive = dead_streamer()
        threads = recording_threads(monkeypatch, streamer)

        async def main() -> tuple[bool, bool, list[int]]:
            free, flushing = await loop_stays_free(streamer.flush_async(WAIT))
            hanging.release()
            return free, await flushing, [*threads]

        try:
            free, flushed, waited_on = asyncio.run(main())
        finally:
            hanging.release()
            streamer.shutdown(WAIT)
        assert (free, flushed) == (True, True)
        assert len(waited_on) == 1
        assert threading.get_ident() not in waited_on  # asyncio.run's loop runs on this thread
        assert (len(hanging.events), len(alive.events)) == (50, 50)

    def test_flush_async_neither_sleeps_nor_joins_on_the_loop_thread(
        self, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        # The probe above sees a wait that lasts until it ends; this sees a bounded one too.
        streamer, hanging, _ = dead_streamer()
        loop_thread: list[int] = []
        blocked: list[str] = []
        for owner, name in ((time, "sleep"), (threading.Thread, "join")):
            real = getattr(owner, name)

            def spy(*args: Any, _real: Any = real, _name: str = name, **kwargs: Any) -> Any:
                if threading.get_ident() in loop_thread:
                    blocked.append(_name)
                return _real(*args, **kwargs)

            monkeypatch.setattr(owner, name, spy)

        async def main() -> bool:
            loop_thread.append(threading.get_ident())
            try:
                _, flushing = await loop_stays_free(streamer.flush_async(WAIT))
                hanging.release()
                return await flushing
            finally:
                loop_thread.clear()

        try:
            assert asyncio.run(main()) is True
        finally:
            hanging.release()
            streamer.shutdown(WAIT)
        assert blocked == []

    def test_the_loop_runs_other_tasks_while_shutdown_async_waits(
        self, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        streamer, hanging, _ = dead_streamer()
        threads = recording_threads(monkeypatch, streamer)

        async def main() -> tuple[bool, bool]:
            free, stopping = await loop_stays_free(streamer.shutdown_async(WAIT))
            hanging.release()
            return free, await stopping

        try:
            free, delivered = asyncio.run(main())
        finally:
            hanging.release()
        assert (free, delivered) == (True, True)
        assert len(threads) == 1
        assert threading.get_ident() not in threads  # asyncio.run's loop runs on this thread
        health = streamer.health()
        assert [health.sinks[name].events_written for name in ("dead", "alive")] == [50, 50]

    def test_the_probe_sees_a_loop_held_by_a_blocking_call(self) -> None:
        streamer, hanging, _ = dead_streamer()

        async def flush_on_the_loop() -> bool:
            return streamer.flush(0.2)  # the mistake the async methods exist to avoid

        async def main() -> tuple[bool, bool]:
            free, flushing = await loop_stays_free(flush_on_the_loop())
            return free, await flushing

        try:
            assert asyncio.run(main()) == (False, False)
        finally:
            hanging.release()
            streamer.shutdown(WAIT)


class TestAsyncFace:
    """async with, flush_async and shutdown_async deliver like their blocking twins."""

    def test_async_with_delivers_and_shuts_down(self) -> None:
        sink = InMemorySink()

        async def main() -> tuple[ms.EventStreamer, bool]:
            async with ms.EventStreamer([sink], register_atexit=False, batch_size=7) as streamer:
                streamer.send_many(sample(i) for i in range(20))
                flushed = await streamer.flush_async(10)
            return streamer, flushed

        streamer, flushed = asyncio.run(main())
        health = streamer.health()
        assert (flushed, health.running, health.sinks["memory"].events_written) == (
            True,
            False,
            20,
        )
        assert [e.fields["value"] for e in sink.events] == list(range(20))

    def test_shutdown_async_keeps_its_deadline_and_counts_what_it_gave_up(self) -> None:
        streamer, _, alive = dead_streamer()
        delivered = asyncio.run(streamer.shutdown_async(0.3))
        health = streamer.health()
        assert delivered is False
        assert health.sinks["dead"].dropped_by_reason["shutdown"] == 50
        assert health.sinks["alive"].events_written == len(alive.events) == 50
        assert_balanced(health, sent=50)

    @pytest.mark.parametrize("timeout", [0, 0.05])
    def test_flush_async_returns_false_at_its_timeout(self, timeout: float) -> None:
        streamer, _, _ = dead_streamer()
        try:
            assert asyncio.run(streamer.flush_async(timeout)) is False
        finally:
            streamer.shutdown(0.3)


class TestTheDefaultExecutorIsNotNeeded:
    """flush_async and shutdown_async keep their deadlines while the loop's executor is busy."""

    def test_both_end_in_time_while_every_worker_of_the_default_executor_is_taken(self) -> None:
        async def main() -> tuple[bool, bool, bool]:
            loop = asyncio.get_running_loop()
            loop.set_default_executor(ThreadPoolExecutor(max_workers=1))
            release = threading.Event()
            busy = loop.run_in_executor(None, release.wait)  # the application's own long wait
            streamer, hanging, _ = dead_streamer()
            try:
                flushed = await asyncio.wait_for(streamer.flush_async(0.05), WAIT)
                delivered = await asyncio.wait_for(streamer.shutdown_async(0.3), WAIT)
                return flushed, delivered, busy.done()
            finally:
                hanging.release()
                release.set()
                await busy

        assert asyncio.run(main()) == (False, False, False)

    def test_the_wait_runs_in_the_callers_context_and_its_errors_reach_the_caller(self) -> None:
        sink = InMemorySink()
        streamer = ms.EventStreamer([sink], register_atexit=False, flush_interval=60)

        async def main() -> bool:
            with streamer.correlation("req-7"):
                streamer.send(sample(1))
                flushed = await streamer.flush_async(WAIT)
            with pytest.raises(ms.ConfigError):
                await streamer.shutdown_async(-1)
            return flushed

        try:
            assert asyncio.run(main()) is True
            assert [e.correlation_id for e in sink.events] == ["req-7"]
        finally:
            streamer.shutdown(5)
