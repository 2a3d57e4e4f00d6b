"""Whether the optional compiled helpers run, and which.

`metricstream._speedups` (C, built by ``pip install`` when a compiler is
there) does three per-event loops faster: taking the fields of a batch as
columns (`metricstream.columns`), joining a batch's lines from columns
(`metricstream.codecs._lines`) and writing the field set of a line protocol
entry (`metricstream.codecs.lineprotocol`). Each has a pure-Python twin next
to its caller that gives the same result; `SPEEDUPS` says which one runs.
Setting ``METRICSTREAM_PURE_PYTHON=1`` before the import turns the compiled
helpers off.
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
