"""A full disk under the spool: what the spool cannot take waits in memory, never given up.

Batches the spool cannot write stay in each lane's memory, up to
``max_buffer``, and are written once the sink is back; beyond that the
overflow policy applies (``overflow``). Nothing is ever dropped as
``retries_exhausted`` beside a spool. One test fills a real 3 MiB tmpfs,
mounted in a mount namespace of its own (``unshare``, without root where
user namespaces are allowed); the other makes the spool's file-write seam
(`write_all`, as `metricstream.spool.segments` calls it) fail with
``ENOSPC`` past a byte budget, which runs anywhere.
"""

from __future__ import annotations

import contextlib
import errno
import os
import shutil
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

import orjson
import pytest

import metricstream as ms
from metricstream.exceptions import TransientSinkError
from metricstream.spool import inspect_spool, segments
from metricstream.testing import InMemorySink

from .support import NO_REASONS, wait_until

ROOT = Path(__file__).parent.parent


class Gate(InMemorySink):
    """A sink that is down until `open` is set."""

    def __init__(self, name: str) -> None:
        super().__init__(name)
        self.open = threading.Event()

    def write(self, payload: ms.EventBatch) -> None:
        if not self.open.is_set():
            raise TransientSinkError("the database is down")
        super().write(payload)


def fill_up(directory: str) -> None:
    """Fill the file system of `directory` with a file of zeros until it has no room left."""
    os.makedirs(directory, exist_ok=True)
    path = os.path.join(directory, "filler")
    with open(path, "wb", buffering=0) as filler, contextlib.suppress(OSError):
        while True:
            filler.write(bytes(64 << 10))


def run(spool_dir: str, sent: int, max_buffer: int, pad: int) -> dict[str, Any]:
    """Send `sent` events to a dead sink over the spool, then revive it; report what happened."""
    sink = Gate("db")
    streamer = ms.EventStreamer(
        [sink],
        spool_dir=spool_dir,
        spool_fsync="never",
        batch_size=100,
        max_buffer=max_buffer,
        overflow="drop_newest",
        flush_interval=60,  # batches are cut when full: 100 events each
        retry=ms.RetryConfig(max_retries=1, initial_delay_ms=1, max_delay_ms=2),
        probe_interval=0.05,
        register_atexit=False,
    )
    buffer = streamer._pipeline.buffer
    for first in range(0, sent, 100):
        streamer.send_many(
            ms.MetricEvent("disk", fields={"i": first + n, "pad": os.urandom(pad).hex()})
            for n in range(100)
        )
        assert wait_until(lambda: not buffer)  # the batcher takes each batch before the next
    intake = streamer._pipeline.intake
    assert wait_until(lambda: intake.taken_through(sent))  # every batch reached the lane
    down = streamer.health().sinks["db"]
    sink.open.set()
    flushed = streamer.flush(120)
    up = streamer.health().sinks["db"]
    streamer.shutdown(10)
    left = inspect_spool(spool_dir).sinks.get("db")
    return {
        "left": None if left is None else (left.position, left.events),
        "down": down.to_dict(),
        "flushed": flushed,
        "up": up.to_dict(),
        "written": sorted(int(e.fields["i"]) for e in sink.events),  # type: ignore[call-overload]
    }


def check(report: dict[str, Any], sent: int, max_buffer: int, *, spooled: bool) -> None:
    """What a dead sink over a full disk must show, then deliver once it is back.

    With `spooled`, the spool took batches until the disk was full, and must
    have freed them and recorded the sink's position once it caught up.
    """
    down, up = report["down"], report["up"]
    overflow = {**NO_REASONS, "overflow": sent - max_buffer}
    assert down["dropped_by_reason"] == overflow
    assert (down["events_written"], down["pending"], down["spooled"]) == (0, max_buffer, 0)
    assert report["flushed"] is True
    assert up["dropped_by_reason"] == overflow
    assert (up["events_written"], up["pending"], up["spooled"]) == (max_buffer, 0, 0)
    assert report["written"] == list(range(max_buffer))
    if spooled:
        position, events = report["left"]
        assert (position > 0, events) == (True, 0)  # space came back, the position was written


class TestFullDisk:
    """Batches the spool cannot take wait in memory under the overflow policy."""

    @pytest.mark.parametrize("start", ["empty", "full"])
    def test_a_full_tmpfs_keeps_events_in_memory_not_retries_exhausted(
        self, tmp_path: Path, start: str
    ) -> None:
        """A 3 MiB tmpfs that fills during the run, or that is full before the streamer starts."""
        unshare = shutil.which("unshare")
        if unshare is None:
            pytest.skip("no unshare(1); the ENOSPC test beside this one covers the behaviour")
        small = tmp_path / "small"
        small.mkdir()
        flags = "-m" if os.geteuid() == 0 else "-rm"
        probe = subprocess.run(
            [unshare, flags, "sh", "-c", f"mount -t tmpfs -o size=1m tmpfs {small}"],
            capture_output=True,
            check=False,
        )
        if probe.returncode != 0:
            pytest.skip(f"cannot mount a tmpfs here: {probe.stderr.decode().strip()}")
        spool = str(small / "spool")
        code = (
            "import logging, orjson; logging.basicConfig(); "
            "from tests.test_spool_full_disk import fill_up, run; "
            + (f"fill_up({spool!r}); " if start == "full" else "")
            + f"print(orjson.dumps(run({spool!r}, 60_000, 45_000, 96)).decode())"
        )
        done = subprocess.run(
            [
                unshare,
                flags,
                "sh",
                "-c",
                f'mount -t tmpfs -o size=3m tmpfs {small} && exec "$0" -c "$1"',
                sys.executable,
                code,
            ],
            capture_output=True,
            timeout=600,
            check=False,
            cwd=ROOT,
        )
        assert done.returncode == 0, done.stderr.decode()[-3000:]
        assert b"No space left on device" in done.stderr
        report = orjson.loads(done.stdout.splitlines()[-1])
        check(report, 60_000, 45_000, spooled=start == "empty")

    @pytest.mark.parametrize("room", [0, 200_000], ids=["full at start", "fills up"])
    def test_enospc_at_the_write_seam_keeps_events_in_memory(
        self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, room: int
    ) -> None:
        budget = [room]
        refused: list[int] = []
        real_write_all = segments.write_all

        def write_all(fd: int, data: bytes) -> None:
            if len(data) > budget[0]:
                refused.append(len(data))
                raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
            budget[0] -= len(data)
            real_write_all(fd, data)

        monkeypatch.setattr(segments, "write_all", write_all)
        report = run(str(tmp_path / "spool"), 8_000, 6_000, 48)
        assert refused
        check(report, 8_000, 6_000, spooled=room > 0)
