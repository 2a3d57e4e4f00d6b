"""Plain text tables: columns as wide as their widest cell, two spaces apart.

The commands print tables that people read and scripts split on runs of
spaces, so a table has no borders, no colour and never wraps or shortens a
cell, whatever the terminal's width.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence

__all__ = ["format_table"]


def format_table(
    rows: Sequence[Sequence[str]], *, right: Collection[int] = (), indent: str = "  "
) -> list[str]:
    """Lay out `rows` (the first is usually the header) as aligned lines.

    Args:
        rows: The cells, row by row; every row has the same number of cells.
        right: The indexes of the columns aligned to the right (numbers).
        indent: What each line starts with.

    Returns:
        One line per row, without trailing spaces or line ends.
    """
    if not rows:
        return []
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    return [
        indent
        + "  ".join(
            cell.rjust(width) if i in right else cell.ljust(width)
            for i, (cell, width) in enumerate(zip(row, widths, strict=True))
        ).rstrip()
        for row in rows
    ]
