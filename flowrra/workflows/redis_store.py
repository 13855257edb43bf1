"""Workflows kept in Redis: any worker that finishes a step moves its workflow on.

One hash per workflow, ``{p}:workflow:{id}`` under the result backend's key prefix:

- ``graph``: the compiled workflow, pickled and signed (bound to the workflow's id);
- ``d:{node}``: set once the node is done (a step that runs again finds it set);
- ``v:{node}``: the signed result of a group's member, until the group collects them;
- ``c:{group}``: how many of the group's members are done;
- ``l:{node}``: set once the node's steps were submitted;
- ``end``: how the workflow ended (``success``, ``failed:{node}``, ``cancelled``, ...).

Marking a node done, keeping its value and counting it in its group is one script, so
of two workers finishing a group's last two members at once exactly one sees the group
complete. Concurrent marks go out together in one script call. When a workflow ends its
hash expires after the backend's ``ttl`` (a day when it has none); its outcome stays in
the workflow's own record.
"""

from __future__ import annotations

import asyncio
import logging
from collections import OrderedDict
from typing import TYPE_CHECKING, Any

from flowrra.redis_client import Batcher
from flowrra.workflows.graph import Graph
from flowrra.workflows.store import Mark

if TYPE_CHECKING:
    from flowrra.backends.redis import RedisBackend

__all__ = ["ENDED_TTL", "RedisWorkflowStore"]

logger = logging.getLogger("flowrra.workflows")

#: Seconds an ended workflow's hash is kept when the backend keeps records for ever.
ENDED_TTL = 86_400
_GRAPHS = 64  # graphs cached per process (a graph never changes)
_BATCH = 2000  # operations per script call

# ARGV: (op, key, node, group, blob) x n. op 'm' marks node done (keeping blob as its
# value and counting it in group when given), 'l' notes node launched. Returns
# (state, count) per op: 0 marked now, 1 marked before, 2 ended or gone. A workflow
# whose hash someone else made unusable (another type of key, a count that is not a
# number) is taken as gone: the ops of the other workflows in the call go on.
_MARK = """
local out, live = {}, {}
for i = 1, #ARGV, 5 do
  local op, key, node, group, blob = ARGV[i], ARGV[i + 1], ARGV[i + 2], ARGV[i + 3], ARGV[i + 4]
  local state, count = 0, -1
  if live[key] == nil then  -- once per workflow per call: no op here can end it
    live[key] = redis.pcall('HEXISTS', key, 'end') == 0 and redis.call('EXISTS', key) == 1
  end
  if not live[key] then
    state = 2
  elseif op == 'l' then
    redis.call('HSET', key, 'l:' .. node, 1)
  elseif redis.call('HSETNX', key, 'd:' .. node, 1) == 1 then
    if blob ~= '' then redis.call('HSET', key, 'v:' .. node, blob) end
    if group ~= '' then count = redis.pcall('HINCRBY', key, 'c:' .. group, 1) end
  else
    state = 1
    if group ~= '' then count = tonumber(redis.call('HGET', key, 'c:' .. group) or '0') end
  end
  if type(count) ~= 'number' then  -- a count overwritten with garbage
    state, count, live[key] = 2, -1, false
  end
  out[#out + 1] = state
  out[#out + 1] = count
end
return out
"""

# KEYS[1] the hash; ARGV: outcome, seconds to keep the hash. Returns the outcome in
# force (false if the workflow is unknown).
_END = """
if redis.call('EXISTS', KEYS[1]) == 0 then return false end
local current = redis.call('HGET', KEYS[1], 'end')
if not current then
  redis.call('HSET', KEYS[1], 'end', ARGV[1])
  redis.call('EXPIRE', KEYS[1], tonumber(ARGV[2]))
  current = ARGV[1]
end
return current
"""


class RedisWorkflowStore:
    """Workflows in Redis beside the results of ``backend`` (its client, key prefix and
    signer); see the module docstring."""

    local = False

    def __init__(self, backend: RedisBackend) -> None:
        """Keep workflows under ``backend``'s key prefix."""
        self.backend = backend
        self._graphs: OrderedDict[str, Graph] = OrderedDict()
        self._client: Any = None
        self._scripts: dict[str, Any] = {}
        self._ops = Batcher(self._flush, limit=_BATCH)

    def key(self, workflow_id: str) -> str:
        """The hash of ``workflow_id``."""
        return f"{self.backend.prefix}:workflow:{workflow_id}"

    def _script(self, name: str) -> Any:
        client = self.backend.client
        if client is not self._client:  # a new client after the backend reconnected
            self._client = client
            self._scripts = {
                "mark": client.register_script(_MARK),
                "end": client.register_script(_END),
            }
        return self._scripts[name]

    def _sign(self, value: Any, workflow_id: str, field: str, what: str) -> bytes:
        context = f"{workflow_id}:{field}".encode()
        return self.backend._signer().dumps(value, what=what, context=context)

    def _load(self, blob: bytes, workflow_id: str, field: str) -> Any:
        return self.backend._signer().loads(blob, f"{workflow_id}:{field}".encode())

    # ------------------------------------------------------------------ graph
    async def create(self, graph: Graph) -> None:
        """Keep a new workflow's graph."""
        blob = self._sign(graph, graph.id, "graph", "workflow")
        key = self.key(graph.id)
        await self.backend.call("workflow", lambda: self.backend.client.hset(key, "graph", blob))
        self._cache(graph)

    def _cache(self, graph: Graph) -> None:
        self._graphs[graph.id] = graph
        while len(self._graphs) > _GRAPHS:
            self._graphs.popitem(last=False)

    async def graph(self, workflow_id: str) -> Graph | None:
        """The workflow's graph (read once per process), or None when it is gone.

        Raises:
            SignatureError: the graph in Redis does not verify.
        """
        graph = self._graphs.get(workflow_id)
        if graph is not None:
            self._graphs.move_to_end(workflow_id)
            return graph
        key = self.key(workflow_id)
        blob = await self.backend.call("workflow", lambda: self.backend.client.hget(key, "graph"))
        if blob is None:
            return None
        graph = self._load(blob, workflow_id, "graph")
        self._cache(graph)
        return graph

    async def knows(self, workflow_id: str) -> bool:
        """True while Redis keeps ``workflow_id``'s hash."""
        if workflow_id in self._graphs:
            return True
        key = self.key(workflow_id)
        return bool(await self.backend.call("workflow", lambda: self.backend.client.exists(key)))

    # ------------------------------------------------------------------ steps
    async def mark(self, workflow_id: str, node: int, value: Any = None, group: int = -1) -> Mark:
        """See :meth:`~flowrra.workflows.store.WorkflowStore.mark` (one script call for
        all the marks made at the same moment)."""
        blob = self._sign(value, workflow_id, f"v:{node}", "result") if group >= 0 else b""
        done: asyncio.Future[Mark] = asyncio.get_running_loop().create_future()
        op = ("m", self.key(workflow_id), node, "" if group < 0 else group, blob)
        self._ops.add_nowait((op, done))
        return await done

    def set_launched(self, workflow_id: str, node: int) -> None:
        """Note that ``node`` was started (sent with the next marks; not waited for)."""
        self._ops.add_nowait((("l", self.key(workflow_id), node, "", b""), None))

    async def _flush(
        self, items: list[tuple[tuple[Any, ...], asyncio.Future[Mark] | None]]
    ) -> None:
        argv = [part for op, _ in items for part in op]
        try:
            out = await self.backend.call(
                "workflow", lambda: self._script("mark")(keys=[], args=argv)
            )
        except Exception as exc:
            logger.error(
                "Could not record the progress of %d workflow step(s): %s", len(items), exc
            )
            for _, future in items:
                if future is not None and not future.done():
                    future.set_exception(exc)
            return
        for i, (_, future) in enumerate(items):
            if future is not None and not future.done():
                future.set_result((int(out[2 * i]), int(out[2 * i + 1])))

    async def values(self, workflow_id: str, nodes: tuple[int, ...]) -> list[Any]:
        """The kept values of ``nodes`` (a group's members), in order.

        Raises:
            SignatureError: a value in Redis does not verify.
            KeyError: a value is missing (the hash was changed by someone else).
        """
        key = self.key(workflow_id)
        fields = [f"v:{node}" for node in nodes]
        blobs = await self.backend.call("workflow", lambda: self.backend.client.hmget(key, fields))
        values = []
        for name, blob in zip(fields, blobs, strict=True):
            if blob is None:
                raise KeyError(f"{key} has no {name}")
            values.append(self._load(blob, workflow_id, name))
        return values

    async def launched(self, workflow_id: str, node: int) -> bool:
        """True once ``node`` was noted as started."""
        key = self.key(workflow_id)
        found = await self.backend.call(
            "workflow", lambda: self.backend.client.hexists(key, f"l:{node}")
        )
        return bool(found)

    async def done_among(self, workflow_id: str, nodes: list[int]) -> set[int]:
        """Those of ``nodes`` marked done (one read)."""
        if not nodes:
            return set()
        key = self.key(workflow_id)
        fields = [f"d:{node}" for node in nodes]
        found = await self.backend.call("workflow", lambda: self.backend.client.hmget(key, fields))
        return {node for node, flag in zip(nodes, found, strict=True) if flag is not None}

    def forget(self, workflow_id: str) -> None:
        """Nothing to do: the ended workflow's hash expires by itself."""

    async def end(self, workflow_id: str, outcome: str) -> str | None:
        """See :meth:`~flowrra.workflows.store.WorkflowStore.end`; the hash then expires."""
        keep = self.backend.ttl or ENDED_TTL
        key = self.key(workflow_id)
        found = await self.backend.call(
            "workflow", lambda: self._script("end")(keys=[key], args=[outcome, keep])
        )
        if found is None:
            return None
        return found.decode() if isinstance(found, bytes) else str(found)
