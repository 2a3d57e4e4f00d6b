"""The `Sink` protocol: what the streamer needs from a destination.

A sink is any object with these members; it needs no base class::

    class PrintSink:
        name = "print"
        def prepare(self, batch): return batch.to_json_lines()
        def write(self, payload): print(payload)
        def check(self): pass
        def close(self): pass

Division of labour: the streamer batches, runs the threads, retries and
counts; a sink only encodes (`prepare`, CPU only) and performs I/O (`write`).
Sinks never batch, sleep or start threads.

`write` reports failure by raising `TransientSinkError` (the lane retries,
honouring ``retry_after``) or `PermanentSinkError` (the events are dropped
with its ``reason``). Any other exception is treated as transient.

A sink may also define ``inherit_compression(compression)``: the streamer
calls it once with its own ``compression`` option, and a sink whose user did
not choose a codec adopts it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

if TYPE_CHECKING:
    from metricstream.streamer.batch import EventBatch

__all__ = ["Sink"]


@runtime_checkable
class Sink(Protocol):
    """A destination for batches of events.

    Attributes:
        name: A name unique among the streamer's sinks; it keys health reports.
    """

    name: str

    def prepare(self, batch: EventBatch) -> Any:
        """Turn a batch into this sink's payload. CPU only: no I/O, no sleeping.

        ``batch.events`` is the list of events and ``batch.batch_id`` its id;
        ``batch.influx_bytes()`` and ``batch.json_lines_bytes()`` are encoded
        once per batch and shared between sinks.
        """
        ...

    def write(self, payload: Any) -> None:
        """Deliver one payload.

        Raises:
            TransientSinkError: The write may succeed if retried.
            PermanentSinkError: The write can never succeed.
        """
        ...

    def check(self) -> None:
        """Probe the destination; raise (any exception) when it is unhealthy."""
        ...

    def close(self) -> None:
        """Release connections and files. Called once, at shutdown."""
        ...
