"""Running event stores for the tests, and a plain-Python reference of their answers.

`ServerProcess` runs the real ``metricstream serve`` in its own process, on
a free port (``--port 0``: it prints the address it listens on).
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING

import httpx

from metricstream.event import MetricEvent
from metricstream.sinks.jsonl import JsonLinesReader

if TYPE_CHECKING:  # typing.Self is new in Python 3.11
    from typing import Self

STARTUP_TIMEOUT = 60.0
"""Seconds a server may take to answer /readyz on a loaded machine."""


class ServerProcess:
    """The real ``metricstream serve ARCHIVE_DIR --port 0 ...`` in its own process."""

    def __init__(
        self,
        archive_dir: Path,
        *args: str,
        env: dict[str, str] | None = None,
        new_session: bool = False,
    ) -> None:
        self.archive_dir = archive_dir
        self.args = args
        self.env = {**os.environ, **(env or {})}
        self.new_session = new_session
        self.process: subprocess.Popen[str] | None = None
        self.url = ""
        self.banner = ""
        token = self.env.get("METRICSTREAM_SERVE_TOKEN")
        self.headers = {"Authorization": f"Bearer {token}"} if token else {}

    def start(self) -> Self:
        command = [sys.executable, "-m", "metricstream", "serve", str(self.archive_dir),
                   "--port", "0", *self.args]  # fmt: skip
        self.process = subprocess.Popen(
            command,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=self.env,
            start_new_session=self.new_session,
        )
        assert self.process.stdout is not None
        line = self.banner = self.process.stdout.readline()
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

    def interrupt_group(self, timeout: float = 60.0) -> int:
        """Ctrl-C as a terminal sends it: SIGINT to every process of the group (`new_session`)."""
        assert self.process is not None
        assert self.new_session
        os.killpg(self.process.pid, signal.SIGINT)
        return self.process.wait(timeout)

    def output(self, timeout: float = 60.0) -> tuple[str, str]:
        """What the stopped process wrote after its first line: (stdout, stderr)."""
        assert self.process is not None
        return self.process.communicate(timeout=timeout)

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        kind: type[BaseException] | None,
        value: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        if self.process is None:
            return
        if self.new_session:  # the workers too: they are in the group
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGKILL)
        if self.process.poll() is None:
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


def stored(server: ServerProcess) -> list[MetricEvent]:
    """Every event in the server's archive, read by the JSON Lines reader.

    A read of the server comes first: it answers once the archive holds
    everything the server acknowledged.
    """
    httpx.get(server.url + "/stats", headers=server.headers, timeout=60).raise_for_status()
    found: list[MetricEvent] = []
    for path in sorted(server.archive_dir.glob("events-*.jsonl.zst*")):
        found.extend(JsonLinesReader(path))
    return found
