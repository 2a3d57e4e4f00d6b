"""Helpers shared by the benchmarks: timing, printing side by side, recording figures.

Every comparison printed with `side_by_side` (or a figure without a peer,
with `alone`) is kept in `FIGURES`, and every curve given to
`record_curve` in `CURVES`; ``benchmarks/run.py`` writes them into
``benchmarks/results/REPORT.md`` and its charts.

A target is judged only through `side_by_side` or `alone` (their
``target=``): the one place that prints a verdict also records it, so a
missed target cannot be printed without reaching the report's table of
targets (``tests/test_benchmark_report.py`` checks that no benchmark prints
a verdict of its own).
"""

from __future__ import annotations

import os
import platform
import resource
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import metricstream as ms

Target = tuple[str, bool]
"""A target as text, and whether the figure meets it."""

Targets = Target | Sequence[Target] | None
"""What ``target=`` takes: one target, several (each judged), or none."""

ROUTES = [f"/api/v1/resource/{n}" for n in range(50)]


class NullSink:
    """Accepts everything instantly (for benchmarks of the application's side)."""

    name = "null"

    def prepare(self, batch: ms.EventBatch) -> int:
        return len(batch)

    def write(self, payload: int) -> None:
        pass

    def check(self) -> None:
        pass

    def close(self) -> None:
        pass


def send_samples(streamer: ms.EventStreamer, count: int) -> None:
    """Build and send `count` typical samples (3 tags, a float), as an application would."""
    send, sample = streamer.send, ms.event_from_sample
    for i in range(count):
        send(
            sample(
                "http.latency_ms",
                i * 0.5,
                {"route": ROUTES[i % 50], "method": "GET", "host": "web-1"},
            )
        )


def median_ns_per_call(fn: Callable[[int], None], calls: int, repeats: int = 7) -> float:
    """Run ``fn(calls)`` `repeats` times; return the median ns per call."""
    results = []
    for _ in range(repeats):
        started = time.perf_counter_ns()
        fn(calls)
        results.append((time.perf_counter_ns() - started) / calls)
    return statistics.median(results)


def timed(fn: Callable[[], object]) -> tuple[float, float]:
    """Run `fn`; return (wall seconds, CPU seconds of this process, every thread)."""
    wall, cpu = time.perf_counter(), time.process_time()
    fn()
    return time.perf_counter() - wall, time.process_time() - cpu


def peak_rss_mib() -> float:
    """This process's peak resident set size so far, in MiB."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def rss_kib(field_name: str = "VmRSS") -> int:
    """A field of /proc/self/status in KiB (VmRSS now, VmHWM the peak)."""
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith(field_name + ":"):
                return int(line.split()[1])
    raise RuntimeError(field_name)


def machine() -> dict[str, Any]:
    """The machine the benchmarks run on: CPU model, cores, Python, load."""
    model = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as cpuinfo:
            for line in cpuinfo:
                if line.startswith("model name"):
                    model = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    load = os.getloadavg() if hasattr(os, "getloadavg") else (0.0, 0.0, 0.0)
    return {
        "cpu": model,
        "cores": os.cpu_count(),
        "python": sys.version.split()[0],
        "implementation": platform.python_implementation(),
        "system": f"{platform.system()} {platform.release()}",
        "load_average": [round(x, 2) for x in load],
        "metricstream": ms.__version__,
    }


@dataclass
class Figure:
    """One figure beside its peer, as printed and as the report shows it.

    ``ratio`` is metricstream's advantage: above 1 is better, whichever way
    the unit points. CPU figures are seconds of the client process per
    million events (or calls). ``targets`` are the targets judged on the
    figure, each with whether it is met; ``target`` and ``met`` sum them up
    (the texts joined, met when every one is). A figure with a ``key`` is
    reported in the table of targets even without a target of its own.
    """

    title: str
    ours_label: str
    ours: float
    unit: str
    peer_label: str | None = None
    peer: float | None = None
    higher_is_better: bool = True
    ratio: float | None = None
    target: str | None = None
    met: bool | None = None
    cpu_ours: float | None = None
    cpu_peer: float | None = None
    spread: str | None = None
    key: str | None = None
    bench: str = ""
    targets: list[Target] = field(default_factory=list)


@dataclass
class Curve:
    """A scaling curve: y against x for several series (ours and peers)."""

    key: str
    title: str
    x_label: str
    y_label: str
    xs: list[float]
    series: dict[str, list[float | None]] = field(default_factory=dict)


FIGURES: list[Figure] = []
CURVES: list[Curve] = []
CURRENT_BENCH = [""]


def record(figure: Figure) -> Figure:
    """Keep `figure` for the report (tagged with the benchmark running now)."""
    figure.bench = figure.bench or CURRENT_BENCH[0]
    FIGURES.append(figure)
    return figure


def _judged(target: Targets) -> list[Target]:
    if target is None:
        return []
    if isinstance(target, tuple) and len(target) == 2 and isinstance(target[0], str):
        return [(target[0], bool(target[1]))]
    return [(text, bool(met)) for text, met in target]  # type: ignore[misc]


def _emit(figure: Figure, targets: Targets) -> Figure:
    """Print `figure`'s verdicts and record it with them: the only place a target is judged."""
    judged = _judged(targets)
    for text, met in judged:
        print(f"  target: {text} -> {'met' if met else 'MISSED'}")
    figure.targets = judged
    if judged:
        figure.target = "; ".join(text for text, _ in judged)
        figure.met = all(met for _, met in judged)
    return record(figure)


def record_curve(curve: Curve) -> Curve:
    """Keep `curve` for the report."""
    CURVES.append(curve)
    return curve


def advantage(ours: float, peer: float, higher_is_better: bool) -> float:
    """How many times better ours is than the peer's figure."""
    return ours / peer if higher_is_better else peer / ours


def side_by_side(
    title: str,
    ours: tuple[str, float],
    peer: tuple[str, float],
    unit: str,
    higher_is_better: bool,
    *,
    cpu: tuple[float | None, float | None] | None = None,
    target: Targets = None,
    spread: str | None = None,
    key: str | None = None,
    ratio: float | None = None,
) -> float:
    """Print both figures and the ratio (how many times better ours is); return the ratio.

    Args:
        title: What is compared.
        ours: (label, figure) of metricstream.
        peer: (label, figure) of the peer, measured in the same run.
        unit: The unit of both figures.
        higher_is_better: Whether a higher figure is better.
        cpu: CPU seconds of the client process per million events, ours and
            the peer's, printed beside the figures.
        target: (the target as text, whether it is met), or a list of
            them; each is printed with its verdict and recorded.
        spread: How the figure varied over the runs, as text.
        key: A name for the figure in the report; a figure with a key is
            in the table of targets even without a target (a figure
            reported beside the targets).
        ratio: For runs in alternating pairs, the median of the pairs'
            ratios (what the targets are judged on); by default the ratio of
            the two figures.
    """
    if ratio is None:
        ratio = advantage(ours[1], peer[1], higher_is_better)
    cpu_ours, cpu_peer = cpu if cpu is not None else (None, None)
    print(f"\n{title}")
    for (label, value), cpu_s in ((ours, cpu_ours), (peer, cpu_peer)):
        cpu_text = "" if cpu_s is None else f"   {cpu_s:7.2f} CPU s/M"
        print(f"  {label:<50} {value:>14,.1f} {unit}{cpu_text}")
    print(f"  ratio (metricstream advantage){'':<21}{ratio:>14.2f}x")
    if spread:
        print(f"  {spread}")
    _emit(
        Figure(
            title=title.strip(),
            ours_label=ours[0],
            ours=ours[1],
            unit=unit,
            peer_label=peer[0],
            peer=peer[1],
            higher_is_better=higher_is_better,
            ratio=ratio,
            cpu_ours=cpu_ours,
            cpu_peer=cpu_peer,
            spread=spread,
            key=key,
        ),
        target,
    )
    return ratio


def alone(
    title: str,
    ours: tuple[str, float],
    unit: str,
    *,
    target: Targets = None,
    cpu: float | None = None,
    key: str | None = None,
    note: str | None = None,
) -> Figure:
    """Print and record a figure that has no peer (an absolute target); see `side_by_side`."""
    cpu_text = "" if cpu is None else f"   {cpu:7.2f} CPU s/M"
    print(f"\n{title}")
    print(f"  {ours[0]:<50} {ours[1]:>14,.1f} {unit}{cpu_text}")
    if note:
        print(f"  {note}")
    return _emit(
        Figure(
            title=title.strip(),
            ours_label=ours[0],
            ours=ours[1],
            unit=unit,
            cpu_ours=cpu,
            spread=note,
            key=key,
        ),
        target,
    )


def spread_of(values: Sequence[float], unit: str = "x") -> str:
    """The range of `values` over the runs, as text."""
    return f"over {len(values)} runs: {min(values):,.2f}-{max(values):,.2f}{unit}"


def as_dicts() -> dict[str, Any]:
    """Every figure and curve recorded so far, as plain data."""
    return {
        "figures": [asdict(figure) for figure in FIGURES],
        "curves": [asdict(curve) for curve in CURVES],
    }
