"""The Redis broker: at-least-once queues in priority order, with leases.

Keys, under ``queue_key`` (``flowrra:queue:io`` by default; ``:cpu`` for CPU tasks):

- ``{q}`` sorted set of waiting task ids, score ``priority * 2**40 + arrival``: lower
  priority first, first-in first-out within a priority;
- ``{q}:payloads`` hash id -> signed task payload (HMAC-SHA256, checked before unpickling);
- ``{q}:inflight`` sorted set of ``priority:id`` taken by a worker, score = lease deadline.
  A worker renews its leases while tasks run and removes a task only after its result is
  stored; a lease that lapses (the worker died) puts the task back at the front;
- ``{q}:delayed`` sorted set of ``priority:id`` by due time (countdown, eta, retries);
- ``{q}:wakeup`` list that blocked workers wait on (``BLPOP``): no polling;
- ``{q}:dead`` list of payloads that failed their signature check or could not be read;
- ``{q}:functions`` hash digest -> signed function, for functions shipped by value.

Every step that moves a task is one Lua script, so a task is never in two places.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass
from typing import Any

from flowrra.brokers.base import BaseBroker
from flowrra.exceptions import BrokerError, SignatureError
from flowrra.redis_client import LUA_ROWS, connect, pack_batch, redacted, unreachable
from flowrra.serialization import Signer
from flowrra.task import Task

__all__ = ["DEFAULT_LEASE", "RedisBroker", "TakenTask"]

logger = logging.getLogger("flowrra.redis")

#: Seconds a taken task stays leased without a heartbeat before it is queued again.
DEFAULT_LEASE = 30.0
_SLOT = 1 << 40
_MAX_PRIORITY = 2000

_LUA_NOW = "local t = redis.call('TIME') local now = tonumber(t[1]) + tonumber(t[2]) / 1e6\n"

# KEYS: queue, payloads, seq, wakeup, delayed; ARGV: rows (id, priority, due, blob) as
# packed by pack_batch. One INCRBY numbers the batch; payloads and queue entries go in
# as a few commands of many arguments.
_ENQUEUE = (
    _LUA_NOW
    + LUA_ROWS
    + """
local batch = rows(ARGV[1], ARGV[2])
local n = #batch
local s = redis.call('INCRBY', KEYS[3], n) - n
local payloads, ready, delayed = {}, {}, {}
for _, r in ipairs(batch) do
  local id, pr, due = r[1], r[2], r[3]
  payloads[#payloads + 1] = id; payloads[#payloads + 1] = r[4]
  if due > now then
    delayed[#delayed + 1] = due; delayed[#delayed + 1] = pr .. ':' .. id
  else
    s = s + 1
    ready[#ready + 1] = pr * 1099511627776 + s; ready[#ready + 1] = id
  end
end
chunked('HSET', KEYS[2], payloads)
chunked('ZADD', KEYS[1], ready)
chunked('ZADD', KEYS[5], delayed)
local wake = {}
for j = 1, math.min(n, 64) do wake[j] = 1 end
if n > 0 then redis.call('LPUSH', KEYS[4], unpack(wake)) end
redis.call('LTRIM', KEYS[4], 0, 255)
return n
"""
)

_TAKE = (
    _LUA_NOW
    + """
local lease = tonumber(ARGV[1])
local function split(m)
  local sep = string.find(m, ':', 1, true)
  return tonumber(string.sub(m, 1, sep - 1)), string.sub(m, sep + 1)
end
for _, m in ipairs(redis.call('ZRANGEBYSCORE', KEYS[3], '-inf', now, 'LIMIT', 0, 1000)) do
  local pr, id = split(m)
  redis.call('ZREM', KEYS[3], m)
  redis.call('ZADD', KEYS[1], pr * 1099511627776 + redis.call('INCR', KEYS[5]), id)
end
for _, m in ipairs(redis.call('ZRANGEBYSCORE', KEYS[2], '-inf', now, 'LIMIT', 0, 1000)) do
  local pr, id = split(m)
  redis.call('ZREM', KEYS[2], m)
  redis.call('ZADD', KEYS[1], pr * 1099511627776, id)
end
local out = {}
local popped = redis.call('ZPOPMIN', KEYS[1], tonumber(ARGV[2]))
for i = 1, #popped, 2 do
  local id = popped[i]
  local pr = math.floor(tonumber(popped[i + 1]) / 1099511627776)
  local blob = redis.call('HGET', KEYS[4], id)
  if blob then
    redis.call('ZADD', KEYS[2], now + lease, pr .. ':' .. id)
    table.insert(out, id)
    table.insert(out, blob)
  end
end
local d = redis.call('ZRANGE', KEYS[3], 0, 0, 'WITHSCORES')
local f = redis.call('ZRANGE', KEYS[2], 0, 0, 'WITHSCORES')
return {out, d[2] or '', f[2] or '', tostring(now)}
"""
)

_ACK = """
for i = 1, #ARGV, 2 do
  redis.call('ZREM', KEYS[1], ARGV[i] .. ':' .. ARGV[i + 1])
  redis.call('HDEL', KEYS[2], ARGV[i + 1])
end
return 1
"""

_RETRY = """
redis.call('ZREM', KEYS[1], ARGV[1] .. ':' .. ARGV[2])
redis.call('HSET', KEYS[2], ARGV[2], ARGV[4])
redis.call('ZADD', KEYS[3], tonumber(ARGV[3]), ARGV[1] .. ':' .. ARGV[2])
redis.call('LPUSH', KEYS[4], 1)
redis.call('LTRIM', KEYS[4], 0, 255)
return 1
"""

_NACK = """
for i = 1, #ARGV, 2 do
  if redis.call('ZREM', KEYS[1], ARGV[i] .. ':' .. ARGV[i + 1]) == 1 then
    redis.call('ZADD', KEYS[2], tonumber(ARGV[i]) * 1099511627776, ARGV[i + 1])
    redis.call('LPUSH', KEYS[3], 1)
  end
end
redis.call('LTRIM', KEYS[3], 0, 255)
return 1
"""

_HEARTBEAT = (
    _LUA_NOW
    + """
for i = 2, #ARGV do redis.call('ZADD', KEYS[1], 'XX', now + tonumber(ARGV[1]), ARGV[i]) end
return 1
"""
)

_REMOVE = """
local a = redis.call('ZREM', KEYS[1], ARGV[2])
local b = redis.call('ZREM', KEYS[2], ARGV[1] .. ':' .. ARGV[2])
if a + b > 0 then redis.call('HDEL', KEYS[3], ARGV[2]) end
return a + b
"""


@dataclass(slots=True)
class TakenTask:
    """A task taken from Redis under a lease, with what its payload carried."""

    task: Task
    submitted_at: Any
    function: str | None


class RedisBroker(BaseBroker):
    """Queues tasks in Redis; see the module docstring for the key layout.

    Usage::

        broker = RedisBroker("redis://localhost:6379/0", queue_key="myapp:queue:io")
        broker.signer = Signer(secret)
    """

    def __init__(
        self,
        url: str,
        max_connections: int = 50,
        socket_timeout: float = 5.0,
        retry_on_timeout: bool = True,
        queue_key: str = "flowrra:queue",
        **kwargs: Any,
    ) -> None:
        """Describe the broker; nothing connects before the first command."""
        if kwargs:
            raise BrokerError(f"Unknown RedisBroker option(s): {', '.join(sorted(kwargs))}")
        self.url = url
        self.queue_key = queue_key
        self.lease = DEFAULT_LEASE
        self.signer: Signer | None = None
        self._options = {
            "max_connections": max_connections,
            "socket_timeout": socket_timeout,
            "retry_on_timeout": retry_on_timeout,
        }
        self._client: Any = None
        self._blocking: Any = None
        self._scripts: dict[str, Any] = {}
        q = queue_key
        self.keys = {
            "queue": q,
            "payloads": f"{q}:payloads",
            "inflight": f"{q}:inflight",
            "delayed": f"{q}:delayed",
            "wakeup": f"{q}:wakeup",
            "dead": f"{q}:dead",
            "seq": f"{q}:seq",
            "functions": f"{q}:functions",
        }
        self._next_due: float | None = None

    def __repr__(self) -> str:
        return f"RedisBroker({redacted(self.url)!r}, queue_key={self.queue_key!r})"

    # ------------------------------------------------------------ connection
    @property
    def client(self) -> Any:
        """The shared asyncio client (made on first use)."""
        return self._connect()

    def _connect(self) -> Any:
        if self._client is None:
            self._client = connect(self.url, **self._options)
            for name, source in (
                ("enqueue", _ENQUEUE),
                ("take", _TAKE),
                ("ack", _ACK),
                ("retry", _RETRY),
                ("nack", _NACK),
                ("heartbeat", _HEARTBEAT),
                ("remove", _REMOVE),
            ):
                self._scripts[name] = self._client.register_script(source)
        return self._client

    async def ping(self) -> None:
        """Check Redis answers; raise :class:`BrokerError` naming the URL if not."""
        try:
            await self.client.ping()
        except Exception as exc:
            raise BrokerError(unreachable("broker", self.url, exc)) from exc

    def _signer(self) -> Signer:
        if self.signer is None:
            raise BrokerError("The Redis broker has no secret key to sign payloads with")
        return self.signer

    async def _run(self, name: str, keys: list[str], args: list[Any]) -> Any:
        self._connect()
        try:
            return await self._scripts[name](keys=keys, args=args)
        except (BrokerError, asyncio.CancelledError):
            raise
        except Exception as exc:
            raise BrokerError(f"Redis broker {redacted(self.url)}: {name} failed: {exc}") from exc

    # --------------------------------------------------------------- enqueue
    def encode(self, task: Task, submitted_at: Any, function: str | None) -> bytes:
        """The signed payload of ``task``."""
        return self._signer().dumps((task, submitted_at, function), what="arguments")

    def rows(self, items: list[tuple[Task, Any, str | None, float]]) -> list[tuple[list, bytes]]:
        """Script rows for ``(task, submitted_at, function_digest, due_timestamp)`` items
        (due 0 means now), signed now; queue them with :meth:`push_rows`."""
        rows: list[tuple[list, bytes]] = []
        encode = self.encode
        for task, submitted_at, function, due in items:
            priority = task.priority
            if not -_MAX_PRIORITY <= priority <= _MAX_PRIORITY:
                raise BrokerError(
                    f"priority must be between -{_MAX_PRIORITY} and {_MAX_PRIORITY} on "
                    f"Redis, got {priority}"
                )
            blob = encode(task, submitted_at, function)
            rows.append(([task.id, priority, due, [len(blob)]], blob))
        return rows

    async def push_rows(self, rows: list[tuple[list, bytes]]) -> None:
        """Queue rows made by :meth:`rows`, in order, in one script call."""
        k = self.keys
        keys = [k["queue"], k["payloads"], k["seq"], k["wakeup"], k["delayed"]]
        await self._run(
            "enqueue", keys, list(pack_batch([r[0] for r in rows], [r[1] for r in rows]))
        )

    async def push_many(self, items: list[tuple[Task, Any, str | None, float]]) -> None:
        """Queue ``(task, submitted_at, function_digest, due_timestamp)`` items; due 0 means
        now. One round trip per 5,000 items."""
        for start in range(0, len(items), 5000):
            await self.push_rows(self.rows(items[start : start + 5000]))

    async def push(self, task: Task) -> None:
        """Queue one task now."""
        await self.push_many([(task, None, None, 0.0)])

    # ------------------------------------------------------------------ take
    async def take(self, count: int) -> tuple[list[TakenTask], float | None]:
        """Lease up to ``count`` tasks; also returns seconds until something else is due
        (a delayed task or a lease deadline), or None if nothing is."""
        k = self.keys
        keys = [k["queue"], k["inflight"], k["delayed"], k["payloads"], k["seq"]]
        out, next_delayed, next_lease, now = await self._run("take", keys, [self.lease, count])
        taken: list[TakenTask] = []
        for i in range(0, len(out), 2):
            item = await self._decode(out[i].decode(), out[i + 1])
            if item is not None:
                taken.append(item)
        dues = [float(x) for x in (next_delayed, next_lease) if x]
        wake = (min(dues) - float(now)) if dues else None
        return taken, (max(0.0, wake) if wake is not None else None)

    async def _decode(self, task_id: str, blob: bytes) -> TakenTask | None:
        try:
            task, submitted_at, function = self._signer().loads(blob)
            if not isinstance(task, Task) or task.id != task_id:
                raise SignatureError("payload does not describe this task")
        except Exception as exc:
            await self.dead_letter(task_id, blob, exc)
            return None
        return TakenTask(task, submitted_at, function)

    async def dead_letter(self, task_id: str, blob: bytes, reason: BaseException) -> None:
        """Move a payload that cannot be trusted or read to ``{q}:dead``; log it."""
        logger.error(
            "Task %s in %s moved to the dead-letter list %s: %s",
            task_id, self.queue_key, self.keys["dead"], reason,
        )  # fmt: skip
        k = self.keys
        pipe = self.client.pipeline(transaction=True)
        pipe.rpush(k["dead"], blob)
        pipe.hdel(k["payloads"], task_id)
        for member in await self.client.zrange(k["inflight"], 0, -1):
            if member.decode().split(":", 1)[1] == task_id:
                pipe.zrem(k["inflight"], member)
        await pipe.execute()

    async def wait(self, timeout: float | None) -> None:
        """Block until a task may be there (a wakeup) or ``timeout`` seconds pass."""
        if self._blocking is None:
            options = dict(self._options, socket_timeout=None, max_connections=4)
            self._blocking = connect(self.url, **options)
        seconds = 0 if timeout is None else max(0.01, timeout)
        try:
            await self._blocking.blpop([self.keys["wakeup"]], timeout=seconds)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            raise BrokerError(f"Redis broker {redacted(self.url)}: wait failed: {exc}") from exc

    async def interrupt(self) -> None:
        """End a :meth:`wait` in progress by closing its connection."""
        blocking, self._blocking = self._blocking, None
        if blocking is not None:
            await blocking.connection_pool.disconnect()
            await blocking.aclose()

    async def pop(self, timeout: float | None = None) -> Task | None:
        """Take one task (under a lease), waiting up to ``timeout`` seconds."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            taken, wake = await self.take(1)
            if taken:
                return taken[0].task
            left = None if deadline is None else deadline - time.monotonic()
            if left is not None and left <= 0:
                return None
            await self.wait(min(x for x in (left, wake, 60.0) if x is not None))

    # ---------------------------------------------------------- settle tasks
    async def ack(self, tasks: list[Task]) -> None:
        """Forget tasks whose results are stored."""
        if tasks:
            args = [x for t in tasks for x in (t.priority, t.id)]
            await self._run("ack", [self.keys["inflight"], self.keys["payloads"]], args)

    async def retry(self, task: Task, submitted_at: Any, function: str | None, due: float) -> None:
        """Move a leased task to the delayed set, to run again at ``due`` (a timestamp)."""
        k = self.keys
        blob = self.encode(task, submitted_at, function)
        keys = [k["inflight"], k["payloads"], k["delayed"], k["wakeup"]]
        await self._run("retry", keys, [task.priority, task.id, due, blob])

    async def nack(self, tasks: list[Task]) -> None:
        """Give leased tasks back to the queue, at the front of their priority."""
        if tasks:
            k = self.keys
            args = [x for t in tasks for x in (t.priority, t.id)]
            await self._run("nack", [k["inflight"], k["queue"], k["wakeup"]], args)

    async def heartbeat(self, tasks: list[Task]) -> None:
        """Renew the leases of running tasks."""
        if tasks:
            members = [f"{t.priority}:{t.id}" for t in tasks]
            await self._run("heartbeat", [self.keys["inflight"]], [self.lease, *members])

    async def remove(self, task_id: str, priority: int) -> bool:
        """Take a waiting or delayed task out of Redis; True if it was there."""
        k = self.keys
        keys = [k["queue"], k["delayed"], k["payloads"]]
        return bool(await self._run("remove", keys, [priority, task_id]))

    # ------------------------------------------------------------- functions
    async def store_function(self, digest: str, data: bytes) -> None:
        """Keep a function shipped by value, signed, under its digest."""
        await self.client.hsetnx(self.keys["functions"], digest, self._signer().sign(data))

    async def load_function_bytes(self, digest: str) -> bytes:
        """The verified bytes of a shipped function."""
        blob = await self.client.hget(self.keys["functions"], digest)
        if blob is None:
            raise BrokerError(f"Function {digest} was not found in {self.keys['functions']}")
        return self._signer().verify(blob)

    # ----------------------------------------------------------------- misc
    async def size(self) -> int:
        """Tasks waiting (not delayed, not leased)."""
        return int(await self.client.zcard(self.keys["queue"]))

    async def counts(self) -> dict[str, int]:
        """Waiting, delayed, in-flight and dead-lettered task counts."""
        k = self.keys
        pipe = self.client.pipeline(transaction=False)
        pipe.zcard(k["queue"]).zcard(k["delayed"]).zcard(k["inflight"]).llen(k["dead"])
        queued, delayed, inflight, dead = await pipe.execute()
        return {"queued": queued, "delayed": delayed, "inflight": inflight, "dead": dead}

    async def close(self) -> None:
        """Close the connections."""
        await self.interrupt()
        if self._client is not None:
            await self._client.aclose()
        self._client = None
