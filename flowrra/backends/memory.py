"""The in-memory result backend: records in a dict, bounded, waited on without polling."""

from __future__ import annotations

import asyncio
import copy
from collections import deque
from itertools import islice

from flowrra.backends.base import BaseResultBackend, Waiters, await_completion, forget_waiter
from flowrra.exceptions import ConfigError, UnknownTaskIdError
from flowrra.task import TaskResult, TaskStatus

__all__ = ["DEFAULT_MAX_RESULTS", "InMemoryBackend"]

#: Completed records the in-memory backend keeps before it evicts the oldest.
DEFAULT_MAX_RESULTS = 100_000

_SUCCESS, _FAILED, _CANCELLED = TaskStatus.SUCCESS, TaskStatus.FAILED, TaskStatus.CANCELLED


class InMemoryBackend(BaseResultBackend):
    """Keeps records in this process.

    At most ``max_results`` completed records are kept; past that the oldest completed
    ones are evicted. Pending and running records are never evicted. Waiters are woken
    by the store that completes a record, not by polling.

    Usage::

        backend = InMemoryBackend(max_results=10_000)
        app = Flowrra(config=Config(backend=BackendConfig("memory://?max_results=10000")))
    """

    def __init__(self, max_results: int = DEFAULT_MAX_RESULTS) -> None:
        """Create an empty backend keeping at most ``max_results`` completed records."""
        if isinstance(max_results, bool) or not isinstance(max_results, int) or max_results < 1:
            raise ConfigError(f"max_results must be at least 1, got {max_results!r}")
        self.max_results = max_results
        self._results: dict[str, TaskResult] = {}
        self._completed: deque[str] = deque()
        self._waiters: Waiters = {}

    async def store(self, task_id: str, result: TaskResult) -> None:
        """Save ``result``; wake waiters and evict old records when it is complete."""
        self.store_nowait(task_id, result)

    def store_nowait(self, task_id: str, result: TaskResult) -> None:
        """Save ``result`` (the sync form of :meth:`store`)."""
        previous = self._results.get(task_id)
        if previous is not result:
            self._results[task_id] = result
        status = result.status
        if status is not _SUCCESS and status is not _FAILED and status is not _CANCELLED:
            return
        if previous is None or previous is result or not previous.is_complete:
            self._completed.append(task_id)
            if len(self._completed) > self.max_results:
                self._evict()
        if self._waiters:
            waiters = self._waiters.pop(task_id, None)
            if waiters:
                for fut in waiters:
                    if not fut.done():
                        fut.set_result(result)

    def _evict(self) -> None:
        completed, results = self._completed, self._results
        while len(completed) > self.max_results:
            old = completed.popleft()
            record = results.get(old)
            if record is not None and record.is_complete:
                del results[old]

    async def get(self, task_id: str) -> TaskResult | None:
        """A snapshot of the record of ``task_id``, or None."""
        record = self._results.get(task_id)
        return copy.copy(record) if record is not None else None

    async def wait_for(self, task_id: str, timeout: float | None) -> TaskResult:
        """Wait for ``task_id`` to complete; see :meth:`BaseResultBackend.wait_for`."""
        record = self._results.get(task_id)
        if record is None:
            raise UnknownTaskIdError(task_id)
        if record.is_complete:
            return record
        fut: asyncio.Future[TaskResult] = asyncio.get_running_loop().create_future()
        self._waiters.setdefault(task_id, []).append(fut)
        try:
            return await await_completion(task_id, fut, timeout)
        finally:
            if not fut.done():
                forget_waiter(self._waiters, task_id, fut)

    async def delete(self, task_id: str) -> bool:
        """Delete the record of ``task_id``; True if there was one."""
        return self._results.pop(task_id, None) is not None

    async def clear(self) -> int:
        """Delete every record; return how many there were."""
        count = len(self._results)
        self._results.clear()
        self._completed.clear()
        return count

    async def list_results(
        self,
        status: TaskStatus | None = None,
        task_name: str | None = None,
        limit: int | None = None,
        offset: int = 0,
    ) -> list[TaskResult]:
        """Snapshots of the records, newest submitted first, filtered and paged."""
        matches = (
            r
            for r in reversed(self._results.values())
            if (status is None or r.status is status)
            and (task_name is None or r.task_name == task_name)
        )
        stop = None if limit is None else offset + limit
        return [copy.copy(r) for r in islice(matches, offset, stop)]

    def count_by_status(self) -> dict[str, int]:
        """How many records there are of each status (value strings)."""
        counts = dict.fromkeys((s.value for s in TaskStatus), 0)
        for record in self._results.values():
            counts[record.status.value] += 1
        return counts

    async def count_results(self, status: TaskStatus | None, task_name: str | None) -> int:
        """How many records match ``status`` and ``task_name`` (either may be None)."""
        return sum(
            1
            for r in self._results.values()
            if (status is None or r.status is status)
            and (task_name is None or r.task_name == task_name)
        )

    def __len__(self) -> int:
        return len(self._results)
