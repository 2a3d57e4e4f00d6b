"""Funnels: how many match-key combinations went through event sets in order.

The events of one combination (its values of the match keys; events without
all of them take no part) are ordered by timestamp and, where they carry an
event id (`metricstream.query._eventid`), by event id: two events of one
millisecond that the event store received one after the other are in that
order. An event of step 1 is always reached. An event of step k > 1 is
reached when a reached event of step k - 1 of the same combination comes
before it and:

- with ``order="exact_order"``, any events may come in between;
- with ``order="strict"``, no event of the combination that is in any step's
  set comes between the two (repeats of a step count as events in
  between: view, view, cart reaches cart from the second view, but view,
  cart, cart, purchase does not reach purchase, since the cart just before it
  was not reached from a view);
- with a `window`, the step is at most `window` after the step-1 event that
  started the path.

Ties and repeats: events with the same timestamp and no event id are not in
order (a step never counts at the timestamp of the step before it, so an
event in two steps cannot take both; an event without an id comes before
the events of its timestamp that have one), and every repeat of a step may
start or continue a path; a combination counts once per step it reached,
however often.

A step's count is the number of combinations with a reached event of that
step. The time between step k - 1 and step k of a combination is measured on
its earliest reached step-k event, from the latest reached step-(k - 1) event
that leads to it; a step reports its median over the combinations.
"""

from __future__ import annotations

from collections.abc import Sequence

from metricstream.exceptions import ConfigError
from metricstream.query._filters import parse_window
from metricstream.query._results import FunnelStep, Result
from metricstream.query._sets import EventSet, as_keys
from metricstream.query._sql import Params, Properties

__all__ = ["ORDERS", "run_funnel"]

ORDERS = ("exact_order", "strict")
"""The funnel orders (see the module documentation)."""

_NS_PER_S = 1e9


def run_funnel(
    steps: Sequence[EventSet],
    match: str | Sequence[str],
    order: str = "exact_order",
    window: object = None,
) -> Result[list[FunnelStep]]:
    """Run a funnel over the steps' archive (see the module documentation).

    Raises:
        ConfigError: If there is no step, no match key, an unknown order or a
            negative window.
    """
    if not steps:
        raise ConfigError("steps", "a funnel needs at least one step")
    keys = as_keys(match, "match")
    if order not in ORDERS:
        raise ConfigError("order", f"expected one of {', '.join(ORDERS)}, not {order!r}")
    window_ns = parse_window(window)
    runner = steps[0]._runner
    for step in steps:
        step.check_patterns()
    needed = set(keys).union(*(step.keys() for step in steps))

    def build(properties: Properties, params: Params) -> str:
        return funnel_sql(steps, keys, order, window_ns, properties=properties, params=params)

    results, skipped = runner._rows(needed, [build])
    return Result(funnel_steps(steps, results[0]), skipped)


def funnel_steps(steps: Sequence[EventSet], rows: list[tuple[object, ...]]) -> list[FunnelStep]:
    """Turn the rows of `funnel_sql` into steps with conversions."""
    counts = [0] * len(steps)
    medians: list[float | None] = [None] * len(steps)
    for index, count, median in rows:
        assert isinstance(index, int)
        assert isinstance(count, int)
        counts[index] = count
        if index and isinstance(median, int | float):
            medians[index] = float(median) / _NS_PER_S
    found = []
    for index, step in enumerate(steps):
        previous = counts[index - 1] if index else counts[0]
        found.append(
            FunnelStep(
                step.label,
                counts[index],
                counts[index] / counts[0] if counts[0] else 0.0,
                counts[index] / previous if previous else 0.0,
                medians[index],
            )
        )
    return found


def funnel_sql(
    steps: Sequence[EventSet],
    match: Sequence[str],
    order: str,
    window_ns: int | None,
    *,
    properties: Properties,
    params: Params,
) -> str:
    """The statement answering (step index, combinations, median ns from the previous step).

    Rows are ordered by ``o`` (`order_sql`: the timestamp, then the event
    id); times are measured on ``ts``.
    """
    keys = [f"k{i}" for i in range(len(match))]
    key_list = ", ".join(keys)
    flags = [f"s{i}" for i in range(len(steps))]
    values = ", ".join(f"{properties.value_key(key)} AS k{i}" for i, key in enumerate(match))
    conditions = ", ".join(
        f"{step.condition(properties, params)} AS s{i}" for i, step in enumerate(steps)
    )
    ctes = [_rows_cte(properties, values, conditions, keys=keys, flags=flags)]
    ctes.append(
        f"b0 AS MATERIALIZED (SELECT DISTINCT {key_list}, ts, o, CAST(ts AS HUGEINT) AS st, "
        f"CAST(NULL AS BIGINT) AS pts FROM r WHERE s0)"
    )
    if order == "exact_order" and window_ns is None:
        return f"WITH {ctes[0]}, {_earliest_paths(len(steps), keys)}"
    window = params.add(str(window_ns)) if window_ns is not None and len(steps) > 1 else None
    if order == "strict":
        ctes.append(
            f"t AS MATERIALIZED (SELECT {key_list}, o, lag(o) OVER "
            f"(PARTITION BY {key_list} ORDER BY o) AS prev "
            f"FROM (SELECT DISTINCT {key_list}, o FROM r))"
        )
    for index in range(1, len(steps)):
        ctes.append(_step_cte(index, keys, order, window))
    answers = " UNION ALL ".join(
        f"SELECT {index} AS step, count(*) AS reached, median(gap) AS gap FROM "
        f"(SELECT arg_min(CAST(ts AS HUGEINT) - pts, o) AS gap FROM b{index} GROUP BY {key_list})"
        for index in range(len(steps))
    )
    return f"WITH {', '.join(ctes)} SELECT * FROM ({answers}) ORDER BY step"


def _rows_cte(
    properties: Properties, values: str, conditions: str, *, keys: list[str], flags: list[str]
) -> str:
    """``r``: the rows of any step that have every match key, with their order ``o``."""
    key_list = ", ".join(keys)
    return (
        f"r AS {'' if properties.scans_cheaply else 'MATERIALIZED '}"
        f"(SELECT {key_list}, ts, o, {', '.join(flags)} FROM "
        f"(SELECT {values}, ts, {properties.order()} AS o, {conditions} FROM ev) "
        f"WHERE ts IS NOT NULL AND ({' OR '.join(flags)}) "
        f"AND {' AND '.join(f'{k} IS NOT NULL' for k in keys)})"
    )


def _earliest_paths(count: int, keys: list[str]) -> str:
    """Exact order without a window: each step's earliest reached event, per combination.

    Without a window every step-k event after the earliest reached step-(k-1)
    event is reached, so one minimum per combination and step decides it
    (``f<k>``: its order ``o<k>``). The latest reached step-(k-1) event
    before the earliest step-k one is then the latest step-(k-1) event
    before it (it cannot come before the earliest reached step-(k-1) event):
    its timestamp ``p<k>`` is found in the same pass as ``o<k+1>`` (both
    need ``o<k>``; the pass reads the rows of step k+1 and of step k-1), and
    the last step's in one pass more (``e``). Times are read from the order,
    whose high 64 bits are the timestamp (``o >> 64`` is ``ts``), so only
    the order travels through the joins.
    """
    key_list = ", ".join(keys)
    ctes = [
        f"f0 AS MATERIALIZED (SELECT {key_list}, min(o) AS o0 FROM r WHERE s0 GROUP BY {key_list})"
    ]
    answers = [
        "SELECT 0 AS step, (SELECT count(*) FROM f0) AS reached, CAST(NULL AS DOUBLE) AS gap"
    ]
    for index in range(1, count):
        before = index - 1
        # The rows of a combination that reached the step before (f<before> holds
        # every combination of its pass, reached or not, from the third step on).
        joined = f"r JOIN f{before} p USING ({key_list}) WHERE p.o{before} IS NOT NULL"
        earliest = f"min(r.o) FILTER (WHERE s{index} AND r.o > p.o{before}) AS o{index}"
        if index == 1:
            ctes.append(
                f"f1 AS MATERIALIZED (SELECT {key_list}, {earliest} FROM {joined} AND s1 "
                f"GROUP BY {key_list})"
            )
        else:
            latest = f"max(r.ts) FILTER (WHERE s{index - 2} AND r.o < p.o{before}) AS p{before}"
            ctes.append(
                f"f{index} AS MATERIALIZED (SELECT {key_list}, {earliest}, {latest}, "
                f"any_value(p.o{before}) AS o{before} FROM {joined} "
                f"AND (s{index} OR s{index - 2}) GROUP BY {key_list})"
            )
    if count > 1:
        last = count - 1
        ctes.append(
            f"e AS MATERIALIZED (SELECT max(r.ts) FILTER (WHERE s{last - 1} AND r.o < p.o{last}) "
            f"AS p{last}, any_value(p.o{last}) AS o{last} FROM r JOIN f{last} p "
            f"USING ({key_list}) WHERE p.o{last} IS NOT NULL AND s{last - 1} GROUP BY {key_list})"
        )
    for index in range(1, count):
        gaps = f"f{index + 1}" if index < count - 1 else "e"
        answers.append(
            f"SELECT {index} AS step, (SELECT count(o{index}) FROM f{index}) AS reached, "
            f"(SELECT median((o{index} >> 64) - p{index}) FROM {gaps}) AS gap"
        )
    return f"{', '.join(ctes)} SELECT * FROM ({' UNION ALL '.join(answers)}) ORDER BY step"


def _step_cte(index: int, keys: list[str], order: str, window: str | None) -> str:
    key_list = ", ".join(keys)
    same = " AND ".join(f"e.{k} = p.{k}" for k in keys)
    events = f"(SELECT DISTINCT {key_list}, ts, o FROM r WHERE s{index}) e"
    chosen = ", ".join(f"e.{k}" for k in keys)
    if order == "strict":
        limit = (
            f" HAVING CAST(e.ts AS HUGEINT) - max(p.st) <= CAST({window} AS HUGEINT)"
            if window
            else ""
        )
        return (
            f"b{index} AS MATERIALIZED (SELECT {chosen}, e.ts, e.o, max(p.st) AS st, "
            f"max(p.ts) AS pts FROM {events} JOIN t ON "
            f"{' AND '.join(f't.{k} = e.{k}' for k in keys)} AND t.o = e.o "
            f"JOIN b{index - 1} p ON {same} AND p.o = t.prev GROUP BY {chosen}, e.ts, e.o{limit})"
        )
    limit = f" WHERE CAST(e.ts AS HUGEINT) - p.st <= CAST({window} AS HUGEINT)" if window else ""
    return (
        f"b{index} AS MATERIALIZED (SELECT {chosen}, e.ts, e.o, p.st, p.ts AS pts FROM {events} "
        f"ASOF JOIN b{index - 1} p ON {same} AND e.o > p.o{limit})"
    )
