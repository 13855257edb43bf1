"""Rate limits and concurrency caps kept in Redis, for every worker process at once.

The Redis broker's scripts hold back the tasks whose limits do not let them start yet:
the take script leases a task only when its limits allow, so a task held back holds no
worker anywhere. Keys, under the queue key ``{q}``:

- ``{q}:limits`` hash id -> ``interval|slack|concurrency|name`` (see
  :meth:`flowrra.limits.TaskLimits.field`), written with the task's queue entry and
  removed when it is acknowledged; a task without an entry has no limits;
- ``{q}:limit:{name}`` the rate's theoretical arrival time of the next start of ``name``
  (seconds, Redis time; expires once it has passed);
- ``{q}:running:{name}`` sorted set of the ``priority:id`` members of ``{q}:inflight``
  that hold one of ``name``'s concurrency slots. A slot is freed when its task is
  acknowledged, retried or given back; a holder no longer in ``{q}:inflight`` (its
  worker died and its lease lapsed) no longer counts, so a killed worker's slots free
  themselves with its leases;
- ``{q}:held:{name}`` sorted set of the ids of ``name`` held back, scored by their queue
  score: they go back to the queue with it, so a task keeps its place among equal
  priorities, and a task of ``name`` behind one held back waits behind it;
- ``{q}:held`` sorted set name -> when its held tasks are to be looked at again: the time
  the rate allows a start, 0 when a slot was freed (a wake-up is published then), or a
  lease from now as a fallback.

Every function here is Lua run inside the broker's scripts (:data:`LUA_LIMITS_RELEASE`
in every script that lets a task go, :data:`LUA_LIMITS_TAKE` in the take script), so a
limit is checked and counted in the same step that leases the task.
"""

from __future__ import annotations

from flowrra.task import Task

__all__ = ["LUA_LIMITS_RELEASE", "LUA_LIMITS_TAKE", "limits_field"]


def limits_field(task: Task) -> str | None:
    """The ``{q}:limits`` entry of ``task``, or None for a task without limits."""
    limits = task.limits
    return None if limits is None else limits.field(task.name)


#: ``limits_of(q, id)``: a task's limits ``{t = interval, tau = slack, c = concurrency,
#: name}`` or nil (none, or an entry that does not parse or is out of range: the task
#: then runs without limits). ``release_all(q, given,
#: gone)``: ``given`` is ``{priority, id, ...}`` of tasks that left their worker; frees
#: their slots, marks their names' held tasks due and publishes one wake-up if any are;
#: ``gone`` also forgets their limits (acknowledged). ``unpark_one(q, id)``: takes a
#: held task out (it was cancelled); 1 if it was held. Needs no ``now``.
LUA_LIMITS_RELEASE = """
local function limits_of(q, id)
  local s = redis.call('HGET', q .. ':limits', id)
  if not s then return nil end
  local t, tau, c, name = string.match(s, '^([^|]*)|([^|]*)|([^|]*)|(.+)$')
  t, tau, c = tonumber(t), tonumber(tau), tonumber(c)
  -- finite and in range (an interval of up to 10^9 s, about 31 years), so no garbage
  -- (an infinite interval, say) reaches the arithmetic and the keys of the take script
  if not (t and tau and c) or not (t >= 0 and t <= 1e9 and tau >= 0 and tau <= 1e9)
      or not (c >= 0 and c <= 1e9 and c == math.floor(c)) then
    return nil
  end
  return {t = t, tau = tau, c = c, name = name}
end
local function release_all(q, given, gone)
  if redis.call('EXISTS', q .. ':limits') == 0 then return end
  local wake = false
  for i = 1, #given, 2 do
    local id = given[i + 1]
    local L = limits_of(q, id)
    if L then
      if gone then redis.call('HDEL', q .. ':limits', id) end
      if L.c > 0 and redis.call('ZREM', q .. ':running:' .. L.name, given[i] .. ':' .. id) == 1
          and redis.call('EXISTS', q .. ':held:' .. L.name) == 1 then
        redis.call('ZADD', q .. ':held', 0, L.name)
        wake = true
      end
    end
  end
  if wake then redis.call('PUBLISH', q .. ':wakeup', 0) end
end
local function unpark_one(q, id)
  local L = limits_of(q, id)
  if not L then return 0 end
  return redis.call('ZREM', q .. ':held:' .. L.name, id)
end
"""

#: ``unpark(q, lease, count)``: puts back in the queue, with their own scores, as many
#: held tasks of each due name as their limits let start now (at most ``count``).
#: ``held_back(q, id, pr, score, lease)``: for a task just popped; true if it is held
#: back (parked), false if it may start (its start is counted: a rate step, a
#: concurrency slot). ``next_due(q, due)``: the earlier of ``due`` (a score string or
#: nil) and the next held name's. Needs ``now`` and :data:`LUA_LIMITS_RELEASE`.
LUA_LIMITS_TAKE = """
local function holders(q, L)
  local key = q .. ':running:' .. L.name
  local n = redis.call('ZCARD', key)
  if n < L.c then return n end
  for _, m in ipairs(redis.call('ZRANGE', key, 0, -1)) do
    if not redis.call('ZSCORE', q .. ':inflight', m) then
      redis.call('ZREM', key, m)
      n = n - 1
    end
  end
  return n
end
local function tat_of(q, L)
  local tat = tonumber(redis.call('GET', q .. ':limit:' .. L.name) or '') or 0
  -- a grant writes at most one interval and its slack ahead of now: a value further on
  -- (or not a number: written by someone else) counts as none, or that name would stall
  if not (tat <= now + L.t + L.tau + 1) then tat = 0 end
  return math.max(tat, now)
end
local function limit_wait(q, L)
  if L.c > 0 and holders(q, L) >= L.c then return -1 end
  if L.t > 0 then
    local tat = tat_of(q, L)
    if tat - L.tau > now then return tat - L.tau - now end
  end
  return 0
end
local function grant(q, L, member)
  if L.t > 0 then
    local tat = tat_of(q, L) + L.t
    local ms = math.ceil((tat - now) * 1000) + 1000
    redis.call('SET', q .. ':limit:' .. L.name, string.format('%.6f', tat), 'PX', ms)
  end
  if L.c > 0 then redis.call('ZADD', q .. ':running:' .. L.name, now, member) end
end
local function unpark(q, lease, count)
  for _, name in ipairs(redis.call('ZRANGEBYSCORE', q .. ':held', '-inf', now, 'LIMIT', 0, 100)) do
    local key = q .. ':held:' .. name
    local head = redis.call('ZRANGE', key, 0, 0)[1]
    local L = head and limits_of(q, head)
    local k, due = 0, now + lease
    if head and not L then
      k, due = 1, now  -- its limits are gone: let it go as it is, then look again
    elseif L then
      local wait = limit_wait(q, L)
      if wait == 0 then
        k = L.c > 0 and math.max(1, L.c - holders(q, L)) or count
        if L.t > 0 then  -- as many as are due now, and when the next is after them
          local tat = tat_of(q, L)
          k = math.max(1, math.min(k, count, math.floor((now + L.tau - tat) / L.t) + 1))
          due = math.max(tat + k * L.t - L.tau, now + 0.001)
        end
      elseif wait > 0 then
        due = now + wait
      end
    end
    if k > 0 then
      local back = redis.call('ZRANGE', key, 0, k - 1, 'WITHSCORES')
      for i = 1, #back, 2 do
        redis.call('ZADD', q, back[i + 1], back[i])
        redis.call('ZREM', key, back[i])
      end
    end
    if redis.call('EXISTS', key) == 1 then
      redis.call('ZADD', q .. ':held', due, name)
    else
      redis.call('ZREM', q .. ':held', name)
    end
  end
end
local function held_back(q, id, pr, score, lease)
  local L = limits_of(q, id)
  if not L then return false end
  local key = q .. ':held:' .. L.name
  local head = redis.call('ZRANGE', key, 0, 0, 'WITHSCORES')
  local due = now + lease
  if not (head[2] and tonumber(head[2]) < tonumber(score)) then
    local wait = limit_wait(q, L)
    if wait == 0 then
      grant(q, L, pr .. ':' .. id)
      return false
    end
    if wait > 0 then due = now + wait end
  end
  redis.call('ZADD', key, score, id)
  local current = tonumber(redis.call('ZSCORE', q .. ':held', L.name) or '')
  if not current or due < current then redis.call('ZADD', q .. ':held', due, L.name) end
  return true
end
local function next_due(q, due)
  local h = redis.call('ZRANGE', q .. ':held', 0, 0, 'WITHSCORES')
  if h[2] and (not due or tonumber(h[2]) < tonumber(due)) then return h[2] end
  return due
end
"""
