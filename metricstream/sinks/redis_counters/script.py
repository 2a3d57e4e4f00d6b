"""The Lua script that applies a batch exactly once, and the payload it is called with.

Exactly once under retries: a batch's operations reach Redis in one script
call (`APPLY_BATCH`), which first records the batch with ``SET batch-key 1 NX
EX ttl`` and applies the operations only when that key is new, all in one
atomic step. A retry after a dropped connection, a timeout or a crash
between the apply and its reply finds the key and changes nothing, so no
batch is ever counted twice. The batch key is named after the sink and the
batch id (`KeyLayout.batch`); it lives ``batch_ttl`` seconds, which must
exceed the longest time a batch may wait before being retried.

``SET NX`` is the script's first write, so a server out of memory refuses
the whole call (the streamer retries it) rather than a part of it. Each
operation runs with ``redis.pcall``: one that Redis refuses (a key of
the wrong type, set by someone else) does not stop the others, and the
script reports how many failed and the first error. ``INCRBY`` on a key that
already holds a float (a sum that once received a float) falls back to
``INCRBYFLOAT``, as does an int total beyond 64 bits.

Redis Cluster: the operations of a batch are split by hash slot and each
slot's part is applied by its own script call, with a batch key in that slot
(its hash tag is a short string that hashes to the slot, `slot_tag`), so a
part moves with its slot when the cluster is resharded and is applied
exactly once like a whole batch on a single node.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import orjson

from metricstream.sinks.redis_counters.encode import Op

__all__ = ["APPLY_BATCH", "CounterPayload", "ScriptCall", "encode_calls", "slot_tag"]

APPLY_BATCH = """-- KEYS[1] records the batch; ARGV[1] is how long (seconds) it is remembered.
-- KEYS[k] (k >= 2) is the key of one operation; ARGV[2] is a JSON array
-- holding, in the same order, each operation's code and arguments.
if not redis.call('SET', KEYS[1], '1', 'NX', 'EX', ARGV[1]) then
  return {0, 0, ''}
end
local ops = cjson.decode(ARGV[2])
local failed, first = 0, ''
for k = 2, #KEYS do
  local key, op, reply = KEYS[k], ops[k - 1], nil
  local code = op[1]
  if code == 'i' then
    reply = redis.pcall('INCRBY', key, op[2])
    if type(reply) == 'table' and reply.err then
      reply = redis.pcall('INCRBYFLOAT', key, op[2])
    end
  elseif code == 'f' then
    reply = redis.pcall('INCRBYFLOAT', key, op[2])
  elseif code == 'x' then
    reply = redis.pcall('EXPIREAT', key, op[2])
  elseif code == 'p' then
    reply = redis.pcall('PFADD', key, unpack(op, 2))
  else
    reply = redis.pcall('SADD', key, unpack(op, 2))
  end
  if type(reply) == 'table' and reply.err then
    failed = failed + 1
    if first == '' then first = key .. ': ' .. reply.err end
  end
end
return {1, failed, first}
"""
"""Applies one batch (or one slot's part of it) exactly once; returns {applied, failed, error}."""

_SLOTS = 16384
_tags: list[str] | None = None
_tags_lock = threading.Lock()


def slot_tag(slot: int) -> str:
    """Return a short string whose Redis Cluster hash slot is `slot` (a hash tag for it)."""
    global _tags  # noqa: PLW0603 - computed once per process, on first use
    tags = _tags
    if tags is None:
        from redis.crc import key_slot

        with _tags_lock:
            if _tags is None:
                found: list[str | None] = [None] * _SLOTS
                missing, number = _SLOTS, 0
                while missing:
                    text = format(number, "x")
                    slot_of = key_slot(text.encode())
                    if found[slot_of] is None:
                        found[slot_of] = text
                        missing -= 1
                    number += 1
                _tags = [tag or "" for tag in found]
            tags = _tags
    return tags[slot]


@dataclass(frozen=True, slots=True, eq=False)
class ScriptCall:
    """One call of `APPLY_BATCH`.

    Attributes:
        slot: The hash slot of every key in it (Redis Cluster), or None.
        keys: The batch key, then one key per operation.
        args: The batch key's time to live, then the operations' codes and
            arguments as one JSON array.
        commands: The operations it applies.
    """

    slot: int | None
    keys: list[str]
    args: list[str | bytes]
    commands: int


@dataclass(frozen=True, slots=True, eq=False)
class CounterPayload:
    """What `RedisCounterSink.prepare` returns and `write` applies.

    Attributes:
        batch_id: The batch's id (part of every batch key).
        events: Events the payload accounts for.
        calls: The script calls: one on a single node, one per hash slot on a cluster.
    """

    batch_id: str
    events: int
    calls: tuple[ScriptCall, ...]

    def __len__(self) -> int:
        return self.events

    @property
    def commands(self) -> int:
        """Redis commands the payload runs (after aggregation), besides the batch checks."""
        return sum(call.commands for call in self.calls)

    def __repr__(self) -> str:
        return (
            f"CounterPayload(batch_id={self.batch_id!r}, events={self.events}, "
            f"calls={len(self.calls)}, commands={self.commands})"
        )


def encode_calls(
    ops: Sequence[Op], batch_key: Callable[[str | None], str], batch_ttl: int, *, cluster: bool
) -> tuple[ScriptCall, ...]:
    """Pack operations into script calls: one, or one per hash slot.

    Args:
        ops: The operations.
        batch_key: Returns the batch key, given a hash tag (None on a single node).
        batch_ttl: Seconds the batch key lives.
        cluster: Split by hash slot.
    """
    if not ops:
        return ()
    ttl = str(batch_ttl)
    if not cluster:
        return (
            ScriptCall(
                None, [batch_key(None), *[key for key, _ in ops]], [ttl, _pack(ops)], len(ops)
            ),
        )
    from redis.crc import key_slot

    slots: dict[str, int] = {}
    parts: dict[int, list[Op]] = {}
    for op in ops:
        key = op[0]
        slot = slots.get(key)
        if slot is None:
            slot = slots[key] = key_slot(key.encode())
        part = parts.get(slot)
        if part is None:
            parts[slot] = [op]
        else:
            part.append(op)
    return tuple(
        ScriptCall(
            slot,
            [batch_key(slot_tag(slot)), *[key for key, _ in part]],
            [ttl, _pack(part)],
            len(part),
        )
        for slot, part in parts.items()
    )


def _pack(ops: Sequence[Op]) -> bytes:
    """The operations' codes and arguments as one JSON array (the script's ARGV[2])."""
    return orjson.dumps([op for _, op in ops])
