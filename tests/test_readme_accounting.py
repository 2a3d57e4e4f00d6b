"""The README's accounting table names every drop reason the code has, and no other."""

from __future__ import annotations

import re
from pathlib import Path

import metricstream as ms

README = Path(__file__).parent.parent / "README.md"


class TestDropReasons:
    """The reasons in the README are `DROP_REASONS`, each with what it means."""

    def test_the_readme_lists_every_drop_reason(self) -> None:
        row = next(
            line
            for line in README.read_text(encoding="utf-8").splitlines()
            if line.startswith("| `events_dropped`, `dropped_by_reason` |")
        )
        listed = re.findall(r"`([a-z_]+)` \(", row)
        assert sorted(listed) == sorted(ms.DROP_REASONS)
        assert len(listed) == len(set(listed))
