"""The app: one registry, an IO and a CPU executor, one result backend, one event bus."""

from __future__ import annotations

import asyncio
import html
import inspect
import itertools
import logging
import reprlib
import weakref
from collections.abc import Callable, Iterable
from datetime import UTC, datetime, timedelta
from types import TracebackType
from typing import TYPE_CHECKING, Any, Self, TypeVar

from flowrra.config import BackendConfig, BrokerConfig, Config
from flowrra.events import EventBus, event_bus
from flowrra.exceptions import ConfigError, ExecutorNotRunningError, FlowrraError, InvalidTaskError
from flowrra.executors.base import BaseTaskExecutor, SubmitOptions
from flowrra.executors.cpu import CPUExecutor
from flowrra.executors.io import IOExecutor
from flowrra.executors.main_guard import refuse_start_while_bootstrapping
from flowrra.home_loop import on_home_loop
from flowrra.registry import TaskRegistry, TaskSpec
from flowrra.serialization import Signer, signer_for
from flowrra.task import TaskResult, TaskStatus
from flowrra.unique import UniqueKeys
from flowrra.workflows.engine import WorkflowEngine
from flowrra.workflows.handle import WorkflowHandle

if TYPE_CHECKING:
    import pandas as pd

    from flowrra.as_completed import AsCompleted
    from flowrra.workflows.signatures import Step

__all__ = ["Flowrra", "latest_app"]

F = TypeVar("F", bound=Callable[..., Any])

_TASK_OPTIONS = ("max_retries", "retry_delay", "timeout", "rate_limit", "concurrency")
_EVENT_FOR_STATUS = {
    TaskStatus.PENDING: "task.submitted",
    TaskStatus.RUNNING: "task.started",
    TaskStatus.RETRYING: "task.retrying",
    TaskStatus.SUCCESS: "task.succeeded",
    TaskStatus.FAILED: "task.failed",
    TaskStatus.CANCELLED: "task.cancelled",
}
_NOT_RUNNING = "The Flowrra app is not running. Call 'await app.start()' or use 'async with app:'."


logger = logging.getLogger("flowrra.app")

_live_apps: weakref.WeakSet[Flowrra] = weakref.WeakSet()
_serials = itertools.count()


def _check_each(spec: TaskSpec, arg_tuples: list[tuple], call: str) -> None:
    """Check every item of a map or starmap before any is submitted."""
    if spec.accepts is None:
        return
    for index, args in enumerate(arg_tuples):
        spec.check_arguments(args, {}, f"item {index} of {call}()")


def _unpacked(item: Any, index: int, spec: TaskSpec) -> tuple:
    try:
        return tuple(item)
    except TypeError:
        raise TypeError(
            f"starmap() item {index} for task '{spec.name}' is not a tuple of arguments "
            f"(got {reprlib.repr(item)}): give each item as a tuple, or use map() to pass "
            "each item as the single argument. Nothing was submitted."
        ) from None


def latest_app() -> Flowrra | None:
    """The most recently created app still alive in this process, if any."""
    return max(_live_apps, key=lambda app: app._serial, default=None)


class Flowrra:
    """Unified Flowrra application: register tasks, submit them, wait for results.

    IO-bound tasks (``async def``) run on the event loop; CPU-bound tasks
    (``cpu_bound=True``, plain ``def``) run in a pool of worker processes. Both share
    one registry, one result backend (in-memory by default) and one event bus
    (``app.events``).

    Usage::

        app = Flowrra()                      # or Flowrra.from_urls(...) / Flowrra(config)

        @app.task(max_retries=2)
        async def fetch(url: str) -> int: ...

        @app.task(cpu_bound=True)
        def crunch(n: int) -> int:
            return sum(i * i for i in range(n))

        async with app:
            task_id = await app.submit(fetch, "https://example.org")
            record = await app.wait_for_result(task_id, timeout=10)
            ids = await app.map(crunch, [10_000, 20_000])
    """

    def __init__(self, config: Config | None = None) -> None:
        """Create an app from ``config`` (default: in-memory queue and results)."""
        self._config = config if config is not None else Config()
        self._registry = TaskRegistry(strict_cpu_checks=False)
        self.events = EventBus()
        self.events._forward = event_bus
        self._backend = self._config.create_backend()
        signer, self.secret_is_generated = signer_for(self._config.secret_key)
        if hasattr(self._backend, "signer"):  # a Redis backend signs its records
            self._backend.signer = signer
        shared = {"backend": self._backend, "events": self.events}
        self._io_executor = IOExecutor(self._config, self._registry, **shared)  # type: ignore[arg-type]
        self._cpu_executor = CPUExecutor(self._config, self._registry, **shared)  # type: ignore[arg-type]
        self._cancelling: set[asyncio.Future[Any]] = set()
        self._workflows = WorkflowEngine(
            self._backend, self._route, self.cancel, self.events, self._chore, self._executor_of
        )
        self._io_executor.workflow_hook = self._cpu_executor.workflow_hook = self._workflows
        self._unique_keys = UniqueKeys(self._is_unfinished_here, self._backend.get)
        if self._config.broker is not None:
            self._link_redis(signer)
        self._scheduler: Any = None
        self._running = False
        #: The kinds of task ("io", "cpu") this process runs while started; None if stopped.
        self._local_kinds: frozenset[str] | None = None
        self._home_loop: asyncio.AbstractEventLoop | None = None
        self._serial = next(_serials)
        _live_apps.add(self)
        scheduling = self._config.scheduler
        if scheduling is not None and scheduling.enabled:
            self.create_scheduler(scheduling.create_backend(), scheduling.check_interval)

    def _link_redis(self, signer: Signer) -> None:
        """Sign everything that crosses Redis and hear records stored by other processes."""
        for executor in (self._io_executor, self._cpu_executor):
            executor.broker.signer = signer  # type: ignore[union-attr]
        if not hasattr(self._backend, "on_record"):
            logger.warning(
                "A Redis broker with in-memory results: this process's own workers run the "
                "tasks and keep their results here, but workers in other processes cannot "
                "report results. Set BackendConfig(url='redis://...') (or "
                "Flowrra.from_urls(broker=..., backend=...)) to share results."
            )
            return
        self._backend.on_record = self._on_remote_record
        self._backend.on_cancel = self._on_cancel_request
        self._backend.on_dead_letter = self._on_dead_letter

    def _is_unfinished_here(self, task_id: str) -> bool:
        return self._io_executor.holds(task_id) or self._cpu_executor.holds(task_id)

    def _on_dead_letter(self, task_id: str, reason: str) -> None:
        self._chore(self._fail_dead_lettered(task_id, reason))

    def _chore(self, job: Any) -> None:
        task = asyncio.ensure_future(job)
        self._cancelling.add(task)
        task.add_done_callback(self._cancelling.discard)

    async def _fail_dead_lettered(self, task_id: str, reason: str) -> None:
        """A worker set a task aside (its payload did not verify there): fail the record
        so its waiters learn why at once. A notice is plain JSON from anyone who can write
        to Redis, so it is believed only once the task's payload is really gone."""
        try:
            record = await self._backend.get(task_id)
            if record is None or record.is_complete:
                return
            for executor in (self._io_executor, self._cpu_executor):
                if await executor.broker.is_queued(task_id):  # type: ignore[union-attr]
                    return
        except FlowrraError:
            return
        dead = f"{self._config.broker.queue_key or 'flowrra:queue'}:{{io,cpu}}:dead"  # type: ignore[union-attr]
        record.status = TaskStatus.FAILED
        record.finished_at = datetime.now(UTC)
        record.error_type = "SignatureError"
        record.error = (
            f"A worker could not verify task {task_id} ({reason}) and set it aside in {dead}. "
            "Its secret key differs from this process's: set the same FLOWRRA_SECRET_KEY "
            "(or Config(secret_key=...)) for the processes that submit and for every "
            "flowrra worker, then submit the task again."
        )
        await self._backend.store(task_id, record)
        hook = self._io_executor.workflow_hook
        if record.workflow_id is not None and hook is not None:
            await hook.after_step(record)  # a workflow's step: the workflow ends FAILED

    def _on_remote_record(self, record: TaskResult) -> None:
        kind = _EVENT_FOR_STATUS[record.status]
        if kind == "task.started" and (record.progress_done is not None or record.output):
            kind = "task.progress"  # a running task's report (see flowrra.context)
        self.events.publish(kind, record)

    @classmethod
    def from_urls(cls, broker: str | None = None, backend: str | None = None) -> Flowrra:
        """Create an app from connection URLs.

        Args:
            broker: Broker URL (None: the in-memory queue).
            backend: Result backend URL (None: in-memory results).
        """
        return cls(
            Config(
                broker=BrokerConfig(url=broker) if broker else None,
                backend=BackendConfig(url=backend) if backend else None,
            )
        )

    # ------------------------------------------------------------- properties
    @property
    def config(self) -> Config:
        """The app's configuration."""
        return self._config

    @property
    def is_running(self) -> bool:
        """True between :meth:`start` and :meth:`stop`."""
        return self._running

    @property
    def registry(self) -> TaskRegistry:
        """The task registry both executors share."""
        return self._registry

    @property
    def scheduler(self) -> Any:
        """The scheduler made by ``create_scheduler()``, or None."""
        return self._scheduler

    @property
    def results_backend(self) -> Any:
        """The result backend the app stores records in."""
        return self._backend

    @property
    def io_executor(self) -> IOExecutor:
        """The executor of IO-bound (``async def``) tasks."""
        return self._io_executor

    @property
    def cpu_executor(self) -> CPUExecutor:
        """The executor of CPU-bound tasks (worker processes)."""
        return self._cpu_executor

    # ----------------------------------------------------------- registration
    def task(
        self, name: str | None = None, cpu_bound: bool = False, **kwargs: Any
    ) -> Callable[[F], F]:
        """Register a task with automatic executor routing.

        Args:
            name: Task name (defaults to the function's name).
            cpu_bound: True runs the (sync) function in a worker process; False (the
                default) awaits the ``async def`` function on the event loop.
            **kwargs: ``max_retries`` (further attempts after a failure; default from
                ``ExecutorConfig.max_retries``), ``retry_delay`` (seconds before the first
                retry, doubling each time; default ``ExecutorConfig.retry_delay``),
                ``timeout`` (seconds an attempt may run), ``rate_limit`` (at most this
                many starts, ``"N/s"``, ``"N/m"`` or ``"N/h"``) and ``concurrency`` (at
                most this many running at once): limits over every process on a Redis
                broker, per app in memory; a task held back holds no worker.

        Returns:
            A decorator that registers the function and returns it unchanged.
        """
        unknown = set(kwargs) - set(_TASK_OPTIONS)
        if unknown:
            raise InvalidTaskError(
                f"Unknown task option(s): {', '.join(sorted(unknown))}. "
                f"@app.task() takes name, cpu_bound, {', '.join(_TASK_OPTIONS)}"
            )
        executor = self._config.executor
        options = {
            "max_retries": kwargs.get("max_retries", executor.max_retries),
            "retry_delay": kwargs.get("retry_delay", executor.retry_delay),
            "timeout": kwargs.get("timeout"),
            "rate_limit": kwargs.get("rate_limit"),
            "concurrency": kwargs.get("concurrency"),
        }

        def decorator(func: F) -> F:
            self._registry.register(func, name=name, cpu_bound=cpu_bound, **options)
            return func

        return decorator

    def create_scheduler(self, backend: Any = None, check_interval: float = 60.0) -> Any:
        """Create the persistent scheduler (cron, interval and one-time schedules).

        The scheduler is registered with the app: ``app.start()`` starts it and
        ``app.stop()`` stops it (if the app is already running, it starts at once).
        Access it as ``app.scheduler``, or through :class:`flowrra.management.FlowrraManager`.

        Args:
            backend: Where schedules live: None (SQLite at ``.flowrra_schedule.db``), a
                database URL (``sqlite:///path.db``, ``postgresql://...``,
                ``mysql://...``) or a ``BaseSchedulerBackend`` instance.
            check_interval: The longest the scheduler sleeps, in seconds: schedules
                changed by other processes are seen within it.

        Returns:
            The :class:`~flowrra.scheduler.Scheduler`. Due runs are submitted with
            :meth:`apply`, carrying the schedule's priority, retries and timeout.

        Usage::

            scheduler = app.create_scheduler()
            await scheduler.schedule_cron("send_report", "0 9 * * *")
            await app.start()
        """
        import logging

        from flowrra.scheduler import Scheduler

        if self._scheduler is not None and self._scheduler.is_running:
            raise FlowrraError(
                "This app already has a running scheduler; stop the app before creating another"
            )

        async def submit(
            task_name: str,
            args: tuple,
            kwargs: dict,
            *,
            priority: int,
            max_retries: int | None,
            retry_delay: float | None,
            timeout: float | None,
        ) -> str:
            self._check_running()
            options = SubmitOptions(
                priority=priority,
                max_retries=max_retries,
                retry_delay=retry_delay,
                timeout=timeout,
            )
            return await self._apply(task_name, tuple(args), dict(kwargs), options, check=False)

        def report(started: Any) -> None:
            if not started.cancelled() and started.exception() is not None:
                logging.getLogger("flowrra.scheduler").error(
                    "The scheduler could not start", exc_info=started.exception()
                )

        scheduler = Scheduler(backend, self._registry, check_interval, submit=submit)
        self._scheduler = scheduler
        if self._running and self._home_loop is not None:
            start = asyncio.run_coroutine_threadsafe(scheduler.start(), self._home_loop)
            start.add_done_callback(report)
        return scheduler

    def _executor_of(self, cpu_bound: bool) -> BaseTaskExecutor:
        return self._cpu_executor if cpu_bound else self._io_executor

    def _route(self, task: Callable[..., Any] | str) -> tuple[BaseTaskExecutor, TaskSpec]:
        spec = self._io_executor._spec_for(task)
        return (self._cpu_executor if spec.cpu_bound else self._io_executor), spec

    def _check_running(self) -> None:
        if not self._running:
            raise ExecutorNotRunningError(_NOT_RUNNING)

    # ------------------------------------------------------------- submission
    @on_home_loop
    async def submit(
        self, task_func: Callable[..., Any] | str, *args: Any, priority: int = 0, **kwargs: Any
    ) -> str:
        """Submit a task for execution.

        Args:
            task_func: The registered task function, or its registered name.
            *args: Positional arguments for the task.
            priority: Lower numbers run first; equal priorities run first-in first-out.
            **kwargs: Keyword arguments for the task.

        Returns:
            The task id. For per-submit options (``countdown``, ``eta``, ``timeout``,
            retries) use :meth:`apply`, whose options can never clash with the task's
            own parameter names.

        Raises:
            TypeError: the task's function does not take these arguments (checked
                against its signature here, so nothing is queued).
            TaskNotFoundError: ``task_func`` is not registered with this app.
        """
        if not self._running:
            raise ExecutorNotRunningError(_NOT_RUNNING)
        executor, spec = self._route(task_func)
        accepts = spec.accepts
        if accepts is not None:
            try:  # the hot path: TaskSpec.check_arguments inline
                accepts(*args, **kwargs)
            except TypeError:
                spec.check_arguments(args, kwargs)  # raises, with the task named
        task = executor.enqueue(spec, args, kwargs, priority)
        if task is None:
            return await executor.submit_spec(spec, args, kwargs, priority)
        if executor._queue.handed:
            await executor.share_loop()
        return task.id

    @on_home_loop
    async def apply(
        self,
        task_func: Callable[..., Any] | str,
        args: Iterable[Any] = (),
        kwargs: dict[str, Any] | None = None,
        *,
        priority: int = 0,
        countdown: float | timedelta | None = None,
        eta: datetime | None = None,
        max_retries: int | None = None,
        retry_delay: float | timedelta | None = None,
        timeout: float | timedelta | None = None,
        rate_limit: str | None = None,
        concurrency: int | None = None,
        unique_key: str | None = None,
        unique_for: float | timedelta | None = None,
    ) -> str:
        """Submit a task with per-submit options; return its id.

        The task's own arguments go in ``args`` and ``kwargs``, so a task may take
        parameters called ``timeout`` or ``priority`` of its own.

        Args:
            priority: Lower numbers run first.
            countdown: Seconds (or a timedelta) to wait before the task may run.
            eta: The time (a datetime; naive means local) before which it may not run.
            max_retries: Further attempts after a failure, instead of the task's default.
            retry_delay: Seconds before the first retry, instead of the task's default.
            timeout: Seconds an attempt may run, instead of the task's default.
            rate_limit: ``"N/s"``, ``"N/m"`` or ``"N/h"``, instead of the task's own:
                starts of this task's name are spaced to that rate (counted with every
                other task of its name).
            concurrency: At most this many tasks of its name running at once, instead
                of the task's own.
            unique_key: If an unfinished task holds this key, return its id and queue
                nothing; else this task holds it until it ends.
            unique_for: Seconds (or a timedelta) the key stays held after the task
                ended (returning the finished task's id meanwhile).

        Raises:
            TypeError: the task's function does not take ``args`` and ``kwargs``
                (nothing is queued).
            ConfigError: an option is out of range (e.g. a rate that is not ``"N/s"``).
        """
        self._check_running()
        options = SubmitOptions(
            priority=priority,
            countdown=countdown,  # type: ignore[arg-type]
            eta=eta,
            max_retries=max_retries,
            retry_delay=retry_delay,  # type: ignore[arg-type]
            timeout=timeout,  # type: ignore[arg-type]
            rate_limit=rate_limit,
            concurrency=concurrency,
            unique_key=unique_key,
            unique_for=unique_for,  # type: ignore[arg-type]
        )
        return await self._apply(task_func, tuple(args), dict(kwargs or {}), options)

    @on_home_loop
    async def _apply(
        self,
        task_func: Callable[..., Any] | str,
        args: tuple,
        kwargs: dict[str, Any],
        options: SubmitOptions,
        check: bool = True,
    ) -> str:
        """:meth:`apply` once its options are checked; ``check=False`` skips the argument
        check (for the scheduler: a run it cannot submit stays due and is tried again)."""
        executor, spec = self._route(task_func)
        if check:
            spec.check_arguments(args, kwargs)
        if options.unique is not None and self._config.broker is None:  # on Redis: in Redis
            return await self._unique_keys.submit(
                options.unique, lambda: executor.submit_with(spec, args, kwargs, options)
            )
        return await executor.submit_with(spec, args, kwargs, options)

    @on_home_loop
    async def map(
        self, task_func: Callable[..., Any] | str, iterable: Iterable[Any], *, priority: int = 0
    ) -> list[str]:
        """Submit one task per item (each item is the single argument); return the ids.

        Raises:
            TypeError: the task's function does not take one argument; every item is
                checked before any is submitted.
        """
        self._check_running()
        executor, spec = self._route(task_func)
        arg_tuples = [(item,) for item in iterable]
        _check_each(spec, arg_tuples, "map")
        return await executor.submit_many(spec, arg_tuples, priority)

    @on_home_loop
    async def starmap(
        self,
        task_func: Callable[..., Any] | str,
        iterable: Iterable[Iterable[Any]],
        *,
        priority: int = 0,
    ) -> list[str]:
        """Submit one task per item (each item unpacked as the arguments); return the ids.

        Raises:
            TypeError: an item is not iterable, or the task's function does not take
                its arguments; every item is checked before any is submitted.
        """
        self._check_running()
        executor, spec = self._route(task_func)
        arg_tuples = [_unpacked(item, index, spec) for index, item in enumerate(iterable)]
        _check_each(spec, arg_tuples, "starmap")
        return await executor.submit_many(spec, arg_tuples, priority)

    @on_home_loop
    async def cancel(self, task_id: str) -> bool:
        """Cancel a task: a pending one never runs, a running one is stopped (on a
        Redis broker, also when another process runs it or has taken it ahead).

        Returns True once the record is CANCELLED; False when the task had already
        finished (or is unknown). A workflow's id cancels the workflow (see :meth:`run`).
        """
        for executor in (self._io_executor, self._cpu_executor):
            if executor.holds(task_id):
                return await executor.cancel(task_id)
        if await self._workflows.is_workflow(task_id):  # its steps not finished, too
            return await self._workflows.cancel(task_id)
        if self._config.broker is None:
            return False
        remotes = [e._remote for e in (self._io_executor, self._cpu_executor) if e._remote]
        for remote in remotes:
            found = await remote.cancel_queued(task_id)
            if found == "cancelled":
                return True
            if found == "taken":  # noted in its queue, should its worker die
                break
        else:
            record = await self._backend.get(task_id)
            if record is None or record.status is not TaskStatus.RUNNING:
                return False
            for remote in remotes:  # noted, should its worker die
                await remote.mark_cancelled(task_id)
        # the worker holding it stops it, or ends it CANCELLED before it starts
        await self._backend.request_cancel(task_id)
        record = await self._backend.wait_for(task_id, None)
        return record.status is TaskStatus.CANCELLED

    # -------------------------------------------------------------- workflows
    @on_home_loop
    async def run(self, workflow: Step, *, priority: int = 0) -> WorkflowHandle:
        """Submit a workflow (see :mod:`flowrra.workflows`) and return its handle.

        Its first steps are queued at once, the others as the steps before them end;
        every step is a task with its own record, retries and id (``handle.steps``). On
        Redis the workflow lives in Redis: this process may exit, workers carry it on.

        Args:
            workflow: ``call(...)``, ``chain(...)``, ``group(...)`` or ``chord(...)``.
            priority: The priority of every step (lower runs first).

        Raises:
            TaskNotFoundError, TypeError: a step's task is not registered, or does not
                take its arguments (nothing is submitted).
            ConfigError: a Redis broker with in-memory results (workers elsewhere
                could not move the workflow on).

        Usage::

            handle = await app.run(flowrra.chain(flowrra.call(fetch, url), parse))
            print(await handle.result())
        """
        self._check_running()
        if self._config.broker is not None and not hasattr(self._backend, "on_record"):
            raise ConfigError(
                "Workflows on a Redis broker need a Redis result backend: set "
                "BackendConfig(url='redis://...') so that every worker can move them on"
            )
        return WorkflowHandle(self, await self._workflows.run(workflow, priority))

    def as_completed(self, ids: Iterable[str], timeout: float | None = None) -> AsCompleted:
        """The records of tasks ``ids`` in the order they finish: ``async for record in
        app.as_completed(ids)``, or ``for record in ...`` in sync code such as a notebook
        cell (see :class:`~flowrra.as_completed.AsCompleted`).

        Raises (while iterating):
            TaskTimeoutError: ``timeout`` seconds passed before all finished.
            UnknownTaskIdError: an id has no record.
        """
        from flowrra.as_completed import AsCompleted

        return AsCompleted(self, ids, timeout)

    def _on_cancel_request(self, task_id: str) -> None:
        """Another process asked to cancel ``task_id``: cancel it if it is held here
        (running, or taken and not started); else it may still be on its way here."""
        for executor in (self._io_executor, self._cpu_executor):
            if executor.holds(task_id):
                task = asyncio.ensure_future(executor.cancel(task_id))
                self._cancelling.add(task)
                task.add_done_callback(self._cancelling.discard)
                return
        for executor in (self._io_executor, self._cpu_executor):
            if executor._remote is not None and executor._remote.feeding:
                executor._remote.cancel_asked(task_id)

    # ---------------------------------------------------------------- results
    @on_home_loop
    async def wait_for_result(self, task_id: str, timeout: float | None = None) -> TaskResult:
        """Wait for a task to complete and return its record.

        Wakes on completion, without polling.

        Args:
            task_id: The id :meth:`submit` returned.
            timeout: Seconds to wait at most (None waits for ever).

        Raises:
            TaskTimeoutError: The task did not finish in time (also a ``TimeoutError``);
                the task goes on running.
            UnknownTaskIdError: The app has no record of ``task_id``.
        """
        return await self._backend.wait_for(task_id, timeout)

    @on_home_loop
    async def get_result(self, task_id: str) -> TaskResult | None:
        """The record of a task as it is now, or None for an unknown id."""
        return await self._backend.get(task_id)

    @on_home_loop
    async def list_results(
        self,
        status: TaskStatus | str | None = None,
        task_name: str | None = None,
        limit: int | None = None,
        offset: int = 0,
    ) -> list[TaskResult]:
        """Task records, newest submitted first, filtered by status and task name."""
        return await self._backend.list_results(
            status=TaskStatus(status) if status is not None else None,
            task_name=task_name,
            limit=limit,
            offset=offset,
        )

    async def results_frame(
        self,
        status: TaskStatus | str | None = None,
        task_name: str | None = None,
        limit: int | None = None,
    ) -> pd.DataFrame:
        """Task records as a pandas DataFrame, one row per task, newest first.

        Columns: task_id, task_name, status (categorical), result, error, submitted_at,
        started_at, finished_at (aware datetimes), duration (timedelta), retries,
        priority, args, kwargs. Needs the ``notebook`` extra (pandas).
        """
        from flowrra.frames import results_frame

        return results_frame(await self.list_results(status, task_name, limit))

    # -------------------------------------------------------------- lifecycle
    @on_home_loop
    async def start(self, workers: bool | Iterable[str] = True) -> None:
        """Start the executors (and the scheduler, if one was created). Idempotent.

        Args:
            workers: True runs tasks in this process. With a Redis broker, False only
                submits (``flowrra worker`` processes run the tasks), and ``{"io"}`` or
                ``{"cpu"}`` runs only that kind here.

        Raises:
            BrokerError, BackendError: Redis is unreachable (the URL is named, its
                password hidden).
        """
        if self._running:
            return
        refuse_start_while_bootstrapping()  # a worker process re-running an unguarded script
        kinds = {"io", "cpu"} if workers is True else set() if workers is False else set(workers)
        if kinds - {"io", "cpu"}:
            raise ConfigError(
                f"workers takes True, False or kinds from 'io', 'cpu'; got {workers!r}"
            )
        self._home_loop = asyncio.get_running_loop()
        if self._config.broker is not None:
            await self._io_executor.broker.ping()  # type: ignore[union-attr]
            if not kinds and self.secret_is_generated:
                logger.warning(
                    "start(workers=False) with a secret key made for this process alone: "
                    "workers in other processes cannot verify its tasks. Set the same "
                    "FLOWRRA_SECRET_KEY (or Config(secret_key=...)) here and for every "
                    "flowrra worker."
                )
        if hasattr(self._backend, "listen"):
            await self._backend.ping()
            await self._backend.listen()
        await self._io_executor.start(workers="io" in kinds)
        await self._cpu_executor.start(workers="cpu" in kinds)
        try:
            if self._scheduler is not None:
                await self._scheduler.start()
        except BaseException:
            await self._io_executor.stop(wait=False)
            await self._cpu_executor.stop(wait=False)
            raise
        self._local_kinds = frozenset(kinds)
        self._running = True

    @on_home_loop
    async def stop(self, wait: bool = True, timeout: float | None = 30.0) -> None:
        """Stop the app: intake stops at once.

        Args:
            wait: True lets queued and running tasks finish (for up to ``timeout``
                seconds overall); False cancels them at once.
            timeout: Seconds to wait for them; what is left is then cancelled. No record
                stays PENDING or RUNNING.
        """
        if not self._running:
            return
        self._running = False
        self._local_kinds = None
        if self._scheduler is not None:
            await self._scheduler.stop()
        await asyncio.gather(
            self._io_executor.stop(wait, timeout), self._cpu_executor.stop(wait, timeout)
        )
        if self._cancelling:
            await asyncio.wait(self._cancelling, timeout=5.0)
        if self._config.broker is not None:  # Redis clients belong to this loop: let go
            for executor in (self._io_executor, self._cpu_executor):
                await executor.broker.close()  # type: ignore[union-attr]
        await self._backend.close()

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

    # ------------------------------------------------------------------ reprs
    def _workers_text(self, table: bool = False) -> str:
        """The workers of this process: the configured counts, or none when started with
        ``workers=False`` (``flowrra worker`` processes run the tasks). ``table``: the
        short form of the HTML table's row."""
        kinds = self._local_kinds
        if kinds is not None and not kinds:
            return "none (submit-only)" if table else "workers=none (submit-only)"
        executor = self._config.executor
        counts = {"io": executor.io_workers, "cpu": executor.cpu_workers}
        form = "{0} {1}" if table else "{0}_workers={1}"
        return ", ".join(
            form.format(kind, count if kinds is None or kind in kinds else "none")
            for kind, count in counts.items()
        )

    def _status_line(self) -> str:
        state = "running" if self._running else "stopped"
        return f"{state}, {len(self._registry)} task(s), {self._workers_text()}"

    def __repr__(self) -> str:
        return f"<Flowrra {self._status_line()}>"

    def _repr_html_(self) -> str:
        """An HTML summary for notebooks: state, workers, queue sizes, records per
        status, and the broker and backend URLs with passwords hidden."""
        from flowrra.constants import STATUS_COLORS
        from flowrra.redis_client import redacted

        def hidden(url: str | None) -> str:
            return redacted(url) if url else "in memory"

        counter = getattr(self._backend, "count_by_status", None)

        def counts() -> dict[str, int]:  # a backend that counts without a round trip
            if counter is None or inspect.iscoroutinefunction(counter):
                return {}
            return dict(counter())

        async def counts_on_home() -> dict[str, int]:
            if counter is None:
                return {}
            found = counter()
            return dict(await found if inspect.isawaitable(found) else found)

        home = self._home_loop
        try:  # the records belong to the home loop's thread: count them there
            if home is None or not home.is_running() or home is asyncio.events._get_running_loop():
                found = counts()
            else:
                found = asyncio.run_coroutine_threadsafe(counts_on_home(), home).result(1.0)
            queued = f"io {self._io_executor.queue_size()}, cpu {self._cpu_executor.queue_size()}"
        except Exception:  # a repr must not fail
            found, queued = {}, "?"
        records = " &middot; ".join(
            f"<span style='color:{STATUS_COLORS.get(s, 'gray')}'>{s} {n}</span>"
            for s, n in found.items()
        )
        rows = [
            ("tasks", html.escape(", ".join(self._registry.list_tasks()) or "none registered")),
            ("workers", self._workers_text(table=True)),
            ("queued", queued),
            ("records", records or "-"),
            ("broker", html.escape(hidden(self._config.broker and self._config.broker.url))),
            ("backend", html.escape(hidden(self._config.backend and self._config.backend.url))),
        ]
        body = "".join(
            f"<tr><th style='text-align:left'>{k}</th><td>{v}</td></tr>" for k, v in rows
        )
        state, colour = ("running", "green") if self._running else ("stopped", "gray")
        return (
            f"<div class='flowrra-app'><b>Flowrra</b> <span style='color:{colour}'>{state}</span>"
            f"<table>{body}</table></div>"
        )
