"""The scheduler: fires cron, interval and one-time schedules kept in a database.

How a run fires exactly once:

1. The loop sleeps until the next due time (at most ``check_interval``; a change made
   through this scheduler wakes it at once; a change made by another process is seen
   within ``check_interval``).
2. It *claims* the due schedules: one transaction writes a lease (this scheduler's name
   and an expiry) on rows that no other scheduler holds.
3. It submits their tasks, then, in a second transaction, records each run, moves the
   schedule to its next run time and clears the lease.

A scheduler that dies between 2 and 3 leaves its leases to expire (``lease_seconds``);
another scheduler then fires those runs. So a run is never lost, and it fires twice only
when a scheduler dies after submitting and before recording it.

Run times never drift: an interval schedule's next run is its previous *due* time plus
the interval; a cron schedule's is the next match of its expression after now. Runs that
passed while no scheduler was running follow each schedule's
:class:`~flowrra.scheduler.models.MissedRunPolicy` (default: run once).
"""

from __future__ import annotations

import asyncio
import inspect
import json
import logging
import math
import os
import secrets
import socket
import uuid
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta, tzinfo
from functools import lru_cache
from typing import TYPE_CHECKING, Any, Protocol

from flowrra.clock import UTC, as_seconds, ensure_aware, utcnow
from flowrra.exceptions import ConfigError
from flowrra.home_loop import on_home_loop
from flowrra.registry import TaskRegistry
from flowrra.scheduler.backends import BaseSchedulerBackend, get_scheduler_backend
from flowrra.scheduler.cron import CronExpression
from flowrra.scheduler.models import (
    DEFAULT_MAX_CATCHUP,
    DEFAULT_MISSED_RUNS,
    MissedRunPolicy,
    RunCompletion,
    RunOutcome,
    ScheduledTask,
    ScheduleError,
    ScheduleRun,
    ScheduleType,
    dump_json,
)

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["RunPlan", "Scheduler", "SubmitTask", "plan_runs"]

logger = logging.getLogger("flowrra.scheduler")

_MAX_ID_LENGTH = 191
_MAX_INTERVAL = 1000 * 365 * 86_400.0  # seconds; far below datetime's range
_PRUNE_EVERY = 30.0  # seconds between trims of the run history
_STOP_TIMEOUT = 10.0  # seconds stop() lets a firing finish before cancelling it
_REQUIRES = (
    "Scheduler requires either:\n"
    "1. Executor instances (io_executor and/or cpu_executor), or\n"
    "2. A submit function (Scheduler(..., submit=...) or set_submit_callback())"
)


class SubmitTask(Protocol):
    """How a scheduler hands a due run to the task queue; returns the task id.

    ``max_retries``, ``retry_delay`` and ``timeout`` of None mean the task's defaults.
    """

    def __call__(
        self,
        task_name: str,
        args: tuple,
        kwargs: dict,
        *,
        priority: int,
        max_retries: int | None,
        retry_delay: float | None,
        timeout: float | None,
    ) -> Awaitable[str]:
        """Submit ``task_name`` with ``args`` and ``kwargs``; return its task id."""
        ...


# ---------------------------------------------------------------- run planning
@dataclass
class RunPlan:
    """What to do with a due schedule: the due times to fire now (oldest first), a
    missed run that is skipped (recorded in the history), the next run time, and
    whether the schedule stays enabled."""

    fire: list[datetime]
    skipped: datetime | None
    next_run_at: datetime | None
    keep_enabled: bool


@lru_cache(maxsize=4096)
def _cron(expression: str, timezone: str | None) -> CronExpression:
    return CronExpression(expression, timezone or "UTC")


def _step(seconds_text: str) -> timedelta:
    return timedelta(microseconds=round(float(seconds_text) * 1_000_000))


def _recent_slots(
    task: ScheduledTask, now: datetime, limit: int
) -> tuple[list[datetime], datetime | None]:
    """Up to ``limit`` due times at or before ``now`` (newest first) and the first after."""
    first = task.next_run_at
    assert first is not None
    if task.schedule_type is ScheduleType.ONE_TIME:
        return [first], None
    if task.schedule_type is ScheduleType.INTERVAL:
        step = _step(task.schedule)
        behind = (now - first) // step
        latest = first + behind * step
        return [latest - i * step for i in range(min(limit, behind + 1))], latest + step
    cron = _cron(task.schedule, task.timezone)
    recent = cron.previous_runs(now, limit, since=first)
    return recent or [first], cron.next_run(now)


def plan_runs(task: ScheduledTask, now: datetime, grace_period: float) -> RunPlan:
    """Plan a due schedule's runs by its missed-run policy (see
    :class:`~flowrra.scheduler.models.MissedRunPolicy`)."""
    policy = task.missed_runs
    limit = task.max_catchup if policy is MissedRunPolicy.RUN_ALL else 1
    recent, following = _recent_slots(task, now, limit)
    keep = task.schedule_type is not ScheduleType.ONE_TIME
    latest = recent[0]
    if policy is MissedRunPolicy.SKIP and (now - latest).total_seconds() > grace_period:
        return RunPlan([], latest, following, keep)
    return RunPlan(recent[::-1], None, following, keep)


def _resume_time(task: ScheduledTask, now: datetime) -> datetime | None:
    """The next run of a schedule being enabled again: runs missed while it was disabled
    are dropped."""
    if task.schedule_type is ScheduleType.ONE_TIME:
        return task.next_run_at
    if task.schedule_type is ScheduleType.CRON:
        return _cron(task.schedule, task.timezone).next_run(now)
    first = task.next_run_at
    if first is None or first > now:
        return first or now + _step(task.schedule)
    step = _step(task.schedule)
    return first + ((now - first) // step + 1) * step


# ------------------------------------------------------------ input checking
def _seconds_text(seconds: float) -> str:
    """60 and 60.0 -> "60"; 0.5 -> "0.5": one text per duration."""
    return str(int(seconds)) if seconds == int(seconds) else repr(seconds)


def _not_finite(value: object) -> bool:
    """True for a float inf or nan (an int is always finite, however large)."""
    return isinstance(value, float) and not math.isfinite(value)


def _interval_seconds(interval: object) -> float:
    try:
        seconds = as_seconds(interval, "interval")  # type: ignore[arg-type]
    except TypeError as exc:
        raise ScheduleError(str(exc)) from None
    except OverflowError:  # an int too large for a float
        seconds = math.inf if interval > 0 else -math.inf  # type: ignore[operator]
    if math.isnan(seconds) or (math.isinf(seconds) and not isinstance(interval, int)):
        raise ScheduleError(
            f"Interval must be a finite number of seconds (or a timedelta), got {interval!r}"
        )
    if not seconds > 0:
        raise ScheduleError(f"Interval must be positive, got {interval!r}")
    if seconds > _MAX_INTERVAL:
        raise ScheduleError(
            f"Interval must be at most {_MAX_INTERVAL:.0f} seconds (1000 years), got {interval!r}"
        )
    if round(seconds * 1_000_000) < 1:
        raise ScheduleError(f"Interval must be at least one microsecond, got {interval!r}")
    return seconds


def _check_number(value: object, name: str, *, positive: bool = False, whole: bool = False) -> None:
    kinds: tuple[type, ...] = (int,) if whole else (int, float)
    if value is None:
        return
    if isinstance(value, bool) or not isinstance(value, kinds) or _not_finite(value):
        kind = "a whole number" if whole else "a finite number"
        raise ScheduleError(f"{name} must be {kind} or None, got {value!r}")
    if value < 0 or (positive and value == 0):
        raise ScheduleError(f"{name} must be {'> 0' if positive else '>= 0'}, got {value!r}")


def _check_arguments(args: object, kwargs: object) -> tuple[tuple, dict]:
    if isinstance(args, str | bytes | dict) or not isinstance(args, Iterable):
        raise ScheduleError(f"args must be a tuple or list, got {type(args).__name__}")
    if kwargs is None:
        kwargs = {}
    if not isinstance(kwargs, dict) or not all(isinstance(k, str) for k in kwargs):
        raise ScheduleError("kwargs must be a dict with string keys")
    try:
        stored_args, stored_kwargs = dump_json(list(args)), dump_json(kwargs)
    except (TypeError, ValueError) as exc:
        raise ScheduleError(
            f"The args and kwargs of a schedule are stored as JSON and must be JSON-"
            f"serializable: {exc}"
        ) from None
    return tuple(json.loads(stored_args)), json.loads(stored_kwargs)


@dataclass
class _Options:
    """The options every ``schedule_*`` call takes, checked."""

    args: tuple
    kwargs: dict
    enabled: bool
    description: str | None
    max_retries: int | None
    retry_delay: float | None
    priority: int
    timeout: float | None
    missed_runs: MissedRunPolicy
    max_catchup: int
    schedule_id: str


def _check_options(raw: dict[str, Any]) -> _Options:
    args, kwargs = _check_arguments(raw["args"], raw["kwargs"])
    _check_number(raw["max_retries"], "max_retries", whole=True)
    _check_number(raw["retry_delay"], "retry_delay")
    _check_number(raw["timeout"], "timeout", positive=True)
    priority = raw["priority"]
    if isinstance(priority, bool) or not isinstance(priority, int):
        raise ScheduleError(f"priority must be a whole number, got {priority!r}")
    if raw["description"] is not None and not isinstance(raw["description"], str):
        raise ScheduleError("description must be a string or None")
    try:
        policy = MissedRunPolicy(raw["missed_runs"])
    except ValueError:
        allowed = ", ".join(p.value for p in MissedRunPolicy)
        raise ScheduleError(
            f"missed_runs must be one of {allowed}, got {raw['missed_runs']!r}"
        ) from None
    _check_number(raw["max_catchup"], "max_catchup", positive=True, whole=True)
    return _Options(
        args=args,
        kwargs=kwargs,
        enabled=bool(raw["enabled"]),
        description=raw["description"],
        max_retries=raw["max_retries"],
        retry_delay=None if raw["retry_delay"] is None else float(raw["retry_delay"]),
        priority=priority,
        timeout=None if raw["timeout"] is None else float(raw["timeout"]),
        missed_runs=policy,
        max_catchup=raw["max_catchup"],
        schedule_id=_check_id(raw["task_id"], raw["schedule_id"]),
    )


def _check_id(task_id: str | None, schedule_id: str | None) -> str:
    if task_id is not None and schedule_id is not None and task_id != schedule_id:
        raise ScheduleError("Give schedule_id or task_id (its 0.1.8 name), not both")
    chosen = schedule_id if schedule_id is not None else task_id
    if chosen is None:
        return str(uuid.uuid4())
    if not isinstance(chosen, str) or not 1 <= len(chosen) <= _MAX_ID_LENGTH:
        raise ScheduleError(f"A schedule id must be a string of 1 to {_MAX_ID_LENGTH} characters")
    return chosen


def _positive(value: object, name: str, *, zero: bool = False) -> float:
    if (
        isinstance(value, bool)
        or not isinstance(value, int | float)
        or _not_finite(value)
        or value < 0
    ):
        raise ConfigError(f"{name} must be a finite number >= 0, got {value!r}")
    if value == 0 and not zero:
        raise ConfigError(f"{name} must be positive, got {value!r}")
    return float(value)


def _owner_name() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(4)}"


# ------------------------------------------------------------------ scheduler
class Scheduler:
    """Fires cron, interval and one-time schedules kept in SQLite, PostgreSQL or MySQL.

    Usage::

        scheduler = app.create_scheduler("postgresql://localhost/app")
        await scheduler.schedule_cron("send_report", "0 9 * * mon-fri", timezone="Europe/Berlin")
        await scheduler.schedule_interval("poll", 30)
        await scheduler.schedule_once("remind", run_at=datetime(2030, 1, 1, 9, tzinfo=UTC))
        await app.start()                    # starts the scheduler too

    Args:
        backend: A :class:`~flowrra.scheduler.backends.BaseSchedulerBackend`, a database
            URL, or None (SQLite at ``.flowrra_schedule.db``).
        registry: The :class:`~flowrra.registry.TaskRegistry` of the tasks it may run;
            a scheduler claims only schedules of tasks registered in its process.
        check_interval: The longest sleep, in seconds: changes made by other processes
            are seen within it.
        io_executor: With ``cpu_executor``: executors to submit to directly (0.1.8).
        cpu_executor: See ``io_executor``.
        submit: A :class:`SubmitTask` function (what ``app.create_scheduler`` passes).
        lease_seconds: How long a claimed run is reserved for this scheduler; if it dies,
            another scheduler fires the run after this long (default 30).
        grace_period: How late (seconds) a run may be and still fire under the ``skip``
            missed-run policy (default 60).
        batch_size: Due schedules claimed per transaction (default 100).
        history_limit: Runs kept in each schedule's history (default 20).
        clock: Returns the current aware UTC time (for tests; default the system clock).
    """

    def __init__(
        self,
        backend: BaseSchedulerBackend | str | None,
        registry: TaskRegistry,
        check_interval: float = 60.0,
        io_executor: Any = None,
        cpu_executor: Any = None,
        *,
        submit: SubmitTask | None = None,
        lease_seconds: float = 30.0,
        grace_period: float = 60.0,
        batch_size: int = 100,
        history_limit: int = 20,
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        """Create a scheduler; see the class docstring. Nothing connects until used."""
        self.backend = get_scheduler_backend(backend)
        self.registry = registry
        self.check_interval = _positive(check_interval, "check_interval")
        self.io_executor = io_executor
        self.cpu_executor = cpu_executor
        self.lease_seconds = _positive(lease_seconds, "lease_seconds")
        self.grace_period = _positive(grace_period, "grace_period", zero=True)
        self.batch_size = int(_positive(batch_size, "batch_size"))
        self.history_limit = int(_positive(history_limit, "history_limit"))
        self.name = _owner_name()
        self._submit = submit
        self._callback: Callable[..., Any] | None = None
        self._clock = clock
        self._task: asyncio.Task[None] | None = None
        self._wake: asyncio.Event | None = None
        self._stopping = False
        self._touched: set[str] = set()
        self._last_prune = 0.0
        self._home_loop: asyncio.AbstractEventLoop | None = None

    # -------------------------------------------------------------- lifecycle
    @property
    def is_running(self) -> bool:
        """True between :meth:`start` and :meth:`stop`."""
        return self._task is not None and not self._task.done()

    def set_submit_callback(self, callback: Callable[..., Any]) -> None:
        """The flowrra 0.1.8 hook: ``callback(task_func, *args, **kwargs)`` (sync or
        async) submits a due run. It takes precedence over executors, not over ``submit``;
        the schedule's priority, retries and timeout cannot reach the task through it."""
        self._callback = callback

    def _can_submit(self) -> bool:
        return any(
            x is not None
            for x in (self._submit, self._callback, self.io_executor, self.cpu_executor)
        )

    async def start(self) -> None:
        """Connect, create the tables if needed and start firing. Idempotent.

        Raises:
            ScheduleError: There is nothing to submit due runs to.
            SchedulerBackendError: The database cannot be reached.
        """
        if self.is_running:
            return
        if not self._can_submit():
            raise ScheduleError(_REQUIRES)
        await self.backend.initialize()
        loop = asyncio.get_running_loop()
        self._home_loop = loop
        self._stopping = False
        self._last_prune = loop.time()
        self._wake = asyncio.Event()
        self._task = loop.create_task(self._run(), name="flowrra-scheduler")

    async def stop(self) -> None:
        """Stop firing: a firing in progress completes; this scheduler's leases are
        released and the database connections closed (they reopen on next use)."""
        task = self._task
        if task is None:
            return
        self._stopping = True
        self._notify()
        done, _ = await asyncio.wait({task}, timeout=_STOP_TIMEOUT)
        if not done:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
        self._task = None
        try:
            await self.backend.release(self.name)
        except Exception:
            logger.warning("Could not release the leases of scheduler %s", self.name, exc_info=True)
        try:
            await self.backend.close()
        except Exception:
            logger.warning("Could not close the scheduler backend", exc_info=True)

    def _notify(self) -> None:
        if self._wake is not None:
            self._wake.set()

    # ------------------------------------------------------------------- loop
    async def _run(self) -> None:
        failures = 0
        while not self._stopping:
            assert self._wake is not None
            self._wake.clear()
            try:
                delay = await self._tick()
                failures = 0
            except Exception:
                failures += 1
                delay = min(self.check_interval, 0.25 * 2 ** min(failures, 10))
                logger.exception("Scheduler %s: checking for due runs failed", self.name)
            if self._stopping:
                return
            try:
                async with asyncio.timeout(delay):
                    await self._wake.wait()
            except TimeoutError:
                pass

    async def _tick(self) -> float:
        """Fire what is due; return the seconds to sleep."""
        names = self.registry.list_tasks()
        due = None
        if names:
            await self._fire_due(names)
            if self._stopping:
                return 0.0
            due = await self.backend.next_due_time(self._clock(), names)
        await self._prune()
        if due is None:
            return self.check_interval
        wait = (due - self._clock()).total_seconds()
        return min(max(wait, 0.0), self.check_interval)

    async def _fire_due(self, names: list[str]) -> None:
        while not self._stopping:
            now = self._clock()
            lease = now + timedelta(seconds=self.lease_seconds)
            batch = await self.backend.claim_due(self.name, now, lease, names, self.batch_size)
            if not batch:
                return
            completions = [await self._fire(task, now) for task in batch]
            await self.backend.complete_runs(self.name, [c for c in completions if c is not None])
            self._touched.update(task.id for task in batch)
            if len(batch) < self.batch_size:
                return

    async def _fire(self, task: ScheduledTask, now: datetime) -> RunCompletion | None:
        """Submit a claimed schedule's due runs; what to write back (None: nothing, its
        lease is released when the scheduler stops)."""
        try:
            plan = plan_runs(task, now, self.grace_period)
        except Exception as exc:
            logger.exception("Schedule %s cannot compute its run times; disabling it", task.id)
            failed = ScheduleRun(
                task.id, now, now, None, RunOutcome.FAILED, _describe(exc), self.name
            )
            return RunCompletion(task.id, None, None, False, [failed])
        runs: list[ScheduleRun] = []
        for index, due in enumerate(plan.fire):
            if self._stopping:
                return self._interrupted(task, plan, index, runs, None)
            run = await self._submit_run(task, due)
            if run is None:
                retry_at = self._clock() + timedelta(seconds=min(self.check_interval, 5.0))
                return self._interrupted(task, plan, index, runs, retry_at)
            runs.append(run)
        if plan.skipped is not None:
            late = (now - plan.skipped).total_seconds()
            note = f"missed by {late:.3f}s (missed_runs='skip')"
            runs.append(
                ScheduleRun(task.id, plan.skipped, now, None, RunOutcome.SKIPPED, note, self.name)
            )
        last = max((r.fired_at for r in runs if r.outcome is RunOutcome.SUBMITTED), default=None)
        return RunCompletion(task.id, last, plan.next_run_at, plan.keep_enabled, runs)

    def _interrupted(
        self,
        task: ScheduledTask,
        plan: RunPlan,
        index: int,
        runs: list[ScheduleRun],
        retry_at: datetime | None,
    ) -> RunCompletion | None:
        """Runs from ``plan.fire[index]`` on were not submitted: they stay due."""
        if not runs and retry_at is None:
            return None
        last = max((r.fired_at for r in runs), default=None)
        return RunCompletion(task.id, last, plan.fire[index], True, runs, retry_at)

    async def _submit_run(self, task: ScheduledTask, due: datetime) -> ScheduleRun | None:
        """Submit one run; None if the submit failed (the run stays due)."""
        fired_at = self._clock()
        try:
            task_id = await self._submit_task(task)
        except Exception as exc:
            logger.error(
                "Schedule %s could not submit task %s (run due %s; retrying): %s",
                task.id,
                task.task_name,
                due.isoformat(),
                _describe(exc),
            )
            return None
        return ScheduleRun(task.id, due, fired_at, task_id, RunOutcome.SUBMITTED, None, self.name)

    async def _submit_task(self, task: ScheduledTask) -> str | None:
        if self._submit is not None:
            return await self._submit(
                task.task_name,
                tuple(task.args),
                dict(task.kwargs),
                priority=task.priority,
                max_retries=task.max_retries,
                retry_delay=task.retry_delay,
                timeout=task.timeout,
            )
        if self._callback is not None:
            func = self.registry.get_or_raise(task.task_name)
            result = self._callback(func, *task.args, **task.kwargs)
            if inspect.isawaitable(result):
                result = await result
            return None if result is None else str(result)
        return await self._submit_to_executor(task)

    async def _submit_to_executor(self, task: ScheduledTask) -> str:
        from flowrra.executors.base import SubmitOptions

        spec = self.registry.spec(task.task_name)
        executor = self.cpu_executor if spec.cpu_bound else self.io_executor
        if executor is None:
            kind = "CPU" if spec.cpu_bound else "IO"
            raise ScheduleError(f"No {kind} executor to run task '{task.task_name}'")
        options = SubmitOptions(
            priority=task.priority,
            max_retries=task.max_retries,
            retry_delay=task.retry_delay,
            timeout=task.timeout,
        )
        return await executor.submit_with(spec, tuple(task.args), dict(task.kwargs), options)

    async def _prune(self) -> None:
        loop_time = asyncio.get_running_loop().time()
        if not self._touched or loop_time - self._last_prune < _PRUNE_EVERY:
            return
        touched, self._touched = self._touched, set()
        self._last_prune = loop_time
        await self.backend.prune_runs(sorted(touched), self.history_limit)

    # ------------------------------------------------------------- scheduling
    def _build(
        self,
        task_name: str,
        schedule_type: ScheduleType,
        schedule: str,
        first_run: datetime,
        timezone: str | None,
        raw: dict[str, Any],
    ) -> ScheduledTask:
        if not isinstance(task_name, str) or not self.registry.is_registered(task_name):
            raise ScheduleError(
                f"Task '{task_name}' is not registered; register it (@app.task()) before "
                "scheduling it"
            )
        options = _check_options(raw)
        now = self._clock()
        return ScheduledTask(
            id=options.schedule_id,
            task_name=task_name,
            schedule_type=schedule_type,
            schedule=schedule,
            args=options.args,
            kwargs=options.kwargs,
            enabled=options.enabled,
            next_run_at=first_run.astimezone(UTC),
            created_at=now,
            updated_at=now,
            description=options.description,
            max_retries=options.max_retries,
            retry_delay=options.retry_delay,
            priority=options.priority,
            timeout=options.timeout,
            timezone=timezone,
            missed_runs=options.missed_runs,
            max_catchup=options.max_catchup,
        )

    async def _add(self, task: ScheduledTask) -> str:
        stored = await self.backend.add(task)
        if stored.id == task.id:
            self._notify()
        return stored.id

    @on_home_loop
    async def schedule_cron(
        self,
        task_name: str,
        cron: str,
        args: tuple | list = (),
        kwargs: dict | None = None,
        enabled: bool = True,
        description: str | None = None,
        max_retries: int | None = None,
        retry_delay: float | None = None,
        priority: int = 0,
        task_id: str | None = None,
        *,
        timezone: str | tzinfo | None = None,
        timeout: float | None = None,
        missed_runs: MissedRunPolicy | str = DEFAULT_MISSED_RUNS,
        max_catchup: int = DEFAULT_MAX_CATCHUP,
        schedule_id: str | None = None,
    ) -> str:
        """Run ``task_name`` whenever the cron expression ``cron`` matches; return the
        schedule id.

        Args:
            task_name: A registered task.
            cron: Five fields (``"0 9 * * mon-fri"``) or a macro (``"@daily"``); see
                :mod:`flowrra.scheduler.cron` for the semantics.
            args: Positional arguments of each run (stored as JSON).
            kwargs: Keyword arguments of each run (stored as JSON).
            enabled: False stores the schedule without firing it.
            description: Free text.
            max_retries: Overrides the task's retries for these runs (None: its own).
            retry_delay: Overrides the task's retry delay (None: its own).
            priority: Priority of the submitted tasks (lower runs first).
            task_id: A custom schedule id (the 0.1.8 name of ``schedule_id``).
            timezone: IANA time zone the expression is read in (default: this machine's).
            timeout: Seconds each run may take (None: the task's own).
            missed_runs: ``"skip"``, ``"run_once"`` (default) or ``"run_all"``.
            max_catchup: The most missed runs ``"run_all"`` fires (default 100).
            schedule_id: A custom schedule id (default: a new UUID).

        Calling it again with the same task, expression, time zone, args and kwargs
        returns the existing schedule's id and changes nothing.

        Raises:
            ScheduleError: An unregistered task, an invalid expression or time zone, or
                an invalid option (a ``ValueError``).
        """
        expression = CronExpression(cron, timezone)
        raw = dict(locals())  # the options, checked together by _build
        first = expression.next_run(self._clock())
        task = self._build(
            task_name, ScheduleType.CRON, expression.expression, first, expression.timezone, raw
        )
        return await self._add(task)

    @on_home_loop
    async def schedule_interval(
        self,
        task_name: str,
        interval: float | timedelta,
        args: tuple | list = (),
        kwargs: dict | None = None,
        enabled: bool = True,
        description: str | None = None,
        max_retries: int | None = None,
        retry_delay: float | None = None,
        priority: int = 0,
        task_id: str | None = None,
        *,
        start_at: datetime | None = None,
        timeout: float | None = None,
        missed_runs: MissedRunPolicy | str = DEFAULT_MISSED_RUNS,
        max_catchup: int = DEFAULT_MAX_CATCHUP,
        schedule_id: str | None = None,
    ) -> str:
        """Run ``task_name`` every ``interval`` seconds (a number or a timedelta); return
        the schedule id.

        The first run is at ``start_at`` (a datetime; naive means local time) or one
        interval from now; each next run is the previous due time plus the interval, so
        runs never drift. 60, 60.0 and ``timedelta(minutes=1)`` are the same schedule.
        Other arguments as in :meth:`schedule_cron`.

        Raises:
            ScheduleError: An interval of zero or less, an unregistered task or an
                invalid option.
        """
        seconds = _interval_seconds(interval)
        raw = dict(locals())  # the options, checked together by _build
        if start_at is not None and not isinstance(start_at, datetime):
            raise ScheduleError(f"start_at must be a datetime, got {type(start_at).__name__}")
        first = (
            ensure_aware(start_at)
            if start_at is not None
            else self._clock() + _step(_seconds_text(seconds))
        )
        task = self._build(
            task_name, ScheduleType.INTERVAL, _seconds_text(seconds), first, None, raw
        )
        return await self._add(task)

    @on_home_loop
    async def schedule_once(
        self,
        task_name: str,
        run_at: datetime,
        args: tuple | list = (),
        kwargs: dict | None = None,
        description: str | None = None,
        max_retries: int | None = None,
        retry_delay: float | None = None,
        priority: int = 0,
        task_id: str | None = None,
        *,
        enabled: bool = True,
        timeout: float | None = None,
        missed_runs: MissedRunPolicy | str = DEFAULT_MISSED_RUNS,
        schedule_id: str | None = None,
    ) -> str:
        """Run ``task_name`` once at ``run_at`` (naive means local time; a time in the
        past runs at once); return the schedule id.

        After its run the schedule stays in the database, disabled, with its
        ``last_run_at`` set, so calling this again with the same arguments does not run
        it twice. Other arguments as in :meth:`schedule_cron`.
        """
        if not isinstance(run_at, datetime):
            raise ScheduleError(f"run_at must be a datetime, got {type(run_at).__name__}")
        when = ensure_aware(run_at).astimezone(UTC)
        raw = dict(locals(), max_catchup=1)  # the options, checked together by _build
        task = self._build(task_name, ScheduleType.ONE_TIME, when.isoformat(), when, None, raw)
        return await self._add(task)

    # ------------------------------------------------------------- managing
    async def _get_or_raise(self, schedule_id: str) -> ScheduledTask:
        task = await self.backend.get(schedule_id)
        if task is None:
            raise ScheduleError(f"Scheduled task '{schedule_id}' not found")
        return task

    @on_home_loop
    async def unschedule(self, schedule_id: str) -> bool:
        """Delete a schedule and its history; True if it existed."""
        deleted = await self.backend.delete(schedule_id)
        self._notify()
        return deleted

    @on_home_loop
    async def enable_task(self, schedule_id: str) -> None:
        """Enable a schedule. Runs that fell due while it was disabled are dropped: it
        continues with its first run time after now (a one-time schedule keeps its time).

        Raises:
            ScheduleError: No such schedule, or a one-time schedule that already ran.
        """
        task = await self._get_or_raise(schedule_id)
        if task.enabled:
            return
        if task.schedule_type is ScheduleType.ONE_TIME and task.next_run_at is None:
            raise ScheduleError(
                f"Scheduled task '{schedule_id}' was a one-time schedule and already ran; "
                "schedule it again with a new run_at"
            )
        await self.backend.set_enabled(schedule_id, True, _resume_time(task, self._clock()))
        self._notify()

    @on_home_loop
    async def disable_task(self, schedule_id: str) -> None:
        """Disable a schedule (it stays stored). ScheduleError if there is no such one."""
        task = await self._get_or_raise(schedule_id)
        await self.backend.set_enabled(schedule_id, False, task.next_run_at)
        self._notify()

    @on_home_loop
    async def get_schedule(self, schedule_id: str) -> ScheduledTask | None:
        """The schedule ``schedule_id``, or None."""
        return await self.backend.get(schedule_id)

    @on_home_loop
    async def list_schedules(self, enabled_only: bool = False) -> list[ScheduledTask]:
        """Every schedule, oldest first (or only the enabled ones, soonest first)."""
        if enabled_only:
            return await self.backend.list_enabled()
        return await self.backend.list_all()

    @on_home_loop
    async def list_runs(self, schedule_id: str, limit: int = 20) -> list[ScheduleRun]:
        """The latest runs of a schedule (due and fire times, task id, outcome), newest
        first; the last ``history_limit`` are kept."""
        return await self.backend.list_runs(schedule_id, limit)

    @on_home_loop
    async def count_schedules(self) -> tuple[int, int]:
        """``(total, enabled)`` numbers of schedules."""
        return await self.backend.count()

    async def get_scheduled_task(self, task_id: str) -> ScheduledTask | None:
        """The 0.1.8 name of :meth:`get_schedule`."""
        return await self.get_schedule(task_id)

    async def list_scheduled_tasks(self) -> list[ScheduledTask]:
        """The 0.1.8 name of :meth:`list_schedules`."""
        return await self.list_schedules()

    async def schedules_frame(self, enabled_only: bool = False) -> pd.DataFrame:
        """The schedules as a pandas DataFrame (see
        :func:`flowrra.frames.schedules_frame`); needs the ``notebook`` extra."""
        from flowrra.frames import schedules_frame

        return schedules_frame(await self.list_schedules(enabled_only))

    def __repr__(self) -> str:
        state = "running" if self.is_running else "stopped"
        return f"<Scheduler {state} {self.backend!r} check_interval={self.check_interval}>"


def _describe(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}"
