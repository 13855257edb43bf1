"""The executor core: submission, the worker loop, retries, timeouts, cancel and stop.

:class:`BaseTaskExecutor` does the bookkeeping every executor shares (records, events,
retries with backoff, cancellation, draining); a subclass says only how one attempt runs
(:meth:`BaseTaskExecutor._call`): :class:`~flowrra.executors.io.IOExecutor` awaits the
coroutine on the loop, :class:`~flowrra.executors.cpu.CPUExecutor` sends it to a
process pool.
"""

from __future__ import annotations

import asyncio
import contextvars
import logging
import random
import time
from abc import ABC, abstractmethod
from collections.abc import Awaitable, Callable, Iterable
from datetime import UTC, datetime
from types import TracebackType
from typing import TYPE_CHECKING, Any, Protocol, Self

from flowrra.backends.base import BaseResultBackend
from flowrra.brokers.memory import InMemoryBroker
from flowrra.clock import as_seconds, ensure_aware, utcnow
from flowrra.config import Config
from flowrra.context import TaskContext
from flowrra.events import EventBus, event_bus
from flowrra.exceptions import (
    BrokerError,
    ConfigError,
    ExecutorNotRunningError,
    SerializationError,
    TaskNotFoundError,
)
from flowrra.executors.main_guard import refuse_start_while_bootstrapping
from flowrra.executors.reporting import ProgressReporter
from flowrra.executors.throttle import Throttle
from flowrra.executors.tracebacks import task_traceback
from flowrra.limits import Rate, UniqueKey, override_limits, task_limits
from flowrra.registry import TaskRegistry, TaskSpec
from flowrra.serialization import signer_for
from flowrra.task import StepTag, Task, TaskResult, TaskStatus, new_task_id

if TYPE_CHECKING:
    from flowrra.executors.remote import RemoteQueue

__all__ = ["BaseTaskExecutor", "StepHook", "SubmitOptions"]

_now = datetime.now  # the hot paths call _now(UTC): clock.utcnow without a Python frame

#: Longest a run of submits keeps the loop while idle workers wait for it (seconds).
SHARE_SLICE = 0.001

#: True inside a worker (and what a task body starts): a submit made there never waits
#: on ``max_queue_size``, so tasks that submit tasks cannot wait on each other for room.
_IN_TASK: contextvars.ContextVar[bool] = contextvars.ContextVar("flowrra_in_task", default=False)

logger = logging.getLogger("flowrra.executor")

#: Per-task lines (a retry): their own logger, so a kernel can keep them out of its cells
#: (flowrra.notebook.kernel_apps) while the task table and the records show them.
task_logger = logging.getLogger("flowrra.tasks")

_PENDING = TaskStatus.PENDING
_RUNNING = TaskStatus.RUNNING
_SUCCESS = TaskStatus.SUCCESS
_EVENT_OF = {
    TaskStatus.SUCCESS: "task.succeeded",
    TaskStatus.FAILED: "task.failed",
    TaskStatus.CANCELLED: "task.cancelled",
}


class SubmitOptions:
    """Per-submit options, checked once: ``priority``, ``countdown`` (seconds) or ``eta``
    (datetime), ``max_retries``, ``retry_delay`` and ``timeout`` (seconds); ``limits``
    (from ``rate_limit`` and ``concurrency``, over the task's own) and ``unique`` (from
    ``unique_key`` and ``unique_for``)."""

    __slots__ = (
        "countdown", "eta", "limits", "max_retries", "priority", "retry_delay", "timeout",
        "unique",
    )  # fmt: skip

    def __init__(
        self,
        *,
        priority: int = 0,
        countdown: float | None = None,
        eta: datetime | None = None,
        max_retries: int | None = None,
        retry_delay: float | None = None,
        timeout: float | None = None,
        rate_limit: str | Rate | None = None,
        concurrency: int | None = None,
        unique_key: str | None = None,
        unique_for: float | None = None,
    ) -> None:
        """Validate and keep the options; see the class docstring."""
        if isinstance(priority, bool) or not isinstance(priority, int):
            raise ConfigError(f"priority must be a whole number, got {priority!r}")
        if countdown is not None and eta is not None:
            raise ConfigError("Give countdown or eta, not both")
        if countdown is not None and as_seconds(countdown, "countdown") < 0:
            raise ConfigError(f"countdown must be >= 0 seconds, got {countdown!r}")
        if eta is not None and not isinstance(eta, datetime):
            raise ConfigError(f"eta must be a datetime, got {type(eta).__name__}")
        if max_retries is not None and (
            isinstance(max_retries, bool) or not isinstance(max_retries, int) or max_retries < 0
        ):
            raise ConfigError(f"max_retries must be a whole number >= 0, got {max_retries!r}")
        if retry_delay is not None and as_seconds(retry_delay, "retry_delay") < 0:
            raise ConfigError(f"retry_delay must be >= 0 seconds, got {retry_delay!r}")
        if timeout is not None and as_seconds(timeout, "timeout") <= 0:
            raise ConfigError(f"timeout must be > 0 seconds, got {timeout!r}")
        self.priority = priority
        self.countdown = None if countdown is None else as_seconds(countdown, "countdown")
        self.eta = None if eta is None else ensure_aware(eta)
        self.max_retries = max_retries
        self.retry_delay = None if retry_delay is None else as_seconds(retry_delay, "retry_delay")
        self.timeout = None if timeout is None else as_seconds(timeout, "timeout")
        self.limits = task_limits(rate_limit, concurrency)
        self.unique = UniqueKey.of(unique_key, unique_for)

    def delay(self) -> float:
        """Seconds to hold the task back before it may run (0 for now)."""
        if self.countdown is not None:
            return self.countdown
        if self.eta is not None:
            return max(0.0, (self.eta - utcnow()).total_seconds())
        return 0.0

    def next_tag(self) -> StepTag | None:
        """The identity chosen in advance for the next task made with these options (a
        workflow's step: see ``flowrra.workflows.engine.StepOptions``); None here."""
        return None


class StepHook(Protocol):
    """What an executor tells of each finished task that is a workflow's step (the app's
    workflow engine): :meth:`after_step` is awaited before the final record is stored
    (on Redis, before the task is acknowledged), :meth:`after_step_now` is called for a
    success recorded inline in memory. Neither raises."""

    async def after_step(self, record: TaskResult) -> None:
        """The step ``record`` ended (its status is final)."""

    def after_step_now(self, record: TaskResult) -> None:
        """The step ``record`` succeeded and is stored (in memory)."""


class BaseTaskExecutor(ABC):
    """Runs registered tasks with ``workers`` concurrent workers on the event loop.

    Public attributes: ``registry`` (the :class:`~flowrra.registry.TaskRegistry`),
    ``results`` (the result backend), ``events`` (the :class:`~flowrra.events.EventBus`)
    and ``broker`` (None: the in-memory queue).
    """

    #: "io" or "cpu": which tasks this executor runs.
    kind: str = "io"
    #: True when an attempt is ``spec.func(*args, **kwargs)`` awaited on the loop (IO).
    _direct_call: bool = False

    def __init__(
        self,
        config: Config | None = None,
        registry: TaskRegistry | None = None,
        queue_suffix: str = "",
        *,
        backend: BaseResultBackend | None = None,
        events: EventBus | None = None,
    ) -> None:
        """Create an executor from ``config`` (default ``Config()``).

        ``backend`` and ``events`` let an app share one result backend and one event
        bus between its executors; by default each executor makes its own.
        """
        self._config = config if config is not None else Config()
        self.registry = registry if registry is not None else TaskRegistry()
        self.results = backend if backend is not None else self._config.create_backend()
        self._owns_results = backend is None
        self.broker = self._config.create_broker(queue_suffix)
        self._remote: RemoteQueue | None = None
        if self.broker is not None:
            from flowrra.brokers.redis import RedisBroker
            from flowrra.executors.remote import RemoteQueue

            if not isinstance(self.broker, RedisBroker):
                raise BrokerError(f"{type(self.broker).__name__} cannot feed an executor")
            self._remote = RemoteQueue(self, self.broker)
        self._attach_signer()
        maxsize = 0 if self._remote is not None else self._config.executor.max_queue_size
        self._queue = InMemoryBroker(maxsize=maxsize)
        if events is None:
            events = EventBus()
            events._forward = event_bus
        self.events = events
        self._store_now: Callable[[str, TaskResult], None] | None = getattr(
            self.results, "store_nowait", None
        )
        #: The backend writes to a server later (Redis): a submit without a broker waits
        #: until its record is stored, so a refused record leaves no task behind.
        self._writes_later = self._remote is None and hasattr(self.results, "written")
        self._workers: list[asyncio.Task[None]] = []
        self._running = False
        self._active: dict[str, TaskResult] = {}
        #: Rate limits and concurrency caps in memory (on Redis the broker keeps them).
        self._throttle = Throttle(self._queue, self._active) if self._remote is None else None
        self._in_body: dict[str, asyncio.Task[Any]] = {}
        self._cancel_requested: set[str] = set()
        self._timers: dict[str, asyncio.TimerHandle] = {}
        self._drained: asyncio.Event | None = None
        self._home_loop: asyncio.AbstractEventLoop | None = None
        self._next_share = 0.0
        #: Tasks submitted through this executor since it was made (a progress counter).
        self.submitted = 0
        #: Publishes running tasks' progress and output (flowrra.progress, print).
        self._reporter = ProgressReporter(self)
        #: Told of every finished workflow step (set by the app); None: no workflows.
        self.workflow_hook: StepHook | None = None

    def _attach_signer(self) -> None:
        """Give the Redis parts that have no signer yet the one their sibling has, else
        one for the configured secret (or ``FLOWRRA_SECRET_KEY``, or one made here)."""
        parts = [part for part in (self.results, self.broker) if hasattr(part, "signer")]
        if not any(part.signer is None for part in parts):
            return
        signer = next((part.signer for part in parts if part.signer is not None), None)
        if signer is None:
            signer = signer_for(self._config.secret_key)[0]
        for part in parts:
            if part.signer is None:
                part.signer = signer

    # ----------------------------------------------------------------- properties
    @property
    def is_running(self) -> bool:
        """True between :meth:`start` and :meth:`stop`."""
        return self._running

    @property
    def worker_count(self) -> int:
        """How many tasks this executor runs at once."""
        return self._config.executor.io_workers

    def is_broker(self) -> bool:
        """True when tasks queue in an external broker rather than in memory."""
        return self.broker is not None

    def queue_size(self) -> int:
        """Tasks queued and waiting for a worker."""
        return self._queue.qsize() + self._arriving()

    def active_count(self) -> int:
        """Tasks submitted and not yet finished (queued, delayed, retrying or running)."""
        return len(self._active) + self._arriving()

    def _arriving(self) -> int:
        """Tasks leased to this process by their submit, handed to the workers at the
        loop's next turn (see RemoteQueue.run_claimed_soon)."""
        return self._remote.admitting if self._remote is not None else 0

    # ------------------------------------------------------------- registration
    def task(
        self,
        name: str | None = None,
        max_retries: int = 3,
        retry_delay: float = 1.0,
        *,
        timeout: float | None = None,
    ) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
        """Register a task of this executor's kind (see :meth:`TaskRegistry.task`)."""
        return self.registry.task(
            name,
            cpu_bound=self.kind == "cpu",
            max_retries=max_retries,
            retry_delay=retry_delay,
            timeout=timeout,
        )

    def _spec_for(self, task: Callable[..., Any] | str) -> TaskSpec:
        name = task if isinstance(task, str) else self.registry.name_of(task)
        spec = self.registry._specs.get(name)
        if spec is None or (not isinstance(task, str) and spec.func is not task):
            raise TaskNotFoundError(name)
        return spec

    # --------------------------------------------------------------- submission
    async def submit(
        self, task_func: Callable[..., Any] | str, *args: Any, priority: int = 0, **kwargs: Any
    ) -> str:
        """Submit a registered task (function or name) and return its id.

        Raises:
            TypeError: the task's function does not take these arguments (nothing is
                queued).
        """
        spec = self._spec_for(task_func)
        spec.check_arguments(args, kwargs)
        return await self.submit_spec(spec, args, kwargs, priority)

    def enqueue(
        self,
        spec: TaskSpec,
        args: tuple,
        kwargs: dict,
        priority: int = 0,
        options: SubmitOptions | None = None,
    ) -> Task | None:
        """Queue ``spec`` now if there is room and return its task; None if the queue is
        full (then await :meth:`submit_spec`, which waits for room). ``options`` are
        taken as they are (a workflow's next step, queued by the worker that ended the
        step before it)."""
        if not self._running:
            raise ExecutorNotRunningError()
        queue = self._queue
        if self._remote is not None or self._writes_later:
            return None
        if queue.full() and not _IN_TASK.get():
            return None
        if priority and (isinstance(priority, bool) or not isinstance(priority, int)):
            raise ConfigError(f"priority must be a whole number, got {priority!r}")
        task = self._prepare(spec, args, kwargs, priority, options)
        queue.push_nowait(task)
        return task

    async def share_loop(self) -> None:
        """Let the loop run once if idle workers were handed work and the submitter has
        kept the loop for :data:`SHARE_SLICE` since it last did.

        A burst of in-memory submits never suspends by itself, so without this the
        workers handed its first tasks would wait for the whole burst; now they start
        within a millisecond, and other coroutines on the loop are not starved.
        """
        now = time.monotonic()
        if now >= self._next_share:
            self._queue.handed = False
            self._next_share = now + SHARE_SLICE
            await asyncio.sleep(0)

    def submit_spec(
        self, spec: TaskSpec, args: tuple, kwargs: dict, priority: int = 0
    ) -> Awaitable[str]:
        """Submit ``spec`` with its default options, waiting for room; await it for the
        id. On Redis this is the submit's own coroutine (thousands may be pending at once:
        each coroutine they hold costs the garbage collector)."""
        if self._remote is not None:
            if not self._running:
                raise ExecutorNotRunningError()
            return self._remote.submits.submit_one(spec, args, kwargs, priority)
        return self._submit_here(spec, args, kwargs, priority)

    async def _submit_here(self, spec: TaskSpec, args: tuple, kwargs: dict, priority: int) -> str:
        task = self.enqueue(spec, args, kwargs, priority)
        if task is None:
            task = await self._prepare_stored(spec, args, kwargs, priority, None)
            await self._push(task)
        elif self._queue.handed:
            await self.share_loop()
        return task.id

    async def _push(self, task: Task) -> None:
        """Queue ``task``, waiting for room unless this is a task submitting a task."""
        if _IN_TASK.get():
            self._queue.push_nowait(task)
        else:
            await self._queue.push(task)

    async def submit_with(
        self,
        spec: TaskSpec,
        args: tuple,
        kwargs: dict,
        options: SubmitOptions,
    ) -> str:
        """Submit ``spec`` with per-submit :class:`SubmitOptions`; return the id."""
        if not self._running:
            raise ExecutorNotRunningError()
        if self._remote is not None:
            ids = await self._remote.submits.submit(
                spec, [(args, kwargs)], options.priority, options
            )
            return ids[0]
        task = await self._prepare_stored(spec, args, kwargs, options.priority, options)
        delay = options.delay()
        if delay > 0:
            self._hold(task, delay)
        else:
            await self._push(task)
            if self._queue.handed:
                await self.share_loop()
        return task.id

    async def submit_many(
        self, spec: TaskSpec, arg_tuples: Iterable[tuple], priority: int = 0
    ) -> list[str]:
        """Submit one task per argument tuple; return their ids in order."""
        if self._remote is not None:
            if not self._running:
                raise ExecutorNotRunningError()
            pairs = [(tuple(args), {}) for args in arg_tuples]
            return await self._remote.submits.submit(spec, pairs, priority, None)
        ids: list[str] = []
        enqueue, queue = self.enqueue, self._queue
        for args in arg_tuples:
            task = enqueue(spec, args, {}, priority)
            if task is None:
                ids.append(await self.submit_spec(spec, args, {}, priority))
                continue
            ids.append(task.id)
            if queue.handed:
                await self.share_loop()
        return ids

    async def submit_batch(
        self, spec: TaskSpec, pairs: list[tuple[tuple, dict]], options: SubmitOptions
    ) -> list[str]:
        """Submit one task per ``(args, kwargs)`` with ``options``, whose ids may be chosen
        in advance (:meth:`SubmitOptions.next_tag`); return the ids in order. An executor
        that is stopping still takes them (a workflow's next steps, while it drains)."""
        if self._remote is not None:
            return await self._remote.submits.submit(spec, pairs, options.priority, options)
        if not self._running and not self._workers:
            raise ExecutorNotRunningError()
        ids: list[str] = []
        queue, priority, now = self._queue, options.priority, not self._writes_later
        for args, kwargs in pairs:
            if now and (_IN_TASK.get() or not queue.full()):  # as enqueue() does
                task = self._prepare(spec, args, kwargs, priority, options)
                queue.push_nowait(task)
            else:
                task = await self._prepare_stored(spec, args, kwargs, priority, options)
                await self._push(task)
            ids.append(task.id)
            if queue.handed:
                await self.share_loop()
        return ids

    def _prepare(
        self,
        spec: TaskSpec,
        args: tuple,
        kwargs: dict,
        priority: int,
        options: SubmitOptions | None,
    ) -> Task:
        """Make the task and its PENDING record, store and announce it (the store is
        queued: the in-memory backend keeps it at once)."""
        task, record = self._make(spec, args, kwargs, priority, options)
        self._save_sync(record)  # first: a record that cannot be stored leaves nothing
        self._active[record.task_id] = record  # _register, inline: the hottest path
        self.submitted += 1
        self.events.publish("task.submitted", record)
        return task

    async def _prepare_stored(
        self,
        spec: TaskSpec,
        args: tuple,
        kwargs: dict,
        priority: int,
        options: SubmitOptions | None,
    ) -> Task:
        """:meth:`_prepare`, waiting until a backend that writes to a server has the
        record: a submit whose record cannot be stored raises and leaves nothing."""
        if not self._writes_later:
            return self._prepare(spec, args, kwargs, priority, options)
        task, record = self._make(spec, args, kwargs, priority, options)
        await self.results.store_many([record])  # type: ignore[attr-defined]
        self._register(record)
        return task

    def _register(self, record: TaskResult) -> None:
        self._active[record.task_id] = record
        self.submitted += 1
        self.events.publish("task.submitted", record)

    def _make(
        self,
        spec: TaskSpec,
        args: tuple,
        kwargs: dict,
        priority: int,
        options: SubmitOptions | None,
    ) -> tuple[Task, TaskResult]:
        tag = None if options is None else options.next_tag()
        task_id = new_task_id() if tag is None else tag.task_id
        name = spec.name
        if options is None:
            task = Task(
                task_id, name, args, kwargs, spec.max_retries, spec.retry_delay, 0, priority,
                spec.cpu_bound, spec.timeout, None, spec.limits,
            )  # fmt: skip
        else:
            task = Task(
                task_id,
                name,
                args,
                kwargs,
                spec.max_retries if options.max_retries is None else options.max_retries,
                spec.retry_delay if options.retry_delay is None else options.retry_delay,
                0,
                priority,
                spec.cpu_bound,
                spec.timeout if options.timeout is None else options.timeout,
                options.eta,
                override_limits(spec.limits, options.limits),
            )
        record = TaskResult(
            task_id, _PENDING, name, None, None, _now(UTC), None, None, 0, args, kwargs, priority
        )
        if tag is not None:  # a workflow's step
            task.workflow_id = record.workflow_id = tag.workflow_id
            task.workflow_step = record.workflow_step = tag.step
        return task, record

    def _hold(self, task: Task, delay: float) -> None:
        """Queue ``task`` after ``delay`` seconds, holding no worker meanwhile."""
        loop = asyncio.get_running_loop()
        self._timers[task.id] = loop.call_later(delay, self._release, task)

    def _release(self, task: Task) -> None:
        self._timers.pop(task.id, None)
        if task.id in self._active:
            self._queue.push_nowait(task)

    # ------------------------------------------------------------------ storage
    def _save_sync(self, record: TaskResult) -> None:
        if self._store_now is not None:
            self._store_now(record.task_id, record)
        else:
            # an async backend: the write goes out in order on the loop
            task = asyncio.ensure_future(self.results.store(record.task_id, record))
            task.add_done_callback(_log_store_error)

    async def _save(self, record: TaskResult) -> None:
        if self._store_now is not None:
            self._store_now(record.task_id, record)
        else:
            await self.results.store(record.task_id, record)

    def _settle(
        self,
        record: TaskResult,
        status: TaskStatus,
        result: Any,
        exc: BaseException | None,
        message: str | None,
    ) -> None:
        """Mark ``record`` final in memory; the caller then saves it and calls
        :meth:`_announce`."""
        record.status = status
        record.result = result
        record.finished_at = _now(UTC)
        if status is _SUCCESS:
            record.error = record.error_type = record.traceback = None
        if exc is not None:
            record.error = message or str(exc) or repr(exc)
            record.error_type = _error_type(exc)
            record.traceback = getattr(exc, "remote_traceback", None) or task_traceback(exc)
        elif message is not None:
            record.error = message
        del self._active[record.task_id]

    def _announce(self, record: TaskResult) -> None:
        self.events.publish(_EVENT_OF[record.status], record)
        if self._drained is not None and not self._active:
            self._drained.set()

    async def _finish(
        self,
        record: TaskResult,
        status: TaskStatus,
        result: Any = None,
        exc: BaseException | None = None,
        message: str | None = None,
    ) -> None:
        self._settle(record, status, result, exc, message)
        if record.workflow_id is not None and self.workflow_hook is not None:
            await self.workflow_hook.after_step(record)  # before the ack: see StepHook
        try:
            await self._store_final(record)
        except SerializationError as error:
            if record.status is not _SUCCESS:
                raise
            # a result that cannot be pickled fails its task (it would never be stored)
            record.status = TaskStatus.FAILED
            record.result = None
            record.error = str(error)
            record.error_type = "SerializationError"
            record.traceback = None
            await self._store_final(record)
        self._announce(record)

    async def _store_final(self, record: TaskResult) -> None:
        if self._remote is not None:
            await self._remote.finish(record)
        else:
            await self._save(record)

    # ------------------------------------------------------------------ workers
    @abstractmethod
    def _call(self, task: Task, spec: TaskSpec) -> Awaitable[Any]:
        """Start one attempt of ``task`` and return an awaitable of its value."""

    async def _worker(self) -> None:
        _IN_TASK.set(True)  # this worker task's own context: bodies run in it
        pop, pop_nowait = self._queue.pop, self._queue.pop_nowait
        active = self._active
        me = asyncio.current_task()
        assert me is not None
        while True:
            task = pop_nowait() or await pop()
            if task is None:
                return
            record = active.get(task.id)
            if record is None:  # cancelled while it waited
                continue
            throttled = task.limits is not None and self._throttle is not None
            if throttled and not self._throttle.admit(task):  # type: ignore[union-attr]
                continue  # held back by its limits: parked, holding no worker
            try:
                await self._execute(task, record, me)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                logger.exception("Internal error while running task %s (%s)", task.id, task.name)
                await self._fail_internal(record, exc)
            finally:
                if throttled:
                    self._throttle.done(task)  # type: ignore[union-attr]

    async def _fail_internal(self, record: TaskResult, exc: Exception) -> None:
        """A bug or a backend failure outside the task body: fail the task, keep the worker."""
        self._in_body.pop(record.task_id, None)
        if record.task_id not in self._active:
            return
        try:
            await self._finish(record, TaskStatus.FAILED, exc=exc)
        except Exception:
            logger.exception("Could not record the failure of task %s", record.task_id)

    async def _execute(self, task: Task, record: TaskResult, me: asyncio.Task[Any]) -> None:
        remote = self._remote
        spec = (remote.shipped.get(task.id) if remote else None) or self.registry._specs.get(
            task.name
        )
        store_now = self._store_now
        record.status = _RUNNING
        record.started_at = _now(UTC)
        record.finished_at = None
        record.retries = task.current_retry
        running = TaskContext(task, record, self._reporter)  # clears the last attempt's reports
        if store_now is not None:
            store_now(record.task_id, record)
        else:
            await self.results.store(record.task_id, record)
        events = self.events
        if events.has_subscribers:
            events.publish("task.started", record)
        self._in_body[task.id] = me
        scope: asyncio.Timeout | None = None
        token = running.enter()  # current_task(), progress() and print() are the task's
        try:
            try:
                if spec is None:
                    raise TaskNotFoundError(task.name)
                if task.timeout is None:
                    if self._direct_call:
                        value = await spec.func(*task.args, **task.kwargs)
                    else:
                        value = await self._call(task, spec)
                else:
                    async with asyncio.timeout(task.timeout) as scope:
                        value = await self._call(task, spec)
            finally:
                running.leave(token)  # its last progress and output go on the record
        except asyncio.CancelledError:
            del self._in_body[task.id]
            if task.id not in self._cancel_requested:
                raise  # the executor is stopping: stop() settles the record
            await self._was_cancelled(task, record, me)
            return
        except Exception as exc:
            del self._in_body[task.id]
            if scope is not None and scope.expired():
                await self._timed_out(task, record, exc)
            else:
                await self._failed(task, record, exc)
            return
        except GeneratorExit:
            raise
        except BaseException as exc:  # SystemExit, KeyboardInterrupt... raised by the body
            del self._in_body[task.id]
            await self._finish(
                record,
                TaskStatus.FAILED,
                exc=exc,
                message=f"Task '{task.name}' raised {type(exc).__name__}"
                + (f": {exc}" if str(exc) else "")
                + " (not retried; the worker goes on)",
            )
            return
        del self._in_body[task.id]
        if self._cancel_requested or remote is not None or store_now is None:
            await self._succeeded(task, record, value, me)
        else:  # the common case (in memory, nothing being cancelled): no further coroutine
            self._succeeded_in_memory(task, record, value)

    async def _was_cancelled(self, task: Task, record: TaskResult, me: asyncio.Task[Any]) -> None:
        self._cancel_requested.discard(task.id)
        me.uncancel()
        await self._finish(record, TaskStatus.CANCELLED, message="Task was cancelled")

    async def _succeeded(
        self, task: Task, record: TaskResult, value: Any, me: asyncio.Task[Any]
    ) -> None:
        if self._cancel_requested and task.id in self._cancel_requested:
            await self._was_cancelled(task, record, me)  # the body swallowed the cancellation
            return
        if self._remote is not None and record.workflow_id is not None:
            self._remote.settle_later(record, self._finish(record, _SUCCESS, value))
            return  # a workflow's step: its bookkeeping waits on Redis, this worker need not
        if self._remote is not None or self._store_now is None:
            await self._finish(record, _SUCCESS, value)
            return
        self._succeeded_in_memory(task, record, value)

    def _succeeded_in_memory(self, task: Task, record: TaskResult, value: Any) -> None:
        store_now = self._store_now
        assert store_now is not None
        record.status = _SUCCESS
        record.result = value
        record.finished_at = _now(UTC)
        if record.error is not None:  # from an earlier attempt: a success carries none
            record.error = record.error_type = record.traceback = None
        del self._active[task.id]
        store_now(record.task_id, record)
        events = self.events
        if events.has_subscribers:
            events.publish("task.succeeded", record)
        if record.workflow_id is not None and self.workflow_hook is not None:
            self.workflow_hook.after_step_now(record)
        if self._drained is not None and not self._active:
            self._drained.set()

    async def _timed_out(self, task: Task, record: TaskResult, exc: BaseException) -> None:
        await self._finish(
            record,
            TaskStatus.FAILED,
            exc=exc,
            message=f"Task '{task.name}' exceeded its timeout of {task.timeout}s and was stopped",
        )

    async def _failed(self, task: Task, record: TaskResult, exc: BaseException) -> None:
        if task.current_retry >= task.max_retries or not getattr(exc, "retryable", True):
            await self._finish(record, TaskStatus.FAILED, exc=exc)
            return
        task.current_retry += 1
        record.status = TaskStatus.RETRYING
        record.retries = task.current_retry
        record.error = str(exc) or repr(exc)
        record.error_type = _error_type(exc)
        await self._save(record)
        self.events.publish("task.retrying", record)
        delay = self.retry_delay_for(task)
        task_logger.warning(
            "Task %s (%s) failed (%s: %s); retry %d/%d in %.3gs",
            task.name,
            task.id,
            record.error_type,
            record.error,
            task.current_retry,
            task.max_retries,
            delay,
        )
        if self._remote is not None:
            await self._remote.retry(task, delay)
        elif delay > 0:
            self._hold(task, delay)
        else:
            self._queue.push_nowait(task)

    def retry_delay_for(self, task: Task) -> float:
        """Backoff before retry number ``task.current_retry`` (1-based):
        ``retry_delay * 2**(n-1)``, capped at ``max_retry_delay``, with optional jitter."""
        cfg = self._config.executor
        delay = min(task.retry_delay * 2 ** (task.current_retry - 1), cfg.max_retry_delay)
        if cfg.retry_jitter and delay > 0:
            delay = random.uniform(delay / 2, delay)
        return delay

    # ------------------------------------------------------------------- cancel
    def holds(self, task_id: str) -> bool:
        """True if ``task_id`` is queued, waiting or running in this executor."""
        self._admit_arrivals()
        return task_id in self._active

    def _admit_arrivals(self) -> None:
        """A task leased to this process by its submit is handed to the workers a loop
        turn after the submit returns: admit such tasks now, so that they count at once."""
        remote = self._remote
        if remote is not None and remote.admitting:
            remote.admit_arrivals()

    async def cancel(self, task_id: str) -> bool:
        """Cancel ``task_id``: a queued or delayed task never runs, a running one is
        stopped. Returns True once the record is CANCELLED, False if the task had
        already finished or is unknown."""
        self._admit_arrivals()
        record = self._active.get(task_id)
        if record is None:
            if self._remote is None:
                return False
            return await self._remote.cancel_queued(task_id) == "cancelled"
        worker = self._in_body.get(task_id)
        if worker is not None:
            self._cancel_requested.add(task_id)
            worker.cancel()
            record = await self.results.wait_for(task_id, None)
            return record.status is TaskStatus.CANCELLED
        timer = self._timers.pop(task_id, None)
        if timer is not None:
            timer.cancel()
        else:
            self._queue.remove(task_id)
        await self._finish(record, TaskStatus.CANCELLED, message="Task was cancelled before it ran")
        if self._throttle is not None:
            self._throttle.forget(task_id)
        return True

    # ---------------------------------------------------------------- lifecycle
    async def start(self, workers: bool = True) -> None:
        """Start the executor (idempotent).

        ``workers=False`` (with a broker only) submits without running tasks here: other
        processes (``flowrra worker``) run them.
        """
        if self._running:
            return
        refuse_start_while_bootstrapping()
        if not workers and self._remote is None:
            raise ConfigError(
                "start(workers=False) needs a broker (Redis): with the in-memory queue no "
                "other process could run the tasks"
            )
        loop = asyncio.get_running_loop()
        self._home_loop = loop
        self._queue.reopen()
        self._running = True
        if not workers:
            return
        self._reporter.start()
        self._workers = [loop.create_task(self._worker()) for _ in range(self.worker_count)]
        if self._remote is not None:
            await self._remote.start()
        # one loop turn: the workers reach the queue and wait there, so the first submits
        # hand them work directly (and share_loop lets them start during a burst)
        await asyncio.sleep(0)

    async def stop(self, wait: bool = True, timeout: float | None = 30.0) -> None:
        """Stop taking tasks; with ``wait``, let queued and running ones finish for up to
        ``timeout`` seconds; then cancel what is left. No record stays PENDING or
        RUNNING."""
        if not self._running:
            return
        self._running = False
        if self._remote is not None:
            await self._remote.stop(wait, timeout)
            await self._after_stop()
        else:
            await self._stop_in_memory(wait, timeout)
        self._reporter.stop()
        await self._let_go()

    async def _let_go(self) -> None:
        """Close the connections of what this executor made itself: its broker, and its
        result backend unless an app shares one (the app closes that)."""
        if self.broker is not None:
            await self.broker.close()
        if self._owns_results:
            await self.results.close()

    async def _stop_in_memory(self, wait: bool, timeout: float | None) -> None:
        if wait and self._active:
            self._drained = asyncio.Event()
            try:
                async with asyncio.timeout(timeout):
                    await self._drained.wait()
            except TimeoutError:
                logger.warning(
                    "%s: %d task(s) still unfinished after %ss; cancelling them",
                    type(self).__name__,
                    len(self._active),
                    timeout,
                )
            finally:
                self._drained = None
        await self._halt()

    async def _after_stop(self) -> None:
        """Release what the executor holds once it stopped with a broker."""
        await self._queue.close()

    async def _halt(self) -> None:
        for worker in self._workers:
            worker.cancel()
        await asyncio.gather(*self._workers, return_exceptions=True)
        self._workers = []
        for timer in self._timers.values():
            timer.cancel()
        self._timers.clear()
        if self._throttle is not None:
            self._throttle.clear()
        self._queue.drain()
        await self._queue.close()
        self._in_body.clear()
        self._cancel_requested.clear()
        for record in list(self._active.values()):
            await self._finish(
                record, TaskStatus.CANCELLED, message="Task was cancelled: the executor stopped"
            )

    async def wait_for_result(self, task_id: str, timeout: float | None = None) -> TaskResult:
        """Wait for ``task_id`` to finish and return its record.

        Raises:
            TaskTimeoutError: ``timeout`` seconds passed first.
            UnknownTaskIdError: no record of ``task_id``.
        """
        return await self.results.wait_for(task_id, timeout)

    async def get_result(self, task_id: str) -> TaskResult | None:
        """The record of ``task_id`` now, or None."""
        return await self.results.get(task_id)

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()


def _error_type(exc: BaseException) -> str:
    remote = getattr(exc, "error_type", None)
    return remote if isinstance(remote, str) else type(exc).__name__


def _log_store_error(task: asyncio.Future[None]) -> None:
    if not task.cancelled() and task.exception() is not None:
        logger.error("Failed to store a task record", exc_info=task.exception())
