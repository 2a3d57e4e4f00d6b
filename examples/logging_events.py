"""Log records as events: how many warnings and errors, from which logger, in which request.

Run with ``python examples/logging_events.py``.

Logging is set up as usual (messages to standard error), and an
``EventHandler`` on the root logger turns every WARNING and above into an
event as well: tags ``level`` and ``logger``, fields ``count`` and
``message_length``, and the correlation id of the request that logged it.
The events go to the console and to ``logging_events.jsonl.zst`` in the
current directory (a new file at each run); at the end they are tallied per level and logger.

A sink that fails makes metricstream log warnings of its own; those are
never turned into events (no feedback loop), as the run shows with a sink
that rejects its first write.
"""

from __future__ import annotations

import logging
from collections import Counter
from pathlib import Path

import metricstream as ms
from metricstream.integrations.logging import EventHandler
from metricstream.sinks.jsonl import read_events
from metricstream.testing import FaultySink

OUTPUT = Path("logging_events.jsonl.zst")

payments = logging.getLogger("shop.payments")
inventory = logging.getLogger("shop.inventory")


def handle_order(order_id: int) -> None:
    """Simulated request handling that logs as real code does."""
    payments.info("charging order %d", order_id)  # below WARNING: not an event
    if order_id % 3 == 0:
        payments.warning("card declined for order %d, retrying", order_id)
    if order_id % 4 == 0:
        inventory.error("order %d: item out of stock", order_id)
    if order_id == 5:
        try:
            raise TimeoutError("warehouse API timed out")
        except TimeoutError:
            inventory.exception("order %d: reservation failed", order_id)


def main() -> None:
    logging.basicConfig(level=logging.INFO, format="%(levelname)-8s %(name)s: %(message)s")
    flaky = FaultySink(["permanent"], then="ok", name="flaky")  # its failure is logged
    OUTPUT.unlink(missing_ok=True)  # a new file at each run: the sink appends
    streamer = ms.EventStreamer(
        [ms.sinks.ConsoleSink(format="pretty"), ms.sinks.JsonLinesSink(OUTPUT), flaky],
        flush_interval=0.2,
    )
    handler = EventHandler(streamer, level=logging.WARNING)
    logging.getLogger().addHandler(handler)
    try:
        for order_id in range(1, 9):
            with streamer.correlation(f"order-{order_id}"):
                handle_order(order_id)
        streamer.flush(timeout=10)
    finally:
        logging.getLogger().removeHandler(handler)
        streamer.shutdown(timeout=10)

    OUTPUT.with_name(f".{OUTPUT.name}.lock").unlink(missing_ok=True)  # the closed sink's lock
    events = list(read_events(OUTPUT))
    tally = Counter((e.tags["level"], e.tags["logger"]) for e in events)
    print(f"\n{len(events)} log events in {OUTPUT}:")
    for (level, logger), count in sorted(tally.items()):
        print(f"  {level:<8} {logger:<16} {count}")
    own = sum(1 for e in events if e.tags["logger"].startswith("metricstream"))
    print(f"events from metricstream's own log lines: {own}")


if __name__ == "__main__":
    main()
