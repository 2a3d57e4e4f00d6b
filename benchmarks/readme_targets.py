"""Copy the report's table of targets into the README's performance section.

Usage: ``python benchmarks/readme_targets.py [--check]``. The lines between
the README's two markers are replaced by `_report.targets_section` of the
committed ``benchmarks/results/results.json``, the very lines REPORT.md has
under its targets heading, so the README quotes the last run, every target
in it met or missed. ``make bench`` runs it after the benchmarks; with
``--check`` it changes nothing and exits 1 when the README differs.
"""

from __future__ import annotations

import os
import sys

sys.path.insert(0, os.path.dirname(__file__))

import _report

README = os.path.join(os.path.dirname(__file__), os.pardir, "README.md")
BEGIN = "<!-- benchmark targets: copied from benchmarks/results/results.json by `make bench`;"
END = "<!-- end of benchmark targets -->"
BEGIN_LINE = BEGIN + " do not edit -->"


def readme_block(text: str) -> tuple[int, int, list[str]]:
    """(first line, line after the last, the lines between) of the README's marked block.

    Raises:
        ValueError: If the markers are missing or out of order.
    """
    lines = text.split("\n")
    begins = [n for n, line in enumerate(lines) if line.startswith(BEGIN)]
    ends = [n for n, line in enumerate(lines) if line == END]
    if len(begins) != 1 or len(ends) != 1 or ends[0] < begins[0]:
        raise ValueError(f"the README needs one {BEGIN_LINE!r} line and one {END!r} line after it")
    return begins[0] + 1, ends[0], _report._trimmed(lines[begins[0] + 1 : ends[0]])


def updated(text: str, section: list[str]) -> str:
    """The README `text` with its marked block replaced by `section`."""
    first, last, _ = readme_block(text)
    lines = text.split("\n")
    return "\n".join([*lines[:first], "", *section, "", *lines[last:]])


def main(argv: list[str]) -> int:
    with open(README, encoding="utf-8") as file:
        text = file.read()
    new = updated(text, _report.targets_section(_report.load()))
    if "--check" in argv:
        if new != text:
            print("README.md's table of targets is not the one in results.json")
            return 1
        return 0
    if new != text:
        with open(README, "w", encoding="utf-8") as file:
            file.write(new)
        print("README.md: table of targets copied from benchmarks/results/results.json")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
