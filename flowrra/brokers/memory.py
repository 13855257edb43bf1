"""The in-memory broker: a priority queue on the event loop, no server needed."""

from __future__ import annotations

import asyncio
import heapq
from collections import deque

from flowrra.brokers.base import BaseBroker
from flowrra.task import Task

__all__ = ["InMemoryBroker"]


class InMemoryBroker(BaseBroker):
    """A bounded priority queue: lower priority number first, FIFO within a priority.

    One deque per priority and a heap of the priorities present: O(1) push and pop in
    the common case of a few distinct priorities.

    ``maxsize`` bounds tasks that wait: :meth:`push` waits for room when it is reached.
    :meth:`push_nowait` with ``force=True`` (used for retries and delayed tasks, which
    were admitted once already) always succeeds, so a full queue can never deadlock
    workers that re-enqueue. A push wakes one worker waiting in :meth:`pop`, which takes
    the head of the queue when it runs, and sets :attr:`handed` so a submitter knows an
    idle worker is waiting for the loop (see :meth:`BaseTaskExecutor.share_loop`).
    """

    def __init__(self, maxsize: int = 0) -> None:
        """Create an empty queue; ``maxsize=0`` means unbounded."""
        self.maxsize = maxsize
        self._buckets: dict[int, deque[Task]] = {}
        self._priorities: list[int] = []  # heap of the keys of _buckets
        self._size = 0
        self._getters: deque[asyncio.Future[None]] = deque()
        self._putters: deque[asyncio.Future[None]] = deque()
        self._closed = False
        #: True once a waiting :meth:`pop` was woken for a task; the submitter clears it.
        self.handed = False

    def full(self) -> bool:
        """True when a plain :meth:`push` would have to wait."""
        return 0 < self.maxsize <= self._size

    async def push(self, task: Task) -> None:
        """Queue ``task``, waiting while the queue is full."""
        while self.full():
            fut = asyncio.get_running_loop().create_future()
            self._putters.append(fut)
            try:
                await fut
            except asyncio.CancelledError:
                if fut.done() and not fut.cancelled():
                    self._wake_putter()  # pass the room we were given on
                raise
        self.push_nowait(task)

    def push_nowait(self, task: Task, front: bool = False) -> None:
        """Queue ``task`` now, over the bound if need be, and wake one waiting pop;
        ``front`` puts it ahead of the tasks of its priority."""
        self._append(task, front)
        getters = self._getters
        while getters:
            fut = getters.popleft()
            if not fut.done():
                fut.set_result(None)
                self.handed = True
                return

    def _append(self, task: Task, front: bool = False) -> None:
        bucket = self._buckets.get(task.priority)
        if bucket is None:
            bucket = self._buckets[task.priority] = deque()
            heapq.heappush(self._priorities, task.priority)
        if front:
            bucket.appendleft(task)
        else:
            bucket.append(task)
        self._size += 1

    def _take(self) -> Task:
        priority = self._priorities[0]
        bucket = self._buckets[priority]
        task = bucket.popleft()
        if not bucket:
            heapq.heappop(self._priorities)
            del self._buckets[priority]
        self._size -= 1
        return task

    def pop_nowait(self) -> Task | None:
        """Take the next task if one is queued, else None (never waits)."""
        if not self._size:
            return None
        task = self._take()
        if self._putters:
            self._wake_putter()
        return task

    async def pop(self, timeout: float | None = None) -> Task | None:
        """Take the next task, waiting for one; None on timeout or once closed.

        A waiting pop is woken, then takes the head of the queue when it runs: tasks
        start in queue order even when several workers wake at once.
        """
        loop: asyncio.AbstractEventLoop | None = None
        deadline = None
        while True:
            task = self.pop_nowait()
            if task is not None:
                return task
            if self._closed:
                return None
            if loop is None:
                loop = asyncio.get_running_loop()
                if timeout is not None:
                    deadline = loop.time() + timeout
            fut: asyncio.Future[None] = loop.create_future()
            self._getters.append(fut)
            try:
                if deadline is None:
                    await fut
                else:
                    async with asyncio.timeout_at(deadline):
                        await fut
            except TimeoutError:
                self._pass_on(fut)
                return None
            except asyncio.CancelledError:
                self._pass_on(fut)
                raise

    def _pass_on(self, fut: asyncio.Future[None]) -> None:
        """A pop gave up: if it had been woken for a task, wake another in its place."""
        if fut.done() and not fut.cancelled():
            self._hand_over()
        else:
            fut.cancel()

    def remove(self, task_id: str) -> Task | None:
        """Take the queued task with ``task_id`` out of the queue; None if not queued."""
        for priority, bucket in self._buckets.items():
            for task in bucket:
                if task.id == task_id:
                    bucket.remove(task)
                    self._size -= 1
                    if not bucket:
                        del self._buckets[priority]
                        self._priorities.remove(priority)
                        heapq.heapify(self._priorities)
                    self._wake_putter()
                    return task
        return None

    def drain(self) -> list[Task]:
        """Remove and return every queued task, in the order they would have run."""
        tasks = [task for p in sorted(self._buckets) for task in self._buckets[p]]
        self._buckets.clear()
        self._priorities.clear()
        self._size = 0
        return tasks

    async def size(self) -> int:
        """Number of tasks waiting."""
        return self._size

    def qsize(self) -> int:
        """Number of tasks waiting (sync form)."""
        return self._size

    async def close(self) -> None:
        """Wake every waiting :meth:`pop` with None; later pops on an empty queue
        return None at once."""
        self._closed = True
        while self._getters:
            fut = self._getters.popleft()
            if not fut.done():
                fut.set_result(None)

    def reopen(self) -> None:
        """Accept waiting pops again after :meth:`close` (an executor restarted)."""
        self._closed = False

    def _hand_over(self) -> None:
        """Wake as many waiting pops as there are queued tasks."""
        woken = 0
        getters = self._getters
        while getters and woken < self._size:
            fut = getters.popleft()
            if not fut.done():
                fut.set_result(None)
                woken += 1

    def _wake_putter(self) -> None:
        while self._putters:
            fut = self._putters.popleft()
            if not fut.done():
                fut.set_result(None)
                return
