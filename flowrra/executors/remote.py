"""An executor's link to a Redis broker: submit there, feed local workers from there.

The executor keeps running tasks exactly as it does in memory; this part decides where
tasks come from and where they go when they leave:

- submit: the PENDING records go to the result backend, then the tasks to the broker
  (one round trip each per batch); a function that other processes cannot import (one
  defined in a notebook cell, a closure, a lambda) is shipped by value, once;
- feed: a feeder takes as many tasks as there are free workers, under a lease, and waits
  on the broker's wakeup list when there is nothing to take (no polling); a heartbeat
  renews the leases of the tasks held here;
- settle: a finished task is acknowledged after its record is stored (acks are grouped);
  a retry moves it to the broker's delayed set; on stop, tasks not started are given back.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib
import logging
import time
from typing import TYPE_CHECKING, Any

from flowrra.brokers.redis import RedisBroker, TakenTask
from flowrra.clock import utcnow
from flowrra.exceptions import BrokerError
from flowrra.redis_client import Batcher
from flowrra.registry import TaskSpec
from flowrra.serialization import dumps_function, loads
from flowrra.task import Task, TaskResult, TaskStatus, _from_stamp, _stamp, new_task_id

if TYPE_CHECKING:
    from flowrra.executors.base import BaseTaskExecutor, SubmitOptions

__all__ = ["RemoteQueue", "ships_by_value"]

#: Tasks per chunk of a bulk submit (each chunk is one round trip to Redis).
_CHUNK = 2000
_PART = 250

logger = logging.getLogger("flowrra.worker")


def ships_by_value(func: Any) -> bool:
    """True when another process could not import ``func`` by its module and name."""
    module = getattr(func, "__module__", None)
    qualname = getattr(func, "__qualname__", None)
    if not module or not qualname or module == "__main__" or "<" in qualname:
        return True
    try:
        target: Any = importlib.import_module(module)
        for part in qualname.split("."):
            target = getattr(target, part)
    except Exception:
        return True
    return target is not func


class RemoteQueue:
    """The Redis side of one executor; see the module docstring."""

    def __init__(self, executor: BaseTaskExecutor, broker: RedisBroker) -> None:
        """Link ``executor`` to ``broker``."""
        self.executor = executor
        self.broker = broker
        self.taken: dict[str, TakenTask] = {}
        self.shipped: dict[str, TaskSpec] = {}  # task id -> spec of a shipped function
        self._digests: dict[Any, str] = {}
        self._functions: dict[str, Any] = {}
        self._acks = Batcher(broker.ack)
        self._room = asyncio.Event()
        self._stopping = False
        self._feeder: asyncio.Task[None] | None = None
        self._heartbeat: asyncio.Task[None] | None = None

    @property
    def holding(self) -> int:
        """Tasks held here at most: the running ones plus some taken ahead, so that
        short tasks are taken in batches (CPU tasks are long: no more than the workers)."""
        executor = self.executor
        return executor.worker_count * (1 if executor.kind == "cpu" else 16)

    # ---------------------------------------------------------------- submit
    async def _digest(self, spec: TaskSpec) -> str | None:
        func = spec.func
        if not ships_by_value(func):
            return None
        digest = self._digests.get(func)
        if digest is None:
            digest, data = dumps_function(func)
            await self.broker.store_function(digest, data)
            self._digests[func] = digest
            self._functions[digest] = func  # this process runs its own function as is
        return digest

    async def submit(
        self,
        spec: TaskSpec,
        arg_tuples: list[tuple[tuple, dict]],
        priority: int,
        options: SubmitOptions | None,
    ) -> list[str]:
        """Record and queue one task per ``(args, kwargs)``; return their ids.

        Large batches go in chunks, pipelined: while Redis stores and queues one chunk,
        this process pickles and signs the next, so the two cores work at once. Chunks
        are queued in order, each after the one before.
        """
        digest = await self._digest(spec)
        due = 0.0
        if options is not None and options.delay() > 0:
            due = time.time() + options.delay()
        backend, broker = self.executor.results, self.broker
        ids: list[str] = []
        sending: asyncio.Future[Any] | None = None
        sent: list[TaskResult] = []
        for start in range(0, len(arg_tuples), _CHUNK):
            pairs = arg_tuples[start : start + _CHUNK]
            records, entries, rows = await self._chunk(
                spec, pairs, priority, options, (digest, due), sending is not None
            )
            if sending is not None:
                await sending
                self._announce(sent)
            # the store and the queueing go out together: a fresh record never replaces
            # one a fast worker wrote first (see the backend's store script)
            sending = asyncio.gather(backend.write_entries(entries), broker.push_rows(rows))  # type: ignore[attr-defined]
            sent = records
            ids.extend(record.task_id for record in records)
            self.executor.submitted += len(records)
            await asyncio.sleep(0)  # let both requests go out before the next chunk's work
        if sending is not None:
            await sending
            self._announce(sent)
        return ids

    async def _chunk(
        self,
        spec: TaskSpec,
        pairs: list[tuple[tuple, dict]],
        priority: int,
        options: SubmitOptions | None,
        where: tuple[str | None, float],
        in_flight: bool,
    ) -> tuple[list[TaskResult], list[Any], list[Any]]:
        """Records, backend rows and broker rows (pickled and signed) for ``pairs``.

        With a request ``in_flight``, the loop runs every :data:`_PART` tasks: a request
        larger than the socket buffer goes out only as the loop writes the rest of it.
        """
        digest, due = where
        records: list[TaskResult] = []
        entries: list[Any] = []
        rows: list[Any] = []
        for part in range(0, len(pairs), _PART):
            if in_flight:
                await asyncio.sleep(0)
            these, pushes = [], []
            for args, kwargs in pairs[part : part + _PART]:
                task, record = _new_task(spec, args, kwargs, priority, options)
                these.append(record)
                pushes.append((task, _stamp(record.submitted_at), digest, due))
            records += these
            entries += self.executor.results.entries(these)  # type: ignore[attr-defined]
            rows += self.broker.rows(pushes)
        return records, entries, rows

    def _announce(self, records: list[TaskResult]) -> None:
        events = self.executor.events
        if events.has_subscribers:
            for record in records:
                events.publish("task.submitted", record)

    # ------------------------------------------------------------------ feed
    async def start(self) -> None:
        """Start feeding local workers from the broker, and the lease heartbeat."""
        loop = asyncio.get_running_loop()
        self._stopping = False
        self._feeder = loop.create_task(self._feed())
        self._heartbeat = loop.create_task(self._beat())

    async def _feed(self) -> None:
        delay = 0.05
        executor = self.executor
        while not self._stopping:
            free = self.holding - len(executor._active)
            if free <= 0:
                self._room.clear()
                await self._room.wait()
                continue
            try:
                taken, wake = await self.broker.take(free)
                if self._stopping:  # a client library may swallow our cancellation
                    await self.broker.nack([item.task for item in taken])
                    return
                for item in taken:
                    await self._admit(item)
                if not taken:
                    await self.broker.wait(min(wake, 60.0) if wake is not None else 60.0)
                delay = 0.05
            except BrokerError as exc:
                if self._stopping:
                    return
                logger.warning("Broker unavailable (%s); retrying in %.2fs", exc, delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 2.0)

    async def _admit(self, item: TakenTask) -> None:
        task = item.task
        executor = self.executor
        if item.function is not None:
            func = self._functions.get(item.function)
            if func is None:
                func = loads(await self.broker.load_function_bytes(item.function))
                self._functions[item.function] = func
            self.shipped[task.id] = TaskSpec(
                task.name, func, task.cpu_bound, task.max_retries, task.retry_delay, task.timeout
            )
        submitted_at = _from_stamp(item.submitted_at)
        record = TaskResult(
            task.id, TaskStatus.PENDING, task.name, None, None, submitted_at, None, None,
            task.current_retry, task.args, task.kwargs, task.priority,
        )  # fmt: skip
        executor._active[task.id] = record
        self.taken[task.id] = item
        logger.info("Received %s[%s]", task.name, task.id)
        executor._queue.push_nowait(task)

    async def _beat(self) -> None:
        while True:
            await asyncio.sleep(self.broker.lease / 3)
            if self.taken:
                try:
                    await self.broker.heartbeat([t.task for t in self.taken.values()])
                except BrokerError as exc:
                    logger.warning("Could not renew leases: %s", exc)

    # ---------------------------------------------------------------- settle
    async def settled(self, record: TaskResult) -> None:
        """A task held here ended and its record is stored: acknowledge it."""
        item = self.taken.pop(record.task_id, None)
        self.shipped.pop(record.task_id, None)
        self._room.set()
        if item is None:
            return
        logger.info("%s %s[%s]", record.status.value.capitalize(), record.task_name, record.task_id)
        written = self.executor.results.written(record.task_id)  # type: ignore[attr-defined]
        if written is None:
            self._acks.add_nowait(item.task)
        else:  # acknowledged only once the result is stored; else the lease lapses
            written.add_done_callback(lambda f: self._ack_if_stored(f, item.task))

    def _ack_if_stored(self, written: asyncio.Future[None], task: Task) -> None:
        if not written.cancelled() and written.exception() is None:
            self._acks.add_nowait(task)

    async def retry(self, task: Task, delay: float) -> None:
        """Send a failed task back to the broker to run again after ``delay`` seconds."""
        item = self.taken.pop(task.id, None)
        self.shipped.pop(task.id, None)
        self.executor._active.pop(task.id, None)
        self._room.set()
        if item is not None:
            await self.broker.retry(task, item.submitted_at, item.function, time.time() + delay)

    async def cancel_queued(self, task_id: str) -> bool:
        """Cancel a task still waiting in the broker; True if it was there."""
        record = await self.executor.results.get(task_id)
        if record is None or record.is_complete or record.status is TaskStatus.RUNNING:
            return False
        if not await self.broker.remove(task_id, record.priority):
            return False
        record.status = TaskStatus.CANCELLED
        record.finished_at = utcnow()
        record.error = "Task was cancelled before it ran"
        await self.executor.results.store(task_id, record)
        self.executor.events.publish("task.cancelled", record)
        return True

    # ------------------------------------------------------------------ stop
    async def stop(self, wait: bool, timeout: float | None) -> None:
        """Stop taking tasks, give back those not started, drain or give back the rest."""
        executor = self.executor
        self._stopping = True
        jobs = [job for job in (self._feeder, self._heartbeat) if job is not None]
        for job in jobs:
            job.cancel()
        await self.broker.interrupt()  # a cancelled BLPOP can linger: close its connection
        if jobs:
            await asyncio.wait(jobs, timeout=5.0)
        not_started = executor._queue.drain()
        await self._give_back([t.id for t in not_started])
        if wait and executor._active:
            executor._drained = asyncio.Event()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(timeout):
                    await executor._drained.wait()
            executor._drained = None
        for worker in executor._workers:
            worker.cancel()
        await asyncio.gather(*executor._workers, return_exceptions=True)
        executor._workers = []
        executor._in_body.clear()
        executor._cancel_requested.clear()
        await self._give_back(list(self.taken))
        await executor.results.drain()  # type: ignore[attr-defined]
        await self._acks.drain()

    async def _give_back(self, ids: list[str]) -> None:
        executor = self.executor
        tasks, records = [], []
        for task_id in ids:
            item = self.taken.pop(task_id, None)
            record = executor._active.pop(task_id, None)
            self.shipped.pop(task_id, None)
            if item is None or record is None:
                continue
            tasks.append(item.task)
            record.status = TaskStatus.PENDING  # started_at stays: it is not a new record
            records.append(record)
        if records:
            await executor.results.store_many(records)  # type: ignore[attr-defined]
            await self.broker.nack(tasks)
            logger.info("Gave %d task(s) back to the queue", len(tasks))


def _new_task(
    spec: TaskSpec, args: tuple, kwargs: dict, priority: int, options: SubmitOptions | None
) -> tuple[Task, TaskResult]:
    task_id = new_task_id()
    max_retries, retry_delay, timeout, eta = spec.max_retries, spec.retry_delay, spec.timeout, None
    if options is not None:
        if options.max_retries is not None:
            max_retries = options.max_retries
        if options.retry_delay is not None:
            retry_delay = options.retry_delay
        if options.timeout is not None:
            timeout = options.timeout
        eta = options.eta
    task = Task(
        task_id, spec.name, args, kwargs, max_retries, retry_delay, 0, priority,
        spec.cpu_bound, timeout, eta,
    )  # fmt: skip
    record = TaskResult(
        task_id, TaskStatus.PENDING, spec.name, None, None, utcnow(), None, None, 0,
        args, kwargs, priority,
    )  # fmt: skip
    return task, record
