"""An executor's link to a Redis broker: submit there, feed local workers from there.

The executor keeps running tasks exactly as it does in memory; this part decides where
tasks come from and where they go when they leave:

- submit: :class:`~flowrra.executors.remote_submit.RemoteSubmit` (``self.submits``);
  tasks it leases to this process at once are handed to the feed (:meth:`run_claimed`);
- feed: a feeder takes as many tasks as there are free workers, under a lease, and waits
  for a wake-up when there is nothing to take (no polling); a thread renews the leases of
  the tasks held here, so a task that blocks the loop keeps its lease;
- settle: a finished task's record and its acknowledgement are one write; a retry moves
  it to the broker's delayed set; on stop, tasks not started are given back; a task
  delivered too many times, or whose payload is missing or untrusted, ends FAILED.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import time
import uuid
from collections import OrderedDict
from collections.abc import Coroutine
from typing import TYPE_CHECKING, Any

from flowrra.backends.redis import RedisBackend
from flowrra.brokers.redis import RedisBroker, TakenTask
from flowrra.clock import utcnow
from flowrra.exceptions import BrokerError, FlowrraError
from flowrra.executors.lease import BEAT_EVERY, LeaseKeeper
from flowrra.executors.remote_submit import RemoteSubmit
from flowrra.redis_client import Batcher
from flowrra.registry import TaskSpec
from flowrra.serialization import loads
from flowrra.task import Task, TaskResult, TaskStatus, pending_record

if TYPE_CHECKING:
    from flowrra.executors.base import BaseTaskExecutor

__all__ = ["RemoteQueue"]

logger = logging.getLogger("flowrra.worker")

#: Cancels kept in mind for tasks that may still arrive (see RemoteQueue.cancel_asked).
_CANCELS_KEPT = 1024


class RemoteQueue:
    """The Redis side of one executor; see the module docstring."""

    def __init__(self, executor: BaseTaskExecutor, broker: RedisBroker) -> None:
        """Link ``executor`` to ``broker`` (and, on one server, to its result backend)."""
        self.executor = executor
        self.broker = broker
        backend = executor.results
        #: The result backend when it shares the broker's server: one write does both.
        self.linked: RedisBackend | None = (
            backend if isinstance(backend, RedisBackend) and backend.link(broker) else None
        )
        self.taken: dict[str, TakenTask] = {}
        # finished here, acknowledgement not yet in Redis: their leases are still renewed
        self.acking: dict[str, TakenTask] = {}
        self.shipped: dict[str, TaskSpec] = {}  # task id -> spec of a shipped function
        #: Functions shipped by value, by digest: loaded once per process (this
        #: process's own are put here as they are when it ships them).
        self.functions: dict[str, Any] = {}
        self._acks = Batcher(broker.ack)
        self._room = asyncio.Event()
        self._stopping = False
        self._feeder: asyncio.Task[None] | None = None
        self._keeper: LeaseKeeper | None = None
        self._lapsed: set[str] = set()  # tasks held here whose lapsed lease was reported
        self._started_at = time.time()
        self._chores: set[asyncio.Task[Any]] = set()
        self._arriving: list[TakenTask] = []  # see run_claimed_soon
        self._settling: set[asyncio.Future[None]] = set()  # see settle_later
        # cancels asked for tasks not held here (yet): see cancel_asked
        self._cancels: OrderedDict[str, bool] = OrderedDict()
        #: The submit side (flowrra.executors.remote_submit).
        self.submits = RemoteSubmit(self)

    @property
    def feeding(self) -> bool:
        """True while the feeder runs (tasks may be leased to this process at submit)."""
        return self._feeder is not None and not self._stopping

    @property
    def holding(self) -> int:
        """Tasks held here at most: the running ones plus some taken ahead, so that
        short tasks are taken in batches (CPU tasks are long: no more than the workers)."""
        executor = self.executor
        return executor.worker_count * (1 if executor.kind == "cpu" else 16)

    # ------------------------------------------------------------------ feed
    async def run_claimed(self, items: list[TakenTask], claimed: list[bytes]) -> None:
        """Run here the tasks the submit script leased to this process."""
        mine = set(claimed)
        taken = [item for item in items if item.task.id.encode() in mine]
        if self._stopping:
            await self.broker.nack([item.task for item in taken])
            return
        for item in taken:
            await self._admit(item)

    def run_claimed_soon(self, item: TakenTask) -> None:
        """Run here a task the submit script leased to this process, admitted from a
        callback of the loop's next turn. A submitter that goes on to its next submit
        sends that one first: on the one-submit loop (benchmark (d)) the admission was
        on the path between a reply and the next request. Until then the task counts
        in :attr:`admitting` (no more tasks are taken than the workers can hold);
        :meth:`stop` and a cancel admit the arrivals first (see :meth:`admit_arrivals`)."""
        self._arriving.append(item)
        if len(self._arriving) == 1:
            asyncio.get_running_loop().call_soon(self.admit_arrivals)

    @property
    def admitting(self) -> int:
        """Tasks leased here at submit whose admission is on its way."""
        return len(self._arriving)

    def admit_arrivals(self) -> None:
        """Admit now the tasks :meth:`run_claimed_soon` was given: before a stop (they
        are then given back, as any task not started) or a cancel (which must find
        them here)."""
        arriving, self._arriving = self._arriving, []
        for item in arriving:  # one that fails must not strand the ones after it
            try:
                if not self._admit_now(item):
                    self._chore(self._admit_or_give_up(item))
            except Exception as exc:
                self._chore(self._not_admitted(item, exc))

    async def start(self) -> None:
        """Start feeding local workers from the broker, and the lease keeper."""
        loop = asyncio.get_running_loop()
        self._stopping = False
        await self.broker.listen()  # subscribed before the first take: no wake-up missed
        self._started_at = time.time()
        worker_id = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self._keeper = LeaseKeeper(
            self.broker.queue_key,
            self.broker.lease,
            self._members,
            self.broker.heartbeat_sync,
            self._running_task,
            presence=lambda: self.broker.beat_sync(worker_id, self._presence()),
            leave=lambda: self.broker.leave_sync(worker_id),
            lost=self._leases_lost,
        )
        self._keeper.start(loop)
        self._feeder = loop.create_task(self._feed())

    def _presence(self) -> dict[str, Any]:
        """What this worker says of itself to dashboards (called from the keeper's
        thread: reads only sizes)."""
        executor = self.executor
        return {
            "host": socket.gethostname(),
            "pid": os.getpid(),
            "queues": [executor.kind],
            "queue_key": self.broker.queue_key,
            "concurrency": executor.worker_count,
            "running": len(self.taken),
            "started": self._started_at,
            "every": BEAT_EVERY,
        }

    def _members(self) -> list[str]:
        """The leases to renew: tasks held here, and those finished here whose
        acknowledgement is still on its way (a write that rides out an outage must not
        let the lease lapse meanwhile, or the task runs again)."""
        for _ in range(5):  # the loop may change the dicts meanwhile: read them again
            with contextlib.suppress(RuntimeError):
                held = list(self.taken.values()) + list(self.acking.values())
                return [f"{t.task.priority}:{t.task.id}" for t in held]
        return []

    def _leases_lost(self, members: list[str]) -> None:
        """The keeper found these leases lapsed (on the loop). A task still running here
        went back to the queue meanwhile, and another worker may run it too: say so, and
        let its final write take it out of every index a worker can put it in. Each task
        is reported once."""
        self._lapsed.intersection_update(self.taken)
        for member in members:
            task_id = member.partition(":")[2]
            item = self.taken.get(task_id)
            if item is None or task_id in self._lapsed:  # finished since, or told already
                continue
            self._lapsed.add(task_id)
            logger.warning(
                "The lease of task %s (%s) lapsed while it runs here: it went back to the "
                "queue, and another worker may run it too. Task bodies should be "
                "idempotent; a longer lease (flowrra worker --lease) makes this rarer.",
                item.task.name, task_id,
            )  # fmt: skip
            if self.linked is not None:
                self.linked.lease_lost(task_id)

    def _running_task(self, loop: asyncio.AbstractEventLoop) -> str | None:
        """The task whose body the loop is in now (None: the loop is elsewhere)."""
        running = asyncio.current_task(loop)
        if running is None:
            return None
        for task_id, body in list(self.executor._in_body.items()):
            if body is running:
                record = self.executor._active.get(task_id)
                return f"Task {record.task_name if record else ''}[{task_id}]"
        return None

    async def _feed(self) -> None:
        delay = 0.05
        executor = self.executor
        while not self._stopping:
            free = self.holding - executor.active_count()  # arrivals included
            if free <= 0:
                self._room.clear()
                await self._room.wait()
                continue
            try:
                taken = await self.broker.take(free)
                if self._stopping:  # a client library may swallow our cancellation
                    await self.broker.nack([item.task for item in taken.tasks])
                    return
                await self._receive(taken)
                if len(taken.tasks) < free:  # the queue ran dry: wait for a wake-up
                    await self.broker.wait(min(taken.wake or 60.0, 60.0))
                delay = 0.05
            except FlowrraError as exc:
                if self._stopping:
                    return
                logger.warning("Broker unavailable (%s); retrying in %.2fs", exc, delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 2.0)

    async def _receive(self, taken: Any) -> None:
        for item in taken.tasks:
            if item.task.id in self.taken or item.task.id in self.acking:
                # its lease lapsed while this process held it (Redis was away longer
                # than the lease) and this take leased it again: it runs, or ran, here
                logger.info("Task %s is still held here: not run twice", item.task.id)
                continue
            await self._admit_or_give_up(item)
        for task_id, reason in taken.dead:
            await self._tell_dead_letter(task_id, reason)
        for task_id in taken.missing:
            self._chore(self._fail_missing(task_id))

    def _chore(self, job: Any) -> None:
        task = asyncio.ensure_future(job)
        self._chores.add(task)
        task.add_done_callback(self._chores.discard)

    def _hold(self, item: TakenTask) -> TaskResult:
        """Hold a taken task here: its record joins the executor's active ones."""
        task = item.task
        record = pending_record(task, item.submitted_at)
        self.executor._active[task.id] = record
        self.taken[task.id] = item
        return record

    async def _admit_or_give_up(self, item: TakenTask) -> None:
        try:
            await self._admit(item)
        except Exception as exc:  # e.g. a shipped function that cannot be loaded
            await self._not_admitted(item, exc)

    def _not_admitted(self, item: TakenTask, exc: Exception) -> Coroutine[Any, Any, None]:
        """Log that ``item`` cannot run; the coroutine that ends it FAILED."""
        logger.error("Cannot run task %s (%s): %s", item.task.name, item.task.id, exc)
        return self._give_up(item, f"{type(exc).__name__}: {exc}", exc)

    async def _admit(self, item: TakenTask) -> None:
        if self._admit_now(item):
            return
        task = item.task
        executor = self.executor
        asked = self._cancels.pop(task.id, False)  # a cancel asked before it arrived here
        if asked or item.deliveries == -1:  # or its worker died after a cancel was asked
            record = self._hold(item)
            message = (
                "Task was cancelled before it ran"
                if asked
                else "Task was cancelled (its worker stopped before it could stop the task)"
            )
            await executor._finish(record, TaskStatus.CANCELLED, message=message)
            return
        if item.deliveries:
            record = self._hold(item)
            message = (
                f"Task '{task.name}' was delivered {item.deliveries} times (max_deliveries="
                f"{self.broker.max_deliveries}): each time its worker died or lost the lease "
                "before it finished (a crash, the OOM killer, or a body that blocks the loop "
                "for longer than the lease). It will not run again."
            )
            await executor._finish(record, TaskStatus.FAILED, exc=BrokerError(message))
            return
        assert item.function is not None  # a shipped function this process has not loaded
        func = loads(await self.broker.load_function_bytes(item.function))
        self.functions[item.function] = func
        self._admit_now(item)

    def _admit_now(self, item: TakenTask) -> bool:
        """Hand ``item`` to the local workers if that needs no wait: False for a task
        to end at once (delivered too often, cancelled) or whose shipped function is not
        loaded here yet (see :meth:`_admit`)."""
        if item.deliveries or (self._cancels and item.task.id in self._cancels):
            return False
        task = item.task
        if item.function is not None:
            func = self.functions.get(item.function)
            if func is None:
                return False
            self.shipped[task.id] = TaskSpec(
                task.name, func, task.cpu_bound, task.max_retries, task.retry_delay, task.timeout
            )
        self._hold(item)
        logger.info("Received %s[%s]", task.name, task.id)
        self.executor._queue.push_nowait(task)
        return True

    async def _give_up(self, item: TakenTask, reason: str, exc: Exception) -> None:
        """End a taken task FAILED without running it."""
        record = self._hold(item)
        await self.executor._finish(record, TaskStatus.FAILED, exc=exc, message=reason)

    async def _tell_dead_letter(self, task_id: str, reason: str) -> None:
        """Tell the submitter (which may not share our secret) that a payload was set
        aside: a plain-JSON notice on the backend's channel."""
        announce = getattr(self.executor.results, "announce_dead_letter", None)
        if announce is not None:
            with contextlib.suppress(Exception):
                await announce(task_id, reason)

    async def _fail_missing(self, task_id: str) -> None:
        """A task was queued without a payload (removed by someone): fail its record."""
        try:
            record = await self.executor.results.get(task_id)
            if record is None or record.is_complete:
                return
            record.status = TaskStatus.FAILED
            record.finished_at = utcnow()
            record.error = (
                f"The payload of task {task_id} was missing from {self.broker.keys['payloads']} "
                "when a worker took it (removed from Redis by something other than flowrra)"
            )
            record.error_type = "BrokerError"
            await self.executor.results.store(task_id, record)
            hook = self.executor.workflow_hook
            if record.workflow_id is not None and hook is not None:
                await hook.after_step(record)  # a workflow's step: the workflow ends FAILED
        except Exception as exc:
            logger.error("Could not fail task %s whose payload is missing: %s", task_id, exc)

    # ---------------------------------------------------------------- settle
    async def finish(self, record: TaskResult) -> None:
        """Store the final ``record`` of a task; one held here is acknowledged in the
        same write (on one server) or once the write is done, else its lease lapses and
        it runs again."""
        item = self.taken.get(record.task_id)
        backend = self.linked
        if item is not None and backend is not None:
            task = item.task
            ack = backend.ack_item(self.broker, task.priority, task.id, task.limits is not None)
            backend.store_nowait(record.task_id, record, also=[ack])  # may raise: no change
        else:
            await self.executor._save(record)
        self._release(record.task_id)
        if item is None:
            return
        if backend is not None:
            self._acking_until(item, backend.written(record.task_id))
            return
        written = getattr(self.executor.results, "written", None)
        future = written(record.task_id) if written is not None else None
        if future is None:
            self._acking_until(item, self._acks.add_nowait(item.task))
        else:  # acknowledged only once the result is stored; else the lease lapses
            self.acking[record.task_id] = item
            future.add_done_callback(lambda f: self._ack_if_stored(f, item))

    def settle_later(self, record: TaskResult, settle: Coroutine[Any, Any, None]) -> None:
        """Finish a workflow's step (``settle``: its ``_finish``) in a task of its own: the
        workflow's mark must be stored before the step is acknowledged, and its worker
        need not wait for that round trip. The step stays leased here meanwhile (if this
        process dies, it runs again); :meth:`stop` waits for it."""
        future = asyncio.ensure_future(settle)
        self._settling.add(future)
        future.add_done_callback(lambda done: self._settled(record.task_id, done))

    def _settled(self, task_id: str, done: asyncio.Future[None]) -> None:
        self._settling.discard(done)
        if done.cancelled() or done.exception() is None:
            return
        logger.error("Could not finish task %s: %s; it will run again", task_id, done.exception())
        self.taken.pop(task_id, None)  # its lease lapses: another delivery settles it
        self.shipped.pop(task_id, None)
        self._room.set()

    def _release(self, task_id: str) -> None:
        item = self.taken.pop(task_id, None)
        self.shipped.pop(task_id, None)
        self._room.set()
        if item is not None:
            logger.info("Finished %s[%s]", item.task.name, task_id)

    def _ack_if_stored(self, written: asyncio.Future[None], item: TakenTask) -> None:
        if not written.cancelled() and written.exception() is None:
            self._acking_until(item, self._acks.add_nowait(item.task))
        else:
            self._acked(item)

    def _acking_until(self, item: TakenTask, ack: asyncio.Future[Any] | None) -> None:
        """Keep renewing ``item``'s lease until ``ack`` (the write that acknowledges it)
        is done; if that write fails, the lease lapses and the task runs again."""
        if ack is None or ack.done():
            self._acked(item)
            return
        self.acking[item.task.id] = item
        ack.add_done_callback(lambda _f: self._acked(item))

    def _acked(self, item: TakenTask) -> None:
        if self.acking.get(item.task.id) is item:
            del self.acking[item.task.id]

    async def retry(self, task: Task, delay: float) -> None:
        """Send a failed task back to the broker to run again after ``delay`` seconds."""
        item = self.taken.pop(task.id, None)
        self.shipped.pop(task.id, None)
        self.executor._active.pop(task.id, None)
        self._room.set()
        if item is not None:
            await self.broker.retry(task, item.submitted_at, item.function, time.time() + delay)

    async def mark_cancelled(self, task_id: str) -> None:
        """Note in the broker that a cancel was asked for ``task_id`` while it ran (see
        :meth:`RedisBroker.mark_cancelled`)."""
        await self.broker.mark_cancelled(task_id)

    async def cancel_queued(self, task_id: str) -> str:
        """Cancel a task that has not started: ``"cancelled"`` if it was still waiting in
        the broker (it is CANCELLED now); ``"taken"`` if a worker has taken it (the
        cancel is noted in the broker: its worker must be told, see
        :meth:`cancel_asked`); else ``"absent"``."""
        record = await self.executor.results.get(task_id)
        if record is None or record.is_complete or record.status is TaskStatus.RUNNING:
            return "absent"
        found = await self.broker.withdraw(task_id, record.priority)
        if found != "removed":
            return found
        record.status = TaskStatus.CANCELLED
        record.finished_at = utcnow()
        record.error = "Task was cancelled before it ran"
        await self.executor.results.store(task_id, record)
        self.executor.events.publish("task.cancelled", record)
        hook = self.executor.workflow_hook
        if record.workflow_id is not None and hook is not None:
            await hook.after_step(record)  # a workflow's step: the workflow ends
        return "cancelled"

    def cancel_asked(self, task_id: str) -> None:
        """Some process asked to cancel ``task_id``, which this executor does not hold:
        it may be on its way here (taken, the reply not read yet), so it is kept in
        mind (the last :data:`_CANCELS_KEPT` such ids) and ends CANCELLED when it
        arrives, without running."""
        self._cancels[task_id] = True
        if len(self._cancels) > _CANCELS_KEPT:
            self._cancels.popitem(last=False)

    # ------------------------------------------------------------------ stop
    async def stop(self, wait: bool, timeout: float | None) -> None:
        """Stop taking tasks, give back those not started, drain or give back the rest."""
        executor = self.executor
        self.admit_arrivals()  # leased here at submit: given back below with the rest
        self._stopping = True
        if self._feeder is not None:
            self._feeder.cancel()
            await self.broker.interrupt()
            await asyncio.wait([self._feeder], timeout=5.0)
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
        if self._settling:  # steps that ran: finish them rather than give them back
            await asyncio.wait(self._settling)
        await self._give_back(list(self.taken))
        if self._keeper is not None:
            await asyncio.to_thread(self._keeper.stop)
            self._keeper = None
        drain = getattr(executor.results, "drain", None)
        if drain is not None:
            await drain()
        await self._acks.drain()
        if self._chores:
            await asyncio.wait(self._chores, timeout=5.0)

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
            store_many = getattr(executor.results, "store_many", None)
            if store_many is not None:
                await store_many(records)
            else:
                for record in records:
                    await executor.results.store(record.task_id, record)
            await self.broker.nack(tasks)
            logger.info("Gave %d task(s) back to the queue", len(tasks))
