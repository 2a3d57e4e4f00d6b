"""The simulated analytics workload the demo streams (and tests and benchmarks reuse)."""

from __future__ import annotations

import random
import time

from metricstream.event import MetricEvent

__all__ = ["EVENT_MIX", "AnalyticsWorkload"]

EVENT_MIX: tuple[tuple[str, float], ...] = (
    ("page_view", 0.60),
    ("click", 0.28),
    ("conversion", 0.10),
    ("signup", 0.015),
    ("purchase", 0.005),
)
"""The simulated event types and their share of the traffic."""

_PATHS = (
    "/",
    "/pricing",
    "/docs",
    "/docs/quickstart",
    "/blog",
    "/signup",
    "/checkout",
    "/dashboard",
    "/settings",
    "/search",
)
_SOURCES = ("google", "direct", "newsletter", "twitter", "linkedin", "partner")


class AnalyticsWorkload:
    """Generates simulated product-analytics events.

    Args:
        organisations: How many organisations.
        users_per_org: Users in each organisation.
        seed: Seed for the random generator (repeatable runs).
    """

    def __init__(
        self, organisations: int = 500, users_per_org: int = 1000, seed: int | None = None
    ) -> None:
        self._random = random.Random(seed)
        self._orgs = [f"org-{n:03d}" for n in range(1, organisations + 1)]
        self._users_per_org = users_per_org
        self._kinds = [kind for kind, _ in EVENT_MIX]
        self._weights = [share for _, share in EVENT_MIX]

    def events(self, count: int) -> list[MetricEvent]:
        """Return `count` new events stamped with the current time."""
        rnd = self._random
        kinds = rnd.choices(self._kinds, self._weights, k=count)
        now = time.time_ns()
        batch = []
        for kind in kinds:
            org = rnd.choice(self._orgs)
            event = MetricEvent(
                kind,
                tags={
                    "org": org,
                    "user": f"{org}-u{rnd.randrange(self._users_per_org):04d}",
                    "path": rnd.choice(_PATHS),
                    "utm_source": rnd.choice(_SOURCES),
                },
                fields={"count": 1},
                timestamp_ns=now,
            )
            if kind == "purchase":
                event.with_field("amount", round(rnd.uniform(5, 500), 2))
            elif kind == "page_view":
                event.with_field("duration_ms", round(rnd.expovariate(1 / 800), 1))
            batch.append(event)
        return batch
