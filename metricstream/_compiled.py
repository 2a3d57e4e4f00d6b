"""Whether the optional compiled helpers run, and which.

`metricstream._speedups` (C, built by ``pip install`` when a compiler is
there) does the loops that run once per event or field faster: checking
the fields of an event and finding its shared tags as it is built
(`metricstream._validate`, `metricstream.event`), taking the fields of a
batch as columns (`metricstream.columns`), and writing line protocol
entries and a batch's lines (`metricstream.codecs.lineprotocol`,
`metricstream.codecs._lines`). Each has a pure-Python twin next to its
caller that gives the same result; `SPEEDUPS` says which one runs. Setting
``METRICSTREAM_PURE_PYTHON=1`` before the import turns the compiled helpers
off.
"""

from __future__ import annotations

import os
from types import ModuleType

__all__ = ["PURE_PYTHON_VARIABLE", "SPEEDUPS"]

PURE_PYTHON_VARIABLE = "METRICSTREAM_PURE_PYTHON"
"""The environment variable that, set to anything but ``""`` or ``0``, turns them off."""


def _load() -> ModuleType | None:
    if os.environ.get(PURE_PYTHON_VARIABLE, "") not in ("", "0"):
        return None
    try:
        import metricstream._speedups as compiled
    except ImportError:
        return None
    return compiled


SPEEDUPS: ModuleType | None = _load()
"""The compiled helpers in use, or None when the pure-Python ones run."""
