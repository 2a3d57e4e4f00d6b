"""`Sampler`: keep about one event in N, and say how many each kept event stands for.

``send(event, sample_rate=0.1)`` keeps an event with probability 1/10 and
gives the kept one the field ``samplerate`` = 10 (`WEIGHT_FIELD`), the event
store's convention: a query's ``weighted_count`` sums it, which estimates the
number of events sent without bias. So a rate must be 1/N for a whole N
(``0.5``, ``0.1``, ``0.01``, ``1/3``): the weight is an integer, and the
probability of keeping is exactly its inverse.

An event sampled out is neither accepted nor dropped: it is counted apart
(`Sampler.sampled_out`), outside the accounting identity, which stays exact
over the events kept.

The draws come from a `random.Random` (a Mersenne Twister in C: no system
call, one C call per draw), seeded from the system, or from ``sample_seed``
for a reproducible sequence; each pipeline has its own, so a forked child
draws afresh.
"""

from __future__ import annotations

import itertools
import math
import random
from typing import Any

from metricstream.exceptions import ConfigError

__all__ = ["WEIGHT_FIELD", "Sampler", "check_sample_rate", "weighed"]

WEIGHT_FIELD = "samplerate"
"""The field a kept event carries: how many events it stands for."""

_RATES_REMEMBERED = 64


def check_sample_rate(rate: object) -> int:
    """Return the weight of a sampling rate: N for a rate of 1/N.

    Raises:
        ConfigError: (option ``sample_rate``) if `rate` is not a number in
            (0, 1] whose inverse is a whole number.
    """
    if isinstance(rate, bool) or not isinstance(rate, (int, float)):
        raise ConfigError("sample_rate", f"must be a number such as 0.1, not {rate!r}")
    if not 0 < rate <= 1:
        raise ConfigError("sample_rate", f"must be in (0, 1], not {rate!r}")
    weight = round(1 / rate)
    if not math.isclose(weight * rate, 1.0, rel_tol=1e-9):
        raise ConfigError(
            "sample_rate",
            f"must be 1/N for a whole N (0.5, 0.1, 0.01, 1/3...), so that each kept event "
            f"stands for a whole number of events; {rate!r} is 1/{1 / rate:.4g}",
        )
    return weight


def weighed(fields: dict[str, Any], weight: int) -> dict[str, Any]:
    """`fields` with ``samplerate`` = `weight` (multiplied into one already there)."""
    already = fields.get(WEIGHT_FIELD)
    if already.__class__ is int and already >= 1:
        weight *= already
    return {**fields, WEIGHT_FIELD: weight}


class Sampler:
    """The sampling draws of one pipeline, and the count of events sampled out.

    Args:
        seed: Seeds the draws; None seeds them from the system.
    """

    def __init__(self, seed: int | None = None) -> None:
        self._random = random.Random(seed).random
        self._rates: dict[object, tuple[int, float]] = {}
        # next() on an itertools.count is one C call: exact under threads and
        # safe in a signal handler, where a lock could wait for itself.
        self._out = itertools.count()
        self._count_out = self._out.__next__

    def draw(self, rate: float) -> int:
        """Decide one event: its weight (N for a rate of 1/N) if kept, 0 if sampled out.

        Raises:
            ConfigError: If the rate is not 1/N for a whole N (see `check_sample_rate`).
        """
        try:
            weight, keep = self._rates[rate]
        except (KeyError, TypeError):
            weight = check_sample_rate(rate)
            keep = 1.0 / weight
            if len(self._rates) >= _RATES_REMEMBERED:
                self._rates.clear()
            self._rates[rate] = (weight, keep)
        if self._random() < keep:
            return weight
        self._count_out()
        return 0

    @property
    def sampled_out(self) -> int:
        """Events sampled out so far."""
        # The count's repr is its next value, read without taking it.
        return int(repr(self._out)[6:-1])
