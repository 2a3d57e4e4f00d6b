"""The relay's replay rules, without a broker: a crash anywhere, a replay from what was committed.

A fake partition (a list of messages, each with a number of events) is
read by a `PartitionBatches` under a random schedule of fetches, time,
deliveries, commits and tail cuts; the "crash" keeps only what Kafka would
keep (the committed offset and the cut mark). A new reader replays from
there. Applying every batch sent, by either reader, once per batch id (as
the Redis counter sink does) must count every event exactly once.

The same for windows: a `Windowed` relay fed by two partitions, crashed at
a random point and replayed from its committed offsets and marks, must
emit every window with the same aggregates as a reference computed from
all the events, and every window id must carry one content only.
"""

from __future__ import annotations

import random
from collections import Counter, defaultdict
from typing import Any

import pytest

import metricstream as ms
from metricstream.aggregate import EventTimeWindows, WatermarkTracker
from metricstream.relay.batches import Batch, PartitionBatches
from metricstream.relay.stats import RelayCounters
from metricstream.relay.windowing import Windowed


class FakeClock:
    """Monotonic seconds the test moves."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


class FakeReceipt:
    """A receipt the test delivers."""

    def __init__(self) -> None:
        self.done = False

    def delivered(self) -> bool:
        return self.done


class RecordingOutlet:
    """Takes every batch (or refuses while `refusing`), remembering it by id."""

    def __init__(self) -> None:
        self.sent: list[tuple[str, list[Any]]] = []
        self.receipts: list[FakeReceipt] = []
        self.refusing = False

    def send(self, events: list[Any], batch_id: str) -> Any:
        if self.refusing:
            return None
        receipt = FakeReceipt()
        self.sent.append((batch_id, list(events)))
        self.receipts.append(receipt)
        return receipt

    def deliver(self, count: int) -> None:
        for receipt in self.receipts:
            if count <= 0:
                return
            if not receipt.done:
                receipt.done = True
                count -= 1


def batch_key(batch: Batch) -> tuple[int, int, int | None]:
    return (batch.start, batch.end, batch.part)


# --- batches ------------------------------------------------------------------------------

GRID, MAX_EVENTS = 8, 5

ACTIONS = ("produce", "fetch", "fetch", "wait", "tail", "tail", "send", "deliver", "commit")


class Reader:
    """One reader of the fake partition: what a relay process does with it."""

    def __init__(
        self, log: list[int], start: int, mark: int | None, clock: FakeClock, *, gap: int
    ) -> None:
        self.log = log
        self.gap = gap  # offsets are multiples of `gap` apart (compaction leaves gaps)
        self.batches = PartitionBatches(start, GRID, MAX_EVENTS, mark, clock)
        self.position = next((i for i in range(len(log)) if self.offset(i) >= start), len(log))
        self.sent: dict[tuple[int, int, int | None], list[Any]] = {}
        self.mark = mark
        self.committed = start

    def offset(self, index: int) -> int:
        return index * self.gap

    def fetch(self, count: int, produced: int) -> None:
        for index in range(self.position, min(produced, self.position + count)):
            offset = self.offset(index)
            self.batches.add(offset, [(offset, n) for n in range(self.log[index])], None)
        self.position = max(self.position, min(produced, self.position + count))

    def tail(self, produced: int, linger: float) -> None:
        log_end = self.offset(produced - 1) + 1 if produced else 0
        due = self.batches.tail_due(linger, log_end)
        if due is not None:
            self.mark = due  # written down before the batch is sent
            self.batches.cut_tail(due)

    def send(self) -> None:
        batches = self.batches
        while batches.ready:
            batch = batches.ready.popleft()
            receipt = FakeReceipt()
            batch.receipt = receipt  # type: ignore[assignment]
            self.sent[batch_key(batch)] = list(batch.events)
            batches.in_flight.append(batch)

    def deliver(self, count: int) -> None:
        for batch in list(self.batches.in_flight)[:count]:
            batch.receipt.done = True  # type: ignore[union-attr]
        self.batches.collect()

    def commit(self) -> None:
        self.committed = self.batches.commit_offset()
        self.batches.committed = self.committed


class TestBatchesReplay:
    """Batches read again after a crash are the same batches: applied once per id, exact."""

    @pytest.mark.parametrize("gap", [1, 3])
    def test_every_event_counts_once_whatever_the_crash(self, gap: int) -> None:
        """3,000 seeded runs: a random partition, reader schedule and crash point each."""
        for seed in range(3000):
            rnd = random.Random(seed)
            log = [rnd.choice((0, 1, 2, 12)) for _ in range(rnd.randint(1, 60))]
            counted, expected = self.crash_and_replay(rnd, log, gap)
            assert counted == expected, f"seed {seed}"

    @staticmethod
    def crash_and_replay(
        rnd: random.Random, log: list[int], gap: int
    ) -> tuple[Counter[Any], Counter[Any]]:
        clock = FakeClock()
        produced = 0
        first = Reader(log, 0, None, clock, gap=gap)
        for _ in range(rnd.randint(0, 40)):
            action, amount = rnd.choice(ACTIONS), rnd.randint(1, 9)
            if action == "produce":
                produced = min(len(log), produced + amount)
            elif action == "fetch":
                first.fetch(amount, produced)
            elif action == "wait":
                clock.now += amount / 10
            elif action == "tail":
                first.tail(produced, linger=0.3)
            elif action == "send":
                first.send()
            elif action == "deliver":
                first.deliver(amount)
            else:
                first.commit()
        # The crash: Kafka keeps the committed offset and the cut mark, nothing else.
        produced = rnd.randint(produced, len(log))
        second = Reader(log, first.committed, first.mark, clock, gap=gap)
        while second.position < produced or second.batches.open is not None:
            second.fetch(rnd.randint(1, 9), produced)
            clock.now += 1
            second.tail(produced, linger=0.3)
            second.send()
            second.deliver(len(second.batches.in_flight))
            second.commit()
        applied: dict[tuple[int, int, int | None], list[Any]] = {}
        for key, events in [*first.sent.items(), *second.sent.items()]:
            applied.setdefault(key, events)  # a batch id is applied once
        counted = Counter(event for events in applied.values() for event in events)
        expected = Counter((index * gap, n) for index in range(produced) for n in range(log[index]))
        return counted, expected

    def test_a_tail_cut_not_yet_committed_is_cut_again_by_the_replay(self) -> None:
        log = [1] * 12
        clock = FakeClock()
        first = Reader(log, 0, None, clock, gap=1)
        first.fetch(3, produced=3)
        clock.now = 1.0
        first.tail(produced=3, linger=0.3)  # [0, 3) cut by time, its offset written down
        first.send()
        assert list(first.sent) == [(0, 3, None)]
        for mark, counted_twice in ((first.mark, 0), (None, 3)):
            second = Reader(log, first.committed, mark, clock, gap=1)
            second.fetch(12, produced=12)  # the partition grew meanwhile
            second.send()
            replayed = set(second.sent)
            assert ((0, 3, None) in replayed) == (mark is not None)
            others = replayed - {(0, 3, None)}
            overlap = sum(1 for offset in range(3) if any(s <= offset < e for s, e, _ in others))
            assert overlap == counted_twice

    def test_grid_size_and_parts(self) -> None:
        clock = FakeClock()
        batches = PartitionBatches(0, GRID, MAX_EVENTS, None, clock)
        for offset, count in enumerate([2, 2, 2, 0, 12, 1, 1, 1, 1]):
            batches.add(offset, [(offset, n) for n in range(count)], None)
        cut = [(b.start, b.end, b.part, len(b.events)) for b in batches.ready]
        assert cut == [
            (0, 2, None, 4),  # a third message of 2 would pass MAX_EVENTS
            (2, 4, None, 2),
            (4, 5, 0, 5),
            (4, 5, 1, 5),
            (4, 5, 2, 2),
            (5, 8, None, 3),  # the grid
        ]
        assert batches.open is not None
        assert (batches.open.start, len(batches.open.events)) == (8, 1)
        assert batches.commit_offset() == 0

    def test_a_tail_is_cut_only_at_the_end_of_the_log_and_one_at_a_time(self) -> None:
        clock = FakeClock()
        batches = PartitionBatches(0, GRID, MAX_EVENTS, None, clock)
        batches.add(0, [1], None)
        batches.add(1, [1], None)
        clock.now = 1.0
        assert batches.tail_due(0.5, log_end=5) is None  # more to read first
        assert batches.tail_due(0.5, log_end=None) is None  # the end is unknown
        assert batches.tail_due(0.5, log_end=2) == 2
        batches.cut_tail(2)
        batches.add(2, [1], None)
        clock.now = 2.0
        assert batches.tail_due(0.5, log_end=3) is None  # the last cut is not committed
        batches.committed = 2
        assert batches.tail_due(0.5, log_end=3) == 3


# --- windows ----------------------------------------------------------------------------

S = 1_000_000_000
BASE = 1_700_000_000 * S
"""Event times start here (a multiple of every window size used)."""
HOSTS = ("a", "b", "c", "d")
KEYS = (("t", 0), ("t", 1))


def host_events(rows: list[tuple[int, int, int]]) -> dict[tuple[str, int], list[ms.MetricEvent]]:
    """Events per partition: a host always goes to the same partition (a keyed topic)."""
    per_partition: dict[tuple[str, int], list[ms.MetricEvent]] = {key: [] for key in KEYS}
    newest = dict.fromkeys(KEYS, 10)
    for host_index, step_s, value in rows:
        host = HOSTS[host_index]
        key = KEYS[host_index % 2]
        time_s = newest[key] + step_s  # out of order by up to 4 s, less than the lateness
        newest[key] = max(newest[key], time_s)
        per_partition[key].append(
            ms.MetricEvent(
                "m", tags={"host": host}, fields={"bytes": value}, timestamp_ns=BASE + time_s * S
            )
        )
    end = max(newest.values()) + 1000
    for key in KEYS:  # far ahead: closes every window of real events
        per_partition[key].append(
            ms.MetricEvent(
                "m", tags={"host": "closer"}, fields={"bytes": 0}, timestamp_ns=BASE + end * S
            )
        )
    return per_partition


def reference(per_partition: dict[Any, list[ms.MetricEvent]], spec: str) -> dict[Any, Any]:
    """Per (host, window start): (count, sum of bytes), for 10 s tumbling or 3 s sessions."""
    totals: dict[Any, list[int]] = defaultdict(lambda: [0, 0])
    by_host: dict[str, list[ms.MetricEvent]] = defaultdict(list)
    for events in per_partition.values():
        for event in events:
            if event.tags["host"] != "closer":
                by_host[event.tags["host"]].append(event)
    for host, mine in by_host.items():
        start = last = None
        for event in sorted(mine, key=lambda e: e.timestamp_ns):
            t = event.timestamp_ns
            if spec.startswith("tumbling"):
                start = t - t % (10 * S)
            elif last is None or t >= last + 3 * S:
                start = t
            last = t if last is None else max(last, t)
            totals[(host, start)][0] += 1
            totals[(host, start)][1] += event.fields["bytes"]
    return {key: tuple(value) for key, value in totals.items()}


class WindowedReader:
    """One relay with windows over the two partitions."""

    def __init__(
        self, spec: str, outlet: RecordingOutlet, starts: dict[Any, int], marks: dict[Any, Any]
    ) -> None:
        windows = EventTimeWindows(
            "w", spec, by="host", aggregates="count,sum:bytes",
            watermark=WatermarkTracker(5, 3600, clock=lambda: 0),
        )  # fmt: skip
        self.counters = RelayCounters("test")
        self.mode = Windowed(windows, outlet, None, "g", counters=self.counters)
        for key in KEYS:
            self.mode.assign(key, starts.get(key), marks.get(key, {}))
        self.position = dict(starts)

    def read(self, key: Any, events: list[ms.MetricEvent], count: int) -> None:
        start = self.position.get(key, 0)
        chunk = [
            (offset, [events[offset]], None)
            for offset in range(start, min(len(events), start + count))
        ]
        self.mode.take(key, chunk)  # type: ignore[arg-type]
        self.position[key] = start + len(chunk)

    def checkpoint(self) -> tuple[dict[Any, int], dict[Any, dict[str, int]]]:
        """What a commit leaves in Kafka: offsets and marks."""
        positions = self.mode.positions()
        values = self.mode.mark_values()
        marks: dict[Any, dict[str, int]] = defaultdict(dict)
        for name, per_key in values.items():
            for key, value in per_key.items():
                marks[key][name] = value
        return positions, marks


class TestWindowsReplay:
    """A relay with windows crashed anywhere and replayed: windows exact, one content per id."""

    @pytest.mark.parametrize("spec", ["tumbling 10s", "session gap 3s"])
    def test_windows_exact_after_a_crash(self, spec: str) -> None:
        """1,000 seeded runs: random events, reader schedule (sinks refusing at times) and crash."""
        for seed in range(1000):
            rnd = random.Random(seed)
            rows = [
                (rnd.randrange(4), rnd.randint(-4, 4), rnd.randrange(101))
                for _ in range(rnd.randint(1, 80))
            ]
            schedule = [
                (rnd.choice(("read0", "read1", "deliver", "commit", "refuse")), rnd.randint(1, 9))
                for _ in range(rnd.randint(0, 40))
            ]
            self.crash_and_replay(spec, rows, schedule, rnd)

    @staticmethod
    def crash_and_replay(
        spec: str,
        rows: list[tuple[int, int, int]],
        schedule: list[tuple[str, int]],
        rnd: random.Random,
    ) -> None:
        per_partition = host_events(rows)
        outlet = RecordingOutlet()
        first = WindowedReader(spec, outlet, dict.fromkeys(KEYS, 0), {})
        committed: tuple[dict[Any, int], dict[Any, Any]] = (dict.fromkeys(KEYS, 0), {})
        for action, amount in schedule:
            if action in ("read0", "read1"):
                key = KEYS[int(action[-1])]
                first.read(key, per_partition[key], amount)
            elif action == "deliver":
                outlet.deliver(amount)
            elif action == "refuse":
                outlet.refusing = not outlet.refusing
            else:
                first.mode.collect()
                committed = first.checkpoint()
            first.mode.collect()
            first.mode.close_windows()
            first.mode.pump()
        outlet.refusing = False
        starts, marks = committed
        second = WindowedReader(spec, outlet, starts, marks)
        for key in KEYS:
            while second.position[key] < len(per_partition[key]):
                second.read(key, per_partition[key], rnd.randint(1, 20))
                second.mode.close_windows()
                second.mode.pump()
        contents: dict[str, list[Any]] = {}
        for batch_id, events in outlet.sent:
            shown = sorted(
                (e.tags["host"], e.timestamp_ns, e.fields["count"], e.fields["sum_bytes"])
                for e in events
            )
            assert contents.setdefault(batch_id, shown) == shown, "one id, two contents"
        applied = {
            (host, start): (count, total)
            for shown in contents.values()
            for host, start, count, total in shown
        }
        assert applied == reference(per_partition, spec)
        assert second.counters.count("late_events") == 0  # read again: "replayed", not late
