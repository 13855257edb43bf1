"""The workflow engine: submits a workflow's first steps and moves it on as steps end.

The app makes one engine and hands it to its executors as their
:class:`~flowrra.executors.base.StepHook`. When a task that is a workflow's step ends,
its executor tells the engine *before* it stores the step's final record (on Redis:
before it acknowledges the task), and the engine:

- on success, marks the step done in the workflow's store and submits what comes next:
  the next step of a chain with the result as its first argument, or, once the last
  member of a group is done, what follows the group with the list of results;
- on failure (after the step's own retries) or cancellation, ends the workflow FAILED
  (or CANCELLED) naming the step, and cancels the steps not yet finished.

So a worker killed in the middle of a step loses nothing: the step runs again (the
lease rule) and moves the workflow on when it ends; marks are idempotent, and the next
steps keep the task ids chosen when the workflow was submitted. The workflow itself has
a record in the result backend (task name ``workflow``): RUNNING while it runs, then
SUCCESS with the final result, FAILED or CANCELLED; waiting for the workflow is waiting
for that record.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Coroutine, Iterable, Iterator
from dataclasses import dataclass, field
from itertools import repeat
from typing import TYPE_CHECKING, Any

from flowrra.clock import utcnow
from flowrra.exceptions import TaskNotFoundError
from flowrra.executors.base import SubmitOptions
from flowrra.registry import TaskSpec
from flowrra.serialization import dumps_function, loads
from flowrra.task import StepTag, TaskResult, TaskStatus, new_task_id
from flowrra.workflows.graph import CHAIN, GROUP, NO_INPUT, Graph, compile
from flowrra.workflows.signatures import Step
from flowrra.workflows.store import AGAIN, ENDED, MemoryWorkflowStore, store_for

if TYPE_CHECKING:
    from flowrra.backends.base import BaseResultBackend
    from flowrra.events import EventBus
    from flowrra.executors.base import BaseTaskExecutor

__all__ = ["StepOptions", "WorkflowEngine"]

logger = logging.getLogger("flowrra.workflows")

Route = Callable[[Callable[..., Any] | str], "tuple[BaseTaskExecutor, TaskSpec]"]
Executors = Callable[[bool], "BaseTaskExecutor"]  # cpu_bound -> the executor of that kind
Cancel = Callable[[str], Coroutine[Any, Any, bool]]
Spawn = Callable[[Coroutine[Any, Any, Any]], None]

_EVENT_OF = {
    TaskStatus.SUCCESS: "task.succeeded",
    TaskStatus.FAILED: "task.failed",
    TaskStatus.CANCELLED: "task.cancelled",
}
_CLEANUP_AT_ONCE = 64  # steps cancelled concurrently when a workflow ends early


class StepOptions(SubmitOptions):
    """Submit options for a batch of a workflow's steps: each task made takes the next
    :class:`~flowrra.task.StepTag` (its id chosen in advance, its workflow and step)."""

    __slots__ = ("_tags",)

    def __init__(self, priority: int, tags: Iterable[StepTag]) -> None:
        """Options at ``priority`` whose tasks take ``tags`` in order."""
        super().__init__(priority=priority)
        self._tags = iter(tags)

    def next_tag(self) -> StepTag | None:
        """The identity of the next step submitted with these options."""
        return next(self._tags, None)


@dataclass(slots=True)
class _Outcome:
    """How a workflow ends: its status, the store's word for it and its record's fields."""

    status: TaskStatus
    key: str
    result: Any = None
    error: str | None = None
    error_type: str | None = None
    traceback: str | None = None
    step: str | None = None
    step_record: TaskResult | None = None


@dataclass(slots=True)
class _Next:
    """What to do after a step: nodes to start (with their input), or the end."""

    start: list[tuple[int, Any]] = field(default_factory=list)
    end: _Outcome | None = None


class _LaunchError(Exception):
    """Steps could not be submitted (a task not registered here, Redis down...)."""

    def __init__(self, step: str, task: str, cause: BaseException) -> None:
        self.step = step
        self.task = task
        self.cause = cause
        super().__init__(f"Could not submit step {step} ({task}): {type(cause).__name__}: {cause}")


def _why(outcome: _Outcome) -> str:
    """The error of a step cancelled because its workflow ended early."""
    if outcome.step is None:
        return "Task was cancelled: its workflow was cancelled"
    return f"Task was cancelled: step {outcome.step} of its workflow did not succeed"


def _run_now(coro: Coroutine[Any, Any, Any]) -> Any:
    """Run ``coro`` to its end here; it must never suspend (the in-memory store's calls
    do not), so a finished step's bookkeeping needs no task of its own."""
    try:
        coro.send(None)
    except StopIteration as stop:
        return stop.value
    coro.close()
    raise RuntimeError("A workflow step's bookkeeping suspended on an in-memory store")


class WorkflowEngine:
    """Runs the workflows of one app; see the module docstring.

    ``route`` maps a task (function or name) to its executor and spec, ``executors``
    gives the app's IO or CPU executor, ``cancel`` is the app's cancel, ``events`` its
    bus and ``spawn`` starts a coroutine the app awaits when it stops.
    """

    def __init__(
        self,
        backend: BaseResultBackend,
        route: Route,
        cancel: Cancel,
        events: EventBus,
        spawn: Spawn,
        executors: Executors,
    ) -> None:
        """An engine keeping workflows where ``backend`` keeps results."""
        self.backend = backend
        self.store = store_for(backend)
        self._route = route
        self._executors = executors
        self._shipped: dict[str, TaskSpec] = {}  # digest -> spec of a task not known here
        self._cancel = cancel
        self._events = events
        self._spawn = spawn

    # --------------------------------------------------------------- submit
    async def run(self, workflow: Step, priority: int = 0) -> Graph:
        """Submit ``workflow``: its record, the records of the steps that wait for others
        (PENDING, so every step id can be waited on at once), then its first steps.

        Raises:
            TaskNotFoundError, TypeError: a step's task is not registered or does not
                take its arguments (nothing was submitted).
            BrokerError, BackendError: the first steps could not be submitted (the
                workflow's record says so too).
        """
        graph = compile(workflow, lambda task: self._route(task)[1], utcnow(), priority)
        await self._ship(graph)
        await self.store.create(graph)
        first, _ = graph.expand(0, NO_INPUT)
        calls = graph.calls()
        waiting = []
        if len(first) < len(calls):  # steps that wait for others get their record now
            starting = {node for node, _ in first}
            waiting = [graph.step_record(i) for i in calls if i not in starting]
        record = graph.record(TaskStatus.RUNNING)
        await self._store_records([record, *waiting])
        self._publish("task.started", record)
        for step in waiting:
            self._publish("task.submitted", step)
        await self._perform(graph, _Next([(0, NO_INPUT)]), raising=True)
        return graph

    async def _ship(self, graph: Graph) -> None:
        """On Redis, store the functions that travel by value (defined in a notebook
        cell, a closure...) and note them in the graph: the worker that submits a step
        may not know its task by name."""
        if self._executors(False).broker is None:
            return  # in memory: every step runs in this process
        from flowrra.executors.remote_submit import ships_by_value  # the Redis parts, only now

        for name in dict.fromkeys(graph.task):
            if name is None:
                continue
            executor, spec = self._route(name)
            if not ships_by_value(spec.func):
                continue
            digest, data = dumps_function(spec.func)
            await executor.broker.store_function(digest, data)  # type: ignore[attr-defined]
            graph.shipped[name] = (
                digest, spec.cpu_bound, spec.max_retries, spec.retry_delay, spec.timeout,
            )  # fmt: skip

    async def _route_step(self, graph: Graph, name: str) -> tuple[BaseTaskExecutor, TaskSpec]:
        """The executor and spec of a step's task: registered here, else shipped with
        the workflow (loaded from Redis once per process)."""
        try:
            return self._route(name)
        except TaskNotFoundError:
            if name not in graph.shipped:
                raise
        digest, cpu_bound, max_retries, retry_delay, timeout = graph.shipped[name]
        executor = self._executors(cpu_bound)
        spec = self._shipped.get(digest)
        if spec is None:
            data = await executor.broker.load_function_bytes(digest)  # type: ignore[union-attr]
            spec = TaskSpec(name, loads(data), cpu_bound, max_retries, retry_delay, timeout)
            self._shipped[digest] = spec
        return executor, spec

    async def _launch(self, graph: Graph, calls: list[int], value: Any) -> None:
        """Submit the steps ``calls``, each with input ``value``, one batch per task."""
        task, step_args, step_kwargs = graph.task, graph.args, graph.kwargs
        batches: dict[str, list[int]] = {}
        for index in calls:
            batches.setdefault(task[index], []).append(index)  # type: ignore[arg-type]
        workflow_id, path, task_id = graph.id, graph.path, graph.task_id

        def tags(nodes: list[int]) -> Iterator[StepTag]:  # made as each task is, not all first
            ids = (task_id[i] for i in nodes)
            return map(
                tuple.__new__,
                repeat(StepTag),
                zip(ids, repeat(workflow_id), (path[i] for i in nodes)),
            )  # type: ignore[arg-type]

        for name, nodes in batches.items():
            if value is NO_INPUT:
                pairs = [(step_args[i], step_kwargs[i] or {}) for i in nodes]
            else:
                pairs = [((value, *step_args[i]), step_kwargs[i] or {}) for i in nodes]
            try:
                executor, spec = await self._route_step(graph, name)
                await executor.submit_batch(spec, pairs, StepOptions(graph.priority, tags(nodes)))
            except Exception as exc:
                raise _LaunchError(graph.path[nodes[0]], name, exc) from exc

    async def _perform(self, graph: Graph, next_: _Next, raising: bool = False) -> None:
        """Start ``next_.start`` (and what empty groups reach), then end the workflow if
        it is over. A submit that fails ends it FAILED (and raises if ``raising``)."""
        starts, end = next_.start, next_.end
        try:
            while starts and end is None:
                empty: list[int] = []
                for index, value in starts:
                    calls, none = graph.expand(index, value)
                    if calls:
                        await self._launch(graph, [i for i, _ in calls], value)
                    self.store.set_launched(graph.id, index)
                    empty += none
                starts = []
                for index in empty:
                    more = await self._completed(graph, index, [])
                    if more is not None:
                        starts += more.start
                        end = end or more.end
        except _LaunchError as exc:
            outcome = _Outcome(
                TaskStatus.FAILED, f"failed:launch:{exc.step}", error=str(exc),
                error_type=type(exc.cause).__name__, step=exc.step,
            )  # fmt: skip
            await self._end(graph, outcome)
            if raising:
                raise exc.cause from None
            return
        if end is not None:
            await self._end(graph, end)

    # ----------------------------------------------------------- step hooks
    async def after_step(self, record: TaskResult) -> None:
        """A step ended: move its workflow on (see the module docstring). Never raises:
        a failure here ends the workflow FAILED with the reason."""
        try:
            found = await self._advance(record)
            if found is not None:
                await self._perform(*found)
        except Exception as exc:
            await self._broken(record, exc)

    def after_step_now(self, record: TaskResult) -> None:
        """A step succeeded in memory: the bookkeeping runs here, inline; only what
        submits or ends runs as a task of its own."""
        store = self.store
        if not isinstance(store, MemoryWorkflowStore):
            self._spawn(self.after_step(record))
            return
        try:
            if self._member_done_now(store, record):
                return
            found = _run_now(self._advance(record))
            if found is None or self._start_now(*found):
                return
        except Exception as exc:
            self._spawn(self._broken(record, exc))
            return
        self._spawn(self._perform_or_break(record, *found))

    def _start_now(self, graph: Graph, next_: _Next) -> bool:
        """In memory, from the worker that ended a step: queue the next steps here and
        now (a worker never waits for room); False where that cannot be done (an end,
        an empty group, an executor that is stopping): :meth:`_perform` does it then."""
        if next_.end is not None or len(next_.start) != 1:
            return False
        index, value = next_.start[0]
        calls, empty = graph.expand(index, value)
        if empty or not calls:
            return False
        args, kwargs, task = graph.args, graph.kwargs, graph.task
        try:
            routes = {task[i]: self._route(task[i]) for i, _ in calls}  # type: ignore[arg-type]
        except Exception:
            return False  # _perform fails the workflow, naming the step
        if any(not executor.is_running for executor, _ in routes.values()):
            return False
        for i, _ in calls:
            executor, spec = routes[task[i]]  # type: ignore[index]
            tag = StepTag(graph.task_id[i], graph.id, graph.path[i])  # type: ignore[arg-type]
            step_args = args[i] if value is NO_INPUT else (value, *args[i])
            options = StepOptions(graph.priority, (tag,))
            if executor.enqueue(spec, step_args, kwargs[i] or {}, graph.priority, options) is None:
                raise RuntimeError("an in-memory executor refused a workflow's step")
        self.store.set_launched(graph.id, index)
        return True

    @staticmethod
    def _member_done_now(store: MemoryWorkflowStore, record: TaskResult) -> bool:
        """The common case of a big group, in memory: a member done and not the last;
        True if that was all (else :meth:`_advance` does the rest)."""
        run = store.run_of(record.workflow_id)  # type: ignore[arg-type]
        if run is None:
            return True  # ended: nothing to do
        graph = run.graph
        index = graph.index_of(record.workflow_step)
        if index is None or graph.task_id[index] != record.task_id:
            return False
        parent = graph.parent[index]
        if parent < 0 or graph.kind[parent] != GROUP or run.ended is not None:
            return run.ended is not None
        counts = run.counts
        done = counts.get(parent, 0)
        if len(graph.children[parent]) - done <= 1 or index in run.done:
            return False  # the last member (or seen before): _advance collects the group
        run.done.add(index)  # MemoryWorkflowStore.mark, inline
        run.values[index] = record.result
        counts[parent] = done + 1
        return True

    async def _perform_or_break(self, record: TaskResult, graph: Graph, next_: _Next) -> None:
        try:
            await self._perform(graph, next_)
        except Exception as exc:
            await self._broken(record, exc)

    async def _broken(self, record: TaskResult, exc: Exception) -> None:
        """The engine itself failed after a step: end the workflow FAILED, saying why."""
        logger.error(
            "Workflow %s could not go on after step %s (task %s): %s: %s",
            record.workflow_id, record.workflow_step, record.task_id, type(exc).__name__, exc,
            exc_info=exc,
        )  # fmt: skip
        try:
            graph = await self.store.graph(record.workflow_id)  # type: ignore[arg-type]
            if graph is not None:
                text = f"After step {record.workflow_step}: {type(exc).__name__}: {exc}"
                outcome = _Outcome(
                    TaskStatus.FAILED, f"failed:engine:{record.workflow_step}", error=text,
                    error_type=type(exc).__name__, step=record.workflow_step,
                )  # fmt: skip
                await self._end(graph, outcome)
        except Exception as again:
            logger.error("Could not end workflow %s: %s", record.workflow_id, again)

    async def _advance(self, record: TaskResult) -> tuple[Graph, _Next] | None:
        graph = await self.store.graph(record.workflow_id)  # type: ignore[arg-type]
        if graph is None:
            return None  # ended (in memory) or gone
        index = graph.index_of(record.workflow_step)
        if index is None or graph.task_id[index] != record.task_id:
            logger.error("Task %s names no step of workflow %s", record.task_id, graph.id)
            return None
        if record.status is TaskStatus.SUCCESS:
            found = await self._completed(graph, index, record.result)
            if found is not None and found.end is not None:
                found.end.step_record = record
        else:
            found = _Next(end=self._failure(graph, index, record))
        return None if found is None else (graph, found)

    async def _completed(self, graph: Graph, index: int, value: Any) -> _Next | None:
        """Node ``index`` is done with ``value``: what comes next (None: nothing yet)."""
        store, workflow_id = self.store, graph.id
        parents, kinds, children = graph.parent, graph.kind, graph.children
        positions = graph.position
        while True:
            parent = parents[index]
            if parent < 0:
                if (await store.mark(workflow_id, index))[0] == ENDED:
                    return None
                return _Next(end=_Outcome(TaskStatus.SUCCESS, "success", result=value))
            siblings = children[parent]
            if kinds[parent] == CHAIN:
                state, _ = await store.mark(workflow_id, index)
                if state == ENDED:
                    return None
                if positions[index] + 1 < len(siblings):
                    following = siblings[positions[index] + 1]
                    if state == AGAIN and await store.launched(workflow_id, following):
                        return None  # ran again after its worker died: already moved on
                    return _Next([(following, value)])
                index = parent  # the chain is done, with its last step's result
                continue
            state, count = await store.mark(workflow_id, index, value, parent)
            if state == ENDED or count < len(siblings):
                return None
            value = await store.values(workflow_id, siblings)
            index = parent  # the group is done, with the list of results

    @staticmethod
    def _failure(graph: Graph, index: int, record: TaskResult) -> _Outcome:
        path, task = graph.path[index], graph.task[index]
        if record.status is TaskStatus.CANCELLED:
            status, text = TaskStatus.CANCELLED, f"was cancelled: {record.error or 'cancelled'}"
        else:
            kind = f"{record.error_type}: " if record.error_type else ""
            status, text = TaskStatus.FAILED, f"failed: {kind}{record.error}"
        return _Outcome(
            status, f"{status.value}:{index}", error=f"Step {path} ({task}) {text}",
            error_type=record.error_type, traceback=record.traceback, step=path,
            step_record=record,
        )  # fmt: skip

    # ------------------------------------------------------------------ end
    async def _end(self, graph: Graph, outcome: _Outcome, cleanup: bool = True) -> set[int] | None:
        """End the workflow with ``outcome`` unless it has ended (None); return the steps
        that were submitted (left to cancel when it did not succeed).

        One write (one script on Redis) stores the step's final record, the CANCELLED
        records of the steps never submitted (a workflow that did not succeed) and the
        workflow's record: whoever the workflow's end wakes finds them all settled.
        Steps submitted and not finished are then cancelled through the app (in the
        background when ``cleanup``; :meth:`cancel` awaits it)."""
        if await self.store.end(graph.id, outcome.key) != outcome.key:
            return None
        record = graph.record(outcome.status, utcnow())
        record.result = outcome.result
        record.error, record.error_type = outcome.error, outcome.error_type
        record.traceback, record.workflow_step = outcome.traceback, outcome.step
        step = outcome.step_record
        records = [] if step is None or self.store.local else [step]
        submitted: set[int] = set()
        if outcome.status is not TaskStatus.SUCCESS:
            # a step is submitted only once the step before it is marked done, and after
            # the end no mark is made: what these marks do not reach was never submitted
            before = list(graph.followers())
            submitted = graph.submitted(await self.store.done_among(graph.id, before))
            failed = graph.index_of(outcome.step)
            if step is not None:
                submitted.add(failed)  # type: ignore[arg-type]  # it ran
            elif outcome.key.startswith("failed:launch:"):
                submitted.discard(failed)  # type: ignore[arg-type]  # refused: never queued
            records += self._never_submitted(graph, submitted, _why(outcome))
        await self._store_records([*records, record])
        for never in records:
            if never is not step:
                self._publish("task.cancelled", never)
        self._publish(_EVENT_OF[outcome.status], record)
        self.store.forget(graph.id)
        if submitted and cleanup:
            skip = None if step is None else step.task_id
            self._spawn(self._cleanup(graph, submitted, skip, _why(outcome)))
        return submitted

    @staticmethod
    def _never_submitted(graph: Graph, submitted: set[int], reason: str) -> list[TaskResult]:
        now = utcnow()
        records = []
        for index in graph.calls():
            if index not in submitted:
                record = graph.step_record(index)
                record.status, record.finished_at, record.error = TaskStatus.CANCELLED, now, reason
                records.append(record)
        return records

    async def _cleanup(
        self, graph: Graph, submitted: set[int], skip: str | None, reason: str
    ) -> None:
        """Cancel the steps ``submitted`` that have not finished (but ``skip``), queued
        or running, through the app."""
        room = asyncio.Semaphore(_CLEANUP_AT_ONCE)

        async def settle(task_id: str) -> None:
            async with room:
                record = await self.backend.get(task_id)
                if record is None or record.is_complete or await self._cancel(task_id):
                    return
                record = await self.backend.get(task_id)
                if record is not None and record.status is TaskStatus.PENDING:  # not queued
                    record.status, record.finished_at = TaskStatus.CANCELLED, utcnow()
                    record.error = reason
                    await self.backend.store(task_id, record)
                    self._publish("task.cancelled", record)

        ids = [graph.task_id[i] for i in sorted(submitted)]
        ids = [task_id for task_id in ids if task_id != skip]
        done = await asyncio.gather(*(settle(i) for i in ids), return_exceptions=True)  # type: ignore[arg-type]
        for task_id, result in zip(ids, done, strict=True):
            if isinstance(result, Exception):
                logger.warning(
                    "Could not cancel step %s of workflow %s: %s", task_id, graph.id, result
                )

    # ------------------------------------------------------------ the app's
    async def is_workflow(self, task_id: str) -> bool:
        """True if ``task_id`` is a workflow this engine keeps (not ended, on Redis: or
        ended within the ttl)."""
        return await self.store.knows(task_id)

    async def graph(self, workflow_id: str) -> Graph | None:
        """The compiled workflow ``workflow_id``, or None if it is not kept."""
        return await self.store.graph(workflow_id)

    async def cancel(self, workflow_id: str) -> bool:
        """Cancel a workflow: its record ends CANCELLED, its steps not yet finished are
        cancelled. False if it had already ended (or is unknown)."""
        graph = await self.store.graph(workflow_id)
        if graph is None:
            return False
        key = f"cancelled:by:{new_task_id()}"  # each cancel its own: a second one finds it ended
        outcome = _Outcome(TaskStatus.CANCELLED, key, error="Workflow was cancelled")
        submitted = await self._end(graph, outcome, cleanup=False)
        if submitted is None:
            return False
        await self._cleanup(graph, submitted, None, _why(outcome))
        return True

    # -------------------------------------------------------------- records
    async def _store_records(self, records: list[TaskResult]) -> None:
        store_many = getattr(self.backend, "store_many", None)
        if store_many is not None:
            await store_many(records)
        else:
            for record in records:
                await self.backend.store(record.task_id, record)

    def _publish(self, event: str, record: TaskResult) -> None:
        if self._events.has_subscribers:
            self._events.publish(event, record)
