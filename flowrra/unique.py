"""Unique jobs in memory: ``apply(..., unique_key=...)`` returns the id of the task that
holds the key instead of queueing a second one.

A key is held while its task is unfinished (queued, delayed, retrying or running), and
for ``unique_for`` seconds after it ended when that is set. Nothing has to let go of a
key: whether its task still holds it is asked when the key is wanted again, so no
finishing path can forget to free it. Concurrent submits with one key share one submit.
(On Redis the key lives in Redis, claimed in the same script that records and queues the
task: :mod:`flowrra.backends.redis_unique`.)
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

from flowrra.clock import utcnow
from flowrra.limits import UniqueKey
from flowrra.task import TaskResult

__all__ = ["UniqueKeys"]

_SWEEP_FROM = 1024  # keys kept before the first sweep of keys no task holds any more


class UniqueKeys:
    """The unique keys of one app's in-memory tasks.

    ``is_live(task_id)`` says whether a task is unfinished; ``record_of(task_id)`` reads
    its record (for ``unique_for``: when it finished).

    Usage::

        keys = UniqueKeys(is_live, backend.get)
        task_id = await keys.submit(UniqueKey("report:2026-11"), lambda: submit_it())
    """

    def __init__(
        self,
        is_live: Callable[[str], bool],
        record_of: Callable[[str], Awaitable[TaskResult | None]],
    ) -> None:
        """Keep keys for tasks that ``is_live`` and ``record_of`` tell about."""
        self._is_live = is_live
        self._record_of = record_of
        self._held: dict[str, tuple[str, float]] = {}  # key -> (task id, seconds kept after)
        self._claims: dict[str, asyncio.Future[str | None]] = {}  # key -> submit under way
        self._sweep_at = _SWEEP_FROM

    async def submit(self, unique: UniqueKey, submit: Callable[[], Awaitable[str]]) -> str:
        """The id of the task holding ``unique.key``; if none does, ``await submit()``
        and let its task hold the key."""
        key = unique.key
        while True:
            claim = self._claims.get(key)
            if claim is not None:  # another submit with this key is under way: share it
                task_id = await asyncio.shield(claim)
                if task_id is not None:
                    return task_id
                continue  # it failed: try again
            held = self._held.get(key)
            if held is None:
                break
            if await self._covers(held):
                return held[0]
            if self._held.get(key) is held:
                del self._held[key]
        claim = self._claims[key] = asyncio.get_running_loop().create_future()
        try:
            task_id = await submit()
        except BaseException:
            del self._claims[key]
            claim.set_result(None)  # its waiters try again
            raise
        del self._claims[key]
        self._held[key] = (task_id, unique.keep)
        claim.set_result(task_id)
        if len(self._held) >= self._sweep_at:
            await self._sweep()
        return task_id

    def holder(self, key: str) -> str | None:
        """The id last given ``key`` (it may have ended since), or None."""
        held = self._held.get(key)
        return None if held is None else held[0]

    async def _covers(self, held: tuple[str, float]) -> bool:
        """True while the task of ``held`` holds its key."""
        task_id, keep = held
        if self._is_live(task_id):
            return True
        if not keep:
            return False
        record = await self._record_of(task_id)
        if record is None or not record.is_complete or record.finished_at is None:
            return False
        return (utcnow() - record.finished_at).total_seconds() < keep

    async def _sweep(self) -> None:
        """Forget the keys no task holds any more (amortised: when the keys doubled)."""
        for key, held in list(self._held.items()):
            if self._held.get(key) is not held or await self._covers(held):
                continue
            if self._held.get(key) is held:  # unchanged while its record was read
                del self._held[key]
        self._sweep_at = max(_SWEEP_FROM, 2 * len(self._held))
