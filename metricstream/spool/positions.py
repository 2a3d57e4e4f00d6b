"""Where each sink stands in a spool: the ``acks/`` files and the ``sinks`` registry.

A sink's position is the sequence number below which it is done with every
event; it is kept in ``acks/<sink>.ack`` as decimal digits and a newline.
Beside ``acks/``, the file ``sinks`` lists every sink that ever had a
position in the spool (one URL-quoted name per line), so that a position
file that went missing is told apart from a sink seen for the first time.

A saved position is trusted only when it is what a streamer writes: digits
and a newline, naming the start of a stored record, the end of the log, or
a place below the oldest stored event (records that every sink was done
with, or that a full spool dropped). Anything else cannot be trusted, and
the sink then starts from the oldest record still stored, so that nothing
is skipped (delivery is at least once): an empty or unreadable file, text
that is not such a number (``abc``, ``-5``, ``0x10``, ``12 ``), a number
inside a batch or beyond the end, the file of a registered sink gone, or
stored data with no position and no registry at all (``acks/`` deleted in a
spool older than the registry). A sink that is neither registered nor has
a file starts with the data to come.

Writes are atomic (a temporary file renamed into place) and, when
``durable``, forced to disk with their directory, so that a position on
disk never runs ahead of what a crash keeps.
"""

from __future__ import annotations

import contextlib
import os
import re
import urllib.parse
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from metricstream._files import fsync_directory

__all__ = ["ACKS_DIR", "REGISTRY_FILE", "PositionFiles", "Resolved", "parse", "resolve"]

ACKS_DIR = "acks"
"""The directory of the position files, inside the spool directory."""
REGISTRY_FILE = "sinks"
"""The file naming every sink that ever had a position, inside the spool directory."""

_SUFFIX = ".ack"
_POSITION = re.compile(rb"(0|[1-9][0-9]{0,18})\n?")


@dataclass(frozen=True)
class Resolved:
    """Where one sink starts, and why its saved position was not used (if it was not).

    Attributes:
        start: The sequence number the sink resumes at.
        untrusted: Why the saved position could not be trusted, or None.
        new: The sink had no position: it starts with the data to come.
    """

    start: int
    untrusted: str | None = None
    new: bool = False


class PositionFiles:
    """The position files and the registry of one spool directory.

    Args:
        directory: The spool directory.
        durable: Force each write, and its directory, to disk.
        file_mode: Permission bits of the files written.
        readonly: Never create anything (to inspect a spool in use).
    """

    def __init__(
        self,
        directory: Path,
        *,
        durable: bool = False,
        file_mode: int = 0o600,
        readonly: bool = False,
    ) -> None:
        self.acks = directory / ACKS_DIR
        self.registry = directory / REGISTRY_FILE
        self.durable = durable
        self.file_mode = file_mode
        if not readonly:
            self.acks.mkdir(mode=0o700, exist_ok=True)

    def path(self, sink: str) -> Path:
        """The position file of `sink`."""
        return self.acks / f"{urllib.parse.quote(sink, safe='')}{_SUFFIX}"

    def saved(self) -> dict[str, bytes | None]:
        """The raw content of every position file, by sink name (None: unreadable)."""
        found: dict[str, bytes | None] = {}
        if not self.acks.is_dir():
            return found
        for path in sorted(self.acks.glob(f"*{_SUFFIX}")):
            name = urllib.parse.unquote(path.name[: -len(_SUFFIX)])
            try:
                found[name] = path.read_bytes()
            except OSError:
                found[name] = None
        return found

    def registered(self) -> set[str] | None:
        """The sinks the registry names; None when the spool has no registry."""
        try:
            text = self.registry.read_text(encoding="ascii", errors="replace")
        except FileNotFoundError:
            return None
        except OSError:
            return set()
        return {urllib.parse.unquote(line) for line in text.splitlines() if line}

    def register(self, sinks: set[str]) -> None:
        """Add `sinks` to the registry (rewritten whole, atomically).

        Raises:
            OSError: If it cannot be written.
        """
        known = self.registered() or set()
        if sinks <= known:
            return
        lines = "".join(f"{urllib.parse.quote(name, safe='')}\n" for name in sorted(known | sinks))
        self._replace(self.registry, lines.encode("ascii"))

    def write(self, sink: str, seq: int) -> None:
        """Record that `sink` is done with every event below `seq`.

        Raises:
            OSError: If it cannot be written.
        """
        self._replace(self.path(sink), f"{seq}\n".encode("ascii"))

    def _replace(self, path: Path, data: bytes) -> None:
        temporary = path.with_name(path.name + ".tmp")
        fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, self.file_mode)
        try:
            os.write(fd, data)
            if self.durable:
                os.fsync(fd)
        finally:
            os.close(fd)
        try:
            os.replace(temporary, path)
        except OSError:
            with contextlib.suppress(OSError):
                os.unlink(temporary)
            raise
        if self.durable:
            fsync_directory(path.parent)


def parse(raw: bytes | None) -> int | None:
    """The position a file holds, or None when it is not exactly digits and a newline."""
    if raw is None:
        return None
    found = _POSITION.fullmatch(raw)
    return None if found is None else int(found.group(1))


def resolve(
    raw: bytes | None,
    *,
    exists: bool,
    registered: bool,
    first_seq: int,
    next_seq: int,
    starts_record: Callable[[int], bool],
) -> Resolved:
    """Decide where a sink starts from its saved position (see the module documentation).

    Args:
        raw: The content of its position file (None when missing or unreadable).
        exists: Whether its position file exists.
        registered: Whether the registry names it, or, for a spool without
            registry, whether stored data has no position at all beside it.
        first_seq: The oldest stored event's sequence number.
        next_seq: The sequence number the next appended event gets.
        starts_record: Tells whether a sequence number starts a stored record.
    """
    if not exists:
        if registered and first_seq < next_seq:
            return Resolved(first_seq, "its position file is missing")
        return Resolved(next_seq, new=True)
    position = parse(raw)
    if position is None:
        shown = "unreadable" if raw is None else f"holds {raw[:40]!r}"
        return Resolved(first_seq, f"its position file {shown}, not a sequence number")
    if position > next_seq:
        return Resolved(first_seq, f"its position {position} lies beyond the end ({next_seq})")
    if position <= first_seq or position == next_seq:
        return Resolved(max(position, first_seq))
    if not starts_record(position):
        return Resolved(first_seq, f"its position {position} lies inside a stored batch")
    return Resolved(position)
