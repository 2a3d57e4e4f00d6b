"""A worker's place in the archive: its slot (which archive file it writes) and its generation.

Each worker takes the lowest free slot: ``.metricstream/workers/<slot>.lock``,
held under an exclusive lock for as long as the worker runs, so a worker
that restarts takes the slot (and the archive file) of the one that died.
The lock file holds the worker's generation, which tells other workers
whether the generation of a claim still runs (`generation_alive`).
"""

from __future__ import annotations

import contextlib
import fcntl
import os
from dataclasses import dataclass
from pathlib import Path

from metricstream.server._ids import claim_generation

__all__ = ["MAX_SLOTS", "Slot", "claim_slot", "generation_alive"]

MAX_SLOTS = 256
"""The most workers that may write one archive at once."""


@dataclass
class Slot:
    """A worker's slot and generation; `release` gives the slot back.

    Attributes:
        index: The slot (the archive file is ``events-<index>.jsonl.zst``).
        generation: This worker's generation.
    """

    index: int
    generation: int
    descriptor: int

    def release(self) -> None:
        """Unlock the slot (closing the file releases the lock)."""
        if self.descriptor >= 0:
            os.close(self.descriptor)
            self.descriptor = -1


def _workers(state_dir: Path) -> Path:
    found = state_dir / "workers"
    found.mkdir(parents=True, exist_ok=True)
    return found


def claim_slot(state_dir: Path) -> Slot:
    """Take the lowest free slot and a new generation.

    Raises:
        RuntimeError: When every slot is taken.
        OSError: If the state directory cannot be written.
    """
    workers = _workers(state_dir)
    for index in range(MAX_SLOTS):
        descriptor = os.open(workers / f"{index}.lock", os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(descriptor)
            continue
        generation = claim_generation(state_dir)
        os.ftruncate(descriptor, 0)
        os.pwrite(descriptor, f"{generation}\n".encode(), 0)
        return Slot(index, generation, descriptor)
    raise RuntimeError(f"all {MAX_SLOTS} worker slots of {state_dir} are taken")


def generation_alive(state_dir: Path, generation: int) -> bool:
    """True when a running worker holds a slot under `generation`."""
    for path in _workers(state_dir).glob("*.lock"):
        with contextlib.suppress(OSError), open(path, "rb") as handle:
            if handle.read(64).strip() != str(generation).encode():
                continue
            try:
                fcntl.flock(handle.fileno(), fcntl.LOCK_SH | fcntl.LOCK_NB)
            except BlockingIOError:
                return True
            return False
    return False
