"""Work handed to a thread at exit still runs when the interpreter refuses new threads."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import threading

import pytest

from metricstream import _threads


class TestStartDaemon:
    """`start_daemon` starts a thread, or runs the work here while the interpreter finalizes."""

    def test_a_thread_is_started_and_runs_the_work(self) -> None:
        done: list[str] = []
        thread = _threads.start_daemon(done.append, "ran", name="t")
        assert thread is not None
        thread.join(30)
        assert done == ["ran"]
        assert thread.daemon

    def test_while_finalizing_the_work_runs_on_the_calling_thread(
        self, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        def refuse(self: threading.Thread) -> None:
            raise RuntimeError("can't create new thread at interpreter shutdown")

        monkeypatch.setattr(threading.Thread, "start", refuse)
        ran_on: list[threading.Thread] = []
        assert _threads.start_daemon(lambda: ran_on.append(threading.current_thread())) is None
        assert ran_on == [threading.current_thread()]


class TestExitDelivers:
    """A streamer left open delivers at exit, whichever Python runs it."""

    def test_events_pending_at_exit_reach_the_file(self, tmp_path: object) -> None:
        out = f"{tmp_path}/exit.jsonl"
        script = textwrap.dedent(
            f"""
            import metricstream as ms
            streamer = ms.EventStreamer([ms.sinks.JsonLinesSink({out!r})], flush_interval=60)
            for i in range(250):
                streamer.send(ms.event_from_sample("exit.test", i))
            """
        )
        subprocess.run([sys.executable, "-c", script], check=True, timeout=60)
        with open(out, encoding="utf-8") as lines:
            values = [line.count('"exit.test"') for line in lines]
        assert len(values) == 250
