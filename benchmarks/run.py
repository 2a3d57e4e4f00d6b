"""Run every benchmark, each beside its peer, and print a summary of the targets.

Usage: ``python benchmarks/run.py [name ...]`` with names from: encode, send,
throughput, memory, influx, instruments, health, redis, kafka, query (default:
all). ``make bench`` runs them all; the influx benchmark needs VictoriaMetrics, the
kafka one Tansu (``scripts/services.sh start``), the redis benchmark ``redis-server``
(or ``METRICSTREAM_REDIS_URL``).
"""

from __future__ import annotations

import importlib
import os
import sys
import time

sys.path.insert(0, os.path.dirname(__file__))

BENCHMARKS = {
    "encode": "bench_encode",
    "send": "bench_send",
    "throughput": "bench_throughput",
    "memory": "bench_memory",
    "influx": "bench_influx",
    "instruments": "bench_instruments",
    "health": "bench_health",
    "redis": "bench_redis",
    "kafka": "bench_kafka",
    "query": "bench_query",
}


def main(argv: list[str]) -> int:
    chosen = argv or list(BENCHMARKS)
    unknown = [name for name in chosen if name not in BENCHMARKS]
    if unknown:
        print(f"unknown benchmark(s): {', '.join(unknown)}; choose from {', '.join(BENCHMARKS)}")
        return 2
    print(f"metricstream benchmarks on {os.cpu_count()} CPUs, Python {sys.version.split()[0]}")
    for name in chosen:
        started = time.perf_counter()
        print(f"\n=== {name} " + "=" * (70 - len(name)))
        importlib.import_module(BENCHMARKS[name]).main()
        print(f"  ({time.perf_counter() - started:.1f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
