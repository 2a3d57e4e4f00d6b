"""The seam between the endpoints that accept events and where events go.

An `Ingest` takes a request's events as one batch, all or nothing, and
gives a `Receipt` that tells when they are durable. Its implementation is
the streamer with its write-ahead spool (`StreamerIngest`): the archive
file of the worker and every ``--to`` sink receive the events through the
spool.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol

from metricstream.event import MetricEvent

__all__ = ["Ingest", "IngestBusyError", "Receipt"]


class IngestBusyError(Exception):
    """The spool cannot take the whole batch now; nothing of it was taken.

    Attributes:
        retry_after: Seconds to wait before trying again.
    """

    def __init__(self, message: str, retry_after: float) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class Receipt(Protocol):
    """What became of one batch."""

    def wait_durable(self, timeout: float) -> bool:
        """Wait until the batch is durable; True when it is, False at the timeout."""
        ...


class Ingest(Protocol):
    """Where accepted events go."""

    def submit(self, events: Sequence[MetricEvent], batch_id: str) -> Receipt:
        """Take the events as one batch (all or nothing).

        Raises:
            IngestBusyError: When the batch cannot be taken now.
        """
        ...

    def caught_up(self, timeout: float) -> bool:
        """Wait until the archive holds every event accepted so far; False at the timeout."""
        ...

    def status(self) -> dict[str, Any]:
        """What the ingest reports for ``/stats`` and ``/readyz`` (``ready``, ``status``...)."""
        ...

    def close(self, timeout: float) -> None:
        """Flush what was accepted, then stop."""
        ...
