"""What the optional compiled helpers of the encoders pay, beside the pure-Python code.

The same two measurements run in child processes, alternately with the
compiled helpers (`metricstream._compiled`) and with
``METRICSTREAM_PURE_PYTHON=1``:

- build + encode one event to line protocol (as in bench_encode), ns/event;
- send -> flush 500,000 samples into a zstd JSON Lines file (as in
  bench_throughput), events/s.

It reports nothing when the helpers are not built here.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys

sys.path.insert(0, os.path.dirname(__file__))

from _common import side_by_side, spread_of

from metricstream._compiled import PURE_PYTHON_VARIABLE, SPEEDUPS

ROUNDS = 3

_CHILD = """
import json, os, sys, tempfile
sys.path.insert(0, {here!r})
import bench_encode, bench_throughput
encode = min(bench_encode._per_call(lambda: bench_encode._build_event().to_influx_line())[0]
             for _ in range(5))
events = bench_throughput.make_samples()
with tempfile.TemporaryDirectory() as directory:
    wall, _ = bench_throughput.run_ours(os.path.join(directory, "c.jsonl.zst"), events)
print(json.dumps({{"encode_ns": encode, "jsonl_rate": len(events) / wall}}))
"""


def _run(pure: bool) -> dict[str, float]:
    env = {**os.environ, PURE_PYTHON_VARIABLE: "1" if pure else "0"}
    code = _CHILD.format(here=os.path.dirname(os.path.abspath(__file__)))
    done = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True
    )
    return json.loads(done.stdout.strip().splitlines()[-1])  # type: ignore[no-any-return]


def main() -> None:
    """Run both ways alternately and print each figure beside its pure-Python twin."""
    if SPEEDUPS is None:
        print("the compiled helpers are not built here (no C compiler): nothing to compare")
        return
    compiled: list[dict[str, float]] = []
    pure: list[dict[str, float]] = []
    for round_ in range(ROUNDS):
        order = [(compiled, False), (pure, True)]
        for into, is_pure in order if round_ % 2 == 0 else order[::-1]:
            into.append(_run(is_pure))
    print(f"\n(c) the compiled helpers beside the pure-Python code, medians of {ROUNDS} pairs")
    for key, title, unit, higher in (
        ("encode_ns", "build + encode one event to line protocol", "ns/event", False),
        ("jsonl_rate", "send -> flush into a zstd JSON Lines file", "events/s", True),
    ):
        ours = [run[key] for run in compiled]
        theirs = [run[key] for run in pure]
        ratios = [(o / t) if higher else (t / o) for o, t in zip(ours, theirs, strict=True)]
        side_by_side(
            f"{title}: compiled helpers",
            ("metricstream with the compiled helpers", statistics.median(ours)),
            ("metricstream, METRICSTREAM_PURE_PYTHON=1", statistics.median(theirs)),
            unit,
            higher_is_better=higher,
            spread="ratio " + spread_of(ratios),
            ratio=statistics.median(ratios),
        )


if __name__ == "__main__":
    main()
