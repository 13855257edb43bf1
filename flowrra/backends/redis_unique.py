"""Unique jobs kept in Redis: a ``unique_key`` claimed in the script that records and
queues its task, and let go in the script that stores its final record.

Keys, under the result backend's prefix ``{p}``:

- ``{p}:unique:{key}`` the id of the task holding ``key``. Set in the same write as the
  task's PENDING record and queue entry (so a crash cannot leave one without the other);
  deleted in the same write as its final record, or given a time to live of
  ``unique_for`` seconds then (so the finished task's id is returned meanwhile);
- ``{p}:unique_keys`` hash id -> ``unique_for|key``: the key each unfinished task holds.

A claim finds the key free when no task holds it, when its task has a final record or
none (a claim the write did not finish, or a key written by hand), and takes it over
then; otherwise the write queues nothing for that submit and answers with the holder's
id. Claims of one key in one batch of writes go in order: the first holds it.
"""

from __future__ import annotations

from typing import Any

from flowrra.limits import UniqueKey

__all__ = ["LUA_UNIQUE", "holder_in", "unique_item"]

#: ``claim_uniques(p, m)``: claims the keys ``m.u`` (``{key, id, keep}`` each) of a write
#: batch ``m``, drops the rows of refused ids from ``m.r`` and ``m.q`` and returns
#: ``'=id=holder'`` for each. ``release_unique(p, id)``: lets the key of task ``id`` go
#: (its record is final).
LUA_UNIQUE = """
local function holds(p, ukey, holder, fresh)
  if fresh[holder] or redis.call('PTTL', ukey) > 0 then return true end
  if redis.call('EXISTS', p .. ':result:' .. holder) == 0 then return false end
  for _, s in ipairs({'success', 'failed', 'cancelled'}) do
    if redis.call('ZSCORE', p .. ':status:' .. s, holder) then return false end
  end
  return true
end
local function without(rows, refused)
  local kept = {}
  for _, r in ipairs(rows) do
    if not refused[r[1]] then kept[#kept + 1] = r end
  end
  return kept
end
local function claim_uniques(p, m)
  local refused, out, fresh = {}, {}, {}
  for _, u in ipairs(m.u) do
    local key, id, keep = u[1], u[2], u[3]
    local ukey = p .. ':unique:' .. key
    local holder = redis.call('GET', ukey)
    if holder and holds(p, ukey, holder, fresh) then
      refused[id] = true
      out[#out + 1] = '=' .. id .. '=' .. holder
    else
      if holder then redis.call('HDEL', p .. ':unique_keys', holder) end
      redis.call('SET', ukey, id)
      redis.call('HSET', p .. ':unique_keys', id, keep .. '|' .. key)
      fresh[id] = true
    end
  end
  if #out > 0 then
    m.r = without(m.r, refused)
    for _, g in ipairs(m.q) do g[2] = without(g[2], refused) end
  end
  return out
end
local function release_unique(p, id)
  local u = redis.call('HGET', p .. ':unique_keys', id)
  if not u then return end
  redis.call('HDEL', p .. ':unique_keys', id)
  local keep, key = string.match(u, '^([^|]*)|(.*)$')
  keep = tonumber(keep)
  local ukey = p .. ':unique:' .. (key or '')
  if not keep or redis.call('GET', ukey) ~= id then return end
  if keep > 0 and keep <= 1e9 then  -- else (0, or garbage written by someone else): now
    redis.call('PEXPIRE', ukey, math.max(1, math.floor(keep * 1000)))
  else
    redis.call('DEL', ukey)
  end
end
"""


def unique_item(unique: UniqueKey, task_id: str) -> tuple[str, list[Any]]:
    """The write item that claims ``unique`` for ``task_id`` (see the backend's ``send``)."""
    return ("u", [unique.key, task_id, unique.keep])


def holder_in(answer: list[bytes], task_id: str) -> str | None:
    """The id of the task that holds the key ``task_id`` claimed, from a write's answer;
    None if ``task_id`` got it."""
    refused = f"={task_id}=".encode()
    for entry in answer:
        if entry.startswith(refused):
            return entry[len(refused) :].decode()
    return None
