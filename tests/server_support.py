"""Running event stores for the tests, and a plain-Python reference of their answers.

`InProcessServer` runs `create_app` under uvicorn on a thread, on a free
port, with the ingest the test gives (`SinkIngest`: a fake on top, durable
as soon as its JSON Lines sink wrote). `ServerProcess` runs the real
``metricstream serve`` in its own process.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from types import TracebackType
from typing import Any, Self

import httpx

from metricstream.contract import EventBatch
from metricstream.event import MetricEvent
from metricstream.server import create_app
from metricstream.sinks.jsonl import JsonLinesReader, JsonLinesSink

STARTUP_TIMEOUT = 60.0
"""Seconds a server may take to answer /readyz on a loaded machine."""


class Written:
    """A receipt of a batch that is already written."""

    def wait_durable(self, timeout: float) -> bool:
        del timeout
        return True


class SinkIngest:
    """A test ingest: each batch is written to the worker's archive file at once."""

    def __init__(self, config: Any, path: Path) -> None:
        self.sink = JsonLinesSink(path)
        self.lock = threading.Lock()

    def submit(self, events: Sequence[MetricEvent], batch_id: str) -> Written:
        del batch_id
        with self.lock:
            self.sink.write(self.sink.prepare(EventBatch(list(events))))
        return Written()

    def status(self) -> dict[str, Any]:
        return {"ready": True, "status": "ok"}

    def close(self, timeout: float) -> None:
        del timeout
        self.sink.close()


class InProcessServer:
    """`create_app` under uvicorn on a thread of this process (see the module documentation)."""

    def __init__(self, archive_dir: Path, **options: Any) -> None:
        import uvicorn

        from metricstream.server._serve import bind

        options.setdefault("ingest", SinkIngest)
        self.archive_dir = archive_dir
        self.app = create_app(archive_dir, **options)
        self.sock = bind("127.0.0.1", 0)
        self.url = f"http://127.0.0.1:{self.sock.getsockname()[1]}"
        config = uvicorn.Config(self.app, lifespan="on", log_level="warning", access_log=False)
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, args=([self.sock],), daemon=True)

    def __enter__(self) -> Self:
        self.thread.start()
        wait_ready(self.url)
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(30)
        self.sock.close()


class ServerProcess:
    """The real ``metricstream serve ARCHIVE_DIR --port 0 ...`` in its own process."""

    def __init__(self, archive_dir: Path, *args: str, env: dict[str, str] | None = None) -> None:
        self.archive_dir = archive_dir
        self.args = args
        self.env = {**os.environ, **(env or {})}
        self.process: subprocess.Popen[str] | None = None
        self.url = ""

    def start(self) -> Self:
        command = [sys.executable, "-m", "metricstream", "serve", str(self.archive_dir),
                   "--port", "0", *self.args]  # fmt: skip
        self.process = subprocess.Popen(
            command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=self.env
        )
        assert self.process.stdout is not None
        line = self.process.stdout.readline()
        found = re.search(r"listening on (http://\S+)", line)
        if found is None:
            self.process.kill()
            raise AssertionError(f"serve printed {line!r}; stderr: {self.process.stderr.read()}")
        self.url = found.group(1)
        wait_ready(self.url)
        return self

    def stop(self, number: int = signal.SIGTERM, timeout: float = 60.0) -> int:
        assert self.process is not None
        if self.process.poll() is None:
            self.process.send_signal(number)
        return self.process.wait(timeout)

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        kind: type[BaseException] | None,
        value: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(30)


def wait_ready(url: str, timeout: float = STARTUP_TIMEOUT) -> None:
    """Wait until the server at `url` answers /readyz with 200."""
    deadline = time.monotonic() + timeout
    last: object = None
    while time.monotonic() < deadline:
        try:
            response = httpx.get(url + "/readyz", timeout=5)
            if response.status_code == 200:
                return
            last = response.status_code
        except httpx.HTTPError as exc:
            last = exc
        time.sleep(0.05)
    raise AssertionError(f"{url} was not ready within {timeout} s: {last}")


def stored(archive_dir: Path) -> list[MetricEvent]:
    """Every event in the archive directory, read by the JSON Lines reader."""
    found: list[MetricEvent] = []
    for path in sorted(archive_dir.glob("events-*.jsonl.zst*")):
        found.extend(JsonLinesReader(path))
    return found
