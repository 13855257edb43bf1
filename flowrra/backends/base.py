"""The result-backend contract: where task records are kept and waited on."""

from __future__ import annotations

import asyncio
from abc import ABC, abstractmethod

from flowrra.exceptions import TaskTimeoutError
from flowrra.task import TaskResult, TaskStatus

__all__ = ["BaseResultBackend", "Waiters", "await_completion", "forget_waiter"]


Waiters = dict[str, list[asyncio.Future[TaskResult]]]


async def await_completion(
    task_id: str, future: asyncio.Future[TaskResult], timeout: float | None
) -> TaskResult:
    """Await the record ``future`` delivers, for at most ``timeout`` seconds (None: for
    ever); :class:`~flowrra.exceptions.TaskTimeoutError` when time runs out."""
    try:
        if timeout is None:
            return await future
        async with asyncio.timeout(timeout):
            return await future
    except TimeoutError:
        raise TaskTimeoutError(task_id, timeout) from None


def forget_waiter(waiters: Waiters, task_id: str, future: asyncio.Future[TaskResult]) -> None:
    """Take ``future`` off the waiters of ``task_id`` (a wait that ended without it)."""
    pending = waiters.get(task_id)
    if pending and future in pending:
        pending.remove(future)
        if not pending:
            del waiters[task_id]


class BaseResultBackend(ABC):
    """Stores one :class:`~flowrra.task.TaskResult` per task id.

    Subclasses implement :meth:`store`, :meth:`get` and :meth:`wait_for`, and should
    implement :meth:`list_results` (newest submitted first), which the DataFrame export,
    the task table and :meth:`list_by_status` use.
    """

    @abstractmethod
    async def store(self, task_id: str, result: TaskResult) -> None:
        """Save ``result`` as the record of ``task_id``; wake waiters when it is complete."""

    @abstractmethod
    async def get(self, task_id: str) -> TaskResult | None:
        """The record of ``task_id``, or None if there is none."""

    @abstractmethod
    async def wait_for(self, task_id: str, timeout: float | None) -> TaskResult:
        """Wait until ``task_id`` is complete and return its record.

        Raises:
            TaskTimeoutError: ``timeout`` seconds passed first (also a ``TimeoutError``).
            UnknownTaskIdError: the backend has no record of ``task_id``.
        """

    async def delete(self, task_id: str) -> bool:
        """Delete the record of ``task_id``; True if there was one."""
        raise NotImplementedError("delete() not supported by this backend")

    async def clear(self) -> int:
        """Delete every record; return how many there were."""
        raise NotImplementedError("clear() not supported by this backend")

    async def list_results(
        self,
        status: TaskStatus | None = None,
        task_name: str | None = None,
        limit: int | None = None,
        offset: int = 0,
    ) -> list[TaskResult]:
        """Records newest submitted first, filtered by status and task name."""
        raise NotImplementedError(f"list_results() not supported by {type(self).__name__}")

    async def list_by_status(
        self, status: TaskStatus, limit: int | None = None, offset: int = 0
    ) -> list[TaskResult]:
        """Records with ``status``, newest submitted first (flowrra 0.1.8 API)."""
        return await self.list_results(status=status, limit=limit, offset=offset)

    async def close(self) -> None:  # noqa: B027 - optional hook, no-op by default
        """Release connections. The default does nothing."""
