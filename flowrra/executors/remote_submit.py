"""The submit side of an executor's link to a Redis broker (see
:mod:`flowrra.executors.remote`): a task's PENDING record and its queue entry are written
together, in one script, when the result backend lives on the broker's server (else the
record first, then the queue entry, and the record is taken back if queueing fails).
Concurrent submits are coalesced into one round trip; a function that other processes
cannot import (one defined in a notebook cell, a closure, a lambda) is shipped by value,
once. Tasks submitted while this process's workers are idle may be leased to them in the
same write (they never wait in the queue)."""

from __future__ import annotations

import asyncio
import contextlib
import importlib
import time
from typing import TYPE_CHECKING, Any, TypeGuard

from flowrra.backends.redis import RedisBackend, task_item
from flowrra.brokers.redis import TakenTask
from flowrra.clock import timestamp, utcnow
from flowrra.exceptions import BackendError, BrokerError
from flowrra.executors.remote_unique import submit_unique
from flowrra.limits import override_limits
from flowrra.redis_client import Batcher
from flowrra.registry import TaskSpec
from flowrra.serialization import dumps_function
from flowrra.task import Task, TaskResult, TaskStatus, _stamp, new_task_id, pending_record

if TYPE_CHECKING:
    from flowrra.executors.base import SubmitOptions
    from flowrra.executors.remote import RemoteQueue

__all__ = ["RemoteSubmit", "ships_by_value"]

#: Tasks per chunk of a bulk submit (each chunk is one round trip to Redis).
_CHUNK = 2000
_PART = 250


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


class RemoteSubmit:
    """Submits an executor's tasks to Redis; see the module docstring."""

    def __init__(self, remote: RemoteQueue) -> None:
        """The submit side of ``remote`` (whose feed runs tasks leased at submit)."""
        self.remote = remote
        self.executor = remote.executor
        self.broker = remote.broker
        self.linked: RedisBackend | None = remote.linked
        # function -> (digest or None, set once the function is stored in Redis)
        self._digests: dict[Any, tuple[str | None, asyncio.Event | None]] = {}
        self._pushes = Batcher(self._push, limit=4000)
        self._reserved = 0  # worker slots promised to tasks being submitted here

    async def digest(self, spec: TaskSpec) -> str | None:
        """The digest a task's function ships under (None: it goes by reference). It is
        stored in Redis once; concurrent first submits wait for that one write."""
        func = spec.func
        known = self._digests.get(func)
        if _shipped(known):
            return known[0]
        if known is None:
            known = self._digests[func] = await self._ship(func)
        else:  # being shipped by another submit: wait for that one write
            assert known[1] is not None
            await known[1].wait()
            if self._digests.get(func) is not known:  # the write failed: try it here
                return await self.digest(spec)
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
        self.remote.functions[digest] = func  # this process runs its own function as is
        return digest, stored

    async def submit_one(self, spec: TaskSpec, args: tuple, kwargs: dict, priority: int) -> str:
        """Record and queue one task with default options; return its id.

        :meth:`submit` for one task, with fewer objects kept while it waits: thousands of
        these may be pending at once (``asyncio.gather``), and every object they hold
        costs the garbage collector (its full passes were a third of such a burst). The
        PENDING record is made only for the event bus's listeners, and what the feed
        needs only for a task leased here at once."""
        backend = self.linked
        if backend is None:
            return (await self.submit(spec, [(args, kwargs)], priority, None))[0]
        known = self._digests.get(spec.func)
        # the common case without a coroutine of its own; else the first submit of a
        # function, or one while it is shipped (a notebook function's first submits)
        digest = known[0] if _shipped(known) else await self.digest(spec)
        task = _task_for(spec, args, kwargs, priority, None)
        submitted_at = timestamp()
        executor = self.executor
        claim = self._claimable(1)
        try:
            sent = backend.send_new(self.broker, task, submitted_at, digest, claim > 0)
            task_id = task.id
            # kept while the write is out only if this process runs it or announces it
            held = task if claim or executor.events.has_subscribers else None
            del task
            try:
                claimed = await sent
            except BackendError as exc:  # the one write that records and queues
                raise BrokerError(f"Submit failed: {exc}") from exc
        finally:
            self._reserved -= claim
        executor.submitted += 1
        if held is not None:
            if executor.events.has_subscribers:
                executor.events.publish("task.submitted", pending_record(held, submitted_at))
            if claimed and held.id.encode() in claimed:  # leased here: see run_claimed_soon
                backend.claimed_here(task_id)
                self.remote.run_claimed_soon(TakenTask(held, submitted_at, digest))
        return task_id

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
        digest = await self.digest(spec)
        due = 0.0
        if options is not None and options.delay() > 0:
            due = time.time() + options.delay()
        if self.linked is not None:
            return await self._submit_linked(spec, arg_tuples, priority, options, digest, due)
        # the backend is not on the broker's server: records first, then queue entries
        sent: list[tuple[asyncio.Future[None], list[TaskResult]]] = []
        for start in range(0, len(arg_tuples), _CHUNK):
            records, rows = await self.chunk(
                spec, arg_tuples[start : start + _CHUNK], priority, options, (digest, due), sent
            )
            sent.append((self._send(records, rows), records))
        ids: list[str] = []
        for future, records in sent:
            try:
                await future
            except BackendError as exc:
                raise BrokerError(f"Submit failed: {exc}") from exc
            ids.extend(record.task_id for record in records)
            self.executor.submitted += len(records)
            self.announce(records)
        return ids

    async def _submit_linked(
        self,
        spec: TaskSpec,
        arg_tuples: list[tuple[tuple, dict]],
        priority: int,
        options: SubmitOptions | None,
        digest: str | None,
        due: float,
    ) -> list[str]:
        """:meth:`submit` when the backend shares the broker's server: each task's write
        item is made straight from it (as :meth:`submit_one` makes one), with no PENDING
        record object and no intermediate queue row; a record is made only for the event
        bus's listeners."""
        backend = self.linked
        assert backend is not None
        sent: list[tuple[asyncio.Future[Any], list[str], list[TakenTask], bool, int]] = []
        reserved = 0
        executor, events = self.executor, self.executor.events
        try:
            for start in range(0, len(arg_tuples), _CHUNK):
                pairs = arg_tuples[start : start + _CHUNK]
                claim = self._claimable(len(pairs)) if not due else 0
                reserved += claim
                announce = events.has_subscribers
                items, ids, taken = await self.new_items(
                    spec, pairs, priority, options, (digest, due), claim, announce, bool(sent)
                )
                sent.append((backend.send(items), ids, taken, announce, claim))
            every: list[str] = []
            for future, ids, taken, announce, claim in sent:
                try:
                    claimed = await future
                except BackendError as exc:  # the one write that records and queues
                    raise BrokerError(f"Submit failed: {exc}") from exc
                every += ids
                executor.submitted += len(ids)
                if announce:
                    self.announce_new(taken)
                if claimed:
                    await self.remote.run_claimed(taken[:claim], claimed)
            return every
        finally:
            self._reserved -= reserved

    async def new_items(
        self,
        spec: TaskSpec,
        pairs: list[tuple[tuple, dict]],
        priority: int,
        options: SubmitOptions | None,
        where: tuple[str | None, float],
        claim: int,
        keep: bool,
        in_flight: bool,
    ) -> tuple[list[tuple[Any, ...]], list[str], list[TakenTask]]:
        """The write items that record and queue one new task per ``pairs`` (pickled and
        signed now), the first ``claim`` leased to this process at once; the tasks' ids;
        and the tasks leased (all of them if ``keep``: the event bus announces them).

        Nothing else of a task is kept while the write is out: a bulk submit of 20,000
        that kept every task ran 10-20% of its time in the garbage collector. With a
        request ``in_flight``, the loop runs every :data:`_PART` tasks: a request larger
        than the socket buffer goes out only as the loop writes the rest of it.
        """
        digest, due = where
        broker = self.broker
        lease = broker.lease
        items: list[tuple[Any, ...]] = []
        ids: list[str] = []
        taken: list[TakenTask] = []
        for part in range(0, len(pairs), _PART):
            if in_flight:
                await asyncio.sleep(0)
            for args, kwargs in pairs[part : part + _PART]:
                task = _task_for(spec, args, kwargs, priority, options)
                at = timestamp()
                leased = len(ids) < claim
                items.append(task_item(broker, task, at, digest, due, lease if leased else 0))
                ids.append(task.id)
                if leased or keep:
                    taken.append(TakenTask(task, at, digest))
        return items, ids, taken

    def _claimable(self, count: int) -> int:
        """How many of ``count`` new tasks this process's idle workers may take at once."""
        remote = self.remote
        if not remote.feeding:
            return 0
        free = remote.holding - self.executor.active_count() - self._reserved
        claim = max(0, min(count, free))
        self._reserved += claim
        return claim

    async def chunk(
        self,
        spec: TaskSpec,
        pairs: list[tuple[tuple, dict]],
        priority: int,
        options: SubmitOptions | None,
        where: tuple[str | None, float],
        in_flight: list[Any],
    ) -> tuple[list[TaskResult], list[Any]]:
        """Records and broker rows (pickled and signed) for ``pairs``.

        With a request ``in_flight``, the loop runs every :data:`_PART` tasks: a request
        larger than the socket buffer goes out only as the loop writes the rest of it.
        """
        digest, due = where
        records: list[TaskResult] = []
        rows: list[Any] = []
        for part in range(0, len(pairs), _PART):
            if in_flight:
                await asyncio.sleep(0)
            pushes = []
            for args, kwargs in pairs[part : part + _PART]:
                task, record = _new_task(spec, args, kwargs, priority, options)
                records.append(record)
                pushes.append((task, _stamp(record.submitted_at), digest, due))
            rows += self.broker.rows(pushes)
        return records, rows

    def _send(self, records: list[TaskResult], rows: list[Any]) -> asyncio.Future[None]:
        """Write ``records``, then queue ``rows`` (the backend is not on the broker's
        server; see :meth:`_submit_linked` for when it is). Nothing is leased at submit
        this way."""
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

    def announce(self, records: list[TaskResult]) -> None:
        events = self.executor.events
        if events.has_subscribers:
            for record in records:
                events.publish("task.submitted", record)

    def announce_new(self, taken: list[TakenTask]) -> None:
        """:meth:`announce` the PENDING records of new tasks (made only if anyone
        listens)."""
        if self.executor.events.has_subscribers:
            self.announce([pending_record(item.task, item.submitted_at) for item in taken])


def _shipped(
    known: tuple[str | None, asyncio.Event | None] | None,
) -> TypeGuard[tuple[str | None, asyncio.Event | None]]:
    """Whether a function's :attr:`RemoteSubmit._digests` entry is final (its digest
    known, and stored in Redis if it ships by value)."""
    return known is not None and (known[1] is None or known[1].is_set())


def _new_task(
    spec: TaskSpec, args: tuple, kwargs: dict, priority: int, options: SubmitOptions | None
) -> tuple[Task, TaskResult]:
    """A new task and its PENDING record."""
    task = _task_for(spec, args, kwargs, priority, options)
    record = TaskResult(
        task.id, TaskStatus.PENDING, spec.name, None, None, utcnow(), None, None, 0,
        args, kwargs, priority, workflow_id=task.workflow_id, workflow_step=task.workflow_step,
    )  # fmt: skip
    return task, record


def _task_for(
    spec: TaskSpec, args: tuple, kwargs: dict, priority: int, options: SubmitOptions | None
) -> Task:
    """A new task of ``spec``: its defaults, then ``options`` (a workflow's step takes the
    id and the place its workflow gave it)."""
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
    if tag is not None:  # a workflow's step
        task.workflow_id, task.workflow_step = tag.workflow_id, tag.step
    return task
