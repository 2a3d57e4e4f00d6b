"""Run every benchmark, each figure beside its peer, and write the report.

Usage: ``python benchmarks/run.py [name ...]`` with names from: encode, compiled, send,
throughput, spool, memory, influx, scaling, instruments, aggregate, health, redis,
kafka, relay, query, server, import (default: all). ``make bench`` runs them all, writes
``benchmarks/results/REPORT.md`` with its charts and ``results.json``, then
copies the report's table of targets into the README
(``benchmarks/readme_targets.py``). A run of some of them writes the report
too, with their figures only. The influx and scaling benchmarks
need VictoriaMetrics, the kafka and relay ones Tansu (``scripts/services.sh start``;
the relay one Redis too),
the redis benchmark ``redis-server`` (or ``METRICSTREAM_REDIS_URL``).
"""

from __future__ import annotations

import importlib
import os
import sys
import time
import traceback

sys.path.insert(0, os.path.dirname(__file__))

import _report
from _common import CURRENT_BENCH, FIGURES, machine

BENCHMARKS = {
    "encode": "bench_encode",
    "compiled": "bench_compiled",
    "send": "bench_send",
    "throughput": "bench_throughput",
    "spool": "bench_spool",
    "memory": "bench_memory",
    "influx": "bench_influx",
    "scaling": "bench_scaling",
    "instruments": "bench_instruments",
    "aggregate": "bench_aggregate",
    "health": "bench_health",
    "redis": "bench_redis",
    "kafka": "bench_kafka",
    "relay": "bench_relay",
    "query": "bench_query",
    "server": "bench_server",
    "import": "bench_import",
}


def main(argv: list[str]) -> int:
    chosen = argv or list(BENCHMARKS)
    unknown = [name for name in chosen if name not in BENCHMARKS]
    if unknown:
        print(f"unknown benchmark(s): {', '.join(unknown)}; choose from {', '.join(BENCHMARKS)}")
        return 2
    host = machine()
    print(
        f"metricstream benchmarks on {host['cpu']}, {host['cores']} cores, "
        f"Python {host['python']}, load {host['load_average']}"
    )
    durations: dict[str, float] = {}
    failed: dict[str, str] = {}
    for name in chosen:
        started = time.perf_counter()
        print(f"\n=== {name} " + "=" * (70 - len(name)))
        CURRENT_BENCH[0] = name
        try:
            importlib.import_module(BENCHMARKS[name]).main()
        except Exception as exc:
            traceback.print_exc()
            failed[name] = f"{type(exc).__name__}: {exc}"
        durations[name] = time.perf_counter() - started
        print(f"  ({durations[name]:.1f} s)")
    print("\n=== targets " + "=" * 60)
    for figure, target, verdict in _report.target_rows(FIGURES):
        ratio = "" if figure.ratio is None else f" {figure.ratio:.2f}x"
        print(f"  {figure.bench:<12}{figure.title[:60]:<62}{ratio}  {target} {verdict.strip('*')}")
    path = _report.write(host, durations, failed)
    print(f"\nreport: {os.path.relpath(path)} ({sum(durations.values()) / 60:.1f} minutes)")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
