"""What ``import metricstream`` costs a fresh interpreter, beside ``import prometheus_client``.

Each round starts two fresh interpreters, one per package (alternating which
goes first), and each measures its own import: the CPU time of the process
(``time.process_time``) and the wall time around the ``import`` statement.
Interpreter start-up is not counted. Medians over the rounds are reported;
the target (under 150 ms) is judged on the CPU time, which the other work
on a shared machine inflates less than the wall time. The modules each
import leaves loaded are counted too.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys

sys.path.insert(0, os.path.dirname(__file__))

from _common import alone, side_by_side, spread_of

ROUNDS = 20
TARGET_MS = 150.0
PROBE = """
import sys, time, json
before = set(sys.modules)
cpu, wall = time.process_time(), time.perf_counter()
import {module}
cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
print(json.dumps([cpu * 1000, wall * 1000, len(set(sys.modules) - before)]))
"""


def measure(module: str) -> tuple[float, float, int]:
    """(CPU ms, wall ms, modules loaded) of importing `module` in a fresh interpreter."""
    result = subprocess.run(
        [sys.executable, "-c", PROBE.format(module=module)],
        capture_output=True,
        text=True,
        check=True,
    )
    cpu, wall, modules = json.loads(result.stdout)
    return float(cpu), float(wall), int(modules)


def main() -> None:
    runs: dict[str, list[tuple[float, float, int]]] = {"metricstream": [], "prometheus_client": []}
    for number in range(ROUNDS):
        order = list(runs) if number % 2 == 0 else list(reversed(runs))
        for module in order:
            runs[module].append(measure(module))
    ours, peer = runs["metricstream"], runs["prometheus_client"]
    cpu_ours = statistics.median(run[0] for run in ours)
    cpu_peer = statistics.median(run[0] for run in peer)
    wall_ours = statistics.median(run[1] for run in ours)
    wall_peer = statistics.median(run[1] for run in peer)
    ratios = [p[0] / o[0] for o, p in zip(ours, peer, strict=True)]
    side_by_side(
        f"import in a fresh interpreter, CPU time (median of {ROUNDS})",
        ("import metricstream", cpu_ours),
        ("import prometheus_client", cpu_peer),
        "ms",
        higher_is_better=False,
        target=(f"< {TARGET_MS:.0f} ms", cpu_ours < TARGET_MS),
        spread=spread_of(ratios),
        key="import",
        ratio=statistics.median(ratios),
    )
    side_by_side(
        f"import in a fresh interpreter, wall time (median of {ROUNDS})",
        ("import metricstream", wall_ours),
        ("import prometheus_client", wall_peer),
        "ms",
        higher_is_better=False,
    )
    alone(
        "modules loaded by import metricstream (no sink, no client library)",
        ("modules", float(statistics.median(run[2] for run in ours))),
        "modules",
        note=f"prometheus_client loads {statistics.median(run[2] for run in peer):.0f}",
    )


if __name__ == "__main__":
    main()
