"""What runs where: ``import metricstream`` needs nothing POSIX-only; file locks say what they need.

Windows has no ``fcntl`` and no ``os.fork``. A subprocess takes them away
(``sys.modules["fcntl"] = None``, which makes importing it fail, and ``del
os.fork``) before importing metricstream, and checks what works and what
says clearly that it cannot.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import orjson

WITHOUT_POSIX = textwrap.dedent(
    """
    import os, sys
    sys.modules["fcntl"] = None
    del os.fork, os.register_at_fork
    import orjson
    import metricstream as ms
    from metricstream.testing import InMemorySink

    found = {"fcntl imported": sys.modules.get("fcntl") is not None}
    memory = InMemorySink()
    streamer = ms.EventStreamer([memory], register_atexit=False)
    streamer.send(ms.event_from_sample("cpu", 0.5))
    found["flushed"] = streamer.flush(10)
    found["delivered"] = len(memory.events)
    streamer.shutdown(5)
    directory = sys.argv[1]
    try:
        ms.sinks.JsonLinesSink(os.path.join(directory, "events.jsonl"))
    except ms.ConfigError as exc:
        found["jsonl"] = str(exc)
    try:
        ms.EventStreamer([InMemorySink()], spool_dir=os.path.join(directory, "spool"))
    except ms.ConfigError as exc:
        found["spool"] = str(exc)
    print(orjson.dumps(found).decode())
    """
)


class TestWithoutPosix:
    """On a platform without fcntl and fork, the package imports and streams; locks refuse."""

    def test_import_and_stream_work_and_file_locks_say_why_not(self, tmp_path: Path) -> None:
        done = subprocess.run(
            [sys.executable, "-c", WITHOUT_POSIX, str(tmp_path)],
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        assert done.returncode == 0, done.stderr
        found = orjson.loads(done.stdout)
        assert (found["fcntl imported"], found["flushed"], found["delivered"]) == (False, True, 1)
        for option in ("jsonl", "spool"):
            assert "locking a file needs fcntl, which this platform lacks" in found[option]
            assert "POSIX systems (Linux, macOS)" in found[option]
        assert found["jsonl"].startswith("path: ")
        assert found["spool"].startswith("spool_dir: ")
