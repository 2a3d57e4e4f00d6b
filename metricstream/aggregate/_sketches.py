"""The sketch libraries, imported only when a distribution or a large set needs them.

Both come with the ``aggregate`` extra (``pip install 'metricstream[aggregate]'``):

- `ddsketch` (Datadog's DDSketch) for quantiles. Its error is relative to
  the value: with `RELATIVE_ACCURACY` 0.01 the estimate of a quantile is
  within 1% of the value of that rank, at p50 as at p999, which suits tail
  latencies better than a rank-error sketch (KLL), whose p999 may be any
  value between p998 and p1000. The store keeps `BIN_LIMIT` bins per sign
  and collapses the lowest ones beyond that, which happens only when the
  values span more than a factor of about 10**17.
- `datasketches` (Apache DataSketches) for the HyperLogLog of large sets:
  ``2**HLL_LG_K`` registers of one byte, a relative standard error of
  `HLL_RELATIVE_ERROR` (1.04 / sqrt(2**HLL_LG_K), about 1.6%).
"""

from __future__ import annotations

import math
from typing import Any

from metricstream.exceptions import ConfigError

__all__ = [
    "BIN_LIMIT",
    "HLL_LG_K",
    "HLL_RELATIVE_ERROR",
    "RELATIVE_ACCURACY",
    "hll_sketch",
    "hll_union",
    "quantile_sketch",
]

RELATIVE_ACCURACY = 0.01
"""DDSketch's bound: an estimated quantile is within 1% of the value of its rank."""

BIN_LIMIT = 2048
"""Bins per sign of a DDSketch; beyond them the lowest bins are merged (p999 stays exact to 1%)."""

HLL_LG_K = 12
"""A HyperLogLog set has 2**12 registers (4 KiB)."""

HLL_RELATIVE_ERROR = 1.04 / math.sqrt(2**HLL_LG_K)
"""The relative standard error of a HyperLogLog estimate (about 1.6%)."""

_EXTRA = "pip install 'metricstream[aggregate]'"


def quantile_sketch(option: str) -> Any:
    """Return a new, empty DDSketch (relative accuracy `RELATIVE_ACCURACY`).

    Args:
        option: What needs it (``"distribution"``, ``"quantiles"``), for the error.

    Raises:
        ConfigError: If ddsketch is not installed, naming the extra.
    """
    try:
        from ddsketch import LogCollapsingLowestDenseDDSketch
    except ImportError:
        raise ConfigError(option, f"quantiles need the ddsketch library: {_EXTRA}") from None
    return LogCollapsingLowestDenseDDSketch(RELATIVE_ACCURACY, BIN_LIMIT)


def _datasketches(option: str) -> Any:
    try:
        import datasketches
    except ImportError:
        raise ConfigError(
            option, f"sets larger than their exact limit need the datasketches library: {_EXTRA}"
        ) from None
    return datasketches


def hll_sketch(option: str) -> Any:
    """Return a new, empty HyperLogLog sketch (``2**HLL_LG_K`` one-byte registers).

    Raises:
        ConfigError: If datasketches is not installed, naming the extra.
    """
    library = _datasketches(option)
    return library.hll_sketch(HLL_LG_K, library.tgt_hll_type.HLL_8)


def hll_union(option: str, *sketches: Any) -> Any:
    """Return one HyperLogLog sketch holding the union of `sketches`.

    Raises:
        ConfigError: If datasketches is not installed, naming the extra.
    """
    library = _datasketches(option)
    union = library.hll_union(HLL_LG_K)
    for sketch in sketches:
        union.update(sketch)
    return union.get_result(library.tgt_hll_type.HLL_8)
