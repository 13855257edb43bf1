"""An executor's link to a Redis broker: submit there, feed local workers from there.

The executor keeps running tasks exactly as it does in memory; this part decides where
tasks come from and where they go when they leave:

- submit: a task's PENDING record and its queue entry are written together, in one
  script, when the result backend lives on the broker's server (else the record first,
  then the queue entry, and the record is taken back if queueing fails). Concurrent
  submits are coalesced into one round trip; a function that other processes cannot
  import (one defined in a notebook cell, a closure, a lambda) is shipped by value, once;
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
import importlib
import logging
import os
import socket
import time
import uuid
from collections.abc import Coroutine
from typing import TYPE_CHECKING, Any

from flowrra.backends.redis import RedisBackend
from flowrra.brokers.redis import RedisBroker, TakenTask
from flowrra.clock import utcnow
from flowrra.exceptions import BackendError, BrokerError, FlowrraError
from flowrra.executors.lease import BEAT_EVERY, LeaseKeeper
from flowrra.executors.remote_unique import submit_unique
from flowrra.limits import override_limits
from flowrra.redis_client import Batcher
from flowrra.registry import TaskSpec
from flowrra.serialization import dumps_function, loads
from flowrra.task import Task, TaskResult, TaskStatus, _stamp, new_task_id, pending_record

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
        # function -> (digest or None, set once the function is stored in Redis)
        self._digests: dict[Any, tuple[str | None, asyncio.Event | None]] = {}
        self._functions: dict[str, Any] = {}
        self._acks = Batcher(broker.ack)
        self._pushes = Batcher(self._push, limit=4000)
        self._room = asyncio.Event()
        self._stopping = False
        self._feeder: asyncio.Task[None] | None = None
        self._keeper: LeaseKeeper | None = None
        self._started_at = time.time()
        self._chores: set[asyncio.Task[Any]] = set()
        self._settling: set[asyncio.Future[None]] = set()  # see settle_later
        self._reserved = 0  # worker slots promised to tasks being submitted here

    @property
    def holding(self) -> int:
        """Tasks held here at most: the running ones plus some taken ahead, so that
        short tasks are taken in batches (CPU tasks are long: no more than the workers)."""
        executor = self.executor
        return executor.worker_count * (1 if executor.kind == "cpu" else 16)

    # ---------------------------------------------------------------- submit
    async def _digest(self, spec: TaskSpec) -> str | None:
        """The digest a task's function ships under (None: it goes by reference). It is
        stored in Redis once; concurrent first submits wait for that one write."""
        func = spec.func
        known = self._digests.get(func)
        if known is None:
            known = self._digests[func] = await self._ship(func)
        elif known[1] is not None and not known[1].is_set():
            await known[1].wait()
            if self._digests.get(func) is not known:  # the write failed: try it here
                return await self._digest(spec)
        return known[0]

    async def _ship(self, func: Any) -> tuple[str | None, asyncio.Event | None]:
        if not ships_by_value(func):
            return None, None
        digest, data = dumps_function(func)
        stored = asyncio.Event()
        self._digests[func] = (digest, stored)  # seen by submits that come meanwhile
        try:
            await self.broker.store_function(digest, data)
        except BaseException:
            del self._digests[func]
            raise
        finally:
            stored.set()
        self._functions[digest] = func  # this process runs its own function as is
        return digest, stored

    async def submit_one(self, spec: TaskSpec, args: tuple, kwargs: dict, priority: int) -> str:
        """Record and queue one task with default options; return its id.

        :meth:`submit` for one task, with fewer objects made: thousands of these may be
        pending at once (``asyncio.gather``), and every object they hold costs the
        garbage collector."""
        backend = self.linked
        known = self._digests.get(spec.func)
        if backend is None or known is None or (known[1] is not None and not known[1].is_set()):
            return (await self.submit(spec, [(args, kwargs)], priority, None))[0]
        task, record = _new_task(spec, args, kwargs, priority, None)
        item = TakenTask(task, _stamp(record.submitted_at), known[0])
        claim = self._claimable(1)
        try:
            row = self.broker.row(task, item.submitted_at, item.function, 0.0)
            sent = backend.send(backend.submitted(self.broker, [record], [row], claim))
            try:
                claimed = await sent
            except BackendError as exc:  # the one write that records and queues
                raise BrokerError(f"Submit failed: {exc}") from exc
        finally:
            self._reserved -= claim
        self.executor.submitted += 1
        if self.executor.events.has_subscribers:
            self.executor.events.publish("task.submitted", record)
        if claimed:
            await self._run_claimed([item], claimed)
        return task.id

    async def submit(
        self,
        spec: TaskSpec,
        arg_tuples: list[tuple[tuple, dict]],
        priority: int,
        options: SubmitOptions | None,
    ) -> list[str]:
        """Record and queue one task per ``(args, kwargs)``; return their ids.

        Submits made at the same moment go out together in one round trip. Large
        batches go in chunks, pipelined: while Redis stores and queues one chunk, this
        process pickles and signs the next. A chunk is written whole or not at all; a
        submit that raised left nothing behind.
        """
        if options is not None and options.unique is not None:  # one task, its key claimed
            return [await submit_unique(self, spec, *arg_tuples[0], priority, options)]
        digest = await self._digest(spec)
        due = 0.0
        if options is not None and options.delay() > 0:
            due = time.time() + options.delay()
        sent: list[tuple[asyncio.Future[Any], list[TaskResult], list[TakenTask], int]] = []
        try:
            for start in range(0, len(arg_tuples), _CHUNK):
                records, items, rows = await self._chunk(
                    spec, arg_tuples[start : start + _CHUNK], priority, options, (digest, due), sent
                )
                claim = self._claimable(len(rows)) if not due else 0
                sent.append((self._send(records, rows, claim), records, items, claim))
            ids: list[str] = []
            for future, records, items, _claim in sent:
                try:
                    claimed = await future
                except BackendError as exc:  # the one write that records and queues
                    raise BrokerError(f"Submit failed: {exc}") from exc
                ids.extend(record.task_id for record in records)
                self.executor.submitted += len(records)
                self._announce(records)
                if claimed:
                    await self._run_claimed(items, claimed)
            return ids
        finally:
            self._reserved -= sum(claim for *_, claim in sent)

    def _claimable(self, count: int) -> int:
        """How many of ``count`` new tasks this process's idle workers may take at once."""
        if self._feeder is None or self._stopping:
            return 0
        free = self.holding - len(self.executor._active) - self._reserved
        claim = max(0, min(count, free))
        self._reserved += claim
        return claim

    async def _run_claimed(self, items: list[TakenTask], claimed: list[bytes]) -> None:
        """Run here the tasks the submit script leased to this process."""
        mine = set(claimed)
        taken = [item for item in items if item.task.id.encode() in mine]
        if self._stopping:
            await self.broker.nack([item.task for item in taken])
            return
        for item in taken:
            await self._admit(item)

    async def _chunk(
        self,
        spec: TaskSpec,
        pairs: list[tuple[tuple, dict]],
        priority: int,
        options: SubmitOptions | None,
        where: tuple[str | None, float],
        in_flight: list[Any],
    ) -> tuple[list[TaskResult], list[TakenTask], list[Any]]:
        """Records, tasks and broker rows (pickled and signed) for ``pairs``.

        With a request ``in_flight``, the loop runs every :data:`_PART` tasks: a request
        larger than the socket buffer goes out only as the loop writes the rest of it.
        """
        digest, due = where
        records: list[TaskResult] = []
        items: list[TakenTask] = []
        rows: list[Any] = []
        for part in range(0, len(pairs), _PART):
            if in_flight:
                await asyncio.sleep(0)
            pushes = []
            for args, kwargs in pairs[part : part + _PART]:
                task, record = _new_task(spec, args, kwargs, priority, options)
                records.append(record)
                stamp = _stamp(record.submitted_at)
                items.append(TakenTask(task, stamp, digest))
                pushes.append((task, stamp, digest, due))
            rows += self.broker.rows(pushes)
        return records, items, rows

    def _send(self, records: list[TaskResult], rows: list[Any], claim: int) -> asyncio.Future[Any]:
        """Write ``records`` and queue ``rows``: one script on one server. The first
        ``claim`` rows may be leased to this process at once (the future gives their ids)."""
        backend = self.linked
        if backend is not None:
            return backend.send(backend.submitted(self.broker, records, rows, claim))
        entries = getattr(self.executor.results, "entries", None)
        # pickled now, so an argument that cannot be is refused before anything is sent
        made = entries(records) if entries is not None else None
        return asyncio.ensure_future(self._store_then_queue(records, made, rows))

    async def _store_then_queue(
        self, records: list[TaskResult], entries: list[Any] | None, rows: list[Any]
    ) -> None:
        results = self.executor.results
        if entries is not None:
            await results.send(entries)  # type: ignore[attr-defined]
        else:
            for record in records:
                await results.store(record.task_id, record)
        try:
            await self._pushes.add_many_nowait(rows)
        except BaseException:
            for record in records:  # the task will never run: leave no record of it
                with contextlib.suppress(Exception):
                    await results.delete(record.task_id)
            raise

    async def _push(self, rows: list[Any]) -> None:
        await self.broker.push_rows(rows)

    def _announce(self, records: list[TaskResult]) -> None:
        events = self.executor.events
        if events.has_subscribers:
            for record in records:
                events.publish("task.submitted", record)

    # ------------------------------------------------------------------ feed
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
            free = self.holding - len(executor._active)
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
            try:
                await self._admit(item)
            except Exception as exc:  # e.g. a shipped function that cannot be loaded
                logger.error("Cannot run task %s (%s): %s", item.task.name, item.task.id, exc)
                await self._give_up(item, f"{type(exc).__name__}: {exc}", exc)
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

    async def _admit(self, item: TakenTask) -> None:
        task = item.task
        executor = self.executor
        if item.deliveries == -1:  # its worker died after a cancel was asked
            record = self._hold(item)
            message = "Task was cancelled (its worker stopped before it could stop the task)"
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
        if item.function is not None:
            func = self._functions.get(item.function)
            if func is None:
                func = loads(await self.broker.load_function_bytes(item.function))
                self._functions[item.function] = func
            self.shipped[task.id] = TaskSpec(
                task.name, func, task.cpu_bound, task.max_retries, task.retry_delay, task.timeout
            )
        self._hold(item)
        logger.info("Received %s[%s]", task.name, task.id)
        executor._queue.push_nowait(task)

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
            ack = backend.ack_item(self.broker, item.task.priority, item.task.id)
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
        hook = self.executor.workflow_hook
        if record.workflow_id is not None and hook is not None:
            await hook.after_step(record)  # a workflow's step: the workflow ends
        return True

    # ------------------------------------------------------------------ stop
    async def stop(self, wait: bool, timeout: float | None) -> None:
        """Stop taking tasks, give back those not started, drain or give back the rest."""
        executor = self.executor
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


def _new_task(
    spec: TaskSpec, args: tuple, kwargs: dict, priority: int, options: SubmitOptions | None
) -> tuple[Task, TaskResult]:
    tag = None if options is None else options.next_tag()
    task_id = new_task_id() if tag is None else tag.task_id
    max_retries, retry_delay, timeout, eta = spec.max_retries, spec.retry_delay, spec.timeout, None
    if options is not None:
        if options.max_retries is not None:
            max_retries = options.max_retries
        if options.retry_delay is not None:
            retry_delay = options.retry_delay
        if options.timeout is not None:
            timeout = options.timeout
        eta = options.eta
    limits = spec.limits if options is None else override_limits(spec.limits, options.limits)
    task = Task(
        task_id, spec.name, args, kwargs, max_retries, retry_delay, 0, priority,
        spec.cpu_bound, timeout, eta, limits,
    )  # fmt: skip
    record = TaskResult(
        task_id, TaskStatus.PENDING, spec.name, None, None, utcnow(), None, None, 0,
        args, kwargs, priority,
    )  # fmt: skip
    if tag is not None:  # a workflow's step
        task.workflow_id = record.workflow_id = tag.workflow_id
        task.workflow_step = record.workflow_step = tag.step
    return task, record
