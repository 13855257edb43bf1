"""The Redis broker: at-least-once queues in priority order, with leases.

Keys, under ``queue_key`` (``flowrra:queue:io`` by default; ``:cpu`` for CPU tasks), and
how each is bounded:

- ``{q}`` sorted set of waiting task ids, score ``priority * 2**40 + arrival``: lower
  priority first, first-in first-out within a priority; a task leaves it when taken;
- ``{q}:payloads`` hash id -> signed task payload (HMAC-SHA256 over the payload and the
  task id, checked before unpickling); removed when the task is acknowledged;
- ``{q}:inflight`` sorted set of ``priority:id`` taken by a worker, score = lease deadline.
  A worker renews its leases from a thread of its own (a task that blocks the event loop
  does not stop it) and removes a task only after its result is stored; a lease that
  lapses (the worker died) puts the task back at the front and counts a delivery;
- ``{q}:deliveries`` hash id -> leases lapsed; a task whose leases lapsed
  ``max_deliveries`` times ends FAILED instead of running again; removed on acknowledge;
- ``{q}:delayed`` sorted set of ``priority:id`` by due time (countdown, eta, retries);
- ``{q}:wakeup`` a pub/sub channel (no key): workers wait on it, so no polling and no
  blocking command per task;
- ``{q}:dead`` list of payloads and members that could not be trusted or read (at most
  :data:`DEAD_LETTER_CAP`, the newest kept);
- ``{q}:cancel:{id}`` a cancel asked for a task a worker had taken: a worker that takes
  the task again (its lease lapsed: the worker that ran it died) ends it CANCELLED
  instead of running it; expires after a day;
- ``{q}:functions`` hash digest -> signed function, for functions shipped by value: one
  entry per distinct function definition;
- ``{q}:seq`` the arrival counter;
- ``{q}:workers`` hash worker id -> JSON (host, pid, queues, concurrency, running, time
  of the last beat), written by each worker's lease thread for dashboards; display only,
  an entry without a beat for a day is dropped;
- ``{q}:limits``, ``{q}:limit:{name}``, ``{q}:running:{name}``, ``{q}:held`` and
  ``{q}:held:{name}``: rate limits and concurrency caps, and the tasks they hold back
  (see :mod:`flowrra.brokers.redis_limits`).

Every step that moves a task is one Lua script, so a task is never in two places. A
member that does not parse, or a key of the wrong type, is set aside (dead-lettered or
renamed to ``{key}:corrupt``) with a log line; it never stops a worker.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import math
import time
from dataclasses import dataclass, field
from typing import Any

from flowrra.brokers.base import BaseBroker
from flowrra.brokers.redis_limits import LUA_LIMITS_RELEASE, LUA_LIMITS_TAKE, limits_field
from flowrra.exceptions import BrokerError, SignatureError
from flowrra.redis_client import (
    DEFAULT_RETRY_BUDGET,
    LUA_ROWS,
    connect,
    pack_batch,
    pool_options,
    redacted,
    rename_wrong_types,
    retrying,
    unreachable,
)
from flowrra.redis_wire import ScriptLine, busy_poll_window, subscribe
from flowrra.serialization import Signer, digest_of, signer_for
from flowrra.task import Task, task_of, task_state

__all__ = [
    "DEAD_LETTER_CAP",
    "DEFAULT_LEASE",
    "DEFAULT_MAX_DELIVERIES",
    "LUA_QUEUE",
    "RedisBroker",
    "Taken",
    "TakenTask",
]

logger = logging.getLogger("flowrra.redis")

#: Seconds a taken task stays leased without a heartbeat before it is queued again.
DEFAULT_LEASE = 30.0
#: Deliveries (the first plus one per lapsed lease) after which a task ends FAILED.
DEFAULT_MAX_DELIVERIES = 5
#: Entries the dead-letter list keeps at most.
DEAD_LETTER_CAP = 10_000
_MAX_PRIORITY = 2000

LUA_NOW = "local t = redis.call('TIME') local now = tonumber(t[1]) + tonumber(t[2]) / 1e6\n"

#: Lua functions over one queue ``q`` (its keys are ``q`` plus suffixes), shared with
#: the result backend's write script, which queues tasks and acknowledges them in the
#: same script as it stores their records when both live on one server.
#: ``enqueue(q, rows, claimed)``: rows ``{id, priority, due, blob, lease}``; one INCRBY
#: numbers the rows that wait in the queue (none if none waits); one PUBLISH wakes the
#: workers. A row with a lease (seconds) is leased at once to the process that submits
#: it, which has idle workers, when no task waits in the queue: its id is added to
#: ``claimed`` and it never waits in the queue.
#: ``ack(q, pairs, limited)``: ``{priority, id, ...}`` of finished tasks (``limited``
#: false: none of them has limits, whose bookkeeping is then skipped). Needs ``now`` and
#: ``chunked`` (see :data:`~flowrra.redis_client.LUA_ROWS`). A row's sixth field, if any,
#: is its limits (:mod:`~flowrra.brokers.redis_limits`): such a row is never leased at once.
#: ``SLOT``: the score span of one priority in the queue (a priority's tasks are numbered
#: within it). ``dead_letter(q, text)``: notes ``text`` in queue ``q``'s dead-letter list
#: (the newest :data:`DEAD_LETTER_CAP` kept). ``next_seq(q, n)``: the last of ``n`` new
#: arrival numbers of queue ``q``. A counter that a hostile or broken write left unusable
#: (not a whole number, or outside ``SLOT``) starts again, and its value is dead-lettered:
#: before, every submit failed on it.
LUA_SEQ = f"""
local SLOT = 1099511627776
local function dead_letter(q, text)
  redis.call('RPUSH', q .. ':dead', text)
  redis.call('LTRIM', q .. ':dead', -{DEAD_LETTER_CAP}, -1)
end
local function next_seq(q, n)
  local key = q .. ':seq'
  local s = redis.pcall('INCRBY', key, n)
  if type(s) == 'number' and s >= n and s < SLOT then return s end
  local old = type(s) == 'number' and tostring(s - n) or redis.pcall('GET', key)
  old = type(old) == 'string' and string.sub(old, 1, 200) or 'not a string'
  dead_letter(q, 'malformed value of ' .. key .. ': ' .. old)
  redis.call('SET', key, n)
  return n
end
"""

LUA_QUEUE = (
    LUA_LIMITS_RELEASE
    + LUA_SEQ
    + """
local function enqueue(q, batch, claimed)
  local n = #batch
  if n == 0 then return 0 end
  local payloads, ready, delayed, leased, limits, waits = {}, {}, {}, {}, {}, {}
  local idle = redis.call('ZCARD', q) == 0
  for _, r in ipairs(batch) do
    local id, pr, due, lease = r[1], r[2], r[3], r[5] or 0
    payloads[#payloads + 1] = id; payloads[#payloads + 1] = r[4]
    if r[6] then limits[#limits + 1] = id; limits[#limits + 1] = r[6] end
    if due > now then
      delayed[#delayed + 1] = due; delayed[#delayed + 1] = pr .. ':' .. id
    elseif lease > 0 and idle then
      leased[#leased + 1] = now + lease; leased[#leased + 1] = pr .. ':' .. id
      claimed[#claimed + 1] = id
    else
      waits[#waits + 1] = r
    end
  end
  if #waits > 0 then  -- numbered in arrival order (no number needed when none waits)
    local s = next_seq(q, #waits) - #waits
    for i, r in ipairs(waits) do
      ready[#ready + 1] = r[2] * SLOT + s + i; ready[#ready + 1] = r[1]
    end
  end
  chunked('HSET', q .. ':payloads', payloads)
  chunked('HSET', q .. ':limits', limits)
  chunked('ZADD', q .. ':inflight', leased)
  chunked('ZADD', q, ready)
  chunked('ZADD', q .. ':delayed', delayed)
  if #ready + #delayed > 0 then redis.call('PUBLISH', q .. ':wakeup', n) end
  return n
end
local function ack(q, pairs, limited)
  if limited ~= false then release_all(q, pairs, true) end
  local members, ids = {}, {}
  for i = 1, #pairs, 2 do
    members[#members + 1] = pairs[i] .. ':' .. pairs[i + 1]
    ids[#ids + 1] = pairs[i + 1]
  end
  chunked('ZREM', q .. ':inflight', members)
  chunked('HDEL', q .. ':payloads', ids)
  chunked('HDEL', q .. ':deliveries', ids)
end
"""
)

_ENQUEUE = LUA_NOW + LUA_ROWS + LUA_QUEUE + "return enqueue(ARGV[1], rows(ARGV[2], ARGV[3]))\n"

_ACK = LUA_NOW + LUA_ROWS + LUA_QUEUE + "ack(ARGV[1], cjson.decode(ARGV[2])) return 1\n"

# ARGV: q, lease, count, max_deliveries. Returns
# {taken (id, priority, blob, poisoned) x n, missing ids, malformed members,
#  next delayed due, next lease deadline, now}; poisoned is the deliveries of a task
# delivered too often, -1 for a task re-delivered after a cancel was asked, else 0.
_TAKE = (
    LUA_NOW
    + LUA_LIMITS_RELEASE
    + LUA_LIMITS_TAKE
    + LUA_SEQ
    + """
local q, lease, count, maxd = ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3]),
  tonumber(ARGV[4])
local INF, DEL, PAY, DLV = q .. ':inflight', q .. ':delayed', q .. ':payloads',
  q .. ':deliveries'
local bad = {}
local function split(m)
  local sep = string.find(m, ':', 1, true)
  if not sep then return nil end
  local pr, id = tonumber(string.sub(m, 1, sep - 1)), string.sub(m, sep + 1)
  if not pr or pr ~= math.floor(pr) or math.abs(pr) > 2000 or id == '' then return nil end
  return pr, id
end
local function reject(key, m)
  redis.call('ZREM', key, m)
  dead_letter(q, 'malformed member of ' .. key .. ': ' .. m)
  bad[#bad + 1] = key .. ' ' .. m
end
for _, m in ipairs(redis.call('ZRANGEBYSCORE', DEL, '-inf', now, 'LIMIT', 0, 1000)) do
  local pr, id = split(m)
  if pr then
    local seq = next_seq(q, 1)  -- first: nothing it may raise comes after the move
    redis.call('ZREM', DEL, m)
    redis.call('ZADD', q, pr * SLOT + seq, id)
  else
    reject(DEL, m)
  end
end
for _, m in ipairs(redis.call('ZRANGEBYSCORE', INF, '-inf', now, 'LIMIT', 0, 1000)) do
  local pr, id = split(m)
  if pr then
    local n = redis.pcall('HINCRBY', DLV, id, 1)
    if type(n) ~= 'number' then
      -- a key of the wrong type: raised before this task moves (the key is set aside
      -- and the call made again); a count a write left unusable starts again
      if redis.call('TYPE', DLV).ok ~= 'hash' then error(n.err) end
      dead_letter(q, 'malformed value of ' .. DLV .. ' for ' .. id)
      bad[#bad + 1] = DLV .. ' ' .. id
      redis.call('HSET', DLV, id, 1)
    end
    redis.call('ZREM', INF, m)
    redis.call('ZADD', q, pr * SLOT, id)
  else
    reject(INF, m)
  end
end
local limited = redis.call('EXISTS', q .. ':limits', q .. ':held') > 0
if limited then unpark(q, lease, count) end
local out, missing = {}, {}
local popped = redis.call('ZPOPMIN', q, count)
for i = 1, #popped, 2 do
  local id = popped[i]
  local pr = math.floor(tonumber(popped[i + 1]) / SLOT)
  -- a score no submit gives (written by someone else): the task goes as priority 0,
  -- so that its lease and its acknowledgement name the same member
  if not (pr >= -2000 and pr <= 2000) then pr = 0 end
  local blob = redis.call('HGET', PAY, id)
  if blob and limited and held_back(q, id, pr, popped[i + 1], lease) then
    blob = nil  -- held back by its limits: it waits in Redis, holding no worker
  elseif blob then
    redis.call('ZADD', INF, now + lease, pr .. ':' .. id)
    local lapsed = tonumber(redis.call('HGET', DLV, id) or '0') or 0
    local flag = (lapsed >= maxd) and (lapsed + 1) or 0
    if lapsed > 0 and redis.call('EXISTS', q .. ':cancel:' .. id) == 1 then flag = -1 end
    out[#out + 1] = id; out[#out + 1] = pr; out[#out + 1] = blob
    out[#out + 1] = flag
  elseif blob == false then
    missing[#missing + 1] = id
  end
end
local d = redis.call('ZRANGE', DEL, 0, 0, 'WITHSCORES')
local f = redis.call('ZRANGE', INF, 0, 0, 'WITHSCORES')
local due = limited and next_due(q, d[2]) or d[2]
return {out, missing, bad, due or '', f[2] or '', tostring(now)}
"""
)

_RETRY = (
    LUA_LIMITS_RELEASE
    + """
local q = ARGV[1]
release_all(q, {ARGV[2], ARGV[3]}, false)
redis.call('ZREM', q .. ':inflight', ARGV[2] .. ':' .. ARGV[3])
redis.call('HSET', q .. ':payloads', ARGV[3], ARGV[5])
redis.call('ZADD', q .. ':delayed', tonumber(ARGV[4]), ARGV[2] .. ':' .. ARGV[3])
redis.call('PUBLISH', q .. ':wakeup', 1)
return 1
"""
)

_NACK = (
    LUA_LIMITS_RELEASE
    + """
local q = ARGV[1]
release_all(q, {unpack(ARGV, 2)}, false)
for i = 2, #ARGV, 2 do
  if redis.call('ZREM', q .. ':inflight', ARGV[i] .. ':' .. ARGV[i + 1]) == 1 then
    redis.call('ZADD', q, tonumber(ARGV[i]) * 1099511627776, ARGV[i + 1])
  end
end
redis.call('PUBLISH', q .. ':wakeup', 1)
return 1
"""
)

# ARGV: lease, members. Returns the members that were not in flight any more (their
# lease lapsed, and the task went back to the queue): not renewed, since XX adds nothing.
_HEARTBEAT = (
    LUA_NOW
    + """
local lost = {}
for i = 2, #ARGV do
  if redis.call('ZADD', KEYS[1], 'XX', 'CH', now + tonumber(ARGV[1]), ARGV[i]) == 0 then
    lost[#lost + 1] = ARGV[i]
  end
end
return lost
"""
)

# ARGV: q, priority, id. Returns 1 (taken out of the queue or the delayed set), -1 (a
# worker has it: the cancel is noted for the worker that would take it again) or 0.
_WITHDRAW = (
    LUA_LIMITS_RELEASE
    + """
local q = ARGV[1]
local a = redis.call('ZREM', q, ARGV[3])
local b = redis.call('ZREM', q .. ':delayed', ARGV[2] .. ':' .. ARGV[3]) + unpark_one(q, ARGV[3])
if a + b > 0 then
  redis.call('HDEL', q .. ':payloads', ARGV[3])
  redis.call('HDEL', q .. ':deliveries', ARGV[3])
  redis.call('HDEL', q .. ':limits', ARGV[3])
  return 1
end
if redis.call('ZSCORE', q .. ':inflight', ARGV[2] .. ':' .. ARGV[3]) then
  redis.call('SET', q .. ':cancel:' .. ARGV[3], 1, 'EX', 86400)
  return -1
end
return 0
"""
)

# ARGV: q. Returns {queued, delayed, in flight, dead-lettered, held back by limits}, read
# at one moment (a task moves between these keys inside scripts only).
_COUNTS = """
local q = ARGV[1]
local held = 0
for _, name in ipairs(redis.call('ZRANGE', q .. ':held', 0, -1)) do
  local n = redis.pcall('ZCARD', q .. ':held:' .. name)  -- a key of the wrong type: 0
  if type(n) == 'number' then held = held + n end
end
return {redis.call('ZCARD', q), redis.call('ZCARD', q .. ':delayed'),
  redis.call('ZCARD', q .. ':inflight'), redis.call('LLEN', q .. ':dead'), held}
"""

_SCRIPTS = {
    "counts": _COUNTS,
    "enqueue": _ENQUEUE,
    "ack": _ACK,
    "retry": _RETRY,
    "nack": _NACK,
    "withdraw": _WITHDRAW,
}

#: The type each key of a queue must have (suffix -> Redis type).
_KEY_TYPES = {
    "": "zset",
    ":payloads": "hash",
    ":inflight": "zset",
    ":delayed": "zset",
    ":deliveries": "hash",
    ":dead": "list",
    ":functions": "hash",
    ":seq": "string",
    ":workers": "hash",
    ":limits": "hash",
    ":held": "zset",
}

#: The type of each per-name limits key, ``{q}:{part}:{task name}`` (see
#: flowrra.brokers.redis_limits).
_NAME_KEY_TYPES = {"limit": "string", "running": "zset", "held": "zset"}


#: A worker is shown as lost after three missed beats, and never sooner than this.
LOST_AFTER = 5.0
_FORGET_AFTER = 86400.0  # a lost worker's entry is dropped after a day


@dataclass(slots=True)
class TakenTask:
    """A task taken from Redis under a lease, with what its payload carried.

    ``deliveries`` is non-zero for a task whose leases lapsed ``max_deliveries`` times
    (its workers died or lost it each time): it must not run again.
    """

    task: Task
    submitted_at: Any
    function: str | None
    deliveries: int = 0


@dataclass(slots=True)
class Taken:
    """What one :meth:`RedisBroker.take` found.

    ``tasks`` were leased; ``wake`` is the seconds until something else is due (a delayed
    task or a lease deadline; None if nothing is); ``missing`` the ids queued without a
    payload (skipped); ``dead`` the ``(id, reason)`` of payloads set aside because they
    failed their signature check or could not be read.
    """

    tasks: list[TakenTask] = field(default_factory=list)
    wake: float | None = None
    missing: list[str] = field(default_factory=list)
    dead: list[tuple[str, str]] = field(default_factory=list)


class RedisBroker(BaseBroker):
    """Queues tasks in Redis; see the module docstring for the key layout.

    Usage::

        broker = RedisBroker("redis://localhost:6379/0", queue_key="myapp:queue:io")
        broker.signer = Signer(secret)

    Every call rides out a lost connection for up to ``retry_budget`` seconds
    (exponential backoff), then raises :class:`~flowrra.exceptions.BrokerError` naming
    the URL with its password hidden.
    """

    def __init__(
        self,
        url: str,
        max_connections: int = 50,
        socket_timeout: float = 5.0,
        retry_on_timeout: bool = True,
        queue_key: str = "flowrra:queue",
        *,
        retry_budget: float = DEFAULT_RETRY_BUDGET,
        max_deliveries: int = DEFAULT_MAX_DELIVERIES,
        **unknown: Any,
    ) -> None:
        """Describe the broker; nothing connects before the first command."""
        if unknown:
            raise BrokerError(f"Unknown RedisBroker option(s): {', '.join(sorted(unknown))}")
        self.url = url
        self.queue_key = queue_key
        self.lease = DEFAULT_LEASE
        self.retry_budget = retry_budget
        self.max_deliveries = max_deliveries
        self.signer: Signer | None = None
        self._options = {
            "max_connections": max_connections,
            "socket_timeout": socket_timeout,
            "retry_on_timeout": retry_on_timeout,
        }
        self._client: Any = None
        self._busy_poll = busy_poll_window()  # a bad FLOWRRA_REDIS_BUSY_POLL_US fails here
        self._sync_client: Any = None
        self._scripts: dict[str, Any] = {}
        self._take_line: ScriptLine | None = None  # take's own connection (one feeder)
        q = queue_key
        self.keys = {"queue": q, **{s[1:]: q + s for s in _KEY_TYPES if s}}
        self.channel = f"{q}:wakeup"
        self._woken = asyncio.Event()
        self._listener: asyncio.Task[None] | None = None
        self._subscribed: asyncio.Event | None = None

    def __repr__(self) -> str:
        return f"RedisBroker({redacted(self.url)!r}, queue_key={self.queue_key!r})"

    # ------------------------------------------------------------ connection
    @property
    def client(self) -> Any:
        """The shared asyncio client (made on first use)."""
        if self._client is None:
            self._client = connect(self.url, **self._options)
            for name, source in _SCRIPTS.items():
                self._scripts[name] = self._client.register_script(source)
            self._take_line = ScriptLine(self._client, _TAKE, self._busy_poll)
        return self._client

    async def ping(self) -> None:
        """Check Redis answers; raise :class:`BrokerError` naming the URL if not."""
        try:
            await self.client.ping()
        except Exception as exc:
            raise BrokerError(unreachable("broker", self.url, exc)) from exc

    def _signer(self) -> Signer:
        """The signer set by the app, else one for ``FLOWRRA_SECRET_KEY``, else one made
        for this process (good for its own workers only)."""
        if self.signer is None:
            self.signer = signer_for(None)[0]
        return self.signer

    def _error(self, what: str) -> Any:
        def fail(exc: BaseException) -> BrokerError:
            return BrokerError(f"Redis broker {redacted(self.url)}: {what} failed: {exc}")

        return fail

    async def call(self, what: str, make: Any) -> Any:
        """Await ``make()`` (a Redis call), riding out outages within the retry budget;
        a key of the wrong type is set aside once and the call made again."""
        _ = self.client  # made here, so the scripts are registered before make() runs
        try:
            return await retrying(make, self.retry_budget, self._error(what))
        except BrokerError as exc:
            if "WRONGTYPE" not in str(exc) or not await self.repair():
                raise
        return await retrying(make, self.retry_budget, self._error(what))

    async def _run(self, name: str, args: list[Any]) -> Any:
        return await self.call(name, lambda: self._scripts[name](keys=[], args=args))

    async def repair(self) -> bool:
        """Rename each of this queue's keys that holds the wrong type of value to
        ``{key}:corrupt`` (logged); True if any was. The keys of each limited task name
        (``{q}:limit:{name}``, ``{q}:running:{name}``, ``{q}:held:{name}``) are found
        by a scan: this runs only after Redis answered WRONGTYPE."""
        q = self.queue_key
        return await rename_wrong_types(
            self.client,
            {q + suffix: kind for suffix, kind in _KEY_TYPES.items()},
            {f"{q}:{part}": kind for part, kind in _NAME_KEY_TYPES.items()},
        )

    # --------------------------------------------------------------- enqueue
    def encode(self, task: Task, submitted_at: Any, function: str | None) -> bytes:
        """The signed payload of ``task`` (bound to its id)."""
        return self._signer().dumps(
            (task_state(task), submitted_at, function), what="arguments", context=task.id.encode()
        )

    def rows(self, items: list[tuple[Task, Any, str | None, float]]) -> list[tuple[list, bytes]]:
        """Script rows for ``(task, submitted_at, function_digest, due_timestamp)`` items
        (due 0 means now), signed now; queue them with :meth:`push_rows`."""
        row = self.row
        return [
            row(task, submitted_at, function, due) for task, submitted_at, function, due in items
        ]

    def row(
        self, task: Task, submitted_at: Any, function: str | None, due: float
    ) -> tuple[list, bytes]:
        """The script row of one task (see :meth:`rows`)."""
        blob = self.payload(task, submitted_at, function)
        limits = limits_field(task)
        if limits is None:
            return [task.id, task.priority, due, [len(blob)]], blob
        return [task.id, task.priority, due, [len(blob)], 0, limits], blob

    def payload(self, task: Task, submitted_at: Any, function: str | None) -> bytes:
        """The signed payload of ``task`` (:meth:`encode`), once its priority is checked.

        Raises:
            BrokerError: the priority is outside what the queue's scores can order.
        """
        priority = task.priority
        if not -_MAX_PRIORITY <= priority <= _MAX_PRIORITY:
            raise BrokerError(
                f"priority must be between -{_MAX_PRIORITY} and {_MAX_PRIORITY} on "
                f"Redis, got {priority}"
            )
        return self.encode(task, submitted_at, function)

    async def push_rows(self, rows: list[tuple[list, bytes]]) -> None:
        """Queue rows made by :meth:`rows`, in order, in one script call."""
        meta, blobs = pack_batch([r[0] for r in rows], [r[1] for r in rows])
        await self._run("enqueue", [self.queue_key, meta, blobs])

    async def push_many(self, items: list[tuple[Task, Any, str | None, float]]) -> None:
        """Queue ``(task, submitted_at, function_digest, due_timestamp)`` items; due 0 means
        now. One round trip per 5,000 items."""
        for start in range(0, len(items), 5000):
            await self.push_rows(self.rows(items[start : start + 5000]))

    async def push(self, task: Task) -> None:
        """Queue one task now."""
        await self.push_many([(task, None, None, 0.0)])

    # ------------------------------------------------------------------ take
    async def take(self, count: int) -> Taken:
        """Lease up to ``count`` tasks (see :class:`Taken`). A wake-up published from now
        on ends the next :meth:`wait` at once."""
        self._woken.clear()
        args = [self.queue_key, self.lease, count, self.max_deliveries]
        _ = self.client  # makes the take line with it
        line = self._take_line
        assert line is not None
        out, missing, bad, next_delayed, next_lease, now = await self.call(
            "take", lambda: line(args)
        )
        for member in bad:
            logger.error("Dead-lettered a malformed entry of %s", member.decode(errors="replace"))
        result = Taken()
        for task_id in missing:
            logger.error(
                "Task %s was queued in %s without a payload: skipped",
                task_id.decode(errors="replace"), self.queue_key,
            )  # fmt: skip
            result.missing.append(task_id.decode(errors="replace"))
        for i in range(0, len(out), 4):
            task_id = out[i].decode(errors="replace")
            item = await self._decode(task_id, int(out[i + 1]), out[i + 2], result)
            if item is not None:
                item.deliveries = int(out[i + 3])
                result.tasks.append(item)
        dues = [float(x) for x in (next_delayed, next_lease) if x]
        result.wake = max(0.0, min(dues) - float(now)) if dues else None
        return result

    async def _decode(
        self, task_id: str, priority: int, blob: bytes, result: Taken
    ) -> TakenTask | None:
        try:
            state, submitted_at, function = self._signer().loads(blob, task_id.encode())
            task = task_of(state)
            if task.id != task_id:
                raise SignatureError("payload does not describe this task")
        except Exception as exc:
            await self.dead_letter(task_id, priority, blob, exc)
            result.dead.append((task_id, f"{type(exc).__name__}: {exc}"))
            return None
        return TakenTask(task, submitted_at, function)

    async def dead_letter(
        self, task_id: str, priority: int, blob: bytes, reason: BaseException
    ) -> None:
        """Move a payload that cannot be trusted or read to ``{q}:dead``; log it."""
        logger.error(
            "Task %s in %s moved to the dead-letter list %s: %s",
            task_id, self.queue_key, self.keys["dead"], reason,
        )  # fmt: skip
        k = self.keys

        async def move() -> None:
            pipe = self.client.pipeline(transaction=True)
            pipe.rpush(k["dead"], blob).ltrim(k["dead"], -DEAD_LETTER_CAP, -1)
            pipe.hdel(k["payloads"], task_id).hdel(k["deliveries"], task_id)
            pipe.hdel(k["limits"], task_id)
            pipe.zrem(k["inflight"], f"{priority}:{task_id}")
            await pipe.execute()

        await self.call("dead-letter", move)

    async def mark_cancelled(self, task_id: str) -> None:
        """Note that a cancel was asked for ``task_id`` while it ran: should its worker
        die, the worker that takes it again ends it CANCELLED without running it."""
        key = f"{self.queue_key}:cancel:{task_id}"
        await self.call("cancel", lambda: self.client.set(key, 1, ex=86400))

    async def is_queued(self, task_id: str) -> bool:
        """True while ``task_id`` has a payload here (waiting, delayed or running)."""
        return bool(
            await self.call("read", lambda: self.client.hexists(self.keys["payloads"], task_id))
        )

    # ----------------------------------------------------------------- waits
    async def listen(self) -> None:
        """Subscribe to this queue's wake-ups (done once; kept across reconnects)."""
        if self._listener is None or self._listener.done():
            self._subscribed = asyncio.Event()
            self._listener = asyncio.get_running_loop().create_task(self._listen_loop())
        assert self._subscribed is not None
        await self._subscribed.wait()

    def _listen_loop(self) -> Any:
        return subscribe(self.url, self.channel, self._on_subscribed, self._wake, self._wake)

    def _on_subscribed(self) -> None:
        assert self._subscribed is not None
        self._subscribed.set()
        self._woken.set()  # also after a reconnect: look again

    def _wake(self, _data: bytes | None = None) -> None:
        self._woken.set()

    async def wait(self, timeout: float | None) -> None:
        """Wait until a task may be there (a wake-up since the last :meth:`take`) or
        ``timeout`` seconds pass."""
        await self.listen()
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(timeout):
                await self._woken.wait()

    async def interrupt(self) -> None:
        """End a :meth:`wait` in progress."""
        self._woken.set()

    async def pop(self, timeout: float | None = None) -> Task | None:
        """Take one task (under a lease), waiting up to ``timeout`` seconds."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            taken = await self.take(1)
            wake = taken.wake
            if taken.tasks:
                return taken.tasks[0].task
            left = None if deadline is None else deadline - time.monotonic()
            if left is not None and left <= 0:
                return None
            await self.wait(min(x for x in (left, wake, 60.0) if x is not None))

    # ---------------------------------------------------------- settle tasks
    def ack_pairs(self, tasks: list[Task]) -> list[Any]:
        """The ``ack`` argument for ``tasks``: priority and id of each."""
        return [x for t in tasks for x in (t.priority, t.id)]

    async def ack(self, tasks: list[Task]) -> None:
        """Forget tasks whose results are stored."""
        if tasks:
            import json

            await self._run("ack", [self.queue_key, json.dumps(self.ack_pairs(tasks))])

    async def retry(self, task: Task, submitted_at: Any, function: str | None, due: float) -> None:
        """Move a leased task to the delayed set, to run again at ``due`` (a timestamp)."""
        blob = self.encode(task, submitted_at, function)
        await self._run("retry", [self.queue_key, task.priority, task.id, due, blob])

    async def nack(self, tasks: list[Task]) -> None:
        """Give leased tasks back to the queue, at the front of their priority."""
        if tasks:
            await self._run("nack", [self.queue_key, *self.ack_pairs(tasks)])

    def heartbeat_sync(self, members: list[str]) -> list[str]:
        """Renew the leases of ``members`` (``priority:id``) with a blocking client of
        this broker's own: called from a thread, so a blocked event loop cannot stop it.
        Returns the members whose lease had already lapsed (not renewed: their tasks went
        back to the queue, and another worker may run them)."""
        if not members:
            return []
        self._sync()
        lost = self._sync_heartbeat(keys=[self.keys["inflight"]], args=[self.lease, *members])
        return [m.decode() if isinstance(m, bytes) else str(m) for m in lost or ()]

    # -------------------------------------------------------------- presence
    def beat_sync(self, worker_id: str, info: dict[str, Any]) -> None:
        """Say from a thread that worker ``worker_id`` is alive: ``info`` (host, pid,
        queues, concurrency, running...) is kept as plain JSON with the time of the beat,
        for dashboards. Display only: nothing acts on it."""
        self._sync().hset(
            self.keys["workers"], worker_id, json.dumps({**info, "beat": time.time()})
        )

    def leave_sync(self, worker_id: str) -> None:
        """Take worker ``worker_id`` off the list (it stopped cleanly)."""
        self._sync().hdel(self.keys["workers"], worker_id)

    def _sync(self) -> Any:
        if self._sync_client is None:
            import redis

            self._sync_client = redis.Redis.from_url(
                self.url, socket_timeout=5.0, socket_connect_timeout=5.0, **pool_options()
            )
            self._sync_heartbeat = self._sync_client.register_script(_HEARTBEAT)
        return self._sync_client

    async def workers(self) -> list[dict[str, Any]]:
        """The workers that beat on this queue, newest beat first. Each is its ``info``
        plus ``id``, ``beat`` (POSIX seconds), ``seconds_since_beat`` and ``lost`` (no
        beat for three of its beat periods, at least :data:`LOST_AFTER` seconds).
        Malformed entries are skipped; entries lost for a day are dropped."""
        raw = await self.call("workers", lambda: self.client.hgetall(self.keys["workers"]))
        now = time.time()
        found, stale = [], []
        for key, value in raw.items():
            worker_id = key.decode(errors="replace")
            try:
                info = json.loads(value)
                beat = float(info["beat"])  # a number, or a string of one (written by
                if not math.isfinite(beat):  # someone else); info a dict (else TypeError)
                    raise ValueError(beat)
            except (ValueError, KeyError, TypeError):
                logger.warning(
                    "Skipped a malformed worker entry %r in %s", worker_id, self.keys["workers"]
                )
                continue
            age = now - beat
            if age > _FORGET_AFTER:
                stale.append(key)
                continue
            every = info.get("every")
            lost_after = max(LOST_AFTER, 3 * every) if isinstance(every, (int, float)) else 15.0
            found.append(
                {**info, "id": worker_id, "beat": beat, "seconds_since_beat": age,
                 "lost": age > lost_after}
            )  # fmt: skip
        if stale:
            await self.call("workers", lambda: self.client.hdel(self.keys["workers"], *stale))
        found.sort(key=lambda w: w["beat"], reverse=True)
        return found

    async def withdraw(self, task_id: str, priority: int) -> str:
        """Take a waiting or delayed task out of Redis (``"removed"``). For a task a
        worker has taken, whether or not it started, note the cancel in the same script
        (see :meth:`mark_cancelled`) and return ``"taken"``; else ``"absent"``."""
        found = int(await self._run("withdraw", [self.queue_key, priority, task_id]))
        return "removed" if found > 0 else "taken" if found < 0 else "absent"

    # ------------------------------------------------------------- functions
    async def store_function(self, digest: str, data: bytes) -> None:
        """Keep a function shipped by value, signed for its digest."""
        blob = self._signer().sign(data, digest.encode())
        await self.call(
            "store function", lambda: self.client.hsetnx(self.keys["functions"], digest, blob)
        )

    async def load_function_bytes(self, digest: str) -> bytes:
        """The verified bytes of a shipped function: the signature must hold for this
        digest and the bytes must have this digest."""
        blob = await self.call(
            "load function", lambda: self.client.hget(self.keys["functions"], digest)
        )
        if blob is None:
            raise BrokerError(f"Function {digest} was not found in {self.keys['functions']}")
        try:
            data = self._signer().verify(blob, digest.encode())
            if digest_of(data) != digest:
                raise SignatureError(f"function {digest}: its bytes do not have that digest")
        except SignatureError as exc:
            await self._set_function_aside(digest, blob, exc)
            raise
        return data

    async def _set_function_aside(self, digest: str, blob: bytes, reason: Exception) -> None:
        logger.error(
            "Function %s in %s failed verification (%s): moved to %s",
            digest, self.keys["functions"], reason, self.keys["dead"],
        )  # fmt: skip
        k = self.keys

        async def move() -> None:
            pipe = self.client.pipeline(transaction=True)
            pipe.rpush(k["dead"], blob).ltrim(k["dead"], -DEAD_LETTER_CAP, -1)
            pipe.hdel(k["functions"], digest)
            await pipe.execute()

        await self.call("dead-letter", move)

    # ----------------------------------------------------------------- misc
    async def size(self) -> int:
        """Tasks waiting (not delayed, not leased)."""
        return int(await self.call("size", lambda: self.client.zcard(self.keys["queue"])))

    async def counts(self) -> dict[str, int]:
        """Task counts of this queue, read at one moment: ``queued`` (waiting),
        ``delayed`` (a countdown or retry not yet due), ``inflight`` (taken by a
        worker), ``dead`` (dead-lettered entries) and ``held`` (taken off the queue by a
        worker but held back by their rate or concurrency limit, each waiting its turn
        in its place)."""
        queued, delayed, inflight, dead, held = await self._run("counts", [self.queue_key])
        return {
            "queued": queued, "delayed": delayed, "inflight": inflight, "dead": dead,
            "held": held,
        }  # fmt: skip

    async def close(self) -> None:
        """Close the connections."""
        listener, self._listener = self._listener, None
        if listener is not None:
            listener.cancel()
            with contextlib.suppress(BaseException):
                await listener
        if self._take_line is not None:
            await self._take_line.close()
            self._take_line = None
        if self._client is not None:
            await self._client.aclose()
        self._client = None
        if self._sync_client is not None:
            self._sync_client.close()
            self._sync_client = None
