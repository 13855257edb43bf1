"""The Redis result backend: signed records, indexes for listing, push-based waits.

Keys under ``key_prefix`` (``flowrra`` by default; ``?key_prefix=`` in the URL), and how
each is bounded:

- ``{p}:result:{id}``: the record, pickled and signed (HMAC-SHA256 over the record and
  its task id, so a record copied onto another id does not verify); finished records
  expire after ``ttl`` seconds when one is set (``ttl=None``, the default, keeps them).
  A task submitted with its queue on the same server starts with its signed payload
  here (the same bytes, written once), read as its PENDING record;
- ``{p}:results`` and ``{p}:status:{status}``, ``{p}:name:{task_name}``: sorted sets by
  submission time, so listing by status or task name reads an index, not the keyspace;
  ``{p}:names`` the task names that have an index;
- ``{p}:expiry``: sorted set of ``id:name`` by the time a finished record expires; every
  write and a periodic prune take expired ids out of the indexes, so with a ``ttl`` every
  key of a task is gone soon after the ttl;
- ``{p}:dead``: records that failed their signature check, set aside (at most 10,000);
- ``{p}:unique:{key}`` and ``{p}:unique_keys``: unique jobs' keys, claimed with their
  task's first record and let go with its final one (see
  :mod:`flowrra.backends.redis_unique`);
- ``{p}:events``: a channel that carries every stored record (and plain-JSON notices of
  tasks a worker dead-lettered). One pub/sub connection per backend serves every waiter
  (it subscribes before a waiter reads, so no completion is missed) and brings events of
  workers in other processes to the app's event bus.

Writes from concurrent tasks are grouped into one script call per loop turn. When the
broker lives on the same server, the same script also queues submitted tasks and
acknowledges finished ones, so a submit is one round trip and a record and its queue
entry are written together or not at all.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
from collections import OrderedDict
from collections.abc import Callable
from typing import Any

from flowrra.backends.base import BaseResultBackend, Waiters, await_completion, forget_waiter
from flowrra.backends.redis_unique import LUA_UNIQUE
from flowrra.brokers.redis import DEAD_LETTER_CAP, LUA_NOW, LUA_QUEUE, RedisBroker
from flowrra.brokers.redis_limits import limits_field
from flowrra.exceptions import BackendError, SignatureError, TaskTimeoutError, UnknownTaskIdError
from flowrra.redis_client import (
    DEFAULT_RETRY_BUDGET,
    LUA_ROWS,
    Batcher,
    connect,
    database_of,
    dump_json,
    redacted,
    rename_wrong_types,
    retrying,
    same_server,
    split_options,
    transient_errors,
    unreachable,
)
from flowrra.redis_wire import ScriptLine, busy_poll_window, subscribe
from flowrra.serialization import Signer, signer_for
from flowrra.task import (
    Task,
    TaskResult,
    TaskStatus,
    pending_record,
    record_of,
    record_state,
    task_of,
)

__all__ = ["RedisBackend", "task_item"]

logger = logging.getLogger("flowrra.redis")

_STATUSES = [s.value for s in TaskStatus]
_TERMINAL = {b"success", b"failed", b"cancelled"}
_TERMINAL_VALUES = {"success", "failed", "cancelled"}
_TERMINAL_STATUSES = frozenset({TaskStatus.SUCCESS, TaskStatus.FAILED, TaskStatus.CANCELLED})
_RECENT = 100_000  # completions remembered by the listener, so most waits need no read
_PRUNE = 1000  # expired ids taken out of the indexes per script call

# store(p, channel, origin, rows, queued): rows (id, status, score, name, ttl, blob,
# fresh[, 1: a final state of a task that holds no unique key and whose record can be
# in the pending index only]); the score is a string (Python's repr of the submit time):
# as a Lua number it cost a float formatting and parsing more per index entry. A fresh
# record (just submitted) is in no index yet and is not announced: its submitter
# announces it to its own event bus; every other write is announced on the channel, in
# order, in the last state it has in the batch. Indexes take the last row of each id in
# the batch; writes of many rows go out as a few commands of many arguments.
# prune(p, limit) takes expired ids out of the indexes. Keys are built here from the
# prefix: every key of a record lives under it.
_LUA_RECORDS = (
    LUA_UNIQUE
    + """
local statuses = {'pending', 'running', 'success', 'failed', 'retrying', 'cancelled'}
local passing = {'pending', 'running', 'retrying'}
local only_pending = {'pending'}
local final = {success = true, failed = true, cancelled = true}
local function add(groups, key, a, b)
  local g = groups[key]
  if not g then g = {}; groups[key] = g end
  g[#g + 1] = a
  if b then g[#g + 1] = b end
end
local function existing(p, batch)
  local keys, skip = {}, {}
  for _, r in ipairs(batch) do
    if r[2] == 'pending' and r[7] == 1 then keys[#keys + 1] = p .. ':result:' .. r[1] end
  end
  local found = 0
  for i = 1, #keys, 4000 do
    found = found + redis.call('EXISTS', unpack(keys, i, math.min(i + 3999, #keys)))
  end
  if found > 0 then
    for _, r in ipairs(batch) do
      if r[2] == 'pending' and r[7] == 1 and redis.call('EXISTS', p .. ':result:' .. r[1]) == 1 then
        skip[r[1]] = true
      end
    end
  end
  return skip
end
local function store(p, channel, origin, batch, queued, me)
  -- announced only when a process other than the writer listens: a lone process
  -- resolves its own waiters from its own writes
  local others = redis.call('PUBSUB', 'NUMSUB', channel)[2] - me > 0
  local uniques  -- whether any task holds a unique key: looked up once, if needed
  local last = {}
  for i, r in ipairs(batch) do last[r[1]] = i end
  -- a fresh record never replaces one that exists: a worker may have taken the task and
  -- written its record first (when the queue lives on another server; when the task is
  -- queued by this same script, no worker can have seen it yet)
  local skip = queued and {} or existing(p, batch)
  local mset, all, by_name, by_status, moved, expiry = {}, {}, {}, {}, {}, {}
  for i, r in ipairs(batch) do
    local id, status, score, name, ttl, blob = r[1], r[2], r[3], r[4], r[5], r[6]
    local fresh = status == 'pending' and r[7] == 1
    if not (fresh and skip[id]) then
      all[#all + 1] = score; all[#all + 1] = id
      if fresh and name ~= '' then add(by_name, name, score, id) end
      if last[id] == i then
        if others and not fresh then  -- announced once per batch, in its last state
          redis.call('PUBLISH', channel, origin .. '|' .. status .. '|' .. id .. '|' .. blob)
        end
        local key = p .. ':result:' .. id
        if final[status] and r[8] ~= 1 then  -- a hinted row's task has no unique key
          if uniques == nil then uniques = redis.call('EXISTS', p .. ':unique_keys') == 1 end
          if uniques then release_unique(p, id) end
        end
        if ttl > 0 then
          redis.call('SET', key, blob, 'EX', ttl)
          expiry[#expiry + 1] = now + ttl; expiry[#expiry + 1] = id .. ':' .. name
        else
          mset[#mset + 1] = key; mset[#mset + 1] = blob
        end
        add(by_status, status, score, id)
        if not fresh then  -- a final state can only follow one that is not
          local from = statuses
          if final[status] then from = r[8] == 1 and only_pending or passing end
          for _, other in ipairs(from) do
            if other ~= status then add(moved, other, id) end
          end
        end
      end
    end
  end
  for i = 1, #mset, 4000 do redis.call('MSET', unpack(mset, i, math.min(i + 3999, #mset))) end
  chunked('ZADD', p .. ':results', all)
  chunked('ZADD', p .. ':expiry', expiry)
  for name, g in pairs(by_name) do
    chunked('ZADD', p .. ':name:' .. name, g)
    redis.call('SADD', p .. ':names', name)
  end
  for status, ids in pairs(moved) do chunked('ZREM', p .. ':status:' .. status, ids) end
  for status, g in pairs(by_status) do chunked('ZADD', p .. ':status:' .. status, g) end
end
local function prune(p, limit)
  local gone = redis.call('ZRANGEBYSCORE', p .. ':expiry', '-inf', now, 'LIMIT', 0, limit)
  if #gone == 0 then return 0 end
  local ids, by_name = {}, {}
  for _, m in ipairs(gone) do
    local sep = string.find(m, ':', 1, true)
    local id = sep and string.sub(m, 1, sep - 1) or m
    ids[#ids + 1] = id
    if sep and sep < #m then add(by_name, string.sub(m, sep + 1), id) end
  end
  chunked('ZREM', p .. ':results', ids)
  for _, s in ipairs(statuses) do chunked('ZREM', p .. ':status:' .. s, ids) end
  for name, g in pairs(by_name) do
    chunked('ZREM', p .. ':name:' .. name, g)
    if redis.call('ZCARD', p .. ':name:' .. name) == 0 then
      redis.call('SREM', p .. ':names', name)
    end
  end
  chunked('ZREM', p .. ':expiry', gone)
  return #gone
end
"""
)

# ARGV: prefix, channel, origin, queue database ('' when it is this one), this database,
# the batch as JSON {r = record rows, q = {{queue, rows}}, a = {{queue, {priority, id},
# 1 if a task acknowledged there has limits}}}
# with blob fields as [length] (a record row's as a plain length: it is always field 6),
# the blobs joined in that order, '1' to prune expired index entries (a ttl is set), and
# 1 if the writer is subscribed to the channel itself (0 if not). Returns the ids of
# queued rows leased to the submitter, and '=id=holder' for each unique key claim (JSON
# u = {{key, id, keep}}) refused: that id is not written.
_WRITE = (
    LUA_NOW
    + LUA_ROWS
    + LUA_QUEUE
    + _LUA_RECORDS
    + """
local p, qdb, home = ARGV[1], ARGV[4], ARGV[5]
local m = cjson.decode(ARGV[6])
local pos = 1
for _, r in ipairs(m.r) do  -- a record row's blob field is its length
  local n = r[6]
  r[6] = string.sub(ARGV[7], pos, pos + n - 1)
  pos = pos + n
end
local shared
for _, g in ipairs(m.q) do
  pos = fill(g[2], ARGV[7], pos)
  for _, r in ipairs(g[2]) do
    if r[4] == '' then  -- the payload is the blob of the task's fresh record
      if not shared then
        shared = {}
        for _, x in ipairs(m.r) do shared[x[1]] = x[6] end
      end
      r[4] = shared[r[1]] or error('no record for queued task ' .. r[1])
    end
  end
end
local refused = m.u and claim_uniques(p, m) or {}
if #m.r > 0 then
  store(p, ARGV[2], ARGV[3], m.r, #m.q > 0, tonumber(ARGV[9]))
  if ARGV[8] == '1' then prune(p, 100) end
end
local claimed = {}
if #m.q + #m.a > 0 then
  if qdb ~= '' then redis.call('SELECT', tonumber(qdb)) end
  for _, g in ipairs(m.q) do enqueue(g[1], g[2], claimed) end
  for _, g in ipairs(m.a) do ack(g[1], g[2], g[3] ~= 0) end
  if qdb ~= '' then redis.call('SELECT', tonumber(home)) end
end
for _, r in ipairs(refused) do claimed[#claimed + 1] = r end
return claimed
"""
)

# KEYS[1] a record key, ARGV[1] its new name: renamed if it holds anything but a string;
# returns that type, else false.
_SET_ASIDE_KEY = """
local kind = redis.call('TYPE', KEYS[1]).ok
if kind == 'none' or kind == 'string' then return false end
redis.call('RENAME', KEYS[1], ARGV[1])
return kind
"""

_PRUNE_SCRIPT = LUA_NOW + LUA_ROWS + _LUA_RECORDS + "return prune(ARGV[1], tonumber(ARGV[2]))\n"


def _snapshot(r: TaskResult) -> TaskResult:
    """A copy of record ``r`` as it is now (the executor goes on changing ``r``)."""
    return TaskResult(
        r.task_id, r.status, r.task_name, r.result, r.error, r.submitted_at, r.started_at,
        r.finished_at, r.retries, r.args, r.kwargs, r.priority, r.error_type, r.traceback,
        r.progress_done, r.progress_total, r.progress_message, r.output,
        workflow_id=r.workflow_id, workflow_step=r.workflow_step,
    )  # fmt: skip


#: The blob field of a queue row whose payload is its fresh record's blob (shared: never
#: changed).
_FROM_RECORD = [0]


def task_item(
    broker: RedisBroker, task: Task, submitted_at: float, function: str | None, due: float,
    lease: float,
) -> tuple[Any, ...]:  # fmt: skip
    """The write item that records and queues the new ``task`` on ``broker``, linked:
    one flat tuple of plain values, leased at once for ``lease`` seconds (0: not);
    :func:`_new_rows` makes its rows. Its payload is pickled and signed now (an argument
    that cannot be pickled raises here), and its fresh record is that same blob, sent
    once and stored in both places (``RedisBackend._load`` reads it as the PENDING
    record): one pickle, one signature and one copy of the arguments per task instead
    of two."""
    blob = broker.payload(task, submitted_at, function)
    return ("n", broker.queue_key, task.id, submitted_at, task.name, task.priority, due,
            limits_field(task), lease, blob)  # fmt: skip


def _new_rows(item: tuple[Any, ...]) -> tuple[list[Any], list[Any]]:
    """The record row and the queue row of a new task's write item ("n", see
    :func:`task_item`), made at flush time: while thousands of submits wait for
    their write, each holds one flat tuple (every object they hold costs the garbage
    collector)."""
    _, _, task_id, score, name, priority, due, limits, lease, blob = item
    record = [task_id, "pending", repr(score), name, 0, len(blob), 1]
    queued = [task_id, priority, due, _FROM_RECORD]  # the payload is the record's blob
    if limits is not None:
        queued += (0, limits)
    if lease:
        queued.append(lease)
    return record, queued


def _new_tasks_only(items: list[tuple[Any, ...]]) -> bool:
    """Whether a batch of write items holds new tasks only (:func:`task_item`): such a
    batch needs no order against the batches before it (see
    :class:`~flowrra.redis_client.Batcher`)."""
    return all(item[0] == "n" for item in items)


def _record_row(record: TaskResult, status: str, ttl: int, blob: bytes, fresh: bool) -> list:
    """The write script's row for ``record`` stored as ``blob`` (see ``store``)."""
    submitted_at = record.submitted_at
    return [
        record.task_id, status, repr(submitted_at.timestamp()) if submitted_at is not None else "0",
        record.task_name or "", ttl, len(blob), 1 if fresh else 0,
    ]  # fmt: skip


class RedisBackend(BaseResultBackend):
    """Stores task records in Redis; see the module docstring.

    Usage::

        backend = RedisBackend("redis://localhost:6379/1?key_prefix=myapp", ttl=86_400)

    Every call rides out a lost connection for up to ``retry_budget`` seconds
    (exponential backoff), then raises :class:`~flowrra.exceptions.BackendError` naming
    the URL with its password hidden.
    """

    def __init__(
        self,
        url: str,
        ttl: int | None = None,
        max_connections: int = 50,
        socket_timeout: float = 5.0,
        retry_on_timeout: bool = True,
        key_prefix: str | None = None,
        *,
        retry_budget: float = DEFAULT_RETRY_BUDGET,
    ) -> None:
        """Describe the backend; nothing connects before the first command."""
        url, options = split_options(url, ("key_prefix",))
        self.url = url
        self.ttl = ttl
        self.prefix = key_prefix or options.get("key_prefix") or "flowrra"
        self.retry_budget = retry_budget
        self.signer: Signer | None = None
        self.origin = os.urandom(8).hex().encode()
        #: Called with each record stored by another process (events from elsewhere).
        self.on_record: Callable[[TaskResult], None] | None = None
        #: Called with the id of a task some process asked to cancel.
        self.on_cancel: Callable[[str], None] | None = None
        #: Called with the id and the reason of a task a worker dead-lettered.
        self.on_dead_letter: Callable[[str, str], None] | None = None
        self._options = {
            "max_connections": max_connections,
            "socket_timeout": socket_timeout,
            "retry_on_timeout": retry_on_timeout,
        }
        self._client: Any = None
        self._busy_poll = busy_poll_window()  # a bad FLOWRRA_REDIS_BUSY_POLL_US fails here
        self._scripts: dict[str, Any] = {}
        self._write_line: ScriptLine | None = None  # the write script's own connection
        self._queue_db: str | None = None  # the linked broker's database ('' = this one)
        self._writes = Batcher(
            self._write, 4000, fast=self._write_fast, recover=self._rewrite,
            prepare=self._prepare, pipelined=_new_tasks_only,
        )  # fmt: skip
        self._waiters: Waiters = {}
        self._listener: asyncio.Task[None] | None = None
        self._janitor: asyncio.Task[None] | None = None
        self._subscribed: asyncio.Event | None = None
        self._recent: OrderedDict[str, bytes] = OrderedDict()
        # ids whose fresh record this backend wrote while subscribed (value: the
        # subscription's generation): every later state of them reaches the subscription,
        # so a wait for one needs no read
        self._fresh: OrderedDict[str, int] = OrderedDict()
        self._generation = 0
        self._written: dict[str, asyncio.Future[None]] = {}
        # tasks leased to this process by their submit (see claimed_here): True once a
        # state other than their fresh PENDING one was written from here
        self._claimed: OrderedDict[str, bool] = OrderedDict()

    def __repr__(self) -> str:
        return f"RedisBackend({redacted(self.url)!r}, key_prefix={self.prefix!r})"

    @property
    def client(self) -> Any:
        """The shared asyncio client (made on first use)."""
        if self._client is None:
            self._client = connect(self.url, **self._options)
            self._scripts = {"prune": self._client.register_script(_PRUNE_SCRIPT)}
            self._write_line = ScriptLine(self._client, _WRITE, self._busy_poll)
        return self._client

    def _line(self) -> ScriptLine:
        _ = self.client  # makes the line with the client
        assert self._write_line is not None
        return self._write_line

    def _key(self, task_id: str) -> str:
        return f"{self.prefix}:result:{task_id}"

    @property
    def channel(self) -> str:
        """The pub/sub channel records are announced on."""
        return f"{self.prefix}:events"

    def _signer(self) -> Signer:
        """The signer set by the app, else one for ``FLOWRRA_SECRET_KEY``, else one made
        for this process (good for its own workers only)."""
        if self.signer is None:
            self.signer = signer_for(None)[0]
        return self.signer

    def _error(self, what: str) -> Callable[[BaseException], BackendError]:
        def fail(exc: BaseException) -> BackendError:
            return BackendError(f"Redis backend {redacted(self.url)}: {what} failed: {exc}")

        return fail

    async def call(self, what: str, make: Callable[[], Any]) -> Any:
        """Await ``make()`` (a Redis call), riding out outages within the retry budget;
        a key of the wrong type is set aside once and the call made again."""
        if self._client is None:
            _ = self.client  # made here, so the scripts are registered before make() runs
        try:
            return await retrying(make, self.retry_budget, self._error(what))
        except BackendError as exc:
            if "WRONGTYPE" not in str(exc) or not await self.repair():
                raise
        return await retrying(make, self.retry_budget, self._error(what))

    async def repair(self) -> bool:
        """Rename each index key (and each unique key) that holds the wrong type of value
        to ``{key}:corrupt`` (logged); True if any was. The keys of each task name
        (``{p}:name:{name}``) and each unique key (``{p}:unique:{key}``) are found by a
        scan: this runs only after Redis answered WRONGTYPE."""
        p = self.prefix
        expected = {f"{p}:results": "zset", f"{p}:expiry": "zset", f"{p}:names": "set"}
        expected.update({f"{p}:status:{s}": "zset" for s in _STATUSES})
        expected.update({f"{p}:dead": "list", f"{p}:unique_keys": "hash"})
        families = {f"{p}:name": "zset", f"{p}:unique": "string"}
        return await rename_wrong_types(self.client, expected, families)

    async def ping(self) -> None:
        """Check Redis answers, and open the write script's connection (the first
        writes of a burst of submits then go out while the burst goes on, not after
        it); raise :class:`BackendError` naming the URL if not."""
        try:
            await self.client.ping()
            await self._line().open()
        except Exception as exc:
            raise BackendError(unreachable("result backend", self.url, exc)) from exc

    # ----------------------------------------------------------- linking a queue
    def link(self, broker: RedisBroker) -> bool:
        """Let this backend's write script also queue and acknowledge ``broker``'s tasks
        when both live on one server (the database may differ); True if it can."""
        if not same_server(self.url, broker.url):
            return False
        theirs, mine = database_of(broker.url), database_of(self.url)
        queue_db = "" if theirs == mine else str(theirs)
        if self._queue_db is not None and self._queue_db != queue_db:
            return False
        self._queue_db = queue_db
        return True

    # ----------------------------------------------------------------- writes
    async def store(self, task_id: str, result: TaskResult) -> None:
        """Save ``result``, grouped with concurrent writes into one round trip.

        Writes reach Redis in order; only the write that completes a record is waited
        for, so a task does not wait a round trip to start.
        """
        if result.is_complete:
            await self._writes.add(self._entry(result))
        else:
            self._writes.add_nowait(("s", _snapshot(result)))

    def store_nowait(
        self, task_id: str, result: TaskResult, also: list[tuple[Any, ...]] | None = None
    ) -> None:
        """Queue ``result`` for the next grouped write without waiting for it;
        :meth:`written` gives the write's future, :meth:`drain` waits for all. Items in
        ``also`` (e.g. an :meth:`ack_item`) go in the same script call."""
        # a record still changing is pickled only if the batch holds no later state of it
        entry = self._entry(result) if result.is_complete else ("s", _snapshot(result))
        future = self._writes.add_many_nowait([entry, *also] if also else [entry])
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

    def send(self, items: list[tuple[Any, ...]]) -> asyncio.Future[None]:
        """Queue items made by :meth:`entries`, :func:`task_item` and :meth:`ack_item`
        for the next grouped write (one script call, all or nothing); return its future."""
        return self._writes.add_many_nowait(items)

    def _entry(self, record: TaskResult) -> tuple[Any, ...]:
        """The script row for ``record`` and its blob, taken now: the executor goes on
        changing the same record object while the write waits for its batch."""
        status = record.status
        fresh = status is TaskStatus.PENDING and record.started_at is None
        blob = self._signer().dumps(
            record_state(record),
            what="arguments" if fresh else "result",
            context=record.task_id.encode(),
        )
        ttl = self.ttl if (self.ttl and status in _TERMINAL_STATUSES) else 0
        return "r", _record_row(record, status.value, ttl, blob, fresh), blob

    def entries(self, records: list[TaskResult]) -> list[tuple[Any, ...]]:
        """Write items for ``records`` (signed now)."""
        entry = self._entry
        return [entry(record) for record in records]

    def send_new(
        self,
        broker: RedisBroker,
        task: Task,
        submitted_at: float,
        function: str | None,
        claim: bool,
    ) -> asyncio.Future[Any]:
        """Queue the write that records and queues one new ``task`` (:func:`task_item`),
        leased at once to this process if ``claim``; return the write's future.
        Pickled and signed now: an argument that cannot be pickled raises here."""
        item = task_item(broker, task, submitted_at, function, 0.0, broker.lease if claim else 0)
        return self._writes.add_many_nowait((item,))

    @staticmethod
    def ack_item(
        broker: RedisBroker, priority: int, task_id: str, limited: bool = True
    ) -> tuple[Any, ...]:
        """A write item that acknowledges a finished task on a linked broker; pass
        ``limited=False`` for a task without limits (its acknowledgement then skips
        their bookkeeping)."""
        return ("a", broker.queue_key, priority, task_id, limited)

    def claimed_here(self, task_id: str) -> None:
        """Note that ``task_id`` was leased to this process by its submit, which wrote
        its fresh PENDING record and claimed no unique key for it. Until another state
        of it is written from here, that record can be in the pending index only: its
        final write then takes it out of that one index, not of all three where a task
        can wait or run, and looks for no unique key to let go (three commands fewer per
        task on the one-submit loop). Forgetting a task (more than ``_RECENT`` at once)
        only costs those commands."""
        claimed = self._claimed
        claimed[task_id] = False
        if len(claimed) > _RECENT:
            claimed.popitem(last=False)

    def lease_lost(self, task_id: str) -> None:
        """Forget :meth:`claimed_here` for ``task_id``: its lease lapsed while it ran here,
        so another worker may have written its RUNNING record meanwhile, and its final
        write must take it out of every index where a task can wait or run."""
        self._claimed.pop(task_id, None)

    def _moving(self, row: list[Any]) -> None:
        """At flush time, for a record row of a task :meth:`claimed_here`: a final
        state written while only its PENDING one was gets the row's hint (field 8)."""
        task_id, status = row[0], row[1]
        moved = self._claimed.get(task_id)
        if moved is None or row[6]:
            return
        if status in _TERMINAL_VALUES:
            del self._claimed[task_id]
            if not moved:
                row.append(1)
        else:
            self._claimed[task_id] = True

    async def write_entries(self, items: list[tuple[Any, ...]]) -> list[bytes]:
        """Write ``items`` now, in one script call, after nothing else; return the ids of
        queued tasks leased to this process at once (see :func:`task_item`)."""
        return await self._write(items)

    async def _write(self, items: list[tuple[Any, ...]]) -> list[bytes]:
        args, done = self._prepare(items)
        line = self._write_line or self._line()
        claimed = await self.call("store", lambda: line(args))
        done()
        return claimed

    def _write_fast(
        self, prepared: tuple[list[Any], Callable[[], None]], landed: Callable[..., None]
    ) -> bool:
        """:meth:`_write` of the items :meth:`_prepare` made ``prepared`` of, sent at once
        and finished from the reply's callback (see :class:`~flowrra.redis_client.Batcher`);
        False if the line is not open yet."""
        line = self._write_line
        if line is None or not line.ready:
            return False
        args, done = prepared

        def on_reply(reply: Any) -> None:
            if isinstance(reply, Exception):
                landed(None, reply)
                return
            done()
            landed(reply, None)

        return line.send_nowait(args, on_reply)

    async def _rewrite(self, items: list[tuple[Any, ...]], error: BaseException) -> list[bytes]:
        """Write ``items`` the awaited way after their fast write failed with ``error``:
        a lost or late connection, a restarted server (no script) or a key of the wrong
        type is ridden out as any write does; another error reply fails the write."""
        from redis.exceptions import NoScriptError

        if isinstance(error, (*transient_errors(), NoScriptError)) or "WRONGTYPE" in str(error):
            return await self._write(items)
        raise self._error("store")(error)

    def _prepare(self, items: list[tuple[Any, ...]]) -> tuple[list[Any], Callable[[], None]]:
        """The write script's arguments for ``items``, and what to do once it ran."""
        records: list[list[Any]] = []
        queues: dict[str, list[list[Any]]] = {}
        acks: dict[str, list[Any]] = {}
        limited: set[str] = set()  # queues acknowledging a task that has limits
        record_blobs: list[bytes] = []
        uniques: list[list[Any]] = []
        last = {item[1].task_id if item[0] == "s" else item[1][0]: i for i, item in
                enumerate(items) if item[0] in "rs"}  # fmt: skip
        for i, item in enumerate(items):
            if item[0] == "s":
                if last[item[1].task_id] != i:
                    continue  # a later state of this record is in the batch
                item = self._entry(item[1])
            if item[0] == "r":
                if self._claimed:
                    self._moving(item[1])
                records.append(item[1])
                record_blobs.append(item[2])
            elif item[0] == "n":  # a new task: its fresh record is its queue payload
                record, queued = _new_rows(item)
                records.append(record)
                record_blobs.append(item[9])
                queues.setdefault(item[1], []).append(queued)  # its blob: none (length 0)
            elif item[0] == "u":  # a unique key claim (flowrra.backends.redis_unique)
                uniques.append(item[1])
            else:
                acks.setdefault(item[1], []).extend((item[2], item[3]))
                if item[4]:
                    limited.add(item[1])
        acked = [(q, pairs, 1 if q in limited else 0) for q, pairs in acks.items()]
        batch: dict[str, Any] = {"r": records, "q": list(queues.items()), "a": acked}
        if uniques:
            batch["u"] = uniques
        meta = dump_json(batch)
        blobs = b"".join(record_blobs)
        if (queues or acks) and self._queue_db is None:
            raise BackendError("queue items were given to a backend not linked to the broker")
        home = str(database_of(self.url)) if self._queue_db else ""
        prune = "1" if self.ttl else ""
        subscribed = self._subscribed is not None and self._subscribed.is_set()
        args = [self.prefix, self.channel, self.origin, self._queue_db or "", home, meta, blobs]
        args += [prune, 1 if subscribed else 0]
        generation = self._generation

        def done() -> None:
            self._written_here(records, record_blobs, subscribed and generation == self._generation)

        return args, done

    def _written_here(self, rows: list[list[Any]], blobs: list[bytes], subscribed: bool) -> None:
        """After a write: this process's waiters learn of the records it finished itself
        (they are announced only to other processes), and fresh records written while
        subscribed need no read to be waited for."""
        fresh, generation = self._fresh, self._generation
        for row, blob in zip(rows, blobs, strict=True):
            task_id, status = row[0], row[1]
            if status in _TERMINAL_VALUES:
                self._remember(task_id, blob)
                if task_id in self._waiters:
                    self._resolve(task_id, self._load(task_id, blob))
            elif row[6] and subscribed:
                fresh[task_id] = generation
        while len(fresh) > _RECENT:
            fresh.popitem(last=False)

    def _remember(self, task_id: str, blob: bytes) -> None:
        self._fresh.pop(task_id, None)
        self._recent[task_id] = blob
        if len(self._recent) > _RECENT:
            self._recent.popitem(last=False)

    # ------------------------------------------------------------------ reads
    def _load(self, task_id: str, blob: bytes) -> TaskResult:
        """Verify and load the record blob of ``task_id``: :func:`record_state`'s values
        (or a ``TaskResult``, as records were written before), or a task's payload, for a
        record written by :func:`task_item` (read as its PENDING record)."""
        value = self._signer().loads(blob, task_id.encode())
        if type(value) is not tuple:  # a TaskResult, as records were written before
            return value
        if len(value) == 2:  # record_state
            return record_of(value)
        return pending_record(task_of(value[0]), value[1])  # a task's payload

    async def get(self, task_id: str) -> TaskResult | None:
        """The record of ``task_id``, or None.

        Raises:
            SignatureError: the record in Redis does not verify (written with another
                secret key, or copied from another task's record); it is set aside in
                ``{p}:dead`` and never unpickled. Or the record's key holds another type
                of value (a hash, say); it is renamed to ``{key}:corrupt``.
        """
        key = self._key(task_id)
        try:
            blob = await self.call("read", lambda: self.client.get(key))
        except BackendError as exc:
            if "WRONGTYPE" not in str(exc):
                raise
            kind = await self._set_aside_key(task_id, key)
            if kind is None:  # a record was written there meanwhile
                return await self.get(task_id)
            raise SignatureError(
                f"The record of task {task_id} in {redacted(self.url)} was not a record "
                f"(Redis held a {kind} there, written by something other than flowrra): "
                f"it was set aside as {key}:corrupt"
            ) from None
        if blob is None:
            return None
        try:
            return self._load(task_id, blob)
        except SignatureError as exc:
            await self._set_aside(task_id, blob, exc)
            raise SignatureError(
                f"The record of task {task_id} in {redacted(self.url)} failed its signature "
                f"check ({exc}): it was written with another secret key or copied from "
                f"another task. It was set aside in {self.prefix}:dead"
            ) from None

    async def _set_aside_key(self, task_id: str, key: str) -> str | None:
        """Rename the record key of ``task_id``, which holds another type of value than a
        record (written by something other than flowrra), to ``{key}:corrupt`` (logged),
        and return that type: checked and renamed in one step, so a record written
        meanwhile stays (None then)."""
        kind = await self.call(
            "read",
            lambda: self.client.eval(_SET_ASIDE_KEY, 1, key, f"{key}:corrupt"),
        )
        if not kind:
            return None
        kind = kind.decode() if isinstance(kind, bytes) else str(kind)
        logger.error(
            "The record key of task %s held a %s, not a record: renamed to %s:corrupt",
            task_id, kind, key,
        )  # fmt: skip
        return kind

    async def _set_aside(self, task_id: str, blob: bytes, reason: BaseException) -> None:
        logger.error("Record of task %s failed verification (%s): set aside", task_id, reason)
        dead = f"{self.prefix}:dead"
        with contextlib.suppress(Exception):
            await self.client.rpush(dead, blob)
            await self.client.ltrim(dead, -DEAD_LETTER_CAP, -1)

    async def wait_for(self, task_id: str, timeout: float | None) -> TaskResult:
        """Wait for ``task_id`` to complete: subscribe first, then read, so no completion
        is missed; woken by the completion's message, never by polling. ``timeout``
        holds whatever Redis does (a paused or lost server included)."""
        seen = self._remembered(task_id)
        if seen is not None:  # completed, as this process saw: a final record never changes
            return seen
        try:
            async with asyncio.timeout(timeout):
                return await self._wait_for(task_id)
        except TimeoutError:
            raise TaskTimeoutError(task_id, timeout) from None

    def _remembered(self, task_id: str) -> TaskResult | None:
        """The final record of ``task_id`` this process heard announced, if any. Verified
        only now: one that fails (a message forged by a client without the secret) is
        dropped, and the task waited for as if it had never been heard of."""
        seen = self._recent.get(task_id)
        if seen is None:
            return None
        try:
            record = self._load(task_id, seen)
        except Exception as exc:
            self._ignore(task_id, f"it failed verification: {exc}")
            return None
        if not record.is_complete:  # a replayed earlier state under a final status
            self._ignore(task_id, "not a final record")
            return None
        return record

    def _ignore(self, task_id: str, why: str) -> None:
        """Forget a message heard for ``task_id`` that is not to be trusted (logged)."""
        self._recent.pop(task_id, None)
        logger.error("Ignored a message on %s for task %s: %s", self.channel, task_id, why)

    async def _wait_for(self, task_id: str) -> TaskResult:
        await self._listen()
        seen = self._remembered(task_id)
        if seen is not None:
            return seen
        future: asyncio.Future[TaskResult] = asyncio.get_running_loop().create_future()
        self._waiters.setdefault(task_id, []).append(future)
        try:
            if self._fresh.get(task_id, -1) != self._generation:  # else no read is needed
                record = await self.get(task_id)
                if record is None:
                    raise UnknownTaskIdError(task_id)
                if record.is_complete:
                    return record
            return await await_completion(task_id, future, None)
        finally:
            forget_waiter(self._waiters, task_id, future)

    async def _listen(self) -> None:
        if self._listener is None or self._listener.done():
            self._subscribed = asyncio.Event()
            self._listener = asyncio.get_running_loop().create_task(self._listen_loop())
        if self.ttl and (self._janitor is None or self._janitor.done()):
            self._janitor = asyncio.get_running_loop().create_task(self._prune_loop())
        assert self._subscribed is not None
        await self._subscribed.wait()

    async def listen(self) -> None:
        """Start the shared subscription (also done by the first wait), and with a
        ``ttl`` the periodic prune of expired index entries."""
        await self._listen()

    def _listen_loop(self) -> Any:
        return subscribe(self.url, self.channel, self._on_subscribed, self._on_message)

    async def _prune_loop(self) -> None:
        assert self.ttl
        while True:
            await asyncio.sleep(min(float(self.ttl), 30.0))
            try:
                await self.prune()
            except Exception as exc:
                logger.warning("Could not prune expired records' index entries: %s", exc)

    async def prune(self) -> int:
        """Take the ids of expired records out of the indexes now; return how many."""
        total = 0
        args = [self.prefix, _PRUNE]
        while True:
            done = int(await self.call("prune", lambda: self._scripts["prune"](keys=[], args=args)))
            total += done
            if done < _PRUNE:
                return total

    def _on_subscribed(self) -> None:
        assert self._subscribed is not None
        first = not self._subscribed.is_set()
        self._subscribed.set()
        self._generation += 1  # states may have been missed: fresh ids need a read again
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
            task_id = task_id_b.decode()
        except ValueError:
            logger.error("Ignored a malformed message on %s", self.channel)
            return
        if status == b"cancel":
            self._on_cancel_message(task_id, blob)
        elif status == b"deadletter":
            self._on_dead_letter_message(task_id, blob)
        else:
            self._on_record_message(origin, status, task_id, blob)

    def _on_cancel_message(self, task_id: str, blob: bytes) -> None:
        try:
            ok = self._signer().verify(blob, b"cancel") == task_id.encode()
        except SignatureError:
            ok = False
        if not ok:
            logger.error("Ignored a cancel request for %s that failed verification", task_id)
        elif self.on_cancel is not None:
            self.on_cancel(task_id)

    def _on_dead_letter_message(self, task_id: str, blob: bytes) -> None:
        if self.on_dead_letter is None:
            return
        try:
            reason = str(json.loads(blob)["reason"])
        except (ValueError, KeyError, TypeError):
            logger.error("Ignored a malformed dead-letter notice on %s", self.channel)
            return
        self.on_dead_letter(task_id, reason)

    def _on_record_message(self, origin: bytes, status: bytes, task_id: str, blob: bytes) -> None:
        if status in _TERMINAL:  # kept as bytes: verified and loaded only if asked for
            self._remember(task_id, blob)
        wanted = status in _TERMINAL and task_id in self._waiters
        remote = self.on_record is not None and origin != self.origin
        if not (wanted or remote):
            return
        try:
            record = self._load(task_id, blob)
        except Exception as exc:
            self._ignore(task_id, f"it failed verification: {exc}")
            return
        if wanted and not record.is_complete:  # a replayed earlier state under a final
            self._ignore(task_id, "not a final record")  # status: waiters wait on
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
        message = b"|".join((self.origin, b"cancel", data, self._signer().sign(data, b"cancel")))
        await self.call("cancel", lambda: self.client.publish(self.channel, message))

    async def announce_dead_letter(self, task_id: str, reason: str) -> None:
        """Tell the processes that listen (the submitter among them) that a worker set
        ``task_id`` aside: plain JSON, so it reaches a submitter whose secret differs."""
        body = json.dumps({"reason": reason}).encode()
        message = b"|".join((self.origin, b"deadletter", task_id.encode(), body))
        await self.call("dead-letter notice", lambda: self.client.publish(self.channel, message))

    # ---------------------------------------------------------------- listing
    async def list_results(
        self,
        status: TaskStatus | None = None,
        task_name: str | None = None,
        limit: int | None = None,
        offset: int = 0,
    ) -> list[TaskResult]:
        """Records newest submitted first, read through the status and name indexes. A
        record that fails verification is skipped (logged and set aside)."""
        ids = await self.call("list", lambda: self._list_ids(status, task_name, limit, offset))
        if not ids:
            return []
        keys = [self._key(i.decode()) for i in ids]
        blobs = await self.call("list", lambda: self.client.mget(keys))
        records, expired = [], []
        for task_id, blob in zip(ids, blobs, strict=True):
            if blob is None:
                expired.append(task_id)
                continue
            try:
                records.append(self._load(task_id.decode(), blob))
            except SignatureError as exc:
                await self._set_aside(task_id.decode(), blob, exc)
        if expired:
            await self._forget(expired)
        return records

    async def count_by_status(self) -> dict[str, int]:
        """How many records there are of each status (value strings), read from the
        status indexes in one round trip (no record is read)."""

        async def read() -> list[int]:
            pipe = self.client.pipeline(transaction=False)
            for status in _STATUSES:
                pipe.zcard(f"{self.prefix}:status:{status}")
            return await pipe.execute()

        return dict(zip(_STATUSES, map(int, await self.call("count", read)), strict=True))

    async def count_results(self, status: TaskStatus | None, task_name: str | None) -> int:
        """How many records match ``status`` and ``task_name`` (either may be None)."""
        p = self.prefix
        if status is not None and task_name is not None:
            keys = [f"{p}:status:{status.value}", f"{p}:name:{task_name}"]
            return int(await self.call("count", lambda: self.client.zintercard(2, keys)))
        key = (
            f"{p}:status:{status.value}"
            if status is not None
            else f"{p}:name:{task_name}"
            if task_name is not None
            else f"{p}:results"
        )
        return int(await self.call("count", lambda: self.client.zcard(key)))

    async def _list_ids(
        self, status: TaskStatus | None, task_name: str | None, limit: int | None, offset: int
    ) -> list[bytes]:
        client = self.client
        if status is not None and task_name is not None:
            pairs = await client.zinter(
                [f"{self.prefix}:status:{status.value}", f"{self.prefix}:name:{task_name}"],
                withscores=True,
            )
            ids = [m for m, _ in sorted(pairs, key=lambda p: p[1], reverse=True)]
            return ids[offset : None if limit is None else offset + limit]
        index = (
            f"{self.prefix}:status:{status.value}"
            if status is not None
            else f"{self.prefix}:name:{task_name}"
            if task_name is not None
            else f"{self.prefix}:results"
        )
        stop = -1 if limit is None else offset + limit - 1
        return await client.zrevrange(index, offset, stop)

    async def _forget(self, ids: list[bytes]) -> None:
        async def remove() -> None:
            pipe = self.client.pipeline(transaction=False)
            pipe.zrem(f"{self.prefix}:results", *ids)
            for status in _STATUSES:
                pipe.zrem(f"{self.prefix}:status:{status}", *ids)
            await pipe.execute()

        await self.call("forget", remove)

    async def delete(self, task_id: str) -> bool:
        """Delete the record of ``task_id``; True if there was one."""
        removed = await self.call("delete", lambda: self.client.delete(self._key(task_id)))
        await self._forget([task_id.encode()])
        return bool(removed)

    async def clear(self) -> int:
        """Delete every record under this prefix (read from the index, no SCAN)."""
        ids = await self.call("clear", lambda: self.client.zrange(f"{self.prefix}:results", 0, -1))
        names = await self.call("clear", lambda: self.client.smembers(f"{self.prefix}:names"))
        p = self.prefix

        async def remove() -> None:
            pipe = self.client.pipeline(transaction=False)
            for chunk in range(0, len(ids), 1000):
                pipe.delete(*[self._key(i.decode()) for i in ids[chunk : chunk + 1000]])
            pipe.delete(f"{p}:results", f"{p}:expiry", *[f"{p}:status:{s}" for s in _STATUSES])
            pipe.delete(f"{p}:names", *[f"{p}:name:{n.decode()}" for n in names])
            await pipe.execute()

        await self.call("clear", remove)
        return len(ids)

    async def close(self) -> None:
        """Stop listening and close the connections."""
        for job in (self._listener, self._janitor):
            if job is not None:
                job.cancel()
                with contextlib.suppress(BaseException):
                    await job
        self._listener = self._janitor = None
        if self._write_line is not None:
            await self._write_line.close()
            self._write_line = None
        if self._client is not None:
            await self._client.aclose()
            self._client = None
