"""A progress bar on standard error, drawn by ``tqdm`` (the ``cli`` extra).

The bar is shown only when standard error is a terminal, ``tqdm`` is
installed and there is something to do: a log file or a pipe gets no
carriage returns, an empty task no bar, and a finished bar ends its line.
"""

from __future__ import annotations

import sys
from types import TracebackType
from typing import Any

__all__ = ["ProgressBar"]


class ProgressBar:
    """A bar counting up to `total`, or nothing (see the module docstring).

    Args:
        total: The count when done; 0 shows no bar.
        unit: What is counted, e.g. ``events``.
    """

    def __init__(self, total: int, *, unit: str) -> None:
        self._bar: Any = None
        if total <= 0 or not sys.stderr.isatty():
            return
        try:
            from tqdm import tqdm
        except ImportError:  # the cli extra is not installed: no bar
            return
        self._bar = tqdm(total=total, unit=f" {unit}", file=sys.stderr, dynamic_ncols=True)

    def __enter__(self) -> ProgressBar:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    @property
    def shown(self) -> bool:
        """True while the bar is drawn."""
        return self._bar is not None

    def update_to(self, done: int) -> None:
        """Show `done` of the total."""
        if self._bar is not None and done != self._bar.n:
            self._bar.update(done - self._bar.n)

    def close(self) -> None:
        """End the bar's line (idempotent)."""
        bar, self._bar = self._bar, None
        if bar is not None:
            bar.close()
