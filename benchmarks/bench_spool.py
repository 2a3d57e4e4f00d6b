"""What the write-ahead spool costs: send -> flush into a zstd JSON Lines file, with and without.

The same events (built before the clock starts) are sent to an
EventStreamer with a JsonLinesSink (zstd) and timed until ``flush()``
returns, four ways: without a spool, and with a spool (``spool_dir=``) in
each ``spool_fsync`` mode: ``"batch"`` (every appended batch forced to disk,
the default), ``"interval"`` (at most once a second) and ``"never"``. With a
spool every batch is appended to the spool (its JSON Lines, zstd level 1,
checksummed) before the sink gets it, and acknowledged after the write.

The four run in alternating order, ``ROUNDS`` times; medians are reported,
with the CPU seconds of the process per million events.
"""

from __future__ import annotations

import os
import shutil
import statistics
import sys
import tempfile

sys.path.insert(0, os.path.dirname(__file__))

from _common import side_by_side, spread_of
from bench_throughput import make_samples, run_ours

import metricstream as ms

EVENTS = 500_000
ROUNDS = 3
MODES = ("batch", "interval", "never")


def run(directory: str, events: list[ms.MetricEvent], mode: str | None) -> tuple[float, float]:
    """One run into a fresh file (and spool); return (wall s, CPU s)."""
    path = tempfile.mkdtemp(dir=directory)
    options = (
        {} if mode is None else {"spool_dir": os.path.join(path, "spool"), "spool_fsync": mode}
    )
    try:
        return run_ours(os.path.join(path, "events.jsonl.zst"), events, **options)
    finally:
        shutil.rmtree(path, ignore_errors=True)


def main() -> None:
    events = make_samples(EVENTS)
    configs: list[str | None] = [None, *MODES]
    runs: dict[str | None, list[tuple[float, float]]] = {config: [] for config in configs}
    with tempfile.TemporaryDirectory() as directory:
        run(directory, events[:50_000], "never")
        for round_ in range(ROUNDS):
            for config in configs if round_ % 2 == 0 else configs[::-1]:
                runs[config].append(run(directory, events, config))

    def rate(config: str | None) -> float:
        return statistics.median(EVENTS / wall for wall, _ in runs[config])

    def cpu(config: str | None) -> float:
        return statistics.median(c for _, c in runs[config]) / EVENTS * 1e6

    print(
        f"\n(e) send -> flush into a zstd JSON Lines file, {EVENTS:,} events, with and without "
        f"the spool, medians of {ROUNDS} alternating runs"
    )
    for mode in MODES:
        ratios = [
            base[0] / spooled[0] for spooled, base in zip(runs[mode], runs[None], strict=True)
        ]
        side_by_side(
            f"the spool's cost, spool_fsync={mode!r}",
            (f"metricstream with spool_dir=, spool_fsync={mode!r}", rate(mode)),
            ("metricstream without a spool", rate(None)),
            "events/s",
            higher_is_better=True,
            cpu=(cpu(mode), cpu(None)),
            spread="ratio " + spread_of(ratios),
            ratio=statistics.median(ratios),
            key=f"spool_{mode}",
        )


if __name__ == "__main__":
    main()
