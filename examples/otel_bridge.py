"""An OpenTelemetry-instrumented function, exported through metricstream.

Run with ``python examples/otel_bridge.py [--orders 50]`` (needs the ``otel``
extra: ``pip install 'metricstream[otel]'``).

``checkout()`` knows only the OpenTelemetry API: it counts orders and records
their amounts in a histogram. The SDK's periodic reader exports every half
second through ``MetricStreamExporter``, so the same data points reach any
metricstream sink; here the console (line protocol) and
``otel_bridge.jsonl.zst`` in the current directory (a new file at each
run). At the end the totals read back from the file are printed beside the
ones the program counted.
"""

from __future__ import annotations

import argparse
import random
from pathlib import Path

from opentelemetry import metrics
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import PeriodicExportingMetricReader
from opentelemetry.sdk.resources import Resource

import metricstream as ms
from metricstream.integrations.otel import MetricStreamExporter
from metricstream.sinks.jsonl import read_events

OUTPUT = Path("otel_bridge.jsonl.zst")

meter = metrics.get_meter("shop.checkout")
orders = meter.create_counter("shop.orders", description="orders placed")
amounts = meter.create_histogram(
    "shop.order_amount",
    unit="EUR",
    explicit_bucket_boundaries_advisory=[10.0, 50.0, 100.0],
)


def checkout(amount: float, payment: str) -> None:
    """The instrumented code: plain OpenTelemetry API calls."""
    orders.add(1, {"payment": payment})
    amounts.record(amount, {"payment": payment})


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--orders", type=int, default=50)
    args = parser.parse_args()

    OUTPUT.unlink(missing_ok=True)  # a new file at each run: the sink appends
    streamer = ms.EventStreamer(
        [ms.sinks.ConsoleSink(format="line"), ms.sinks.JsonLinesSink(OUTPUT)],
        flush_interval=0.2,
    )
    exporter = MetricStreamExporter(streamer)
    provider = MeterProvider(
        metric_readers=[PeriodicExportingMetricReader(exporter, export_interval_millis=500)],
        resource=Resource.create({"service.name": "shop"}),
    )
    metrics.set_meter_provider(provider)

    rng = random.Random(3)
    placed: dict[str, int] = {}
    total = 0.0
    for _ in range(args.orders):
        payment = rng.choice(["card", "paypal", "invoice"])
        amount = round(rng.uniform(5, 150), 2)
        checkout(amount, payment)
        placed[payment] = placed.get(payment, 0) + 1
        total += amount
    provider.shutdown()  # exports what is left, then flushes the streamer
    streamer.shutdown(timeout=10)

    OUTPUT.with_name(f".{OUTPUT.name}.lock").unlink(missing_ok=True)  # the closed sink's lock
    events = list(read_events(OUTPUT))
    counted: dict[str, int] = {}
    read_total = 0.0
    for event in events:
        payment = event.tags["payment"]
        if event.measurement == "shop.orders":
            counted[payment] = counted.get(payment, 0) + int(event.fields["value"])
        else:
            read_total += float(event.fields["sum"])
    print(f"\n{len(events)} events in {OUTPUT}; exporter: {exporter.points_exported} points")
    for payment, count in sorted(placed.items()):
        print(f"orders paid by {payment:<8} placed {count:>3}  read back {counted[payment]:>3}")
    print(f"order amounts: placed {total:.2f} EUR, read back {read_total:.2f} EUR")


if __name__ == "__main__":
    main()
