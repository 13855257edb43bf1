"""The Redis result backend: signed records, indexes for listing, push-based waits.

Keys under ``key_prefix`` (``flowrra`` by default; ``?key_prefix=`` in the URL):

- ``{p}:result:{id}``: the record, pickled and signed (HMAC-SHA256); completed records
  expire after ``ttl`` seconds when one is set (``ttl=None``, the default, keeps them);
- ``{p}:results`` and ``{p}:status:{status}``, ``{p}:name:{task_name}``: sorted sets by
  submission time, so listing by status or task name reads an index, not the keyspace;
- ``{p}:events``: a channel that carries every stored record. One pub/sub connection per
  backend serves every waiter (it subscribes before a waiter reads, so no completion is
  missed) and brings events of workers in other processes to the app's event bus.

Writes from concurrent tasks are grouped into one pipeline per loop turn.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from collections import OrderedDict
from collections.abc import Callable
from typing import Any

from redis.exceptions import BusyLoadingError
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from flowrra.backends.base import BaseResultBackend, Waiters, await_completion, forget_waiter
from flowrra.exceptions import BackendError, UnknownTaskIdError
from flowrra.redis_client import (
    LUA_ROWS,
    Batcher,
    connect,
    pack_batch,
    redacted,
    split_options,
    unreachable,
)
from flowrra.serialization import Signer
from flowrra.task import TaskResult, TaskStatus

__all__ = ["RedisBackend"]

logger = logging.getLogger("flowrra.redis")

_STATUSES = [s.value for s in TaskStatus]
_TRANSIENT = (RedisConnectionError, RedisTimeoutError, BusyLoadingError, OSError)
_TERMINAL = {b"success", b"failed", b"cancelled"}
_TERMINAL_STATUSES = frozenset({TaskStatus.SUCCESS, TaskStatus.FAILED, TaskStatus.CANCELLED})
_RECENT = 100_000  # completions remembered by the listener, so most waits need no read

# ARGV: prefix, channel, origin, then the rows (id, status, score, name, ttl, blob, fresh)
# as packed by pack_batch. A fresh record (just submitted) is in no index yet and is not
# announced: its submitter announces it to its own event bus; every other write is
# announced on the channel, in order. Indexes take the last row of each id in the batch,
# and writes of many rows go out as a few commands of many arguments.
# Keys are built here from the prefix: every key of a record lives under it.
_STORE = (
    LUA_ROWS
    + """
local p, channel, origin = ARGV[1], ARGV[2], ARGV[3]
local statuses = {'pending', 'running', 'success', 'failed', 'retrying', 'cancelled'}
local batch = rows(ARGV[4], ARGV[5])
local last, fresh_keys, skip = {}, {}, {}
for i, r in ipairs(batch) do
  last[r[1]] = i
  if r[2] == 'pending' and r[7] == 1 then fresh_keys[#fresh_keys + 1] = p .. ':result:' .. r[1] end
end
-- a fresh record never replaces one that exists: a worker may have taken the task and
-- written its record first (the submitter queues a batch while storing it)
local existing = 0
for i = 1, #fresh_keys, 4000 do
  existing = existing + redis.call('EXISTS', unpack(fresh_keys, i, math.min(i + 3999, #fresh_keys)))
end
if existing > 0 then
  for _, r in ipairs(batch) do
    if r[2] == 'pending' and r[7] == 1 and redis.call('EXISTS', p .. ':result:' .. r[1]) == 1 then
      skip[r[1]] = true
    end
  end
end
local mset, all, by_name, by_status, moved = {}, {}, {}, {}, {}
local function add(groups, key, a, b)
  local g = groups[key]
  if not g then g = {}; groups[key] = g end
  g[#g + 1] = a
  if b then g[#g + 1] = b end
end
for i, r in ipairs(batch) do
  local id, status, score, name, ttl, blob = r[1], r[2], r[3], r[4], r[5], r[6]
  local fresh = status == 'pending' and r[7] == 1
  if fresh and skip[id] then
    status = nil
  else
    all[#all + 1] = score; all[#all + 1] = id
  end
  if status == nil then  -- skipped: the record exists already
  elseif fresh then
    if name ~= '' then add(by_name, name, score, id) end
  else
    redis.call('PUBLISH', channel, origin .. '|' .. status .. '|' .. id .. '|' .. blob)
  end
  if status ~= nil and last[id] == i then
    local key = p .. ':result:' .. id
    if ttl > 0 then
      redis.call('SET', key, blob, 'EX', ttl)
    else
      mset[#mset + 1] = key; mset[#mset + 1] = blob
    end
    add(by_status, status, score, id)
    if not fresh then
      for _, other in ipairs(statuses) do
        if other ~= status then add(moved, other, id) end
      end
    end
  end
end
for i = 1, #mset, 4000 do redis.call('MSET', unpack(mset, i, math.min(i + 3999, #mset))) end
chunked('ZADD', p .. ':results', all)
for name, g in pairs(by_name) do
  chunked('ZADD', p .. ':name:' .. name, g)
  redis.call('SADD', p .. ':names', name)
end
for status, ids in pairs(moved) do chunked('ZREM', p .. ':status:' .. status, ids) end
for status, g in pairs(by_status) do chunked('ZADD', p .. ':status:' .. status, g) end
return 1
"""
)


class RedisBackend(BaseResultBackend):
    """Stores task records in Redis; see the module docstring.

    Usage::

        backend = RedisBackend("redis://localhost:6379/1?key_prefix=myapp", ttl=86_400)
    """

    def __init__(
        self,
        url: str,
        ttl: int | None = None,
        max_connections: int = 50,
        socket_timeout: float = 5.0,
        retry_on_timeout: bool = True,
        key_prefix: str | None = None,
    ) -> None:
        """Describe the backend; nothing connects before the first command."""
        url, options = split_options(url, ("key_prefix",))
        self.url = url
        self.ttl = ttl
        self.prefix = key_prefix or options.get("key_prefix") or "flowrra"
        self.signer: Signer | None = None
        self.origin = os.urandom(8).hex().encode()
        #: Called with each record stored by another process (events from elsewhere).
        self.on_record: Callable[[TaskResult], None] | None = None
        #: Called with the id of a task some process asked to cancel.
        self.on_cancel: Callable[[str], None] | None = None
        self._options = {
            "max_connections": max_connections,
            "socket_timeout": socket_timeout,
            "retry_on_timeout": retry_on_timeout,
        }
        self._client: Any = None
        self._store_script: Any = None
        self._writes = Batcher(self.write_entries)
        self._waiters: Waiters = {}
        self._listener: asyncio.Task[None] | None = None
        self._subscribed: asyncio.Event | None = None
        self._recent: OrderedDict[str, bytes] = OrderedDict()
        self._written: dict[str, asyncio.Future[None]] = {}

    def __repr__(self) -> str:
        return f"RedisBackend({redacted(self.url)!r}, key_prefix={self.prefix!r})"

    @property
    def client(self) -> Any:
        """The shared asyncio client (made on first use)."""
        if self._client is None:
            self._client = connect(self.url, **self._options)
        return self._client

    def _key(self, task_id: str) -> str:
        return f"{self.prefix}:result:{task_id}"

    @property
    def channel(self) -> str:
        """The pub/sub channel records are announced on."""
        return f"{self.prefix}:events"

    def _signer(self) -> Signer:
        if self.signer is None:
            raise BackendError("The Redis backend has no secret key to sign records with")
        return self.signer

    async def ping(self) -> None:
        """Check Redis answers; raise :class:`BackendError` naming the URL if not."""
        try:
            await self.client.ping()
        except Exception as exc:
            raise BackendError(unreachable("result backend", self.url, exc)) from exc

    # ----------------------------------------------------------------- writes
    async def store(self, task_id: str, result: TaskResult) -> None:
        """Save ``result``, grouped with concurrent writes into one round trip.

        Writes reach Redis in order; only the write that completes a record is waited
        for, so a task does not wait a round trip to start.
        """
        if result.is_complete:
            await self._writes.add(self._entry(result))
        else:
            self._writes.add_nowait(self._entry(result))

    def store_nowait(self, task_id: str, result: TaskResult) -> None:
        """Queue ``result`` for the next grouped write without waiting for it;
        :meth:`written` gives the write's future, :meth:`drain` waits for all."""
        future = self._writes.add_nowait(self._entry(result))
        if result.is_complete:
            self._written[task_id] = future
            future.add_done_callback(lambda _f: self._written.pop(task_id, None))

    def written(self, task_id: str) -> asyncio.Future[None] | None:
        """The future of the pending write that completes ``task_id``, if any."""
        return self._written.get(task_id)

    async def drain(self) -> None:
        """Wait until every queued write has been sent."""
        await self._writes.drain()

    async def store_many(self, records: list[TaskResult]) -> None:
        """Save many records in one round trip, after every write queued before them."""
        await self._writes.add_many_nowait(self.entries(records))

    def _entry(self, record: TaskResult) -> tuple[list[Any], bytes]:
        """The script row for ``record`` and its blob, taken now: the executor goes on
        changing the same record object while the write waits for its batch."""
        blob = self._signer().dumps(record, what="result")
        submitted_at = record.submitted_at
        status = record.status
        return [
            record.task_id,
            status.value,
            submitted_at.timestamp() if submitted_at is not None else 0.0,
            record.task_name or "",
            self.ttl if (self.ttl and status in _TERMINAL_STATUSES) else 0,
            [len(blob)],
            1 if status is TaskStatus.PENDING and record.started_at is None else 0,
        ], blob

    def entries(self, records: list[TaskResult]) -> list[tuple[list[Any], bytes]]:
        """The rows of ``records`` for :meth:`write_entries` (signed now)."""
        entry = self._entry
        return [entry(record) for record in records]

    async def write_entries(self, entries: list[tuple[list[Any], bytes]]) -> None:
        """Store rows made by :meth:`entries`, in one script call."""
        meta, blobs = pack_batch([e[0] for e in entries], [e[1] for e in entries])
        args: list[Any] = [self.prefix, self.channel, self.origin, meta, blobs]
        if self._store_script is None:
            self._store_script = self.client.register_script(_STORE)
        try:
            await self._store_script(keys=[], args=args)
        except Exception as exc:
            raise BackendError(
                f"Failed to store task records in {redacted(self.url)}: {exc}"
            ) from exc

    # ------------------------------------------------------------------ reads
    async def get(self, task_id: str) -> TaskResult | None:
        """The record of ``task_id``, or None."""
        delay = 0.05
        for attempt in range(10):  # a restarted server: reconnect with backoff, ~10 s
            try:
                blob = await self.client.get(self._key(task_id))
                break
            except _TRANSIENT as exc:
                error: Exception = exc
            except Exception as exc:
                raise BackendError(f"Failed to read from {redacted(self.url)}: {exc}") from exc
            if attempt == 9:
                raise BackendError(f"Failed to read from {redacted(self.url)}: {error}") from error
            await asyncio.sleep(delay)
            delay = min(delay * 2, 2.0)
        return None if blob is None else self._signer().loads(blob)

    async def wait_for(self, task_id: str, timeout: float | None) -> TaskResult:
        """Wait for ``task_id`` to complete: subscribe first, then read, so no completion
        is missed; woken by the completion's message, never by polling."""
        await self._listen()
        seen = self._recent.get(task_id)
        if seen is not None:
            return self._signer().loads(seen)
        future: asyncio.Future[TaskResult] = asyncio.get_running_loop().create_future()
        self._waiters.setdefault(task_id, []).append(future)
        try:
            record = await self.get(task_id)
            if record is None:
                raise UnknownTaskIdError(task_id)
            if record.is_complete:
                return record
            return await await_completion(task_id, future, timeout)
        finally:
            forget_waiter(self._waiters, task_id, future)

    async def _listen(self) -> None:
        if self._listener is None or self._listener.done():
            self._subscribed = asyncio.Event()
            self._listener = asyncio.get_running_loop().create_task(self._listen_loop())
        assert self._subscribed is not None
        await self._subscribed.wait()

    async def listen(self) -> None:
        """Start the shared subscription (also done by the first wait)."""
        await self._listen()

    async def _listen_loop(self) -> None:
        delay = 0.05
        while True:
            pubsub = self.client.pubsub()
            try:
                await pubsub.subscribe(self.channel)
                while True:
                    message = await pubsub.get_message(timeout=None)
                    if message is None:
                        continue
                    if message["type"] == "subscribe":
                        delay = 0.05
                        self._on_subscribed()
                    elif message["type"] == "message":
                        self._on_message(message["data"])
            except asyncio.CancelledError:
                with contextlib.suppress(Exception):
                    await pubsub.aclose()
                raise
            except Exception as exc:
                logger.warning(
                    "Lost the Redis subscription at %s (%s); reconnecting in %.2fs",
                    redacted(self.url), exc, delay,
                )  # fmt: skip
                with contextlib.suppress(Exception):
                    await pubsub.aclose()
                await asyncio.sleep(delay)
                delay = min(delay * 2, 2.0)

    def _on_subscribed(self) -> None:
        assert self._subscribed is not None
        first = not self._subscribed.is_set()
        self._subscribed.set()
        if not first:  # completions may have been missed while we were away
            for task_id in list(self._waiters):
                task = asyncio.get_running_loop().create_task(self._recheck(task_id))
                task.add_done_callback(lambda t: t.cancelled() or t.exception())

    async def _recheck(self, task_id: str) -> None:
        record = await self.get(task_id)
        if record is not None and record.is_complete:
            self._resolve(task_id, record)

    def _on_message(self, data: bytes) -> None:
        try:
            origin, status, task_id_b, blob = data.split(b"|", 3)
        except ValueError:
            logger.error("Ignored a malformed message on %s", self.channel)
            return
        task_id = task_id_b.decode()
        if status == b"cancel":
            if self.on_cancel is not None and self._signer().verify(blob) == task_id_b:
                self.on_cancel(task_id)
            return
        if status in _TERMINAL:  # kept as bytes: verified and loaded only if asked for
            self._recent[task_id] = blob
            if len(self._recent) > _RECENT:
                self._recent.popitem(last=False)
        wanted = status in _TERMINAL and task_id in self._waiters
        remote = self.on_record is not None and origin != self.origin
        if not (wanted or remote):
            return
        try:
            record = self._signer().loads(blob)
        except Exception as exc:
            logger.error("Ignored a message on %s that failed verification: %s", self.channel, exc)
            return
        if wanted:
            self._resolve(task_id, record)
        if remote and self.on_record is not None:
            self.on_record(record)

    def _resolve(self, task_id: str, record: TaskResult) -> None:
        for future in self._waiters.pop(task_id, []):
            if not future.done():
                future.set_result(record)

    async def request_cancel(self, task_id: str) -> None:
        """Ask every process to stop ``task_id`` if it runs it (a signed message)."""
        data = task_id.encode()
        header = b"|".join((self.origin, b"cancel", data))
        await self.client.publish(self.channel, header + b"|" + self._signer().sign(data))

    # ---------------------------------------------------------------- listing
    async def list_results(
        self,
        status: TaskStatus | None = None,
        task_name: str | None = None,
        limit: int | None = None,
        offset: int = 0,
    ) -> list[TaskResult]:
        """Records newest submitted first, read through the status and name indexes."""
        stop = -1 if limit is None else offset + limit - 1
        client = self.client
        if status is not None and task_name is not None:
            pairs = await client.zinter(
                [f"{self.prefix}:status:{status.value}", f"{self.prefix}:name:{task_name}"],
                withscores=True,
            )
            ids = [m for m, _ in sorted(pairs, key=lambda p: p[1], reverse=True)]
            ids = ids[offset : None if limit is None else offset + limit]
        else:
            index = (
                f"{self.prefix}:status:{status.value}"
                if status is not None
                else f"{self.prefix}:name:{task_name}"
                if task_name is not None
                else f"{self.prefix}:results"
            )
            ids = await client.zrevrange(index, offset, stop)
        if not ids:
            return []
        blobs = await client.mget([self._key(i.decode()) for i in ids])
        records, expired = [], []
        for task_id, blob in zip(ids, blobs, strict=True):
            if blob is None:
                expired.append(task_id)
            else:
                records.append(self._signer().loads(blob))
        if expired:
            await self._forget(expired)
        return records

    async def _forget(self, ids: list[bytes]) -> None:
        pipe = self.client.pipeline(transaction=False)
        pipe.zrem(f"{self.prefix}:results", *ids)
        for status in _STATUSES:
            pipe.zrem(f"{self.prefix}:status:{status}", *ids)
        await pipe.execute()

    async def delete(self, task_id: str) -> bool:
        """Delete the record of ``task_id``; True if there was one."""
        removed = await self.client.delete(self._key(task_id))
        await self._forget([task_id.encode()])
        return bool(removed)

    async def clear(self) -> int:
        """Delete every record under this prefix (read from the index, no SCAN)."""
        ids = await self.client.zrange(f"{self.prefix}:results", 0, -1)
        names = [
            f"{self.prefix}:name:{n.decode()}"
            for n in await self.client.smembers(f"{self.prefix}:names")
        ]
        pipe = self.client.pipeline(transaction=False)
        for chunk in range(0, len(ids), 1000):
            pipe.delete(*[self._key(i.decode()) for i in ids[chunk : chunk + 1000]])
        pipe.delete(f"{self.prefix}:results", *[f"{self.prefix}:status:{s}" for s in _STATUSES])
        pipe.delete(f"{self.prefix}:names", *names)
        await pipe.execute()
        return len(ids)

    async def close(self) -> None:
        """Stop listening and close the connections."""
        if self._listener is not None:
            self._listener.cancel()
            with contextlib.suppress(BaseException):
                await self._listener
            self._listener = None
        if self._client is not None:
            await self._client.aclose()
            self._client = None
            self._store_script = None
