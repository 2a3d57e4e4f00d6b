"""Write ``benchmarks/results/REPORT.md``, its charts and ``results.json`` from a run.

The report opens with its table of targets: one row for every target a
benchmark judged, met or missed, and one for every figure reported beside
them (a figure with a ``key``, shown as "reported"). `targets_section`
renders it from the run's data, and the README's performance table is the
same lines, copied by ``benchmarks/readme_targets.py`` (``make bench`` runs
it after the benchmarks); ``tests/test_benchmark_report.py`` checks that the
README, REPORT.md and ``results.json`` agree. Then come every figure the
benchmarks printed, the scaling curves, and the charts (PNG, drawn with
matplotlib, the ``bench`` extra; without it the report is written without
charts).
"""

from __future__ import annotations

import datetime as dt
import json
import math
import os
from collections.abc import Iterable
from typing import Any

from _common import CURVES, FIGURES, Curve, Figure, as_dicts

RESULTS = os.path.join(os.path.dirname(__file__), "results")
RESULTS_JSON = os.path.join(RESULTS, "results.json")
NONE = "-"
TARGETS_HEADING = "## The targets"


def _number(value: float | None, unit: str = "") -> str:
    if value is None:
        return NONE
    if unit == "events/s" or abs(value) >= 100:
        text = f"{value:,.0f}"
    elif abs(value) >= 10:
        text = f"{value:,.1f}"
    else:
        text = f"{value:,.2f}"
    return f"{text} {unit}".strip()


def _ratio(figure: Figure) -> str:
    return NONE if figure.ratio is None else f"{figure.ratio:.2f}x"


def _verdict(met: bool) -> str:
    return "met" if met else "**missed**"


def _cpu(figure: Figure) -> str:
    if figure.cpu_ours is None:
        return NONE
    if figure.cpu_peer is None:
        return f"{figure.cpu_ours:.2f}"
    return f"{figure.cpu_ours:.2f} / {figure.cpu_peer:.2f}"


def _cell(text: str) -> str:
    return text.replace("|", "\\|")


def figures_from(data: dict[str, Any]) -> list[Figure]:
    """The figures of a run's data (``results.json``), as `Figure` objects."""
    figures = []
    for raw in data["figures"]:
        fields = dict(raw)
        targets = fields.pop("targets", None)
        figure = Figure(**fields)
        if targets is None:  # written before each target was kept on its own
            targets = [] if figure.target is None else [(figure.target, bool(figure.met))]
        figure.targets = [(text, bool(met)) for text, met in targets]
        figures.append(figure)
    return figures


def load(path: str = RESULTS_JSON) -> dict[str, Any]:
    """A run's data as ``results.json`` holds it."""
    with open(path, encoding="utf-8") as file:
        data: dict[str, Any] = json.load(file)
    return data


def target_rows(figures: Iterable[Figure]) -> list[tuple[Figure, str, str]]:
    """(figure, target, verdict) for every target judged, and every figure with a key.

    A figure with several targets gives one row per target; a figure with a
    key and no target gives one row whose verdict is "reported".
    """
    rows = []
    for figure in figures:
        if figure.targets:
            rows += [(figure, text, _verdict(met)) for text, met in figure.targets]
        elif figure.key:
            rows.append((figure, NONE, "reported"))
    return rows


def _targets_table(figures: Iterable[Figure]) -> list[str]:
    lines = [
        "| benchmark | figure | metricstream | peer in the same run | ratio | target | verdict |"
        " CPU s per million, ours / peer |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for figure, target, verdict in target_rows(figures):
        peer = (
            NONE
            if figure.peer is None
            else f"{_cell(figure.peer_label or '')}: {_number(figure.peer, figure.unit)}"
        )
        lines.append(
            f"| {figure.bench} | {_cell(figure.title)}"
            f" | {_number(figure.ours, figure.unit)} | {peer} | {_ratio(figure)}"
            f" | {_cell(target)} | {verdict} | {_cpu(figure)} |"
        )
    return lines


def targets_section(data: dict[str, Any]) -> list[str]:
    """The lines under the report's targets heading, which the README quotes verbatim."""
    machine = data["machine"]
    load_average = ", ".join(map(str, machine["load_average"]))
    lines = [
        f"Run of {data.get('written') or 'an unrecorded date'} by `make bench`:"
        f" {machine['cpu']}, {machine['cores']} cores, Python {machine['python']};"
        f" load average {load_average} when it began. Every target a benchmark judged"
        " is a row, met or missed; a row marked reported is a figure shown beside them.",
        "",
        *_targets_table(figures_from(data)),
    ]
    if data.get("failed"):
        lines += ["", "Benchmarks that failed in this run (they judged nothing):", ""]
        lines += [f"- `{name}`: {_cell(error)}" for name, error in data["failed"].items()]
    return lines


def _all_figures_table() -> list[str]:
    lines = [
        "| benchmark | figure | metricstream | peer | ratio | target | CPU s/M ours / peer |"
        " spread and notes |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for figure in FIGURES:
        ours = f"{_cell(figure.ours_label)}: {_number(figure.ours, figure.unit)}"
        peer = (
            NONE
            if figure.peer is None
            else f"{_cell(figure.peer_label or '')}: {_number(figure.peer, figure.unit)}"
        )
        target = (
            NONE
            if not figure.targets
            else "; ".join(f"{_cell(text)} ({_verdict(met)})" for text, met in figure.targets)
        )
        lines.append(
            f"| {figure.bench} | {_cell(figure.title)} | {ours} | {peer} | {_ratio(figure)}"
            f" | {target} | {_cpu(figure)} | {_cell(figure.spread or '')} |"
        )
    return lines


def _curve_tables() -> list[str]:
    lines: list[str] = []
    for curve in CURVES:
        names = list(curve.series)
        lines.append(f"**{curve.title}** ({curve.y_label}) by {curve.x_label}")
        lines.append("")
        lines.append(f"| {curve.x_label} | " + " | ".join(names) + " |")
        lines.append("|---" * (len(names) + 1) + "|")
        for index, x in enumerate(curve.xs):
            cells = [_number(curve.series[name][index]) for name in names]
            lines.append(f"| {x:g} | " + " | ".join(cells) + " |")
        lines.append("")
    return lines


def _charts() -> list[str]:
    """Draw the charts; return their file names (none without matplotlib)."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return []
    written: list[str] = []

    def bars(
        name: str, title: str, figures: list[Figure], value: str = "value", log: bool = False
    ) -> None:
        if not figures:
            return
        labels = [f.title if len(f.title) < 60 else f.title[:57] + "..." for f in figures]
        if value == "cpu":
            ours = [f.cpu_ours or 0.0 for f in figures]
            peers = [f.cpu_peer or 0.0 for f in figures]
            unit = "CPU s per million events"
        else:
            ours = [f.ours for f in figures]
            peers = [f.peer or 0.0 for f in figures]
            unit = figures[0].unit
        height = 0.38
        fig, ax = plt.subplots(figsize=(10, 0.75 * len(figures) + 1.6))
        ys = range(len(figures))
        ax.barh([y + height / 2 for y in ys], ours, height, label="metricstream", color="#2a7ab9")
        ax.barh([y - height / 2 for y in ys], peers, height, label="peer", color="#c8c8c8")
        for y, figure in zip(ys, figures, strict=True):
            if figure.ratio is not None and value != "cpu":
                ax.text(
                    max(ours[y], peers[y]) * 1.01,
                    y,
                    f"{figure.ratio:.2f}x",
                    va="center",
                    fontsize=8,
                )
        ax.set_yticks(list(ys), labels, fontsize=8)
        ax.invert_yaxis()
        if log:  # the figures span orders of magnitude: each pair stays readable
            ax.set_xscale("log")
        ax.set_xlabel(unit + (" (log scale)" if log else ""))
        ax.set_title(title)
        ax.legend(loc="lower right", fontsize=8)
        fig.tight_layout()
        fig.savefig(os.path.join(RESULTS, name), dpi=110)
        plt.close(fig)
        written.append(name)

    with_peer = [f for f in FIGURES if f.peer is not None]
    bars(
        "throughput.png",
        "Throughput (higher is better)",
        [f for f in with_peer if f.unit == "events/s"],
        log=True,
    )
    bars(
        "calling_thread.png",
        "Cost per call or event on the calling thread (lower is better)",
        [f for f in with_peer if f.unit in ("ns/call", "ns/event")],
        log=True,
    )
    bars(
        "memory.png",
        "Peak memory above baseline (lower is better)",
        [f for f in FIGURES if f.unit == "MiB"],
    )
    bars(
        "cpu.png",
        "CPU seconds of the client process per million events (lower is better)",
        [f for f in with_peer if f.cpu_ours is not None and f.cpu_peer is not None],
        value="cpu",
    )
    for knob in ("batch", "threads", "sinks"):
        curves = [
            c
            for c in CURVES
            if c.key.endswith(f"_{knob}_rate") or c.key.endswith(f"_{knob}_memory")
        ]
        if not curves:
            continue
        fig, axes = plt.subplots(2, 2, figsize=(11, 7.5))
        for ax, curve in zip(axes.flat, curves, strict=False):
            _plot_curve(ax, curve, log_x=knob == "batch")
        fig.suptitle(f"Scaling by {knob}")
        fig.tight_layout()
        name = f"scaling_{knob}.png"
        fig.savefig(os.path.join(RESULTS, name), dpi=110)
        plt.close(fig)
        written.append(name)
    return written


def _plot_curve(ax: Any, curve: Curve, *, log_x: bool) -> None:
    for name, ys in curve.series.items():
        points = [(x, y) for x, y in zip(curve.xs, ys, strict=True) if y is not None]
        if not points:
            continue
        style = "-o" if name == "metricstream" else "--s"
        ax.plot([x for x, _ in points], [y for _, y in points], style, label=name)
    if log_x:
        ax.set_xscale("log")
    ax.set_xlabel(curve.x_label)
    ax.set_ylabel(curve.y_label)
    ax.set_title(curve.title, fontsize=10)
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=8)


def write(machine: dict[str, Any], durations: dict[str, float], failed: dict[str, str]) -> str:
    """Write REPORT.md, results.json and the charts; return the report's path."""
    os.makedirs(RESULTS, exist_ok=True)
    charts = _charts()
    total = sum(durations.values())
    now = dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    data = {
        "written": now,
        "machine": machine,
        "durations": durations,
        "failed": failed,
        **as_dicts(),
    }
    text = json.dumps(
        data, indent=1, default=lambda v: None if isinstance(v, float) and math.isnan(v) else v
    )
    lines = [
        "# metricstream benchmark report",
        "",
        f"Written by `make bench` (`benchmarks/run.py`) on {now}, in {total / 60:.1f} minutes.",
        "",
        f"- CPU: {machine['cpu']}, {machine['cores']} cores ({machine['system']})",
        f"- Python {machine['python']} ({machine['implementation']}), metricstream"
        f" {machine['metricstream']}",
        f"- load average when the run began: {', '.join(map(str, machine['load_average']))}"
        f" (the servers and other processes share the cores)",
        "",
        "Every figure is measured beside its peer in the same run; where the run says so,"
        " it is the median of runs that alternate between metricstream and the peer. The"
        " ratio is metricstream's advantage (above 1 is better, whichever way the unit"
        " points). CPU s/M is the CPU time of the client process (every thread) per"
        " million events or calls: on a shared machine it is the figure that compares the"
        " clients, since the wall clock also counts the servers and other processes.",
        "",
        TARGETS_HEADING,
        "",
        *targets_section(json.loads(text)),
        "",
    ]
    if charts:
        lines += ["## Charts", ""]
        lines += [f"![{name}]({name})" for name in charts]
        lines.append("")
    lines += ["## Every figure", "", *_all_figures_table(), ""]
    if CURVES:
        lines += ["## Scaling curves", "", *_curve_tables()]
    lines += [
        "## Run times",
        "",
        "| benchmark | seconds |",
        "|---|---|",
        *[f"| {name} | {seconds:.1f} |" for name, seconds in durations.items()],
        "",
    ]
    path = os.path.join(RESULTS, "REPORT.md")
    with open(path, "w", encoding="utf-8") as report:
        report.write("\n".join(lines))
    with open(RESULTS_JSON, "w", encoding="utf-8") as out:
        out.write(text)
    return path


def report_targets_section(path: str = os.path.join(RESULTS, "REPORT.md")) -> list[str]:
    """The lines of REPORT.md under its targets heading, up to the next heading."""
    with open(path, encoding="utf-8") as report:
        lines = report.read().split("\n")
    start = lines.index(TARGETS_HEADING) + 1
    end = next((n for n in range(start, len(lines)) if lines[n].startswith("## ")), len(lines))
    return _trimmed(lines[start:end])


def _trimmed(lines: list[str]) -> list[str]:
    while lines and not lines[0].strip():
        lines = lines[1:]
    while lines and not lines[-1].strip():
        lines = lines[:-1]
    return lines
